"""``kltrain bench`` runs end to end and writes the documented JSON records (tiny settings)."""

import json

from kltrain.cli.main import main


def test_bench_cli_writes_records(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--nets", "small", "--backend", "cpu", "--samples", "20", "--m", "3",
                 "--repeat", "1", "--json", str(path)]) == 0
    records = json.loads(path.read_text())
    assert {r["algorithm"] for r in records} == {"SGD", "IS", "IS per-sample", "SGLD", "SGLD per-sample", "HR", "HR per-sample"}
    for r in records:
        for key in ("algorithm", "net", "backend", "samples", "seconds_per_update",
                    "reference_seconds_per_update"):
            assert key in r
        assert r["seconds_per_update"] > 0 and r["reference_seconds_per_update"] > 0 and r["backend"] == "cpu"
    assert "speedup" in capsys.readouterr().out
