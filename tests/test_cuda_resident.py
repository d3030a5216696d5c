"""The device-resident updates under the CUDA simulator: parity with the CPU, the device QR, one sync.

Tiny nets (the simulator runs each GPU thread as a Python thread). The oracle for the reduced IS
update is the CPU reduced path (:func:`kltrain.nets.projected.projected_importance_update`: host
Householder QR, numba CPU kernels, host lift); for the device QR it is NumPy (float64 Householder
and Gram–Schmidt, :mod:`kltrain.nets.basis`); for SGD the CPU kernels' gradient.
"""

from collections import Counter

import numpy as np
import pytest
from numba import cuda

from kltrain.kernels import cuda_available, get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.nets.basis import rank_tolerance, row_space_basis
from kltrain.nets.projected import projected_importance_update

CPU = get_backend("cpu")
TOL = 5e-6


@pytest.fixture(scope="module")
def R():
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("simulator tests run with NUMBA_ENABLE_CUDASIM=1 (the test default)")
    from kltrain.kernels import cuda_resident
    return cuda_resident


def _case(sizes, X, seed=0):
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    y = rng.integers(0, sizes[-1], len(X))
    params = net.init(1) + np.float32(0.05) * rng.normal(size=net.n_params).astype(np.float32)
    return Minibatch.build(net, X, y), params


def _images(batch, pixels, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((batch, pixels)) * (rng.random((batch, pixels)) < 0.6)).astype(np.float32)


def _resident(R, mb, params):
    res = R.ResidentMLP(mb.net, mb.X, mb.y, params)
    res.set_batch(np.arange(mb.batch_size))
    return res


# -- the reduced IS update ----------------------------------------------------------------------------
@pytest.mark.parametrize("sizes,antithetic,scale", [((6, 4, 3), False, 1.0), ((6, 4, 3), True, 20.0),
                                                    ((6, 3), False, 1.0), ((6, 3), True, 1.0)],
                         ids=["hidden", "hidden-antithetic-sum", "small", "small-antithetic"])
def test_resident_is_update_equals_the_cpu_reduced_path(R, sizes, antithetic, scale):
    mb, p = _case(sizes, _images(3, 6))
    res = _resident(R, mb, p)
    report = res.importance_update(0.1, 3, 5, antithetic, scale)
    expected, info = projected_importance_update(CPU, mb, p, 0.1, 3, 5, antithetic, scale)
    np.testing.assert_allclose(res.params(), expected, atol=TOL)
    np.testing.assert_allclose(res.log_weights(5), info.log_weights, atol=TOL * scale)
    assert report.ess == pytest.approx(info.ess, rel=1e-5)
    assert report.max_weight == pytest.approx(info.max_weight, rel=1e-5)
    assert report.loss == pytest.approx(scale * mb.net.loss(p, mb.X, mb.y), rel=1e-5)
    assert report.rank == 3 and report.syncs == 1


def test_resident_updates_chain_on_the_device(R):
    """Two updates on two minibatches with the parameters left on the device = two CPU updates."""
    X = _images(6, 6, seed=1)
    mb, p = _case((6, 4, 3), X)
    res = R.ResidentMLP(mb.net, X, mb.y, p)
    expected = p
    for rows, seed in ((np.array([0, 2, 4]), 5), (np.array([5, 1]), 6)):
        res.set_batch(rows)
        res.importance_update(0.05, seed, 4)
        expected, _ = projected_importance_update(CPU, Minibatch.build(mb.net, X[rows], mb.y[rows]), expected, 0.05,
                                                  seed, 4)
    np.testing.assert_allclose(res.params(), expected, atol=TOL)


def test_negative_control_another_seed_or_a_wrong_orthogonal_draw_is_detected(R, monkeypatch):
    mb, p = _case((6, 4, 3), _images(3, 6))
    expected, _ = projected_importance_update(CPU, mb, p, 0.1, 3, 5)
    res = _resident(R, mb, p)
    res.importance_update(0.1, 4, 5)
    assert np.abs(res.params() - expected).max() > 1e-3
    monkeypatch.setattr(R, "ORTHOGONAL_SAMPLE", 7)          # Z from the wrong stream index
    res = _resident(R, mb, p)
    res.importance_update(0.1, 3, 5)
    assert np.abs(res.params() - expected).max() > 1e-3


