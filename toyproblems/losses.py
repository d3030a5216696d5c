"""Toy losses on R^d whose regularizations have closed forms: the oracles.

- :class:`GaussianMixtureLoss` — e^{−f} is a Gaussian mixture, so F_τ (eq. 2.2),
  E_{q_{x,τ}}[X] (eq. 5.1) and ∇F_τ are Gaussian convolutions in closed form.
- :class:`GaussianBumpsLoss` — f is a quadratic bowl plus Gaussian bumps/wells,
  so F^H_τ = f * φ_{0,τ} (§2.2) and ∇F^H_τ are closed form.
- :class:`Quadratic` — both, plus the exact Algorithm 2 step.

∇F_τ is computed from its own formula (derivative of −log Σ_k w_k N(x; m_k, Σ_k+τI)),
*not* as (x − E_q[X])/τ, so that eq. (3.5) can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from kltrain._logspace import logsumexp


def _as_covs(covs, dim: int) -> np.ndarray:
    covs = np.asarray(covs, dtype=np.float64)
    if covs.ndim == 1:  # isotropic variances
        covs = covs[:, None, None] * np.eye(dim)
    return covs


def _smoothed_covariances(obj, covs: np.ndarray, extra_var: float):
    """(precisions (K,d,d), log-determinants (K,)) of Σ_k + extra_var·I, cached on ``obj``.

    The same few τ are asked for thousands of times by the samplers; factorising
    once per τ keeps a gradient call at a few microseconds.
    """
    cache = obj.__dict__.setdefault("_cov_cache", {})
    key = float(extra_var)
    if key not in cache:
        shifted = covs + key * np.eye(covs.shape[1])
        cache[key] = (np.linalg.inv(shifted), np.linalg.slogdet(shifted)[1])
    return cache[key]


def _check_spd(covs: np.ndarray, name: str) -> None:
    for k, cov in enumerate(covs):
        if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
            raise ValueError(f"{name}[{k}] must be symmetric positive definite, got {cov!r}")


@dataclass(frozen=True, eq=False)
class GaussianMixtureLoss:
    """f(x) = offset − log Σ_k w_k N(x; m_k, Σ_k).

    ``offset`` shifts f by a constant (F_τ shifts by the same constant, E_q is
    unchanged), which is how the tests probe under/overflow with ±1000.
    """

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    offset: float = 0.0

    def __post_init__(self):
        means = np.atleast_2d(np.asarray(self.means, dtype=np.float64))
        weights = np.asarray(self.weights, dtype=np.float64)
        covs = _as_covs(self.covs, means.shape[1])
        if weights.shape != (means.shape[0],) or np.any(weights <= 0):
            raise ValueError(f"weights must be {means.shape[0]} positive numbers, got {weights!r}")
        _check_spd(covs, "covs")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "weights", weights / weights.sum())
        object.__setattr__(self, "covs", covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def length_scale(self) -> float:
        return float(np.sqrt(min(np.linalg.eigvalsh(c).min() for c in self.covs)))

    def _log_terms(self, X, extra_var: float = 0.0):
        """log w_k + log N(x; m_k, Σ_k + extra_var·I), shape (n, K), and the whitened (n, K, d)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        prec, logdet = _smoothed_covariances(self, self.covs, extra_var)
        diff = X[:, None, :] - self.means[None]                   # (n, K, d)
        white = np.einsum("kde,nke->nkd", prec, diff)             # (Σ_k + vI)^{-1}(x − m_k)
        maha = np.einsum("nkd,nkd->nk", diff, white)
        log_terms = np.log(self.weights) - 0.5 * (maha + logdet + self.dim * np.log(2 * np.pi))
        return log_terms, white

    def _responsibility_grads(self, X, extra_var: float) -> np.ndarray:
        """∇ of −log Σ_k w_k N(x; m_k, Σ_k + extra_var·I) at each row of X, shape (n, d)."""
        lt, white = self._log_terms(X, extra_var)
        r = np.exp(lt - logsumexp(lt, axis=1, keepdims=True))  # (n, K) responsibilities
        return np.einsum("nk,nkd->nd", r, white)

    def values(self, X):
        return self.offset - logsumexp(self._log_terms(X)[0], axis=1)

    def value(self, x):
        return float(self.values(np.asarray(x)[None])[0])

    def grad(self, x):
        return self._responsibility_grads(np.asarray(x)[None], 0.0)[0]

    def grads(self, X):
        return self._responsibility_grads(X, 0.0)

    # -- closed forms ---------------------------------------------------------
    def local_entropy(self, x, tau):
        """F_τ(x) = offset − log Σ_k w_k N(x; m_k, Σ_k + τI)  (eq. 2.2 with φ normalised)."""
        return float(self.local_entropy_values(np.asarray(x)[None], tau)[0])

    def local_entropy_values(self, X, tau):
        """F_τ at each row of X (vectorised, for contour plots)."""
        return self.offset - logsumexp(self._log_terms(X, tau)[0], axis=1)

    def local_entropy_grad(self, x, tau):
        """∇F_τ(x) = Σ_k π_k (Σ_k + τI)^{-1}(x − m_k), π_k ∝ w_k N(x; m_k, Σ_k + τI)."""
        return self._responsibility_grads(np.asarray(x)[None], tau)[0]

    def posterior_mean(self, x, tau):
        """E_{q_{x,τ}}[X] = Σ_k π_k (m_k + Σ_k(Σ_k + τI)^{-1}(x − m_k))  (Gaussian conditioning)."""
        lt, white = self._log_terms(x, tau)
        pi = np.exp(lt[0] - logsumexp(lt[0]))
        # m_k + Σ_k (Σ_k + τI)^{-1}(x − m_k): the mean of N(m_k, Σ_k) × N(x; ·, τI)
        return pi @ (self.means + np.einsum("kde,ke->kd", self.covs, white[0]))


