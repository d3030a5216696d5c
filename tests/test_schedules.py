"""τ scoping, SGLD temperatures, Robbins–Monro steps; SGD and SGD-then-switch rules."""

import numpy as np
import pytest

import kltrain
from kltrain.estimators import ImportanceSampling
from kltrain.schedules import (ConstantTau, HarmonicTemperatures, ReverseTauScoping, RobbinsMonroSteps,
                               TauScoping)
from kltrain.schemes import SGD, LocalEntropy, SwitchAfter, gradient_descent, run
from toyproblems import random_mixture

LOSS = random_mixture(np.random.default_rng(1))
X0 = np.array([1.0, -1.0])


def test_tau_scoping_of_fig_6_5():
    sched = TauScoping(1.5, 0.01)
    assert sched(0) == 1.5 and sched(500) == pytest.approx(1.5 / 1.01 ** 500)
    assert 0.0100 < sched(500) < 0.0105
    assert np.all(np.diff([sched(k) for k in range(50)]) < 0)
    rev = ReverseTauScoping(0.01, 0.01)
    assert rev(500) == pytest.approx(0.01 * 1.01 ** 500) and 1.4 < rev(500) < 1.5


def test_temperatures_and_steps():
    np.testing.assert_allclose(HarmonicTemperatures()(np.array([1, 2])), [1 / 1001, 1 / 1002])
    np.testing.assert_allclose(HarmonicTemperatures(2000)(1), 1 / 2001)
    steps = RobbinsMonroSteps(0.1, 0.7)(np.arange(1, 4))
    np.testing.assert_allclose(steps, 0.1 * np.arange(1, 4) ** -0.7)


@pytest.mark.parametrize("make,match", [
    (lambda: TauScoping(0.0, 0.01), "tau"), (lambda: TauScoping(1.0, -1.0), "tau1"),
    (lambda: ReverseTauScoping(1.0, 0.0), "tau1"), (lambda: ConstantTau(-1.0), "tau"),
    (lambda: HarmonicTemperatures(-5), "offset"), (lambda: RobbinsMonroSteps(0.1, 0.4), "alpha"),
    (lambda: SGD(0.0), "learning_rate"), (lambda: SwitchAfter(SGD(0.1), SGD(0.1), -1), "n_first"),
])
def test_bad_schedule_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_algorithm_1_with_a_tau_schedule_uses_tau_k_at_step_k():
    sched = TauScoping(0.5, 0.2)
    traj = kltrain.minimize_local_entropy(LOSS, X0, sched, 4)
    for k in range(4):
        np.testing.assert_allclose(traj[k + 1], LOSS.posterior_mean(traj[k], sched(k)), atol=1e-12)


def test_sgd_is_gradient_descent_on_a_fixed_loss():
    traj, infos = run(SGD(0.05), LOSS, X0, 6)
    np.testing.assert_allclose(traj, gradient_descent(LOSS.grad, X0, 0.05, 6), atol=1e-14)
    assert infos[0].grad_norm == pytest.approx(np.linalg.norm(LOSS.grad(X0)))


def test_switch_after_runs_sgd_then_the_regularized_scheme():
    rule = SwitchAfter(SGD(0.05), LocalEntropy(0.3, ImportanceSampling(50)), n_first=3)
    traj, infos = run(rule, LOSS, X0, 6, rng=4)
    np.testing.assert_allclose(traj[:4], gradient_descent(LOSS.grad, X0, 0.05, 3), atol=1e-14)
    rng = np.random.default_rng(4)  # SGD consumed no randomness: IS sees the same draws
    tail = kltrain.minimize_local_entropy(LOSS, traj[3], 0.3, 3, estimator=ImportanceSampling(50), rng=rng)
    np.testing.assert_allclose(traj[3:], tail, atol=1e-14)
    assert type(infos[0]).__name__ == "SGDInfo" and type(infos[3]).__name__ == "ISInfo"