def test_backend_cuda_runs_projected_is_on_the_device(R, monkeypatch):
    mb, p = _case((6, 4, 3), _images(3, 6))
    calls = Counter()
    real = R.ResidentMLP.importance_update
    monkeypatch.setattr(R.ResidentMLP, "importance_update", lambda self, *a: calls.update(["device"]) or real(self, *a))
    a, info = projected_importance_update(get_backend("cuda"), mb, p, 0.1, 3, 5)
    b, ref = projected_importance_update(CPU, mb, p, 0.1, 3, 5)
    assert calls["device"] == 1
    np.testing.assert_allclose(a, b, atol=TOL)
    np.testing.assert_allclose(info.log_weights, ref.log_weights, atol=TOL)
    wide, q = _case((6, 4, 3), _images(25, 6))               # 25 rows: beyond the kernels, the host path runs
    assert R.reduced_importance_update(wide, q, 0.1, 3, 5) is None


def test_a_nan_loss_raises_and_leaves_the_parameters(R):
    mb, p = _case((6, 4, 3), _images(3, 6))
    p[-1] = np.nan                                           # b₂: every loss is NaN
    res = _resident(R, mb, p)
    with pytest.raises(FloatingPointError, match=r"τ = 0.1.*sample j = 0"):
        res.importance_update(0.1, 3, 4)
    np.testing.assert_array_equal(res.params(), p)           # the lift did not run


def test_resident_inputs_are_checked(R):
    mb, p = _case((6, 4, 3), _images(3, 6))
    res = R.ResidentMLP(mb.net, mb.X, mb.y, p)
    with pytest.raises(ValueError, match="set_batch"):
        res.importance_update(0.1, 3, 4)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 3\)"):
        res.set_batch([0, 3])
    with pytest.raises(ValueError, match="1..24"):
        res.set_batch(np.zeros(25, int))
    res.set_batch([0, 1])
    with pytest.raises(ValueError, match="tau"):
        res.importance_update(-1.0, 3, 4)
    with pytest.raises(ValueError, match="params must have shape"):
        res.load_params(p[:-1])
    with pytest.raises(NotImplementedError, match="0 or 1 hidden layer"):
        R.ResidentMLP(MLP((6, 4, 4, 3)), mb.X, mb.y, MLP((6, 4, 4, 3)).init(0))


# -- one synchronisation per update ----------------------------------------------------------------------
@pytest.fixture
def transfers(monkeypatch, R):
    """Counts device→host copies, host→device copies and host waits, by wrapping numba.cuda's entry points."""
    counts: Counter = Counter()
    probe = R.ResidentMLP(MLP((6, 3)), _images(2, 6), [0, 1], MLP((6, 3)).init(0))
    array_cls, stream_cls = type(probe.report), type(probe.stream)

    def counting(kind, fn):
        def wrapped(*args, **kwargs):
            counts[kind] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(array_cls, "copy_to_host", counting("device→host", array_cls.copy_to_host))
    monkeypatch.setattr(array_cls, "copy_to_device", counting("host→device", array_cls.copy_to_device))
    monkeypatch.setattr(stream_cls, "synchronize", counting("wait", stream_cls.synchronize))
    monkeypatch.setattr(cuda, "synchronize", counting("wait", cuda.synchronize))
    monkeypatch.setattr(cuda, "to_device", counting("host→device", cuda.to_device))
    return counts


def test_one_host_sync_per_reduced_is_update(R, transfers):
    mb, p = _case((6, 4, 3), _images(3, 6))
    res = _resident(R, mb, p)
    transfers.clear()
    for seed in range(3):
        report = res.importance_update(0.1, seed, 4, antithetic=bool(seed % 2))
        assert report.syncs == 1
    assert transfers == Counter({"device→host": 3, "wait": 3})    # the report, nothing else; no upload
    transfers.clear()
    res.set_batch([2, 0, 1])                                      # the next minibatch: one async copy, no wait
    assert transfers == Counter({"host→device": 1})
    transfers.clear()
    res.sgd_update(0.1)
    assert transfers == Counter({"device→host": 1, "wait": 1})


