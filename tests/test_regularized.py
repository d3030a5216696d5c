"""F_τ, F^H_τ and E_q[X]: closed forms vs quadrature, eq. (3.5), underflow, bad input."""

import numpy as np
import pytest
from hypothesis import given

import kltrain
from kltrain.estimators import ClosedForm, Exact, GridQuadrature
from kltrain.losses import FunctionLoss, central_difference
from kltrain.regularized import heat_regularization_grad, log_partition_offset
from toyproblems import GaussianMixtureLoss, Quadratic, random_mixture

from .strategies import bumps, mixtures, problems, quadratics

EXACT_TOL = 1e-6  # the bar for "exact" quantities
QUAD = GridQuadrature()


def without_closed_forms(loss):
    """The same f, hiding every closed form: forces the quadrature path."""
    return FunctionLoss(loss.value, loss.grad, values_fn=loss.values, dim=loss.dim,
                        length_scale=loss.length_scale)


@given(problems(mixtures()))
def test_local_entropy_and_mean_closed_form_match_quadrature(problem):
    loss, x, tau = problem
    assert abs(kltrain.local_entropy(loss, x, tau) - QUAD.local_entropy(loss, x, tau)) < EXACT_TOL
    np.testing.assert_allclose(kltrain.posterior_mean(loss, x, tau),
                               QUAD.posterior_mean(loss, x, tau), atol=EXACT_TOL)


@given(problems(bumps()))
def test_heat_closed_form_matches_quadrature(problem):
    loss, x, tau = problem
    assert abs(kltrain.heat_regularization(loss, x, tau) - QUAD.heat_regularization(loss, x, tau)) < EXACT_TOL
    np.testing.assert_allclose(heat_regularization_grad(loss, x, tau),
                               QUAD.heat_regularization_grad(loss, x, tau), atol=EXACT_TOL)


@given(problems(quadratics()))
def test_quadratic_closed_forms_match_quadrature(problem):
    loss, x, tau = problem
    for name in ("local_entropy", "heat_regularization"):
        assert abs(getattr(loss, name)(x, tau) - getattr(QUAD, name)(loss, x, tau)) < EXACT_TOL
    np.testing.assert_allclose(loss.posterior_mean(x, tau), QUAD.posterior_mean(loss, x, tau), atol=EXACT_TOL)


@given(problems(mixtures()))
def test_eq_3_5_gradient_of_local_entropy(problem):
    """∇F_τ(x) = (x − E_q[X])/τ, with ∇F_τ from central differences of F_τ (independent)."""
    loss, x, tau = problem
    fd = central_difference(lambda z: loss.local_entropy(z, tau), x, h=1e-5)
    via_mean = (x - loss.posterior_mean(x, tau)) / tau
    scale = 1 + np.abs(fd).max()
    assert np.abs(fd - via_mean).max() < 1e-6 * scale / tau
    np.testing.assert_allclose(loss.local_entropy_grad(x, tau), fd, atol=1e-6 * scale)


def test_eq_3_5_negative_control_wrong_tau_fails():
    """The same comparison with the mean taken at 1.1τ must be far off."""
    loss = random_mixture(np.random.default_rng(3))
    x, tau = np.array([0.3, -0.4]), 0.5
    fd = central_difference(lambda z: loss.local_entropy(z, tau), x)
    wrong = (x - loss.posterior_mean(x, 1.1 * tau)) / tau
    assert np.abs(fd - wrong).max() > 1e-3


@pytest.mark.parametrize("shift", [-1000.0, 1000.0])
@pytest.mark.parametrize("closed", [True, False])
def test_no_underflow_when_loss_is_shifted(shift, closed):
    """f + c gives F_τ + c and the same E_q, finite, with or without a closed form."""
    base = random_mixture(np.random.default_rng(5))
    shifted = GaussianMixtureLoss(base.weights, base.means, base.covs, offset=shift)
    if not closed:
        base, shifted = without_closed_forms(base), without_closed_forms(shifted)
    x, tau = np.array([0.5, 1.0]), 0.3
    f0, f1 = kltrain.local_entropy(base, x, tau), kltrain.local_entropy(shifted, x, tau)
    assert np.isfinite(f1) and abs(f1 - f0 - shift) < 1e-9
    np.testing.assert_allclose(kltrain.posterior_mean(shifted, x, tau),
                               kltrain.posterior_mean(base, x, tau), atol=1e-10)


