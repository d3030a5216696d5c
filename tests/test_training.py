"""The training loop and the paper's experiments, on the embedded MNIST subset (short runs)."""

import json

import numpy as np
import pytest

from kltrain.cli.main import main
from kltrain.studies.experiments import EXPERIMENTS, NAMES, run_experiment
from kltrain.studies.training import TrainConfig, load_data, train

DATA = load_data(TrainConfig("sgd", n_test=500))
CHANCE = 0.1


@pytest.mark.parametrize("config", [
    TrainConfig("sgd", learning_rate=0.05, n_updates=40),
    TrainConfig("is", tau=0.03, samples=500, n_updates=40),   # τ = 0.03: IS learns faster (Fig 6.4)
    TrainConfig("sgld", samples=100, sgld_temperature=1e-4, n_updates=40),
    TrainConfig("hr", hr_iterations=10, hr_samples=5, hr_c=0.5, n_updates=40),
], ids=lambda c: c.algorithm)
def test_each_algorithm_learns_in_a_few_dozen_updates(config):
    result = train(config, data=DATA, progress=False)
    assert result.test_accuracy[0] < 0.2                       # chance-level start ...
    assert result.test_accuracy[-1] > 2.5 * CHANCE              # ... well above chance after 40 updates


def test_runs_are_reproducible_from_the_seed_and_differ_across_seeds():
    cfg = TrainConfig("is", samples=50, n_updates=6, eval_every=3)
    a, b = train(cfg, data=DATA, progress=False), train(cfg, data=DATA, progress=False)
    np.testing.assert_array_equal(a.final_params, b.final_params)
    assert a.test_accuracy == b.test_accuracy
    c = train(TrainConfig("is", samples=50, n_updates=6, eval_every=3, seed=1), data=DATA, progress=False)
    assert not np.array_equal(a.final_params, c.final_params)


def test_all_algorithms_start_from_the_same_network_and_minibatches():
    runs = [train(TrainConfig(algo, samples=20, hr_iterations=2, hr_samples=2, n_updates=2), data=DATA,
                  progress=False) for algo in ("sgd", "is", "sgld", "hr")]
    assert len({r.test_accuracy[0] for r in runs}) == 1            # identical initialisation
    assert len({r.minibatch_loss[0] for r in runs}) == 1           # same first minibatch


def test_sgd_first_then_switch_and_tau_schedule():
    cfg = TrainConfig("sgld", samples=20, n_updates=8, sgd_first=5, tau=1.5, tau_scoping=0.5)
    result = train(cfg, data=DATA, progress=False)
    sgd = train(TrainConfig("sgd", n_updates=5), data=DATA, progress=False)
    np.testing.assert_allclose(result.minibatch_loss[:5], sgd.minibatch_loss, rtol=1e-6)
    assert result.taus[:6] == [1.5] * 6 and result.taus[7] == pytest.approx(1.5 / 1.5 ** 2)
    assert cfg.label == "SGD→SGLD"


@pytest.mark.parametrize("kwargs,match", [({"algorithm": "adam"}, "algorithm"), ({"net": "cnn"}, "net"),
                                          ({"tau": 0.0}, "tau"), ({"samples": 0}, "samples"),
                                          ({"hr_alpha": 0.3}, "alpha"), ({"n_updates": -1}, "n_updates")])
def test_bad_config_is_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"algorithm": "sgd", **kwargs})


def test_result_files(tmp_path):
    result = train(TrainConfig("sgd", n_updates=4, eval_every=2), data=DATA, progress=False)
    saved = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert saved["eval_updates"] == [0, 2, 4] and len(saved["seconds"]) == 4
    assert (tmp_path / "r.csv").exists() is False and result.to_csv(tmp_path / "r.csv").read_text().count("\n") == 4


@pytest.mark.parametrize("name", [n for n in NAMES if n != "table-6.1"])
def test_reproduce_quick_runs_every_experiment(name, tmp_path):
    assert main(["reproduce", name, "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    folder = tmp_path / f"{name}-quick"   # quick runs never write over a full run's folder
    if name == "table-6.2":
        assert json.loads((folder / "bench.json").read_text())
        return
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary) == set(EXPERIMENTS[name].configs)
    assert (folder / f"{name}.png").stat().st_size > 10_000 and (folder / "results.csv").exists()


def test_table_6_1_quick_prints_the_paper_row(tmp_path):
    result = run_experiment("table-6.1", quick=True, out=tmp_path, progress=False, printer=lambda s: None)
    table = (tmp_path / "table-6.1-quick" / "table.md").read_text()
    assert "SGLD (paper, at 100–500 updates) | 0.72" in table and "SGLD, T=1e-4 (ours, 1 seeds)" in table
    assert set(result.runs) == {"SGD", "IS", "SGLD", "HR", "SGLD, T=1e-4", "Entropy-SGD", "SAM"}


def test_train_cli(tmp_path, capsys):
    assert main(["train", "--algo", "sgd", "--net", "small", "--updates", "5", "--eval-every", "5",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    assert len(list(tmp_path.glob("sgd-small-seed0-*.json"))) == 1 and "held-out accuracy" in capsys.readouterr().out
