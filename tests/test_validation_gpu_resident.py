"""``python -m validation.gpu_resident``: its dry run under the CUDA simulator, and its bookkeeping.

The script is written for a lent GPU; the dry run executes the same code at toy sizes so that a
trivial error (a renamed function, a wrong argument) shows here and not in a paid device session.
"""

import json

import pytest

from validation import gpu_resident as G


def test_dry_run_measures_every_row_and_writes_the_run(tmp_path, capsys):
    assert G.main(["--dry-run", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "gpu-resident.json").read_text())
    rows = {r["key"]: r for r in run["rows"]}
    assert set(rows) == set(G.ROWS)
    for key in ("is-1e3", "is-1e5", "sgd", "sgld-1e3", "hr-30"):   # every row ran (no error recorded)
        assert rows[key]["ours_seconds"] > 0, rows[key]
        assert "peer" not in rows[key] or rows[key]["peer"] is None, rows[key]   # a peer error would be a string
    assert run["batched_table_6_1"] == {"skipped": "dry run"}   # tests/test_cuda_chains.py runs it at toy size
    assert set(run["kernel_share_is_1e3"]["milliseconds"]) >= {"minibatch_qr", "reduce_params", "is_samples",
                                                               "is_finish", "lift"}
    assert run["dry_run"] and run["sizes"] == [12, 4, 3]


def test_without_the_simulator_the_dry_run_refuses(monkeypatch, capsys):
    from numba import config
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    assert G.main(["--dry-run", "--out", "unused"]) == 2
    assert "NUMBA_ENABLE_CUDASIM=1" in capsys.readouterr().out


def test_store_appends_numbered_runs_per_device(tmp_path):
    run = {"device": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}, "rows": []}
    path = G.store(run, tmp_path, tmp_path)
    assert path.name == "gpu-h100.json"
    G.store(run, tmp_path, tmp_path)
    assert [r["run"] for r in json.loads(path.read_text())["runs"]] == [1, 2]
    h200 = G.store({"device": {"name": "NVIDIA H200"}, "rows": []}, tmp_path / "out")   # after the stored runs
    stored = json.loads((G.DATA / "gpu-h200.json").read_text())["runs"]
    assert json.loads(h200.read_text())["runs"][-1]["run"] == max(r.get("run", 0) for r in stored) + 1
    assert G.device_slug("NVIDIA H200") == "h200" and G.device_slug("NVIDIA A100-SXM4-80GB") == "a100"


def test_parse_ncu_csv_keeps_our_kernels_and_metrics():
    text = "\n".join([
        "==PROF== Connected to process 1",
        '"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"',
        '"0","_ZN7kltrain7kernels12cuda_reduced10is_samplesB2v1","sm__warps_active.avg.pct_of_peak_sustained_active",'
        '"%","23.5"',
        '"0","_ZN7kltrain7kernels12cuda_reduced10is_samplesB2v1","gpu__time_duration.sum","ns","1,234"',
        '"1","other_kernel","gpu__time_duration.sum","ns","5"'])
    assert G.parse_ncu_csv(text) == {"is_samples": {"sm__warps_active.avg.pct_of_peak_sustained_active": [23.5],
                                                    "gpu__time_duration.sum": [1234.0]}}
    assert G.parse_ncu_csv("no csv here") == {}


def test_a_row_over_its_time_limit_is_recorded_not_fatal(monkeypatch):
    import time
    slow = G.Row("slow", "slow", 1, 1.0, lambda prob: (lambda: time.sleep(5)))
    monkeypatch.setattr(G, "ROWS", {"slow": slow})
    rows = G.measure_rows(G.problem(True), repeat=1, limit=0.2, peer=False)
    assert rows[0]["ours"].startswith("TimeoutError") and rows[0]["met"] is None