def test_negative_control_the_host_reduced_route_syncs_more(R, transfers):
    """The counter sees the old route's copies: log weights down, weights up, the sum down."""
    mb, p = _case((6, 4, 3), _images(3, 6))
    get_backend("cuda").importance_partial(mb, p, 0.1, 3, 0, 4, False)
    assert transfers["device→host"] >= 2 and transfers["host→device"] >= 2


# -- the device QR against NumPy -------------------------------------------------------------------------
def _device_qr(R, X):
    from kltrain.kernels import cuda_qr as Q
    X = np.ascontiguousarray(X, np.float32)
    B, n_in = X.shape
    basis = cuda.device_array((n_in, Q.MAX_ROWS), np.float32)
    tri = cuda.device_array((Q.MAX_ROWS, Q.MAX_ROWS), np.float32)
    meta = cuda.device_array(Q.META_ROWS + Q.MAX_ROWS, np.int64)
    Q.minibatch_qr[1, 16](cuda.to_device(X), cuda.to_device(np.arange(B)), B, rank_tolerance(B, n_in), basis, tri,
                          cuda.device_array((n_in, Q.MAX_ROWS), np.float64), meta)
    meta = meta.copy_to_host()
    r = int(meta[Q.META_RANK])
    return basis.copy_to_host()[:, :r], tri.copy_to_host()[:B, :r], r, int(meta[Q.META_STATUS])


def _ill_conditioned():
    rng = np.random.default_rng(3)
    dense = rng.random((5, 12)).astype(np.float32)
    repeated = dense.copy()
    repeated[3], repeated[4] = repeated[0], repeated[1]                  # repeated images: rank 3
    zeros = dense.copy()
    zeros[0], zeros[3] = 0.0, 0.0                                        # a leading and a middle blank row
    combination = dense.copy()
    combination[2] = combination[0] + 2 * combination[1]                 # rank < B without a repeat
    nearly = dense.copy()
    nearly[3] = nearly[1] + np.float32(1e-4) * rng.random(12).astype(np.float32)   # residual ≈ 1e-4: kept
    blank = np.zeros((4, 12), np.float32)
    wide = rng.random((8, 6)).astype(np.float32)                         # more images than pixels
    return {"dense": (dense, 5), "repeated": (repeated, 3), "zero rows": (zeros, 3),
            "combination": (combination, 4), "nearly dependent": (nearly, 5), "blank": (blank, 1), "wide": (wide, 6)}


@pytest.mark.parametrize("case", list(_ill_conditioned()))
def test_device_qr_gives_numpys_reduced_problem(R, case):
    X, rank = _ill_conditioned()[case]
    basis, tri, r, status = _device_qr(R, X)
    host_basis, host_tri, _ = row_space_basis(X)
    assert r == host_basis.shape[1] == rank and status in (0, 1)
    np.testing.assert_allclose(basis @ basis.T, host_basis @ host_basis.T, atol=1e-6)   # the same row space
    np.testing.assert_allclose(basis, host_basis, atol=1e-6)                            # the same (canonical) basis
    np.testing.assert_allclose(tri, host_tri, atol=1e-5 * max(1.0, np.abs(host_tri).max()))
    np.testing.assert_allclose(basis.T @ basis, np.eye(r), atol=1e-6)
    np.testing.assert_allclose(X @ basis, tri, atol=1e-5)                               # AŨ = Rᵀ: f̃(x̃) = f(x)


@pytest.mark.parametrize("case", ["repeated", "zero rows", "combination", "nearly dependent", "blank"])
def test_ill_conditioned_minibatches_give_the_cpu_update(R, case):
    """Basis-invariant end to end: the reduced loss and the lifted update equal the CPU path's."""
    X, rank = _ill_conditioned()[case]
    mb, p = _case((12, 4, 3), X)
    res = _resident(R, mb, p)
    report = res.importance_update(0.1, 2, 4)
    expected, info = projected_importance_update(CPU, mb, p, 0.1, 2, 4)
    assert report.rank == rank and report.syncs == 1
    assert report.loss == pytest.approx(mb.net.loss(p, X, mb.y), rel=1e-5)
    np.testing.assert_allclose(res.log_weights(4), info.log_weights, atol=TOL)
    np.testing.assert_allclose(res.params(), expected, atol=TOL)


