"""Algorithms 1 and 2: η = τ, monotonicity (Thms 3.2, 4.2), prox = argmin KL, invariants."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kltrain
from kltrain import variational as V
from kltrain.estimators import ExactProx, GridQuadrature
from kltrain.losses import central_difference
from kltrain.schemes import gradient_descent, run_heat
from toyproblems import GaussianMixtureLoss, Quadratic, random_bumps, random_mixture

from .strategies import bumps, mixtures, points, problems, quadratics

N_STEPS = 8
MONOTONE_TOL = 1e-10  # rounding slack on F(x_{k+1}) ≤ F(x_k)


@given(problems(mixtures()))
def test_algorithm_1_is_gradient_descent_with_eta_tau(problem):
    """Alg. 1 iterates = GD on F_τ with η = τ, ∇F_τ from its own closed form (not E_q)."""
    loss, x0, tau = problem
    alg1 = kltrain.minimize_local_entropy(loss, x0, tau, N_STEPS)
    gd = gradient_descent(lambda x: loss.local_entropy_grad(x, tau), x0, tau, N_STEPS)
    np.testing.assert_allclose(alg1, gd, atol=1e-9)


def test_algorithm_1_negative_control_eta_half_tau_differs():
    loss = random_mixture(np.random.default_rng(11))
    x0, tau = np.array([1.5, -1.5]), 0.4
    alg1 = kltrain.minimize_local_entropy(loss, x0, tau, N_STEPS)
    gd = gradient_descent(lambda x: loss.local_entropy_grad(x, tau), x0, tau / 2, N_STEPS)
    assert np.abs(alg1 - gd).max() > 1e-3


@given(problems(mixtures()))
def test_theorem_3_2_local_entropy_decreases_along_algorithm_1(problem):
    loss, x0, tau = problem
    traj = kltrain.minimize_local_entropy(loss, x0, tau, N_STEPS)
    values = np.array([loss.local_entropy(x, tau) for x in traj])
    assert np.all(np.diff(values) <= MONOTONE_TOL * (1 + np.abs(values[:-1])))


def test_theorem_3_2_negative_control_overshooting_step_increases():
    """GD with η = 4τ (outside the theorem) must break monotonicity on this loss.

    F_τ's Hessian here is A(I + τA)^{-1}, so GD is stable only for η < 2τ + 2/4 = 1.5.
    """
    loss = Quadratic(A=np.diag([4.0, 1.0]), center=[0.0, 0.0])
    tau = 0.5
    traj = gradient_descent(lambda x: loss.local_entropy_grad(x, tau), [1.0, 1.0], 4 * tau, N_STEPS)
    values = np.array([loss.local_entropy(x, tau) for x in traj])
    assert np.any(np.diff(values) > 1e-3)


@given(problems(bumps()))
def test_theorem_4_2_heat_regularization_decreases_along_algorithm_2(problem):
    loss, x0, tau = problem
    traj = kltrain.minimize_heat(loss, x0, tau, 5)
    values = np.array([loss.heat_regularization(x, tau) for x in traj])
    assert np.all(np.diff(values) <= MONOTONE_TOL * (1 + np.abs(values[:-1])))


@given(problems(quadratics()))
def test_algorithm_2_matches_closed_form_prox_and_algorithm_1_on_quadratics(problem):
    loss, x0, tau = problem
    traj = kltrain.minimize_heat(loss, x0, tau, 3)
    for k in range(3):
        np.testing.assert_allclose(traj[k + 1], loss.heat_prox(traj[k], tau), atol=1e-7)
    np.testing.assert_allclose(traj, kltrain.minimize_local_entropy(loss, x0, tau, 3), atol=1e-7)


def _kl(loss, x, x_k, tau):
    """KL(φ_{x,τ} ‖ q_{x_k,τ}) straight from its definition, by quadrature."""
    prior = V.prior_density(loss, np.asarray(x, float), tau)
    return V.kl_divergence(prior, V.posterior_density(loss, x_k, tau))


def test_algorithm_2_step_is_argmin_of_kl():
    """KL(φ_x‖q_{x_k}) − [F^H_τ(x) + |x − x_k|²/2τ] is constant in x, and the step is its minimiser."""
    loss = random_bumps(np.random.default_rng(2), n_bumps=3)
    x_k, tau = np.array([0.4, -0.3]), 0.3
    rng = np.random.default_rng(0)
    xs = x_k + 0.5 * rng.normal(size=(5, 2))
    gaps = [_kl(loss, x, x_k, tau) - loss.heat_regularization(x, tau) - (x - x_k) @ (x - x_k) / (2 * tau)
            for x in xs]
    assert np.ptp(gaps) < 1e-9
    assert abs(gaps[0] + kltrain.local_entropy(loss, x_k, tau)) < 1e-9  # the constant is −F_τ(x_k)
    x_next = kltrain.minimize_heat(loss, x_k, tau, 1)[1]
    grad_kl = central_difference(lambda x: _kl(loss, x, x_k, tau), x_next, h=1e-4)
    assert np.abs(grad_kl).max() < 1e-6
    # negative control: the starting point is not a minimiser
    assert np.abs(central_difference(lambda x: _kl(loss, x, x_k, tau), x_k, h=1e-4)).max() > 1e-2


def test_exact_prox_reports_small_residual_and_quadrature_matches_closed_form():
    loss = random_bumps(np.random.default_rng(4))
    x_k, tau = np.array([1.0, 1.0]), 0.2
    _, infos = run_heat(loss, x_k, tau, 2)
    assert max(i.residual for i in infos) < 1e-8
    closed = kltrain.minimize_heat(loss, x_k, tau, 2)
    quad = kltrain.minimize_heat(loss, x_k, tau, 2, estimator=ExactProx(values=GridQuadrature()))
    np.testing.assert_allclose(closed, quad, atol=1e-7)


# -- invariants ------------------------------------------------------------------
@given(st.sampled_from([1, 2]), st.floats(0.05, 1.0))
def test_symmetric_stationary_point_stays_fixed(dim, tau):
    """A single Gaussian component: x = m is a critical point of F_τ; both schemes stay."""
    m = np.full(dim, 0.3)
    loss = GaussianMixtureLoss([1.0], [m], [0.2 * np.eye(dim)])
    np.testing.assert_allclose(kltrain.minimize_local_entropy(loss, m, tau, 3), np.tile(m, (4, 1)), atol=1e-12)
    np.testing.assert_allclose(kltrain.minimize_heat(loss, m, tau, 2), np.tile(m, (3, 1)), atol=1e-7)


@given(mixtures(), st.integers(0, 4))
def test_shapes_and_first_row(loss, n_steps):
    x0 = np.zeros(loss.dim)
    traj = kltrain.minimize_local_entropy(loss, x0, 0.3, n_steps)
    assert traj.shape == (n_steps + 1, loss.dim)
    np.testing.assert_array_equal(traj[0], x0)


@pytest.mark.parametrize("n_steps,exc", [(-1, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_bad_n_steps(n_steps, exc):
    with pytest.raises(exc, match="n_steps"):
        kltrain.minimize_local_entropy(Quadratic(np.eye(1), [0.0]), [0.0], 0.1, n_steps)


def test_wrong_estimator_kind_is_type_error():
    loss = Quadratic(np.eye(1), [0.0])
    with pytest.raises(TypeError, match="kind 'prox'"):
        kltrain.minimize_heat(loss, [0.0], 0.1, 1, estimator=GridQuadrature())
    with pytest.raises(TypeError, match="kind 'mean'"):
        kltrain.minimize_local_entropy(loss, [0.0], 0.1, 1, estimator=ExactProx())


@given(points(2))
def test_bad_x0_dimension(x):
    with pytest.raises(ValueError, match="x0"):
        kltrain.minimize_heat(Quadratic(np.eye(3), np.zeros(3)), x, 0.1, 1)
