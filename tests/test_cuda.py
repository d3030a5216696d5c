"""The numba.cuda backend: under the CUDA simulator (tiny nets, CI) and on a real GPU (marker ``cuda``).

Both compare the GPU kernels with the NumPy reference / the numba CPU kernels on
the same counter-based noise.
"""

import numpy as np
import pytest

from kltrain.estimators.importance import posterior_mean_from_partial
from kltrain.kernels import cuda_available, get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.nets.projected import projected_importance_update

TOL = 5e-6


def _case(sizes, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    X = rng.random((batch, sizes[0])) * (rng.random((batch, sizes[0])) < 0.6)
    y = rng.integers(0, sizes[-1], batch)
    params = net.init(1) + np.float32(0.05) * rng.normal(size=net.n_params).astype(np.float32)
    return Minibatch.build(net, X, y), params


@pytest.fixture(scope="module")
def gpu():
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("simulator tests run with NUMBA_ENABLE_CUDASIM=1 (the test default)")
    return get_backend("cuda")


REF = get_backend("numpy")


@pytest.mark.parametrize("sizes", [(6, 4, 3), (6, 3)], ids=["hidden", "small"])
def test_simulated_kernels_match_the_reference(gpu, sizes):
    mb, p = _case(sizes)
    np.testing.assert_allclose(gpu.normals(5, [0, 3], 7), REF.normals(5, [0, 3], 7), atol=TOL)
    x = p.astype(np.float64)
    for anti, (lo, hi) in ((False, (0, 4)), (True, (1, 4))):
        a, la = gpu.importance_partial(mb, p, 0.1, 7, lo, hi, anti)
        b, lb = REF.importance_partial(mb, p, 0.1, 7, lo, hi, anti)
        np.testing.assert_allclose(la, lb, atol=TOL)
        np.testing.assert_allclose(posterior_mean_from_partial(a, x, 0.1), posterior_mean_from_partial(b, x, 0.1),
                                   atol=TOL)
    (l1, g1), (l0, g0) = gpu.loss_and_grad(mb, p), REF.loss_and_grad(mb, p)
    assert l1 == pytest.approx(l0, abs=TOL)
    np.testing.assert_allclose(g1, g0, atol=TOL)
    eps = 1 / (10 + np.arange(1, 4))
    for a, b in zip(gpu.sgld_chain(mb, p, p, 0.1, eps, 3)[:2], REF.sgld_chain(mb, p, p, 0.1, eps, 3)[:2]):
        np.testing.assert_allclose(a, b, atol=TOL)
    steps = 0.5 * np.arange(1, 3) ** -0.7
    (r1, res1), (r0, res0) = gpu.robbins_monro(mb, p, 0.1, steps, 2, 4), REF.robbins_monro(mb, p, 0.1, steps, 2, 4)
    np.testing.assert_allclose(r1, r0, atol=TOL)
    assert res1 == pytest.approx(res0, rel=1e-4)


def test_simulated_negative_control_other_seed_differs(gpu):
    mb, p = _case((6, 4, 3))
    _, la = gpu.importance_partial(mb, p, 0.1, 7, 0, 2, False)
    _, lb = REF.importance_partial(mb, p, 0.1, 8, 0, 2, False)
    assert np.abs(la - lb).max() > 1e-3


def test_simulated_projected_update_matches_cpu(gpu):
    mb, p = _case((6, 4, 3), batch=2)
    a, _ = projected_importance_update(gpu, mb, p, 0.1, 3, 3)
    b, _ = projected_importance_update(get_backend("cpu"), mb, p, 0.1, 3, 3)
    np.testing.assert_allclose(a, b, atol=TOL)


def test_unsupported_nets_are_refused(gpu):
    mb, p = _case((6, 4, 4, 3))
    with pytest.raises(NotImplementedError, match="backend='cpu'"):
        gpu.loss_and_grad(mb, p)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="needs a real CUDA GPU (run with NUMBA_ENABLE_CUDASIM=0)")
def test_gpu_matches_cpu_on_the_paper_net():
    from kltrain.nets.data import load_mnist
    X, y, _, _ = load_mnist(quiet=True)
    net = MLP.hidden()
    mb, p = Minibatch.build(net, X[:20], y[:20]), net.init(0)
    gpu, cpu = get_backend("cuda"), get_backend("cpu")
    a, la = gpu.importance_partial(mb, p, 0.01, 1, 0, 256, False)
    b, lb = cpu.importance_partial(mb, p, 0.01, 1, 0, 256, False)
    np.testing.assert_allclose(la, lb, atol=1e-4)
    np.testing.assert_allclose(a.sum_w_eps / a.sum_w, b.sum_w_eps / b.sum_w, atol=1e-4)
    np.testing.assert_allclose(gpu.loss_and_grad(mb, p)[1], cpu.loss_and_grad(mb, p)[1], atol=1e-5)


def test_gpu_check_script_says_when_there_is_no_gpu(capsys):
    from validation.gpu import main
    assert main(["--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out
