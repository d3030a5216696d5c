"""Exact Gaussian integrals behind :mod:`kltrain.gaussian.schemes` (closed forms and grid quadrature).

Two quantities, for a Gaussian N(m, C) with a *full* covariance:

    tilted(loss, m, C)        log Z = log ∫ e^{−f} dN(m, C) = −F(m, C), and the mean and
                              covariance of q ∝ e^{−f} N(m, C)       (local-entropy form)
    expected_loss(loss, m, C) H(m, C) = E_{N(m,C)}[f], ∇_m H, ∇_C H  (heat form)

Closed forms: e^{−f} a Gaussian mixture (``GaussianMixtureLoss``) or f quadratic
(``Quadratic``) for ``tilted``; f a bowl plus Gaussian bumps (``GaussianBumpsLoss``)
or quadratic for ``expected_loss``. Anything else in d ≤ 2 goes to a uniform grid in
log space, chosen as :class:`kltrain.estimators.GridQuadrature` chooses its grids but
from the eigenvalues of C instead of τ.
"""

from __future__ import annotations

import numpy as np

from .._logspace import logsumexp
from ..losses import loss_values

LOG_2PI = np.log(2 * np.pi)


def sym(a: np.ndarray) -> np.ndarray:
    """(A + Aᵀ)/2: keeps covariances symmetric to the last bit after products."""
    return 0.5 * (a + a.T)