@dataclass(frozen=True, eq=False)
class GaussianBumpsLoss:
    """f(x) = offset + ½(x − c)ᵀB(x − c) + Σ_k a_k exp(−½(x − m_k)ᵀS_k^{-1}(x − m_k)).

    a_k < 0 digs a well of width ~√S_k, a_k > 0 raises a hill; B ⪰ 0 is a bowl.
    """

    amplitudes: np.ndarray
    centers: np.ndarray
    covs: np.ndarray
    bowl: np.ndarray | float = 0.0
    bowl_center: np.ndarray | None = None
    offset: float = 0.0

    def __post_init__(self):
        centers = np.atleast_2d(np.asarray(self.centers, dtype=np.float64))
        d = centers.shape[1]
        amps = np.asarray(self.amplitudes, dtype=np.float64).reshape(centers.shape[0])
        covs = _as_covs(self.covs, d)
        _check_spd(covs, "covs")
        bowl = np.asarray(self.bowl, dtype=np.float64)
        bowl = bowl * np.eye(d) if bowl.ndim == 0 else bowl
        if bowl.shape != (d, d) or np.linalg.eigvalsh(bowl).min() < 0:
            raise ValueError(f"bowl must be a non-negative scalar or a PSD {d}x{d} matrix, got {bowl!r}")
        bc = np.zeros(d) if self.bowl_center is None else np.asarray(self.bowl_center, float)
        for name, val in (("centers", centers), ("amplitudes", amps), ("covs", covs),
                          ("bowl", bowl), ("bowl_center", bc)):
            object.__setattr__(self, name, val)

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    @property
    def length_scale(self) -> float:
        return float(np.sqrt(min(np.linalg.eigvalsh(c).min() for c in self.covs)))

    def _bumps(self, X, tau: float):
        """Each bump convolved with φ_{0,τ}: values (n, K) and precisions (K, d, d) of S_k + τI."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        prec, logdet = _smoothed_covariances(self, self.covs, tau)
        base_logdet = _smoothed_covariances(self, self.covs, 0.0)[1]
        diff = X[:, None, :] - self.centers[None]                  # (n, K, d)
        maha = np.einsum("nkd,kde,nke->nk", diff, prec, diff)
        scale = np.exp(0.5 * (base_logdet - logdet))                 # √(|S_k| / |S_k + τI|)
        return self.amplitudes * scale * np.exp(-0.5 * maha), prec

    def _bowl(self, X):
        diff = np.atleast_2d(X) - self.bowl_center
        return 0.5 * np.einsum("nd,de,ne->n", diff, self.bowl, diff)

    def _smoothed(self, X, tau):
        return self.offset + self._bowl(X) + 0.5 * tau * np.trace(self.bowl) + self._bumps(X, tau)[0].sum(1)

    def _smoothed_grads(self, X, tau):
        """∇F^H_τ at each row of X (τ = 0 gives ∇f), shape (n, d)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        vals, precs = self._bumps(X, tau)
        g = (X - self.bowl_center) @ self.bowl
        for k, m in enumerate(self.centers):
            g = g - vals[:, [k]] * ((X - m) @ precs[k])
        return g

    def values(self, X):
        return self._smoothed(X, 0.0)

    def value(self, x):
        return float(self.values(np.asarray(x)[None])[0])

    def grad(self, x):
        return self._smoothed_grads(np.asarray(x)[None], 0.0)[0]

    def grads(self, X):
        return self._smoothed_grads(X, 0.0)

    # -- closed forms ---------------------------------------------------------
    def heat_regularization(self, x, tau):
        """F^H_τ(x): each bump's covariance grows by τI (amplitude × √(|S|/|S+τI|)); bowl gains ½τ tr B."""
        return float(self._smoothed(np.asarray(x)[None], tau)[0])

    def heat_regularization_values(self, X, tau):
        """F^H_τ at each row of X (vectorised, for contour plots)."""
        return self._smoothed(X, tau)

    def heat_regularization_grad(self, x, tau):
        return self._smoothed_grads(np.asarray(x)[None], tau)[0]


