"""The persistent SGLD / Robbins–Monro kernels (kltrain.kernels.cuda_chains) under the CUDA simulator.

Oracle: the numba CPU kernels on the same counter-based noise (and, end to end, the CPU
reduced updates of kltrain.nets.projected). Batched launches are checked against the
same runs launched alone, bit for bit: blocks never exchange data.
"""

import os

import numpy as np
import pytest

from kltrain.kernels import cpu_backend as CPU
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.nets.projected import projected_robbins_monro, projected_sgld_chain, reduce_minibatch

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                                reason="simulator tests run with NUMBA_ENABLE_CUDASIM=1 (the test default)")
TOL = 2e-6   # float32: libdevice log/sin/cos on the GPU, Cephes polynomials on the CPU


@pytest.fixture(scope="module")
def runs():
    from kltrain.kernels import cuda_chain_runs
    return cuda_chain_runs


def _reduced(sizes, batch, seed):
    """A reduced problem (rank ≤ batch inputs), as the projected updates build it."""
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    X = rng.random((batch, sizes[0])) * (rng.random((batch, sizes[0])) < 0.5)
    red = reduce_minibatch(Minibatch.build(net, X, rng.integers(0, sizes[-1], batch)))
    p = net.init(seed) + np.float32(0.1) * rng.normal(size=net.n_params).astype(np.float32)
    return red.minibatch, red.reduce(p), red.reduce(net.init(seed + 1)), red, p


EPS = 1 / (10 + np.arange(1, 7))        # 5 Langevin steps
STEPS = 0.5 * np.arange(1, 4) ** -0.7   # 3 Robbins–Monro iterations


@pytest.mark.parametrize("sizes", [(12, 5, 3), (12, 3)], ids=["hidden", "small"])
def test_persistent_sgld_chain_matches_the_cpu_chain(runs, sizes):
    mb, x, chain, _, _ = _reduced(sizes, 4, 0)
    assert runs.fits(mb) and mb.net.sizes[0] == 4
    got = runs.sgld_chain(mb, x, chain, 0.05, EPS, 3, 0.7)
    want = CPU.sgld_chain(mb, x, chain, 0.05, EPS, 3, 0.7)
    for a, b in zip(got[:2], want[:2]):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    assert got[2] == pytest.approx(want[2], rel=1e-5)
    other = runs.sgld_chain(mb, x, chain, 0.05, EPS, 4, 0.7)   # negative control: another seed's noise
    assert np.abs(other[1] - want[1]).max() > 100 * TOL


@pytest.mark.parametrize("groups", [1, 2], ids=["one block a run", "two blocks a run"])
def test_persistent_robbins_monro_matches_the_cpu_iteration(runs, groups):
    mb, x, _, _, _ = _reduced((12, 5, 3), 4, 1)
    got, res = runs.robbins_monro(mb, x, 0.1, STEPS, 3, 5, 2.0, groups=groups)
    want, res0 = CPU.robbins_monro(mb, x, 0.1, STEPS, 3, 5, 2.0)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert res == pytest.approx(res0, rel=1e-4)
    assert np.abs(got - x).max() > 100 * TOL   # it moved


def test_runs_batched_in_one_launch_equal_each_run_alone(runs):
    """Different ranks, nets' inputs, τ, seeds, noise scales: R blocks of one launch = R launches."""
    problems = [_reduced((12, 5, 3), b, s) for b, s in ((4, 0), (3, 1), (5, 2))]
    calls = [(mb, x, ch, tau, EPS, seed, scale)
             for (mb, x, ch, _, _), tau, seed, scale in zip(problems, (0.05, 0.2, 0.01), (3, 4, 5), (1.0, 0.5, 2.0))]
    assert len({c[0].net.sizes[0] for c in calls}) == 3
    together = runs.sgld_chain_many(calls)
    for call, res in zip(calls, together):
        alone = runs.sgld_chain(*call)
        for a, b in zip(res, alone):
            np.testing.assert_array_equal(a, b)
    rm_calls = [(mb, x, tau, STEPS, 2, seed, 1.0) for (mb, x, _, _, _), tau, seed in
                zip(problems, (0.05, 0.2, 0.01), (3, 4, 5))]
    for call, res in zip(rm_calls, runs.robbins_monro_many(rm_calls, groups=1)):
        alone = runs.robbins_monro(*call, groups=1)
        np.testing.assert_array_equal(res[0], alone[0])
        assert res[1] == alone[1]


