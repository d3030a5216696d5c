"""The JAX peer of ``kltrain bench --peer jax`` (skipped without JAX) and its error without JAX.

The peer is a backend (:class:`kltrain.bench.jax_peer.JaxKernels`): these tests check its
algorithms against our NumPy MLP on the peer's own noise (regenerated from its keys), and the
bench's structure — one peer row beside each of ours, same problem — at tiny sizes.
"""

import json

import numpy as np
import pytest

from kltrain.bench import timing as bench
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP


def test_peer_without_jax_says_how_to_install(monkeypatch):
    import kltrain.bench.jax_peer as peers
    monkeypatch.setattr(peers, "jax_available", lambda: False)
    with pytest.raises(ValueError, match=r"kltrain\[peers\]"):
        bench.peer_kernels("jax")


def test_unknown_peer_is_refused():
    with pytest.raises(ValueError, match="unknown peer"):
        bench.peer_kernels("torch")


def _tiny(seed=0, B=5, sizes=(784, 6, 10)):
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    X, y = rng.random((B, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], B)
    return net, Minibatch.build(net, X, y), net.init(seed)


def test_jax_loss_matches_ours():
    jax = pytest.importorskip("jax")
    from kltrain.bench.jax_peer import _loss_fn
    net, rng = MLP.hidden(), np.random.default_rng(0)
    X, y = rng.random((5, 784), dtype=np.float32), rng.integers(0, 10, 5)
    params = net.init(rng)
    ours = net.loss_and_grad(params, X, y)[0]
    theirs = float(jax.jit(_loss_fn(net))(params, X, y))
    assert theirs == pytest.approx(float(ours), rel=1e-4)


def test_jax_importance_partial_is_importance_sampling_on_its_own_noise():
    """log w_j = −f(x + √τ ε_j) and Σ w_j ε_j, with ε_j regenerated from the peer's keys (two blocks)."""
    jax = pytest.importorskip("jax")
    import kltrain.bench.jax_peer as peers
    net, mb, p = _tiny()
    tau, n, block = 0.05, 7, 4
    old = peers.BLOCK_FLOATS
    peers.BLOCK_FLOATS = block * net.n_params            # 7 samples in blocks of 4: the last block padded
    peers._jitted.cache_clear()
    try:
        part, log_w = peers.JaxKernels().importance_partial(mb, p, tau, 3, 0, n, False)
    finally:
        peers.BLOCK_FLOATS = old
        peers._jitted.cache_clear()
    key = peers._key(3, 0)
    eps = np.concatenate([np.asarray(jax.random.normal(jax.random.fold_in(key, b), (block, net.n_params)))
                          for b in range(2)])[:n].astype(np.float64)
    want = np.array([-net.loss(p + np.sqrt(tau) * e, mb.X, mb.y) for e in eps])
    np.testing.assert_allclose(log_w, want, rtol=1e-4, atol=1e-5)
    w = np.exp(want - want.max())
    np.testing.assert_allclose(part.sum_w_eps / part.sum_w, w @ eps / w.sum(), atol=1e-4)
    assert part.n == n and part.sum_w2 == pytest.approx(w @ w / (w.sum() / part.sum_w) ** 2, rel=1e-3)


def test_jax_chains_follow_the_update_rules():
    """Noise off (T → 0 for SGLD; τ → 0 for HR): one Langevin step and one Robbins–Monro step by hand."""
    pytest.importorskip("jax")
    from kltrain.bench.jax_peer import JaxKernels
    net, mb, p = _tiny(1)
    k = JaxKernels()
    chain = p + 0.01
    eps = np.array([0.01, 0.02])
    mean, end, g_norm = k.sgld_chain(mb, p, chain, 0.5, eps, 4, noise_scale=0.0)
    g = net.loss_and_grad(chain, mb.X, mb.y)[1]
    want = chain - 0.5 * eps[0] * (g - (p - chain) / 0.5)
    np.testing.assert_allclose(end, want, atol=1e-6)
    np.testing.assert_allclose(mean, (eps[0] * chain + eps[1] * want) / eps.sum(), atol=1e-6)
    assert g_norm == pytest.approx(np.linalg.norm(g), rel=1e-4)
    tau = 1e-12
    x, _ = k.robbins_monro(mb, p, tau, np.array([0.7]), 3, 5, grad_scale=1e10)   # z ≈ x: h = βτ∇f(x)
    np.testing.assert_allclose(x, p - 0.7 * 1e10 * tau * net.loss_and_grad(p, mb.X, mb.y)[1], atol=1e-6)