def test_exact_falls_back_to_quadrature_and_uses_closed_forms():
    loss = random_mixture(np.random.default_rng(0))
    assert isinstance(Exact().method_for(loss, "local_entropy", 2), ClosedForm)
    assert isinstance(Exact().method_for(loss, "heat_regularization", 2), GridQuadrature)


def test_grid_recentres_when_q_lies_far_from_x():
    """A steep quadratic pulls q_{x,τ} ~60√τ away from x: the box must follow it."""
    loss = Quadratic(A=np.diag([50.0, 50.0]), center=[3.0, 0.0])
    x, tau = np.array([-3.0, 0.0]), 0.01
    np.testing.assert_allclose(QUAD.posterior_mean(loss, x, tau), loss.posterior_mean(x, tau), atol=1e-9)
    assert abs(QUAD.local_entropy(loss, x, tau) - loss.local_entropy(x, tau)) < 1e-9


@given(problems(mixtures()))
def test_local_entropy_offset_from_log_partition(problem):
    """−log Z_{x,τ} (normaliser of eq. 2.6, by direct quadrature) = F_τ − (d/2)log 2πτ."""
    loss, x, tau = problem
    grid = QUAD.grid(loss, x, tau)
    log_integrand = -loss.values(grid.points) - np.sum((grid.points - x) ** 2, 1) / (2 * tau)
    neg_log_z = -(np.log(np.sum(np.exp(log_integrand - log_integrand.max()))) + log_integrand.max()
                  + grid.log_cell)
    assert abs(neg_log_z - (loss.local_entropy(x, tau) - log_partition_offset(loss.dim, tau))) < 1e-8


def test_local_entropy_tends_to_loss_as_tau_vanishes():
    loss, x = Quadratic(A=np.eye(2), center=[0.0, 0.0]), np.array([0.7, -0.2])
    assert abs(kltrain.local_entropy(loss, x, 1e-8) - loss.value(x)) < 1e-7
    assert abs(kltrain.heat_regularization(loss, x, 1e-8) - loss.value(x)) < 1e-7


# -- bad input -------------------------------------------------------------------
LOSS2 = Quadratic(A=np.eye(2), center=[0.0, 0.0])


@pytest.mark.parametrize("tau", [0.0, -1.0, np.nan, np.inf])
def test_bad_tau_is_value_error_naming_it(tau):
    with pytest.raises(ValueError, match="tau"):
        kltrain.local_entropy(LOSS2, [0.0, 0.0], tau)


@pytest.mark.parametrize("tau", ["0.1", None, True])
def test_tau_of_wrong_type_is_type_error(tau):
    with pytest.raises(TypeError, match="tau"):
        kltrain.posterior_mean(LOSS2, [0.0, 0.0], tau)


@pytest.mark.parametrize("x,match", [([0.0], "dimension 1"), ([0.0, np.nan], "finite"),
                                     ([[0.0, 1.0]], "1-D"), ([np.inf, 0.0], "finite")])
def test_bad_point_is_value_error(x, match):
    with pytest.raises(ValueError, match=match):
        kltrain.heat_regularization(LOSS2, x, 0.1)


def test_loss_returning_nan_is_value_error():
    loss = FunctionLoss(lambda x: np.nan, lambda x: x, dim=2)
    with pytest.raises(ValueError, match="non-finite"):
        kltrain.local_entropy(loss, [0.0, 0.0], 0.1)


def test_object_without_value_is_type_error():
    with pytest.raises(TypeError, match="value"):
        kltrain.local_entropy(object(), [0.0], 0.1)


def test_high_dimension_without_closed_form_asks_for_an_estimator():
    loss = FunctionLoss(lambda x: float(x @ x), lambda x: 2 * x, dim=3)
    with pytest.raises(ValueError, match="ImportanceSampling"):
        kltrain.local_entropy(loss, np.zeros(3), 0.1)
    # ... but a closed form works in any dimension
    q3 = Quadratic(A=np.eye(3), center=np.zeros(3))
    assert np.isfinite(kltrain.local_entropy(q3, np.ones(3), 0.1))