def test_a_chain_split_over_launches_equals_one_launch(runs, monkeypatch):
    mb, x, chain, _, _ = _reduced((12, 3), 4, 3)
    whole = runs.sgld_chain(mb, x, chain, 0.05, EPS, 3)
    rm_whole = [runs.robbins_monro(mb, x, 0.1, STEPS, 2, 5, groups=g) for g in (1, 2)]
    monkeypatch.setattr(runs, "NOISE_FLOATS", 2 * mb.net.n_params)   # noise for 2 steps (1 iteration) at a time
    split = runs.sgld_chain(mb, x, chain, 0.05, EPS, 3)
    for a, b in zip(whole, split):
        np.testing.assert_array_equal(a, b)
    for g, (x_whole, res_whole) in zip((1, 2), rm_whole):
        x_split, res_split = runs.robbins_monro(mb, x, 0.1, STEPS, 2, 5, groups=g)
        np.testing.assert_array_equal(x_split, x_whole)
        assert res_split == res_whole


def test_the_cuda_backend_uses_them_for_the_reduced_updates(runs):
    """End to end: the lifted reduced SGLD and Robbins–Monro updates, GPU backend vs CPU backend."""
    from kltrain.kernels import get_backend
    gpu = get_backend("cuda")
    _, _, _, red, p = _reduced((12, 5, 3), 4, 4)
    full = red.full
    q = full.net.init(9)
    for a, b in zip(projected_sgld_chain(gpu, full, p, q, 0.05, EPS, 2)[:2],
                    projected_sgld_chain(CPU, full, p, q, 0.05, EPS, 2)[:2]):
        np.testing.assert_allclose(a, b, atol=5 * TOL, rtol=0)
    np.testing.assert_allclose(projected_robbins_monro(gpu, full, p, 0.05, STEPS, 2, 6)[0],
                               projected_robbins_monro(CPU, full, p, 0.05, STEPS, 2, 6)[0], atol=5 * TOL, rtol=0)


def test_nets_the_kernels_cannot_hold_are_left_to_the_per_step_kernels(runs):
    wide = MLP((30, 4, 3))     # 30 inputs: more than MAX_R registers
    mb = Minibatch.build(wide, np.ones((2, 30)), np.array([0, 1]))
    assert not runs.fits(mb)
    assert runs.fits(Minibatch.build(MLP((24, 4, 3)), np.ones((2, 24)), np.array([0, 1])))


def test_the_gpu_measurement_hooks_run_at_toy_size(monkeypatch):
    """validation/gpu.py's issue-21 rows (timed on a GPU session) run, and agree, under the simulator."""
    from kltrain.kernels import cuda_backend
    from validation import gpu as V
    monkeypatch.setattr(cuda_backend, "THREADS", 32)
    monkeypatch.setattr(cuda_backend, "normals", CPU.normals)   # 7840-coordinate draws: seconds in the simulator
    sgld = V.time_sgld_chain(n_steps=3, net="small", synthetic=True, repeat=1)
    assert sgld["parity"] < 1e-5 and sgld["seconds"] > 0
    hr = V.time_robbins_monro(iterations=2, draws=2, net="small", synthetic=True, repeat=1, groups=(1, 2))
    assert [r["groups"] for r in hr] == [1, 2] and all(r["parity"] < 1e-5 for r in hr)
    table = V.time_batched_table(seeds=2, n_updates=1, net="small", synthetic=True, toy=True,
                                 algorithms=("sgld", "hr"))   # SGD and IS on 7850 parameters: slow here
    assert table["runs"] == 4 and table["same_results"] and table["max_relative_difference"] == 0.0   # simulator: G = 1
