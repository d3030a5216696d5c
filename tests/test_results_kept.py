"""Issue 11, class 1: results are never lost and never silently replaced."""

import json
import os

import pytest

import kltrain.studies.training as training
from kltrain._io import atomic_write_json
from kltrain.cli.main import main
from kltrain.studies.experiments import EXPERIMENTS, Experiment, run_experiment
from kltrain.studies.training import TrainConfig, TrainResult

SMALL = ["train", "--algo", "sgd", "--net", "small", "--eval-every", "5", "--no-progress"]


def _stored(folder):
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())


def test_a_bad_out_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "load", lambda name: pytest.fail("data was loaded before --out was checked"))
    (tmp_path / "file").write_text("not a folder")
    assert main(SMALL + ["--out", str(tmp_path / "file" / "sub")]) == 2
    assert main(SMALL + ["--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.count("kltrain: error: --out") == 2 and "Traceback" not in err


def test_ctrl_c_keeps_the_evaluations_so_far(tmp_path, monkeypatch):
    calls = {"n": 0}
    sample = training.TrainingSet.sample

    def interrupted_at_update_8(self, rng):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return sample(self, rng)

    monkeypatch.setattr(training.TrainingSet, "sample", interrupted_at_update_8)
    assert main(SMALL + ["--updates", "20", "--out", str(tmp_path)]) == 130
    saved = _stored(tmp_path)
    assert saved["status"] == "interrupted" and saved["eval_updates"] == [0, 5]
    assert next(tmp_path.glob("*.csv")).read_text().count("\n") == 3     # header + updates 0 and 5


def test_divergence_is_reported_and_the_run_kept(tmp_path, capsys):
    assert main(SMALL + ["--updates", "20", "--lr", "1e300", "--out", str(tmp_path)]) == 1
    assert _stored(tmp_path)["status"] == "diverged"
    assert "kltrain: error:" in capsys.readouterr().err


def test_zero_updates_writes_and_succeeds(tmp_path):
    assert main(SMALL + ["--updates", "0", "--out", str(tmp_path)]) == 0
    saved = _stored(tmp_path)
    assert saved["status"] == "done" and saved["seconds"] == [] and saved["seconds_per_update"] is None


def test_another_config_never_overwrites(tmp_path):
    for tau in ("0.01", "0.02"):
        assert main(SMALL + ["--updates", "1", "--tau", tau, "--out", str(tmp_path)]) == 0
    hashes = {json.loads(p.read_text())["config_hash"] for p in tmp_path.glob("*.json")}
    assert len(hashes) == 2


def test_atomic_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["r.json"]


@pytest.fixture
def tiny(monkeypatch):
    cfg = TrainConfig("sgd", net="small", n_updates=4, eval_every=2, n_test=100)
    monkeypatch.setitem(EXPERIMENTS, "tiny", Experiment("tiny", "tiny", 1, {"SGD": cfg}))
    runs = []
    real = training.train
    monkeypatch.setattr("kltrain.studies.batch.train", lambda c, **kw: runs.append(c) or real(c, **kw))
    return runs


def test_reproduce_resumes_and_refuses_to_replace_another_config(tmp_path, tiny, monkeypatch):
    first = run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    again = run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    assert len(tiny) == 1                                                  # the finished run was read back
    assert again.runs["SGD"][0].test_accuracy == first.runs["SGD"][0].test_accuracy
    changed = TrainConfig("sgd", net="small", n_updates=6, eval_every=2, n_test=100)
    monkeypatch.setitem(EXPERIMENTS, "tiny", Experiment("tiny", "tiny", 1, {"SGD": changed}))
    with pytest.raises(ValueError, match="different config"):
        run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None, overwrite=True)
    assert len(tiny) == 2 and json.loads((tmp_path / "tiny" / "runs" / "SGD-seed0.json").read_text())[
        "config"]["n_updates"] == 6


def test_quick_writes_to_its_own_folder(tmp_path, tiny):
    run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    run_experiment("tiny", out=tmp_path, quick=True, progress=False, printer=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny", "tiny-quick"] and len(tiny) == 2


def test_a_run_file_from_before_projected_none_is_named_as_such(tmp_path, tiny, monkeypatch):
    """A run stored with projected=True (the default before the cost model) is another config: the refusal
    says why (control: a run that differs in something else gets no such sentence)."""
    run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    path = tmp_path / "tiny" / "runs" / "SGD-seed0.json"
    record = json.loads(path.read_text())
    record["config"]["projected"] = True
    from kltrain.studies.runfile import results_hash
    from kltrain.studies.training import config_from_dict
    record["config_hash"] = TrainResult(config_from_dict(record["config"])).config_hash
    record["results_hash"] = results_hash(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="written with projected=True"):
        run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    changed = TrainConfig("sgd", net="small", n_updates=6, eval_every=2, n_test=100, projected=True)
    monkeypatch.setitem(EXPERIMENTS, "tiny", Experiment("tiny", "tiny", 1, {"SGD": changed}))
    with pytest.raises(ValueError, match="different config") as refused:
        run_experiment("tiny", out=tmp_path, progress=False, printer=lambda s: None)
    assert "projected=True" not in str(refused.value)
