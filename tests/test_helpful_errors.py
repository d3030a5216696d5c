"""Issue 11, class 3: a bad argument or a misbehaving loss gets one message naming it."""

import json

import numpy as np
import pytest

import kltrain
from kltrain.estimators import ImportanceSampling, RobbinsMonro
from kltrain.losses import FunctionLoss
from kltrain.nets.netloss import MinibatchLoss
from kltrain.nets import MLP
from kltrain.studies.training import TrainConfig, TrainResult

BOWL = FunctionLoss(lambda x: float(x @ x), lambda x: 2 * x, dim=2)


class Odd:
    """A loss whose methods return the wrong shapes (set per test)."""

    dim = 2

    def __init__(self, value=lambda x: float(x @ x), grad=lambda x: 2 * x, values=None):
        self.value, self.grad = value, grad
        if values is not None:
            self.values = values


@pytest.mark.parametrize("loss,call,match", [
    (Odd(value=lambda x: x), "entropy", r"Odd.value returned shape \(2,\), expected \(\)"),
    (Odd(values=lambda X: np.zeros(3)), "entropy", r"Odd.values returned shape \(3,\), expected \(\d+,\)"),
    (Odd(grad=lambda x: np.zeros(3)), "sgd", r"Odd.grad returned shape \(3,\), expected \(2,\)"),
    (Odd(grad=lambda x: 1.0), "sgd", r"Odd.grad returned shape \(\), expected \(2,\)"),   # no broadcasting
    (Odd(grad=lambda x: np.zeros((2, 1))), "rm", r"Odd.grad returned shape \(2, 1\), expected \(2,\)"),
])
def test_a_loss_returning_the_wrong_shape_is_named(loss, call, match):
    from kltrain.schemes import SGD, run
    calls = {"entropy": lambda: kltrain.local_entropy(loss, [0.1, 0.2], 0.1),
             "sgd": lambda: run(SGD(0.1), loss, [0.1, 0.2], 1),
             "rm": lambda: kltrain.minimize_heat(loss, [0.1, 0.2], 0.1, 1, estimator=RobbinsMonro(2, 2), rng=0)}
    with pytest.raises(ValueError, match=match):
        calls[call]()


def test_a_well_shaped_loss_passes_the_same_checks():   # negative control
    assert np.isfinite(kltrain.local_entropy(Odd(), [0.1, 0.2], 0.1))


def test_minibatch_grad_of_a_wrong_length_vector_is_the_value_error():
    loss = MinibatchLoss(MLP.small(), np.zeros((2, 784)), np.array([0, 1]), backend="cpu")
    messages = []
    for method in (loss.value, loss.grad, loss.loss_and_grad):
        with pytest.raises(ValueError, match=r"params must have shape \(7850,\), got \(5,\)") as err:
            method(np.zeros(5))
        messages.append(str(err.value))
    assert len(set(messages)) == 1


@pytest.mark.parametrize("make,error,name", [
    (lambda: FunctionLoss(lambda x: 0.0, length_scale=0.0), ValueError, "length_scale"),
    (lambda: FunctionLoss(lambda x: 0.0, length_scale=-1.0), ValueError, "length_scale"),
    (lambda: FunctionLoss(lambda x: 0.0, dim=2.7), TypeError, "dim"),
    (lambda: MLP((784.5, 10)), TypeError, "sizes"),
    (lambda: MLP(("784", 10)), TypeError, "sizes"),
    (lambda: MLP((True, 10)), TypeError, "sizes"),
    (lambda: kltrain.local_entropy(BOWL, np.array([1j, 0]), 0.1), TypeError, "x"),
    (lambda: kltrain.posterior_mean(BOWL, [0, 0], 0.1, estimator=ImportanceSampling(5), rng=-1), ValueError, "rng"),
    (lambda: kltrain.posterior_mean(BOWL, [0, 0], 0.1, estimator=ImportanceSampling(5), rng="7"), TypeError, "rng"),
    (lambda: kltrain.posterior_mean(BOWL, [0, 0], 0.1, estimator=ImportanceSampling(5), rng=1.5), TypeError, "rng"),
    (lambda: TrainConfig("sgd", seed=-1), ValueError, "seed"),
    (lambda: TrainConfig("sgd", seed="0"), TypeError, "seed"),
    (lambda: TrainConfig("sgd", seed=0.5), TypeError, "seed"),
    (lambda: TrainConfig("sgd", backend="gpu"), ValueError, "backend"),
    (lambda: TrainConfig("sgd", dataset="cifar"), ValueError, "dataset"),
    (lambda: ImportanceSampling(2 ** 32), ValueError, "n_samples"),
    (lambda: ImportanceSampling(2 ** 32 - 2), ValueError, "n_samples"),
])
def test_bad_arguments_are_named(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_the_largest_sample_count_is_accepted():   # negative control: the bound is not off by one
    assert ImportanceSampling(2 ** 32 - 3).n_samples == 2 ** 32 - 3


def test_seed_none_records_the_seed_drawn(tmp_path):
    a, b = TrainConfig("sgd", seed=None), TrainConfig("sgd", seed=None)
    assert isinstance(a.seed, int) and a.seed >= 0 and a.seed != b.seed
    saved = json.loads(TrainResult(a).to_json(tmp_path / "r.json").read_text())
    assert saved["config"]["seed"] == a.seed