def _kahan(n=16, pixels=20, s=0.5):
    """Rows with Gram–Schmidt residuals sⁿ (all above tol) but a far smaller singular value (Kahan's matrix)."""
    c = np.sqrt(1 - s * s)
    K = np.diag(s ** np.arange(n)) @ (np.eye(n) - c * np.triu(np.ones((n, n)), 1))
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(pixels, n)))
    return (Q @ K).T.astype(np.float32)


def test_kahan_minibatch_is_exact_or_falls_back(R):
    X = _kahan()
    assert np.linalg.cond(X.astype(np.float64)) > 1e7                   # CholeskyQR's first pass cannot hold
    basis, tri, r, status = _device_qr(R, X)
    host_basis, _, _ = row_space_basis(X)
    assert r == host_basis.shape[1]
    if status != 2:                                                      # trusted: then it must be right
        np.testing.assert_allclose(basis, host_basis, atol=1e-5)
    mb, p = _case((20, 4, 3), X)
    res = _resident(R, mb, p)
    report = res.importance_update(0.1, 2, 4)
    assert report.syncs == (2 if status == 2 else 1)
    np.testing.assert_allclose(res.params(), projected_importance_update(CPU, mb, p, 0.1, 2, 4)[0], atol=TOL)


def test_a_qr_fallback_redoes_the_update_with_the_host_basis(R, monkeypatch):
    from kltrain.kernels import cuda_qr
    monkeypatch.setattr(cuda_qr, "ORTHOGONALITY_LIMIT", -1.0)          # distrust every device basis
    mb, p = _case((6, 4, 3), _images(3, 6))
    res = _resident(R, mb, p)
    report = res.importance_update(0.1, 3, 5)
    assert report.syncs == 2
    np.testing.assert_allclose(res.params(), projected_importance_update(CPU, mb, p, 0.1, 3, 5)[0], atol=TOL)


# -- SGD -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [(6, 4, 3), (6, 3)], ids=["hidden", "small"])
def test_fused_sgd_steps_equal_the_cpu_gradient(R, sizes):
    X = _images(5, 6, seed=4)
    mb, p = _case(sizes, X)
    res = R.ResidentMLP(mb.net, X, mb.y, p)
    expected = p.astype(np.float64)
    for rows in (np.array([0, 1, 2]), np.array([4, 3])):
        res.set_batch(rows)
        report = res.sgd_update(0.3, loss_scale=2.0)
        loss, grad = CPU.loss_and_grad(Minibatch.build(mb.net, X[rows], mb.y[rows]), expected.astype(np.float32))
        assert report.loss == pytest.approx(2 * loss, rel=1e-5)
        assert report.grad_norm == pytest.approx(2 * np.linalg.norm(grad), rel=1e-5)
        expected = expected - 0.3 * 2 * grad
    np.testing.assert_allclose(res.params(), expected, atol=TOL)


# -- on a real GPU (bash validation/gpu_session.sh runs these) ----------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="needs a real CUDA GPU (run with NUMBA_ENABLE_CUDASIM=0)")
def test_resident_updates_match_the_cpu_on_the_paper_net():
    from kltrain.kernels.cuda_resident import ResidentMLP
    from kltrain.nets.data import load_mnist
    X, y, _, _ = load_mnist(quiet=True)
    net = MLP.hidden()
    mb, p = Minibatch.build(net, X[:20], y[:20]), net.init(0)
    res = ResidentMLP(net, X, y, p)
    res.set_batch(np.arange(20))
    report = res.importance_update(0.01, 1, 256)
    expected, info = projected_importance_update(CPU, mb, p, 0.01, 1, 256)
    np.testing.assert_allclose(res.params(), expected, atol=1e-5)
    assert report.ess == pytest.approx(info.ess, rel=1e-4) and report.syncs == 1
    res.load_params(p)
    res.sgd_update(0.1)
    np.testing.assert_allclose(res.params(), p - 0.1 * CPU.loss_and_grad(mb, p)[1], atol=1e-6)



