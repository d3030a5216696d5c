"""The variational characterizations (Theorems 3.1, 4.1) and majorizers (§3.2, §4.2).

Computed *from their definitions*, by quadrature on R or R², so that they can
check the closed forms and the schemes independently:

    J(q)     = ∫ f q + KL(q ‖ φ_{x,τ})                   Theorem 3.1: min_q J = F_τ(x) at q = q_{x,τ}
    J^H(q)   = log ∫ e^{f} q + KL(φ_{x,τ} ‖ q)           Theorem 4.1: min_q J^H = F^H_τ(x) at q = q_{x,τ}
    A(x, x̃)  = J(q_{x̃,τ})  evaluated at x                 majorizes F_τ, A(x, x) = F_τ(x)
    A^H(x, x̃) = J^H(q_{x̃,τ}) evaluated at x               majorizes F^H_τ, A^H(x, x) = F^H_τ(x)

Worked out in closed form (the validation suite checks these numerically):
A(x, x̃) = F_τ(x̃) + (|x − m̃|² − |x̃ − m̃|²)/(2τ) with m̃ = E_{q_{x̃,τ}}[X], minimised
at x = m̃ (Algorithm 1); and A^H(x, x̃) = F^H_τ(x) + |x − x̃|²/(2τ) (Algorithm 2).

A density is a :class:`GridDensity`: quadrature nodes with normalised log
weights, and its normalised log-pdf as a function (KL needs one density at the
other's nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ._logspace import logsumexp

from ._checks import check_point, check_tau
from .estimators.quadrature import GridQuadrature, gaussian_logpdf_iso, uniform_grid
from .losses import check_loss, loss_dim, loss_values


@dataclass(frozen=True)
class GridDensity:
    """A normalised density on R^d (d ≤ 2) ready for quadrature.

    points : nodes (n, d); log_weights : log of (density × cell) at the nodes,
    summing to one; log_pdf : the normalised log-density at any points.
    """

    points: np.ndarray
    log_weights: np.ndarray
    log_pdf: Callable[[np.ndarray], np.ndarray]

    def expect(self, values: np.ndarray) -> float:
        return float(np.exp(self.log_weights) @ values)


def gaussian_density(mean, cov, spacing: float | None = None, half_width: float = 10.0) -> GridDensity:
    """N(mean, cov) on a grid of half-width ``half_width`` standard deviations."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    cov = cov * np.eye(mean.size) if cov.ndim == 0 else cov  # scalar = isotropic variance
    evals = np.linalg.eigvalsh(cov)
    h = np.sqrt(evals.min()) / 4 if spacing is None else spacing
    grid = uniform_grid(mean, half_width * np.sqrt(evals.max()), h)
    prec = np.linalg.inv(cov)
    logdet = np.linalg.slogdet(2 * np.pi * cov)[1]

    def log_pdf(X):
        diff = np.atleast_2d(X) - mean
        return -0.5 * (np.einsum("nd,de,ne->n", diff, prec, diff) + logdet)

    log_w = log_pdf(grid.points) + grid.log_cell
    return GridDensity(grid.points, log_w - logsumexp(log_w), log_pdf)


def posterior_density(loss, x, tau, quadrature: GridQuadrature | None = None) -> GridDensity:
    """q_{x,τ} of eq. (2.6), normalised by quadrature."""
    quadrature = GridQuadrature() if quadrature is None else quadrature
    grid, log_w = quadrature.posterior_grid(loss, x, tau)
    log_norm = logsumexp(log_w)  # = −F_τ(x)

    def log_pdf(X):
        X = np.atleast_2d(X)
        return -loss_values(loss, X) + gaussian_logpdf_iso(X, x, tau) - log_norm

    return GridDensity(grid.points, log_w - log_norm, log_pdf)


def prior_density(loss, x, tau, quadrature: GridQuadrature | None = None) -> GridDensity:
    """φ_{x,τ} on a grid fine enough for the loss's features."""
    quadrature = GridQuadrature() if quadrature is None else quadrature
    h = quadrature.node_spacing(loss, tau)
    return gaussian_density(x, tau * np.eye(x.size), spacing=h, half_width=quadrature.half_width)


def kl_divergence(p: GridDensity, q: GridDensity) -> float:
    """KL(p ‖ q) = ∫ log(p/q) p  (eq. 2.7), by quadrature on p's nodes."""
    return p.expect(p.log_pdf(p.points) - q.log_pdf(p.points))


def _prepare(loss, x, tau):
    check_loss(loss)
    return check_point(x, loss_dim(loss)), check_tau(tau)


def local_entropy_objective(loss, x, tau, q: GridDensity, quadrature=None) -> float:
    """J(q) = ∫ f q + KL(q ‖ φ_{x,τ}): the bracket minimised in Theorem 3.1, eq. (3.1)."""
    x, tau = _prepare(loss, x, tau)
    return q.expect(loss_values(loss, q.points)) + kl_divergence(q, prior_density(loss, x, tau, quadrature))


def heat_objective(loss, x, tau, q: GridDensity, quadrature=None) -> float:
    """J^H(q) = log ∫ e^{f} q + KL(φ_{x,τ} ‖ q): the bracket minimised in Theorem 4.1, eq. (4.1)."""
    x, tau = _prepare(loss, x, tau)
    log_moment = float(logsumexp(loss_values(loss, q.points) + q.log_weights))
    return log_moment + kl_divergence(prior_density(loss, x, tau, quadrature), q)


def majorizer(loss, x, x_tilde, tau, quadrature=None) -> float:
    """A(x, x̃) = ∫ f q_{x̃,τ} + KL(q_{x̃,τ} ‖ φ_{x,τ}) of §3.2 (majorizes F_τ)."""
    x_tilde = check_point(x_tilde, loss_dim(loss), name="x_tilde")
    q = posterior_density(loss, x_tilde, check_tau(tau), quadrature)
    return local_entropy_objective(loss, x, tau, q, quadrature)


def heat_majorizer(loss, x, x_tilde, tau, quadrature=None) -> float:
    """A^H(x, x̃) = log ∫ e^{f} q_{x̃,τ} + KL(φ_{x,τ} ‖ q_{x̃,τ}) of §4.2 (majorizes F^H_τ)."""
    x_tilde = check_point(x_tilde, loss_dim(loss), name="x_tilde")
    q = posterior_density(loss, x_tilde, check_tau(tau), quadrature)
    return heat_objective(loss, x, tau, q, quadrature)
