"""``kltrain bench --profile`` / ``--sweep``: the parts of the reduced IS update, their floors, and the J sweep."""

import json

import numpy as np

from kltrain.bench.profile import (ProfilePart, format_part, profile_reduced_is, sweep_reduced_is,
                                   time_normals)
from kltrain.cli.main import main
from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP

PARTS = ["SVD/QR", "orthogonal Z", "U~T W1, U~T Z", "x -> x~", "IS kernel (fused)", "  normals (alone)",
         "  fwd+weights+reduce", "    forward (floor)", "    reduction (floor)", "posterior mean", "P-perp + lift",
         "update (total)"]


def _problem():
    rng = np.random.default_rng(0)
    net = MLP((784, 16, 10))
    X, y = rng.random((6, 784), dtype=np.float32), rng.integers(0, 10, 6)
    return get_backend("cpu"), Minibatch.build(net, X, y), net.init(rng)


def test_profile_parts_and_floors():
    backend, mb, params = _problem()
    parts = profile_reduced_is(backend, mb, params, 0.01, 20, repeat=1, rates=(1e9, 1e11))
    assert [p.part for p in parts] == PARTS
    for p in parts:
        assert isinstance(p, ProfilePart) and isinstance(format_part(p), str)
        # the fused kernel less the normals alone is a difference of two timings, clipped at 0
        assert np.isnan(p.seconds) or p.seconds > 0 or (p.part == "  fwd+weights+reduce" and p.seconds == 0)
        assert p.floor_seconds is None or p.floor_seconds > 0
    normals = parts[PARTS.index("  normals (alone)")]
    n_reduced = 6 * 16 + 16 + 16 * 10 + 10       # rank 6 reduced net
    assert normals.operations == 20 * n_reduced and normals.floor_seconds == 20 * n_reduced / 1e9


def test_time_normals_is_positive():
    assert time_normals(8, 64, repeat=1) > 0


def test_sweep_rows():
    backend, mb, params = _problem()
    rows = sweep_reduced_is(backend, mb, params, 0.01, samples=(10, 20), repeat=1)
    assert [r["samples"] for r in rows] == [10, 20] and all(r["seconds_per_update"] > 0 for r in rows)


def test_bench_cli_profile_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--nets", "small", "--backend", "cpu", "--samples", "10", "--m", "2", "--repeat", "1",
                 "--no-reference", "--profile", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert set(out) == {"status", "records", "machine", "settle_seconds", "loadavg_before", "profile", "gradient"}
    assert len(out["records"]) == 7
    for net, rows in out["gradient"].items():   # our gradient beside BLAS GEMMs, both problems, every B
        assert {(r["problem"], r["batch"]) for r in rows} == {(p, B) for p in ("full", "reduced")
                                                              for B in (20, 100, 300, 500)}
        assert all(r["ours_gradient"] > 0 and r["gemm_first_layer_gflops"] > 0 for r in rows)
    assert [p["part"] for p in out["profile"]["parts"]] == PARTS
    assert out["profile"]["normals_per_second"] > 0 and out["profile"]["samples"] == 10
    assert "floor" in capsys.readouterr().out
