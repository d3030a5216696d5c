"""The toy losses: gradients, vectorisation, construction errors, and the figures."""

import numpy as np
import pytest
from hypothesis import given

from kltrain.losses import central_difference
from toyproblems import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic
from toyproblems.plots import make_all, mode_and_mean_fits

from .strategies import bumps, mixtures, points, quadratics, taus


@given(mixtures() | bumps() | quadratics(), points(2))
def test_gradients_match_central_differences(loss, x):
    x = x[: loss.dim]
    np.testing.assert_allclose(loss.grad(x), central_difference(loss.value, x), atol=1e-6)
    np.testing.assert_allclose(loss.grads(x[None])[0], loss.grad(x), atol=1e-12)


@given(bumps(), points(2), taus)
def test_heat_gradient_matches_central_differences(loss, x, tau):
    x = x[: loss.dim]
    fd = central_difference(lambda z: loss.heat_regularization(z, tau), x)
    np.testing.assert_allclose(loss.heat_regularization_grad(x, tau), fd, atol=1e-6)


@given(mixtures() | bumps() | quadratics())
def test_values_vectorise_value(loss):
    X = np.random.default_rng(0).uniform(-2, 2, size=(7, loss.dim))
    np.testing.assert_allclose(loss.values(X), [loss.value(x) for x in X], atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: GaussianMixtureLoss([1.0], [[0.0, 0.0]], [np.diag([1.0, -1.0])]),
    lambda: GaussianMixtureLoss([-1.0], [[0.0, 0.0]], [1.0]),
    lambda: GaussianBumpsLoss([1.0], [[0.0, 0.0]], [1.0], bowl=-1.0),
    lambda: Quadratic(np.diag([1.0, 0.0]), [0.0, 0.0]),
])
def test_bad_construction_is_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_mode_and_mean_fits_of_a_symmetric_bimodal_q():
    """Fig 5.1: KL(q‖φ) is minimised at the mean (0), KL(φ‖q) near each mode (±1.5)."""
    q = GaussianMixtureLoss(weights=[0.5, 0.5], means=[[-1.5], [1.5]], covs=[0.16, 0.16])
    mean, modes, _, _ = mode_and_mean_fits(q, var=0.5)
    assert abs(mean) < 1e-12
    assert len(modes) == 2 and np.all(np.abs(np.abs(modes) - 1.5) < 0.15)


def test_make_all_writes_the_figures(tmp_path):
    paths = make_all(tmp_path)
    assert len(paths) == 4 and all(p.exists() and p.stat().st_size > 10_000 for p in paths)