@dataclass(frozen=True, eq=False)
class Quadratic:
    """f(x) = offset + ½(x − m)ᵀA(x − m), A symmetric positive definite.

    Everything is closed form; the exact steps of Algorithms 1 and 2 coincide:
    both equal (A + I/τ)^{-1}(A m + x/τ).
    """

    A: np.ndarray
    center: np.ndarray
    offset: float = 0.0

    def __post_init__(self):
        A = np.atleast_2d(np.asarray(self.A, dtype=np.float64))
        _check_spd(A[None], "A")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "center", np.asarray(self.center, dtype=np.float64).reshape(A.shape[0]))

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    @property
    def length_scale(self) -> float:
        return float(1 / np.sqrt(np.linalg.eigvalsh(self.A).max()))

    def values(self, X):
        diff = np.atleast_2d(X) - self.center
        return self.offset + 0.5 * np.einsum("nd,de,ne->n", diff, self.A, diff)

    def value(self, x):
        return float(self.values(np.asarray(x)[None])[0])

    def grad(self, x):
        return self.A @ (np.asarray(x, dtype=np.float64) - self.center)

    def grads(self, X):
        return (np.atleast_2d(X) - self.center) @ self.A

    def local_entropy(self, x, tau):
        """F_τ = offset + ½ log|I + τA| + ½(x − m)ᵀ A(I + τA)^{-1} (x − m)."""
        eye = np.eye(self.dim)
        diff = np.asarray(x, dtype=np.float64) - self.center
        M = np.linalg.solve(eye + tau * self.A, self.A)
        return float(self.offset + 0.5 * np.linalg.slogdet(eye + tau * self.A)[1] + 0.5 * diff @ M @ diff)

    def local_entropy_grad(self, x, tau):
        eye = np.eye(self.dim)
        return np.linalg.solve(eye + tau * self.A, self.A @ (np.asarray(x, float) - self.center))

    def posterior_mean(self, x, tau):
        eye = np.eye(self.dim)
        return np.linalg.solve(self.A + eye / tau, self.A @ self.center + np.asarray(x, float) / tau)

    def heat_regularization(self, x, tau):
        return float(self.value(x) + 0.5 * tau * np.trace(self.A))

    def heat_regularization_grad(self, x, tau):
        return self.grad(x)

    def heat_prox(self, x_k, tau):
        """argmin_x F^H_τ(x) + |x − x_k|²/(2τ) = (A + I/τ)^{-1}(A m + x_k/τ)."""
        return self.posterior_mean(x_k, tau)
