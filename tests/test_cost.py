"""``projected=None``: the estimators choose per-sample or reduced by kltrain.nets.cost, fitted to committed data.

The model's constants must be the ones fitted to the committed batch sweep
(``validation/data/bench-like-for-like.json``, ``validation/data/cost-model.json``); at every
measured point where the two paths differ by more than 25% it must pick the measured faster
one (a model without the reduced path's fixed costs must not: the negative control); and an
estimator's choice must flip exactly where the model's does, and be recorded.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import kltrain
from kltrain.bench.costfit import agreement, cuda_constants, fit_cost_model
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.nets import MLP, cost
from kltrain.nets.data import load_mnist
from kltrain.nets.netloss import MinibatchLoss

DATA = Path(__file__).resolve().parents[1] / "validation" / "data"
BENCH = json.loads((DATA / "bench-like-for-like.json").read_text())
SWEEP = BENCH["batch_sweep"]["records"]
MODEL = json.loads((DATA / "cost-model.json").read_text())
X, Y, _, _ = load_mnist(quiet=True)


def test_the_code_uses_the_committed_constants():
    assert cost.CONSTANTS["cpu"] == MODEL["cpu"]["constants"]
    assert cost.CONSTANTS["cuda"] == MODEL["cuda"]["constants"]


def test_refitting_the_committed_measurements_gives_the_constants_back():
    for algorithm, consts in fit_cost_model(SWEEP, MODEL["cpu"]["fixed_costs"]).items():
        for term, value in consts.items():
            assert value == pytest.approx(cost.CONSTANTS["cpu"][algorithm][term], rel=2e-2, abs=1e-15), (algorithm,
                                                                                                        term)
    gpu = json.loads((DATA / "gpu-h200.json").read_text())
    assert cuda_constants(gpu) == cost.CONSTANTS["cuda"]


def test_the_model_picks_the_measured_faster_path():
    checks = [c for c in agreement(SWEEP, cost.CONSTANTS["cpu"]) if c["decisive"]]
    assert len(checks) >= 12 and {c["measured_reduced_faster"] for c in checks} == {True, False}
    wrong = [(c["algorithm"], c["sizes"], c["batch"]) for c in checks
             if c["measured_reduced_faster"] != c["model_reduced_faster"]]
    assert wrong == []
    # Negative control: without the reduced path's fixed costs (QR, lift) the model prefers it where it lost.
    free = {a: dict(c, fixed=0.0, per_qr=0.0, per_lift=0.0) for a, c in cost.CONSTANTS["cpu"].items()}
    assert any(c["measured_reduced_faster"] != c["model_reduced_faster"]
               for c in agreement(SWEEP, free) if c["decisive"])


def test_the_gpu_model_prefers_per_sample_is_at_1e3_samples_as_measured():
    hidden = (784, 200, 10)
    assert not cost.reduced_pays("IS", hidden, 20, 3927, 393, 1_000, backend="cuda")   # 4.58 ms vs 5.76 ms (H200)
    assert cost.reduced_pays("IS", hidden, 20, 3927, 393, 100_000, backend="cuda")
    assert cost.reduced_pays("SGLD", hidden, 20, 3927, 393, 1_000, backend="cuda")     # 117 ms vs 944 ms


@pytest.mark.parametrize("algorithm, n_samples, n_iter", [("IS", 1_000, 1), ("SGLD", 1_000, 1), ("HR", 30, 30)])
def test_on_cuda_the_device_reduced_path_is_taken_where_it_runs(algorithm, n_samples, n_iter):
    """The resident IS update and the persistent chains postdate the H200 constants: where they cover the net
    and batch the reduced path is chosen; past them (B = 30 > 24 rows) the model decides, as measured."""
    hidden = MLP.hidden()
    on_device = MinibatchLoss(hidden, X[:20], Y[:20], backend="cuda")
    assert on_device.projected_pays(algorithm, n_samples, n_iter)
    if algorithm == "IS":   # negative control: the model alone prefers per-sample IS here (test above)
        assert not cost.reduced_pays("IS", hidden.sizes, 20, int(on_device.batch.idx.size),
                                     int(on_device.batch.cols.size), n_samples, backend="cuda")
    past = MinibatchLoss(hidden, X[:30], Y[:30], backend="cuda")
    samples, m = (n_iter, n_samples) if algorithm == "HR" else (n_samples, 1)
    assert past.projected_pays(algorithm, n_samples, n_iter) == cost.reduced_pays(
        algorithm, hidden.sizes, 30, int(past.batch.idx.size), int(past.batch.cols.size), samples, m, "cuda")


def _pays(algorithm, net, B, n_samples, n_iter):
    return MinibatchLoss(net, X[:B], Y[:B], backend="cpu").projected_pays(algorithm, n_samples, n_iter)


def _crossover(algorithm, n_samples, n_iter, lo=2, hi=400):
    """(net, B) with the reduced path preferred at B − 1 and not at B, by bisection on MNIST rows, or None."""
    for net in (MLP.hidden(), MLP((784, 40, 10))):
        if not _pays(algorithm, net, lo, n_samples, n_iter) or _pays(algorithm, net, hi, n_samples, n_iter):
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _pays(algorithm, net, mid, n_samples, n_iter) else (lo, mid)
        return net, hi
    return None


@pytest.mark.parametrize("algorithm, n_samples, n_iter", [("SGLD", 100, 1), ("HR", 10, 10), ("IS", 100, 1)])
def test_the_estimators_choice_flips_where_the_model_says(algorithm, n_samples, n_iter):
    found = _crossover(algorithm, n_samples, n_iter)
    assert found is not None, "the model prefers one path at every B in [2, 400]"
    net, B = found
    make = {"IS": lambda p: ImportanceSampling(n_samples, projected=p), "SGLD": lambda p: SGLD(n_samples, projected=p),
            "HR": lambda p: RobbinsMonro(n_iter, n_samples, projected=p)}[algorithm]
    x = net.init(0)
    for rows, want in ((B - 1, True), (B, False)):
        loss = MinibatchLoss(net, X[:rows], Y[:rows], backend="cpu")
        for forced in (None, True, False):
            est = make(forced)
            _, _, info = est.step(np.random.default_rng(0), est.init(loss, x, 0.01), loss, x, 0.01)
            assert info.projected is (want if forced is None else forced), (rows, forced)


def test_a_loss_without_a_cost_model_takes_the_per_sample_path():
    from toyproblems import Quadratic
    q = Quadratic(np.eye(2), [0.0, 0.0])
    _, _, info = ImportanceSampling(8).step(np.random.default_rng(0), None, q, np.zeros(2), 0.1)
    assert info.projected is False


def test_training_records_the_path_it_took():
    from kltrain.studies.training import TrainConfig, TrainResult, load_data, train
    data = load_data(TrainConfig("sgd", n_test=50))
    base = dict(net="small", n_updates=2, samples=16, n_test=50, eval_every=1, backend="cpu")
    chosen = MinibatchLoss(MLP.small(), X[:20], Y[:20], backend="cpu").projected_pays("IS", 16)
    auto = train(TrainConfig("is", **base), data=data, progress=False)
    assert auto.estimator_paths == {("reduced" if chosen else "per-sample"): 2}
    forced = train(TrainConfig("is", projected=not chosen, **base), data=data, progress=False)
    assert forced.estimator_paths == {("per-sample" if chosen else "reduced"): 2}
    assert TrainResult.from_dict(forced.to_dict()).estimator_paths == forced.estimator_paths
    assert train(TrainConfig("sgd", **base), data=data, progress=False).estimator_paths == {}
