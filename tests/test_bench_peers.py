"""The JAX peer of ``kltrain bench --peer jax`` (skipped without JAX) and its error without JAX."""

import json

import numpy as np
import pytest

from kltrain.bench import timing as bench
from kltrain.nets import MLP


def test_peer_without_jax_says_how_to_install(monkeypatch):
    import kltrain.bench.jax_peer as peers
    monkeypatch.setattr(peers, "jax_available", lambda: False)
    net = MLP.small()
    with pytest.raises(ValueError, match=r"kltrain\[peers\]"):
        bench._peer_times("jax", net, np.zeros((2, 784)), np.zeros(2, int), net.init(0), 4, 2, 1)


def test_unknown_peer_is_refused():
    with pytest.raises(ValueError, match="unknown peer"):
        bench._peer_times("torch", MLP.small(), None, None, None, 4, 2, 1)


def test_jax_loss_matches_ours():
    jax = pytest.importorskip("jax")
    from kltrain.bench.jax_peer import _loss_fn
    net, rng = MLP.hidden(), np.random.default_rng(0)
    X, y = rng.random((5, 784), dtype=np.float32), rng.integers(0, 10, 5)
    params = net.init(rng)
    ours = net.loss_and_grad(params, X, y)[0]
    theirs = float(jax.jit(_loss_fn(net))(params, X, y))
    assert theirs == pytest.approx(float(ours), rel=1e-4)


def test_jax_peers_time_the_four_updates():
    pytest.importorskip("jax")
    from kltrain.bench.jax_peer import PEER_ALGORITHMS, jax_updates, time_jax_peers
    net, rng = MLP.small(), np.random.default_rng(1)
    X, y, params = rng.random((4, 784), dtype=np.float32), rng.integers(0, 10, 4), net.init(0)
    eps, steps = bench._schedules(6, 2)
    times = time_jax_peers(net, X, y, params, 0.01, 0.01, 6, eps, steps, 2, repeat=1)
    assert set(times) == set(PEER_ALGORITHMS) and all(t > 0 for t in times.values())
    fns = jax_updates(net, X, y, 0.01, 0.01, 6, eps, steps, 2)
    import jax
    for fn in fns.values():
        out = np.asarray(fn(params, jax.random.key(0)))
        assert out.shape == params.shape and np.all(np.isfinite(out))


def test_bench_cli_with_jax_peer_writes_ratio(tmp_path, capsys):
    pytest.importorskip("jax")
    from kltrain.cli.main import main
    path = tmp_path / "bench.json"
    assert main(["bench", "--nets", "small", "--backend", "cpu", "--samples", "6", "--m", "2", "--repeat", "1",
                 "--no-reference", "--peer", "jax", "--json", str(path)]) == 0
    records = json.loads(path.read_text())
    assert all(r["peer"] == "jax" and r["peer_seconds_per_update"] > 0 and r["peer_ratio"] > 0 for r in records)
    assert "jax/ours" in capsys.readouterr().out


def test_cli_peer_without_jax_is_a_user_error(monkeypatch, capsys):
    import kltrain.bench.jax_peer as peers
    from kltrain.cli.main import main
    monkeypatch.setattr(peers, "jax_available", lambda: False)
    assert main(["bench", "--nets", "small", "--peer", "jax", "--samples", "2", "--no-reference"]) == 2
    assert "kltrain[peers]" in capsys.readouterr().err