# -- the training loop with the state on the device --------------------------------------------------------
@pytest.mark.parametrize("algorithm,sgd_first", [("is", 1), ("sgd", 0)])
def test_training_loop_on_the_device_equals_the_cpu_loop(R, algorithm, sgd_first, transfers):
    from kltrain.studies.training import TrainConfig, train
    rng = np.random.default_rng(5)
    X = (rng.random((40, 784)) * (rng.random((40, 784)) < 0.15)).astype(np.float32)
    data = (X[:30], rng.integers(0, 10, 30), X[30:], rng.integers(0, 10, 10))
    runs = {}
    transfers.clear()
    for backend in ("cuda", "cpu"):
        config = TrainConfig(algorithm, net="small", n_updates=3, batch_size=3, samples=4, sgd_first=sgd_first,
                             eval_every=2, n_test=10, loss_scale=2.0, backend=backend, seed=3,
                             projected=True)   # the CPU's cost model would take per-sample here: same path on both

        runs[backend] = train(config, data=data, progress=False)
        if backend == "cuda":     # resident: per update one report; parameters down at 2 evaluations and the end
            assert transfers["device→host"] == 3 + 3 and transfers["wait"] == 3 + 3
    gpu, cpu = runs["cuda"], runs["cpu"]
    np.testing.assert_allclose(gpu.final_params, cpu.final_params, atol=1e-5)
    np.testing.assert_allclose(gpu.minibatch_loss, cpu.minibatch_loss, rtol=1e-5)
    assert gpu.eval_updates == cpu.eval_updates == [0, 2, 3] and gpu.test_accuracy == cpu.test_accuracy
    assert gpu.estimator_paths == cpu.estimator_paths   # the reduced IS updates counted on both loops


def test_the_device_loop_runs_only_what_it_covers(R):
    from kltrain.nets import MLP
    from kltrain.studies.resident import applies
    from kltrain.studies.training import TrainConfig
    net = MLP.small()
    is_config = TrainConfig("is", net="small", backend="cuda")
    assert applies(is_config, "cuda", is_config.update_rule(), net)
    assert not applies(is_config, "cpu", is_config.update_rule(), net)
    for other in (TrainConfig("sgld", net="small"), TrainConfig("is", net="small", projected=False),
                  TrainConfig("is", net="small", batch_size=30)):
        assert not applies(other, "cuda", other.update_rule(), net)


def test_the_device_loop_warns_or_raises_on_a_collapsed_ess(R, monkeypatch):
    """The resident loop applies ImportanceSampling's ESS rule to the ESS its one copy reports (negative control:
    a healthy ESS passes silently)."""
    import warnings
    from kltrain.estimators.importance import ESSCollapse, ESSCollapseWarning, ImportanceSampling
    from kltrain.kernels.cuda_resident import ISReport
    from kltrain.schemes import LocalEntropy
    from kltrain.studies.training import TrainConfig, train
    rng = np.random.default_rng(0)
    X = (rng.random((30, 784)) * (rng.random((30, 784)) < 0.15)).astype(np.float32)
    data = (X[:20], rng.integers(0, 10, 20), X[20:], rng.integers(0, 10, 10))

    def run(ess, on_collapse="warn"):
        monkeypatch.setattr(R.ResidentMLP, "importance_update",
                            lambda self, tau, seed, J, antithetic=False, beta=1.0: ISReport(2.3, ess, 0.9, 3, seed, 1))
        config = TrainConfig("is", net="small", n_updates=1, batch_size=3, samples=100, n_test=10, eval_every=1,
                             backend="cuda", seed=0, projected=True)
        rule = config.update_rule()
        monkeypatch.setattr(TrainConfig, "update_rule", lambda self: LocalEntropy(
            rule.tau, ImportanceSampling(100, projected=True, on_collapse=on_collapse)))
        return train(config, data=data, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ESSCollapseWarning)
        assert run(50.0).estimator_paths == {"reduced": 1}          # control: no warning at ESS = 50
        with pytest.raises(ESSCollapseWarning):
            run(1.0)
    with pytest.raises(ESSCollapse, match="collapsed"):
        run(1.0, "raise")
