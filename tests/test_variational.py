"""Theorems 3.1 and 4.1 and the majorizers A, A^H, computed from their definitions."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kltrain import variational as V

from .strategies import bumps, mixtures, problems

IDENTITY_TOL = 1e-8


@given(problems(mixtures()), st.floats(-0.5, 0.5), st.floats(0.3, 2.0))
def test_theorem_3_1_minimum_is_local_entropy_at_q(problem, shift, var_factor):
    loss, x, tau = problem
    F = loss.local_entropy(x, tau)
    at_q = V.local_entropy_objective(loss, x, tau, V.posterior_density(loss, x, tau))
    assert abs(at_q - F) < IDENTITY_TOL
    # any Gaussian is a worse q (strictly, unless it happens to equal q_{x,τ})
    m = loss.posterior_mean(x, tau) + shift
    other = V.gaussian_density(m, var_factor * tau, spacing=loss.length_scale / 4)
    assert V.local_entropy_objective(loss, x, tau, other) >= F - IDENTITY_TOL


@given(problems(bumps()), st.floats(-0.5, 0.5), st.floats(0.3, 1.5))
def test_theorem_4_1_minimum_is_heat_regularization_at_q(problem, shift, var_factor):
    loss, x, tau = problem
    F = loss.heat_regularization(x, tau)
    at_q = V.heat_objective(loss, x, tau, V.posterior_density(loss, x, tau))
    assert abs(at_q - F) < IDENTITY_TOL
    other = V.gaussian_density(x + shift, var_factor * tau, spacing=loss.length_scale / 4)
    assert V.heat_objective(loss, x, tau, other) >= F - IDENTITY_TOL


def test_theorem_3_1_negative_control_wrong_tau_posterior_is_not_optimal():
    """q_{x,2τ} is not the minimiser for τ: its objective must exceed F_τ clearly."""
    from toyproblems import random_mixture
    loss = random_mixture(np.random.default_rng(7))
    x, tau = np.array([0.2, 0.1]), 0.3
    wrong = V.local_entropy_objective(loss, x, tau, V.posterior_density(loss, x, 2 * tau))
    assert wrong - loss.local_entropy(x, tau) > 1e-3


@given(problems(mixtures()), st.floats(-0.6, 0.6), st.floats(-0.6, 0.6))
def test_majorizer_of_local_entropy(problem, dx, dy):
    loss, x, tau = problem
    x_tilde = x + np.array([dx, dy])[: loss.dim]
    F = loss.local_entropy(x, tau)
    assert abs(V.majorizer(loss, x, x, tau) - F) < IDENTITY_TOL
    A = V.majorizer(loss, x, x_tilde, tau)
    assert A >= F - IDENTITY_TOL
    # and its closed form F_τ(x̃) + (|x − m̃|² − |x̃ − m̃|²)/2τ (a second route)
    m = loss.posterior_mean(x_tilde, tau)
    closed = loss.local_entropy(x_tilde, tau) + ((x - m) @ (x - m) - (x_tilde - m) @ (x_tilde - m)) / (2 * tau)
    assert abs(A - closed) < IDENTITY_TOL


@given(problems(bumps()), st.floats(-0.6, 0.6), st.floats(-0.6, 0.6))
def test_majorizer_of_heat_regularization(problem, dx, dy):
    loss, x, tau = problem
    x_tilde = x + np.array([dx, dy])[: loss.dim]
    F = loss.heat_regularization(x, tau)
    assert abs(V.heat_majorizer(loss, x, x, tau) - F) < IDENTITY_TOL
    A = V.heat_majorizer(loss, x, x_tilde, tau)
    assert abs(A - (F + (x - x_tilde) @ (x - x_tilde) / (2 * tau))) < IDENTITY_TOL


def test_kl_divergence_of_gaussians_matches_closed_form():
    """KL(N(a, s²) ‖ N(b, t²)) in 1D; and zero for identical densities."""
    p = V.gaussian_density([0.3], 0.5)
    q = V.gaussian_density([-0.2], 0.8)
    closed = 0.5 * (0.5 / 0.8 + 0.25 / 0.8 - 1 + np.log(0.8 / 0.5))
    assert abs(V.kl_divergence(p, q) - closed) < 1e-12
    assert abs(V.kl_divergence(p, p)) < 1e-14