def test_jax_kernels_run_every_bench_case_on_both_problems():
    pytest.importorskip("jax")
    from kltrain.bench.jax_peer import JaxKernels
    net, mb, p = _tiny(2, B=4)
    cases = bench._cases(net, mb, p, 6, 2)
    assert [(c.algorithm, c.problem) for c in cases] == [
        ("SGD", "full"), ("IS", "reduced"), ("IS per-sample", "full"), ("SGLD", "reduced"),
        ("SGLD per-sample", "full"), ("HR", "reduced"), ("HR per-sample", "full")]
    for case in cases:
        out = case.make(JaxKernels())()
        first = out[0] if isinstance(out, tuple) else out
        assert np.all(np.isfinite(first.sum_w_eps if hasattr(first, "sum_w_eps") else first))


def test_bench_cli_prints_a_peer_row_beside_each_of_ours_and_sweeps_the_batch(tmp_path, capsys):
    pytest.importorskip("jax")
    from kltrain.cli.main import main
    path = tmp_path / "bench.json"
    assert main(["bench", "--nets", "small", "--backend", "cpu", "--samples", "4", "--m", "2", "--repeat", "1",
                 "--no-reference", "--peer", "jax", "--sweep-batch", "--batches", "3,5", "--sweep-nets", "small",
                 "--threads", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert {(r["algorithm"], r["problem"]) for r in out["records"]} == {
        ("SGD", "full"), ("IS", "reduced"), ("IS per-sample", "full"), ("SGLD", "reduced"),
        ("SGLD per-sample", "full"), ("HR", "reduced"), ("HR per-sample", "full")}
    for r in out["records"]:   # the peer's row beside each of ours: same problem, same run
        assert r["peer"] == "jax" and r["peer_seconds_per_update"] > 0 and r["peer_ratio"] > 0 and r["repeats"] == 1
    sweep = out["batch_sweep"]
    assert {(r["batch"], r["algorithm"], r["problem"]) for r in sweep["records"]} == {
        (B, a, p) for B in (3, 5) for a, p in [("SGD", "full"), ("IS", "reduced"), ("IS per-sample", "full"),
                                               ("SGLD", "reduced"), ("SGLD per-sample", "full"), ("HR", "reduced"),
                                               ("HR per-sample", "full")]}
    assert all(r["peer_seconds_per_update"] > 0 and r["nnz"] > 0 for r in sweep["records"])
    assert sweep["wall_seconds"] > 0 and len(sweep["loadavg_after"]) == 3
    threads = out["threads"]["rows"]
    assert {(r["algorithm"], r["problem"]) for r in threads} == {
        ("IS", "reduced"), ("IS per-sample", "full"), ("SGLD", "reduced"), ("SGLD per-sample", "full"),
        ("HR", "reduced"), ("HR per-sample", "full")}
    assert all(r["one_thread_seconds"] > 0 and r["all_threads_seconds"] > 0 for r in threads)
    printed = capsys.readouterr().out
    assert "sweep took" in printed and "jax/ours" in printed
    assert printed.splitlines()[1].split()[:2] == ["SGD", "full"]   # the table starts with our rows


def test_cli_peer_without_jax_is_a_user_error(monkeypatch, capsys):
    import kltrain.bench.jax_peer as peers
    from kltrain.cli.main import main
    monkeypatch.setattr(peers, "jax_available", lambda: False)
    assert main(["bench", "--nets", "small", "--peer", "jax", "--samples", "2", "--no-reference"]) == 2
    assert "kltrain[peers]" in capsys.readouterr().err
