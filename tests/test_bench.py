"""``kltrain bench`` runs end to end and writes the documented JSON (tiny settings; never a timing test)."""

import json

import numpy as np
import pytest

from kltrain.bench import timing as bench
from kltrain.cli.main import main

ROWS = {"SGD": "full", "IS": "reduced", "IS per-sample": "full", "SGLD": "reduced", "SGLD per-sample": "full",
        "HR": "reduced", "HR per-sample": "full"}


def test_bench_cli_writes_records(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--nets", "small", "--backend", "cpu", "--samples", "20", "--m", "3",
                 "--repeat", "1", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert set(out) >= {"records", "machine", "loadavg_before", "settle_seconds"}
    assert len(out["machine"]["loadavg"]) == 3 and len(out["loadavg_before"]) == 3 and out["machine"]["cpus"] >= 1
    records = out["records"]
    assert {r["algorithm"]: r["problem"] for r in records} == ROWS      # every record names its problem
    for r in records:
        for key in ("algorithm", "problem", "net", "sizes", "batch", "backend", "samples", "seconds_per_update",
                    "reference_seconds_per_update", "repeats", "nnz", "active"):
            assert key in r
        assert r["seconds_per_update"] > 0 and r["reference_seconds_per_update"] > 0 and r["backend"] == "cpu"
        assert r["sizes"] == [784, 10] and r["batch"] == 20 and r["peer"] is None
    assert "speedup" in capsys.readouterr().out


def test_paired_times_alternate_and_warm_up_each_side():
    calls = []
    ours, peer = (lambda: calls.append("o")), (lambda: calls.append("p"))
    a, b = bench.paired_times(ours, peer, 3, settle=0)
    assert calls == ["o", "p", "o", "p", "p", "o", "o", "p"]   # warm-ups, then o-p, p-o, o-p
    assert len(a) == len(b) == 3 and all(t >= 0 for t in a + b)
    calls.clear()
    a, b = bench.paired_times(ours, None, 2, settle=0, warm_ours=False)
    assert calls == ["o", "o"] and b == []


def test_record_reports_medians_and_the_median_paired_ratio():
    from kltrain.kernels.layout import Minibatch
    from kltrain.nets import MLP
    net = MLP.small()
    mb = Minibatch.build(net, np.eye(3, 784, dtype=np.float32), np.array([0, 1, 2]))
    case = bench.Case("IS", "reduced", 10, lambda k: None, "ref", lambda: None)
    r = bench.make_record(case, "small", net, "cpu", mb, [1.0, 2.0, 9.0], [4.0, 3.0, 9.0], "jax")
    assert r.seconds_per_update == 2.0 and r.peer_seconds_per_update == 4.0
    assert r.peer_ratio == pytest.approx(1.5)      # median of 4/1, 3/2, 9/9: the pairs, not the medians' ratio
    assert (r.batch, r.nnz, r.active, r.problem, r.sizes) == (3, 3, 3, "reduced", (784, 10))