def gaussian_logpdf(points: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; m, C) at each row of ``points`` (Cholesky, no inverse)."""
    chol = np.linalg.cholesky(cov)
    white = np.linalg.solve(chol, (np.atleast_2d(points) - mean).T)   # (d, n)
    logdet = 2 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (np.sum(white ** 2, axis=0) + logdet + mean.size * LOG_2PI)


def _kind(loss) -> str:
    # imported lazily: toyproblems depends on kltrain, not the other way round
    name = type(loss).__name__
    return name if name in ("GaussianMixtureLoss", "GaussianBumpsLoss", "Quadratic") else ""


def has_closed_form(loss, quantity: str) -> bool:
    """Whether ``loss`` has a closed form of ``quantity`` (``"tilted"`` or ``"expected_loss"``) for any Gaussian."""
    kinds = {"tilted": ("GaussianMixtureLoss", "Quadratic"),
             "expected_loss": ("GaussianBumpsLoss", "Quadratic")}[quantity]
    return _kind(loss) in kinds


# -- closed forms ---------------------------------------------------------------------------
def tilted_closed(loss, m, C):
    """(log Z, mean, cov) of q ∝ e^{−f} N(m, C) by Gaussian conjugacy."""
    d = m.size
    if _kind(loss) == "Quadratic":
        A, c = loss.A, loss.center
        cov = sym(np.linalg.solve(np.eye(d) + C @ A, C))             # (C⁻¹ + A)⁻¹
        mean = m + cov @ A @ (c - m)                                  # cov (C⁻¹m + Ac)
        M = np.linalg.solve(np.eye(d) + A @ C, A)                     # (A⁻¹ + C)⁻¹
        logdet = np.linalg.slogdet(np.eye(d) + C @ A)[1]
        return -loss.offset - 0.5 * logdet - 0.5 * (m - c) @ M @ (m - c), mean, cov
    # e^{−f} = e^{−offset} Σ_j w_j N(μ_j, Σ_j): each component times N(m, C) is a Gaussian
    log_terms, means, covs = [], [], []
    for w, mu, S in zip(loss.weights, loss.means, loss.covs):
        T = S + C
        gain = np.linalg.solve(T, C).T                                # C (Σ_j + C)⁻¹
        log_terms.append(np.log(w) + gaussian_logpdf(m[None], mu, T)[0])
        means.append(m + gain @ (mu - m))                             # μ'_j
        covs.append(sym(C - gain @ C))                                # Σ'_j = C − C(Σ_j+C)⁻¹C
    log_terms = np.array(log_terms)
    log_z = logsumexp(log_terms)
    pi = np.exp(log_terms - log_z)                                    # responsibilities π_j
    means, covs = np.array(means), np.array(covs)
    mean = pi @ means
    dev = means - mean
    cov = sym(np.einsum("j,jde->de", pi, covs) + np.einsum("j,jd,je->de", pi, dev, dev))
    return log_z - loss.offset, mean, cov


def expected_loss_closed(loss, m, C):
    """(E_N f, ∇_m E_N f, ∇_C E_N f) for a quadratic or a bowl plus Gaussian bumps.

    ∇_C is the symmetric matrix gradient; by Price's theorem it equals ½E_N[∇²f].
    """
    if _kind(loss) == "Quadratic":
        B, c, value = loss.A, loss.center, loss.offset
        bumps = ()
    else:
        B, c, value = loss.bowl, loss.bowl_center, loss.offset
        bumps = zip(loss.amplitudes, loss.centers, loss.covs)
    diff = m - c
    value = value + 0.5 * diff @ B @ diff + 0.5 * np.trace(B @ C)
    g_m, g_C = B @ diff, 0.5 * B
    for a, mu, S in bumps:
        P = np.linalg.inv(S + C)
        e = m - mu
        v = a * np.exp(0.5 * (np.linalg.slogdet(S)[1] - np.linalg.slogdet(S + C)[1])
                       - 0.5 * e @ P @ e)                             # a √(|S|/|S+C|) e^{−½eᵀPe}
        Pe = P @ e
        value, g_m = value + v, g_m - v * Pe
        g_C = g_C + 0.5 * v * (np.outer(Pe, Pe) - P)
    return float(value), g_m, sym(g_C)


# -- grid quadrature (d <= 2) ---------------------------------------------------------------
def _grid_settings(quadrature):
    # read with defaults so that any GridQuadrature-like object (or None) works
    get = lambda name, default: getattr(quadrature, name, default)  # noqa: E731
    return (get("half_width", 10.0), get("points_per_scale", 4.0), get("max_nodes", 2_000_000),
            get("tail_log_tol", 36.0), get("max_recentre", 6))


def uniform_grid(center, half_width, spacing, max_nodes):
    """(points (n, d), log cell volume, boundary mask) of a square grid, d = 1 or 2."""
    d = center.size
    if d > 2:
        raise ValueError(f"grid quadrature needs d <= 2, got d = {d}; pass a sampling estimator")
    k = int(np.ceil(half_width / spacing))
    if (2 * k + 1) ** d > max_nodes:
        raise ValueError(f"quadrature grid would need {(2 * k + 1) ** d} nodes (> max_nodes = "
                         f"{max_nodes}); pass GridQuadrature(points_per_scale=...) with fewer")
    axis = np.arange(-k, k + 1) * spacing
    mesh = np.stack(np.meshgrid(*([axis] * d), indexing="ij"), axis=-1).reshape(-1, d)
    edge = np.any(np.abs(np.abs(mesh) - axis[-1]) < 0.5 * spacing, axis=1)
    return center + mesh, d * np.log(spacing), edge


def grid_spacing(loss, C, points_per_scale):
    """min(√λ_min(C), loss.length_scale)/points_per_scale: resolves both N(m, C) and f."""
    scale = np.sqrt(np.linalg.eigvalsh(C).min())
    ell = getattr(loss, "length_scale", None)
    return (scale if ell is None else min(scale, float(ell))) / points_per_scale


def tilted_grid(loss, m, C, quadrature=None):
    """(log Z, mean, cov) of q ∝ e^{−f} N(m, C) by log-space grid quadrature.

    The box is re-centred on the heaviest node and doubled until the log-integrand on its
    edge is ``tail_log_tol`` below its maximum (e^{−f} may pull q far from m).
    """
    half, pps, max_nodes, tol, recentre = _grid_settings(quadrature)
    spacing = grid_spacing(loss, C, pps)
    center, hw = m, half * np.sqrt(np.linalg.eigvalsh(C).max())
    for _ in range(recentre + 1):
        X, log_cell, edge = uniform_grid(center, hw, spacing, max_nodes)
        log_w = -loss_values(loss, X) + gaussian_logpdf(X, m, C) + log_cell
        if log_w[edge].max() < log_w.max() - tol:
            log_z = logsumexp(log_w)
            w = np.exp(log_w - log_z)
            mean = w @ X
            dev = X - mean
            return log_z, mean, sym((w[:, None] * dev).T @ dev)
        center, hw = X[np.argmax(log_w)], 2 * hw
    raise ValueError("grid quadrature could not enclose q; pass GridQuadrature(half_width=...)")


class FrozenGrid:
    """f tabulated once on a grid around N(m_k, C_k); E_{N(m,C)}[f] for any nearby (m, C).

    The heat step's optimiser asks for E_N f at many (m, C); f is evaluated once per step,
    and the products x_a x_b once, so each (m, C) costs a few passes over the nodes.
    Weights are self-normalised, and the gradients below are the exact derivatives of that
    self-normalised sum (so the optimiser sees a consistent objective):

        ∇_m = C⁻¹ Σ w (x − m)(f − H),   ∇_C = ½ C⁻¹ [Σ w (f − H)(x − m)(x − m)ᵀ] C⁻¹.
    """

    def __init__(self, loss, m_k, C_k, quadrature=None):
        half, pps, max_nodes, _, _ = _grid_settings(quadrature)
        hw = half * np.sqrt(np.linalg.eigvalsh(C_k).max())
        X, _, _ = uniform_grid(m_k, hw, grid_spacing(loss, C_k, pps), max_nodes)
        self.center = m_k
        self.X = X - m_k                                   # centred: less cancellation
        self.f = loss_values(loss, X)
        self.rows, self.cols = np.triu_indices(m_k.size)
        self.XX = self.X[:, self.rows] * self.X[:, self.cols]        # (n, d(d+1)/2)

    def __call__(self, m, C):
        P = np.linalg.inv(C)
        mu = m - self.center
        quad = np.where(self.rows == self.cols, 1.0, 2.0) * P[self.rows, self.cols]
        log_w = -0.5 * (self.XX @ quad) + self.X @ (P @ mu)          # log N up to a constant
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        value = w @ self.f
        wf = w * (self.f - value)                                     # Σ wf = 0
        s1 = self.X.T @ wf                                            # Σ w(f − H) x
        S2 = np.zeros_like(P)
        S2[self.rows, self.cols] = self.XX.T @ wf
        S2 = S2 + np.triu(S2, 1).T                                    # Σ w(f − H) x xᵀ
        centred = S2 - np.outer(s1, mu) - np.outer(mu, s1)            # Σ w(f − H)(x−m)(x−m)ᵀ
        return float(value), P @ s1, sym(0.5 * P @ centred @ P)
