"""Sampled versions of the Gaussian schemes of :mod:`kltrain.gaussian.schemes`, for any dimension.

Covariances here are *diagonal* (a variance vector c ∈ R^d, C = diag(c)), the only form that
scales to networks. Noise ε[j, i] is regenerated from (seed, j, i) by :mod:`kltrain.noise`, one
fresh seed per parameter update drawn from the caller's Generator.

- :class:`GaussianIS` — Algorithm 4 (eq. 5.2) with proposal N(m, C): self-normalised weights
  w_j ∝ e^{−f(x_j)} in log space; q_k's mean Σ w_j x_j and variances Σ w_j (x_j − mean)².
- :class:`GaussianSGLD` — Algorithm 3 on q_k ∝ e^{−f} N(m, C), preconditioned by C
  (x ← x − ε(C∇f + x − m) + √(2ε) C^{½} ξ), started at m with a constant ε (so the paper's
  ε_j-weighted averages are plain averages); its chain moments estimate q_k's, with an
  O(ε) discretisation bias in the variances.
- :class:`GaussianRobbinsMonro` — Algorithm 5 for the heat form: stochastic gradients of
  J(m, s) = E_{N(m, diag e^s)}[f] + KL(N(m, diag e^s) ‖ N(m_k, C_k)) by reparameterisation
  x = m + e^{s/2}∘ε, so ∂_m E f = E[∇f(x)], ∂_s E f = ½ E[e^{s/2}∘ε∘∇f(x)]; steps a_j = c·j^{−α}
  (the convergent form of the paper's a^l = c·l^α).

:class:`DiagonalGaussianRule` plugs either form into the training loop's rule interface
(``init(loss, x) -> state``, ``step(rng, state, loss, x, k) -> (x, state, info)``), with the
variance vector as the state that the paper's schemes do not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._checks import (as_generator, check_chain, check_count, check_covariance, check_finite_result, check_point,
                       check_positive)
from .._logspace import logsumexp
from ..estimators.importance import COLLAPSE_ACTIONS, check_collapse
from ..fastpath import fast_path
from ..losses import check_loss, loss_dim, loss_grads, loss_values
from ..noise import counter_normals, draw_seed


class MomentsInfo(NamedTuple):
    """ess: effective sample size exp(2 lse(lw) − lse(2 lw)) (1 for the chain); seed: noise key."""

    ess: float
    seed: int


def _checked(loss, mean, cov, name="cov", allow_zero=False):
    """(mean, variances) checked up front: the mean finite and of the loss's dimension; the covariance
    a variance, d variances or a *diagonal* matrix, all > 0 and finite (a full matrix is refused, not
    reduced to its diagonal)."""
    check_loss(loss)
    mean = check_point(mean, loss_dim(loss), name="mean")
    return mean, check_covariance(cov, mean.size, name, diagonal=True, allow_zero=allow_zero)


def _checked_moments(estimator, mean, var, tau_like):
    """FloatingPointError naming the estimator if its moments are not finite (or the variances < 0)."""
    check_finite_result(mean, f"{type(estimator).__name__}: the mean", tau=tau_like, estimator=estimator)
    check_finite_result(var, f"{type(estimator).__name__}: the variances", tau=tau_like, estimator=estimator)
    return mean, var


def _scale(var) -> str:
    """The covariance's size for messages, in the place of τ: its mean variance (its isotropic τ)."""
    return f"{float(np.mean(var)):.3g} (mean variance)"


def _as_output(mean, var, like):
    """Return a covariance of the caller's form: a matrix if a matrix came in."""
    return mean, (np.diag(var) if np.ndim(like) == 2 else var)


class _TiltedMoments:
    """``tilted_moments`` from an ``estimate(seed, loss, mean, var) -> (mean, var, info)``."""

    def tilted_moments(self, rng, loss, mean, cov):
        """Estimate (E_q X, diag Cov_q) — the hook :func:`kltrain.gaussian.schemes.local_entropy_step` uses."""
        mean, var = _checked(loss, mean, cov)
        m, v, _ = self.estimate(draw_seed(as_generator(rng)), loss, mean, var)
        return _as_output(m, v, cov)


@dataclass(frozen=True)
class GaussianIS(_TiltedMoments):
    """Importance sampling of q ∝ e^{−f} N(m, diag c) with N(m, diag c) as the proposal.

    The variances are the self-normalised weighted variance, biased low: on a flat loss
    E[ĉ] = (1 − Σ_j w̄_j²)·c = (1 − 1/ESS)·c, so repeated MM steps shrink C by that factor per
    update even where q_k = N(m_k, C_k) (× 0.61 over 500 updates at J = 10³, and fast when
    ESS ≈ 1). The issue-16 study (validation/gaussian_covariance.py) reports this null beside it.
    """

    n_samples: int = 1000          # J (paper: 10³)
    chunk: int = 128               # samples per pass: memory chunk·d, never J·d
    on_collapse: str = "warn"      # ESS ≈ 1 at J ≥ 100: "warn" | "raise" | "ignore" (as ImportanceSampling)

    def __post_init__(self):
        check_count(self.n_samples, "n_samples", 2)
        check_count(self.chunk, "chunk", 1)
        if self.on_collapse not in COLLAPSE_ACTIONS:
            raise ValueError(f"on_collapse must be one of {COLLAPSE_ACTIONS}, got {self.on_collapse!r}")

    def _chunks(self, seed, mean, var):
        """(x_j for j in a chunk) for consecutive chunks, regenerated from (seed, j)."""
        for start in range(0, self.n_samples, self.chunk):
            js = np.arange(start, min(start + self.chunk, self.n_samples))
            yield js, mean + counter_normals(seed, js, mean.size) * np.sqrt(var)   # (n, d)

    def estimate(self, seed, loss, mean, var):
        """(mean, variances, MomentsInfo) of q; by the loss's fast path if it has one (same noise)."""
        mean, var = _checked(loss, mean, var, "var", allow_zero=True)   # 0: a collapsed direction (the rule's state)
        fast = fast_path(loss, "diagonal_importance_moments")
        if fast is None:
            m, v, info = self.reference_estimate(seed, loss, mean, var)
        else:
            m, v, ess = fast(mean, var, seed, self.n_samples)
            m, v, info = np.asarray(m, np.float64), np.asarray(v, np.float64), MomentsInfo(float(ess), seed)
        check_collapse(info.ess, self.n_samples, _scale(var), self, self.on_collapse)
        return _checked_moments(self, m, v, _scale(var)) + (info,)

    def reference_estimate(self, seed, loss, mean, var):
        """Two passes: log-weights first, then the weighted moments with the noise regenerated."""
        log_w = np.concatenate([-loss_values(loss, self._finite(X, var)) for _, X in self._chunks(seed, mean, var)])
        lse = logsumexp(log_w)                                                  # eq. (5.2)
        w = np.exp(log_w - lse)
        s1, s2 = np.zeros_like(mean), np.zeros_like(mean)
        for js, X in self._chunks(seed, mean, var):
            D = X - mean                       # moments about m: no cancellation when q ≈ N(m, C)
            s1 += w[js] @ D
            s2 += w[js] @ (D * D)
        ess = float(np.exp(2 * lse - logsumexp(2 * log_w)))
        return mean + s1, np.maximum(s2 - s1 * s1, 0.0), MomentsInfo(ess, seed)

    def _finite(self, X, var):
        """The proposal samples, refused if they overflowed (variances near 1e308): the estimator's
        overflow, not the loss's."""
        if not np.all(np.isfinite(X)):
            raise FloatingPointError(f"GaussianIS: a proposal sample m + √c∘ε is not finite at C = {_scale(var)}; "
                                     "the variances are too large to sample")
        return X



@dataclass(frozen=True)
class GaussianSGLD(_TiltedMoments):
    """C-preconditioned Langevin chain on q ∝ e^{−f} N(m, diag c), started at m; chain moments.

    Started cold at m with no burn-in, the chain's variance underestimates q's (its states are
    autocorrelated over ~1/ε steps): on a flat loss, learning C from it shrinks C by orders of
    magnitude over 500 updates although q_k = N(m_k, C_k) (measured in the issue-16 study's null).
    """

    n_steps: int = 1000            # chain length J
    step: float = 0.05             # ε (relative: the drift is preconditioned by C)

    def __post_init__(self):
        check_count(self.n_steps, "n_steps", 1)
        check_positive(self.step, "step")

    def estimate(self, seed, loss, mean, var):
        """(mean, variances, MomentsInfo) of the chain; by the loss's fast path if it has one (same noise)."""
        mean, var = _checked(loss, mean, var, "var", allow_zero=True)
        fast = fast_path(loss, "diagonal_sgld_moments")
        if fast is None:
            m, v, info = self.reference_estimate(seed, loss, mean, var)
        else:
            m, v = fast(mean, var, seed, self.n_steps, self.step)
            m, v, info = np.asarray(m, np.float64), np.asarray(v, np.float64), MomentsInfo(1.0, seed)
        return _checked_moments(self, m, v, _scale(var)) + (info,)

    def reference_estimate(self, seed, loss, mean, var):
        x, eps = mean.copy(), self.step
        s1, s2 = np.zeros_like(mean), np.zeros_like(mean)
        scale = max(1.0, float(np.sqrt(var.sum())))
        what = f"GaussianSGLD (C = {_scale(var)}, step ε = {eps!r})"
        for j in range(self.n_steps):
            xi = counter_normals(seed, [j], mean.size)[0]
            g = loss_grads(loss, x[None])[0]
            # ∇U = ∇f + C⁻¹(x − m); preconditioned step x − ε C∇U + √(2ε) C^{½} ξ
            x = x - eps * (var * g + (x - mean)) + np.sqrt(2 * eps * var) * xi
            check_chain(x, mean, scale, what, j + 1, "ε·(c·f'' + 1) must stay below 2: reduce the step ε")
            s1 += x
            s2 += x * x
        m = s1 / self.n_steps
        return m, np.maximum(s2 / self.n_steps - m * m, 0.0), MomentsInfo(1.0, seed)



@dataclass(frozen=True)
class GaussianRobbinsMonro:
    """Reparameterised Robbins–Monro for the heat form over (m, s = log diag C)."""

    n_iterations: int = 200        # J
    n_samples: int = 10            # M draws per iteration
    c: float = 0.5                 # a_j = c·j^{−α}
    alpha: float = 0.7             # α ∈ (½, 1]

    def __post_init__(self):
        check_count(self.n_iterations, "n_iterations", 1)
        check_count(self.n_samples, "n_samples", 1)
        check_positive(self.c, "c")
        if not 0.5 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (1/2, 1], got {self.alpha!r}")

    def estimate(self, seed, loss, mean_k, var_k):
        mean_k, var_k = _checked(loss, mean_k, var_k, "var", allow_zero=True)
        if np.any(var_k == 0):       # log c: a collapsed learned covariance cannot go on in this chart
            raise FloatingPointError("GaussianRobbinsMonro works on log-variances, and a variance has collapsed "
                                     "to 0; floor the learned covariance (DiagonalGaussianRule(min_var > 0))")
        m, s = mean_k.copy(), np.log(var_k)
        scale = max(1.0, float(np.sqrt(var_k.sum())))
        what = f"GaussianRobbinsMonro (C = {_scale(var_k)}, c = {self.c!r})"
        for j in range(1, self.n_iterations + 1):
            eps = counter_normals(seed, np.arange((j - 1) * self.n_samples, j * self.n_samples), m.size)
            sd = np.exp(0.5 * s)
            G = loss_grads(loss, m + eps * sd)                                # (M, d)
            g_m = G.mean(0) + (m - mean_k) / var_k
            g_s = 0.5 * (eps * sd * G).mean(0) + 0.5 * (np.exp(s) / var_k - 1)
            a = self.c * j ** -self.alpha
            # preconditioned: C_k for m (as Algorithm 5 scales by τ), 2 (inverse Fisher) for s
            m, s = m - a * var_k * g_m, s - 2 * a * g_s
            check_chain(m, mean_k, scale, what, j, "reduce the step constant c")
            if not np.all(np.abs(s - np.log(var_k)) < LOG_VAR_DIVERGED):       # e^s about to over/underflow
                raise FloatingPointError(f"{what} diverged at inner step {j}: the log-variances moved by "
                                         f"{float(np.max(np.abs(s - np.log(var_k)))):.3g}; reduce the step constant c")
        return _checked_moments(self, m, np.exp(s), _scale(var_k)) + (MomentsInfo(1.0, seed),)

    def heat_moments(self, rng, loss, mean, cov):
        mean, var = _checked(loss, mean, cov)
        m, v, _ = self.estimate(draw_seed(as_generator(rng)), loss, mean, var)
        return _as_output(m, v, cov)


LOG_VAR_DIVERGED = 300.0   # a variance changed by e^300 in one heat step: the iteration has left its range


@dataclass(frozen=True)
class DiagonalGaussianRule:
    """Training-loop rule: the parameters are m_k, the state is the variance vector c_k.

    ``estimator`` is :class:`GaussianIS` or :class:`GaussianSGLD` (local-entropy form) or
    :class:`GaussianRobbinsMonro` (heat form); ``family`` "diag" learns c, "iso" learns one σ²,
    "fixed" keeps c = τ (the paper's Algorithms 1/2 with that estimator). ``min_var`` floors c.
    """

    tau: float                     # c_0 = τ·1 (paper: τ = 0.01)
    estimator: object
    family: str = "diag"           # "diag" | "iso" | "fixed"
    min_var: float = 0.0           # floor on the learned variances (0: none)
    cov_rate: float = 1.0          # β of c ← (1−β)c + βĉ (1: the MM step; CMA-ES's c_μ < 1 damps
                                   # the χ²_ESS/ESS noise of ĉ, a random walk in log c otherwise)

    def __post_init__(self):
        check_positive(self.tau, "tau")
        if self.family not in ("diag", "iso", "fixed"):
            raise ValueError(f"family must be 'diag', 'iso' or 'fixed', got {self.family!r}")
        if not self.min_var >= 0:
            raise ValueError(f"min_var must be >= 0, got {self.min_var!r}")
        if not 0 < self.cov_rate <= 1:
            raise ValueError(f"cov_rate must be in (0, 1], got {self.cov_rate!r}")

    def init(self, loss, x):
        return np.full(np.asarray(x).size, self.tau, dtype=np.float64)

    @staticmethod
    def mean_variance(state) -> float:
        """The mean of the variances c_k: the τ of the isotropic Gaussian of the same total variance."""
        return float(np.mean(state))

    def step(self, rng, state, loss, x, k):
        seed = draw_seed(as_generator(rng))
        m, v, info = self.estimator.estimate(seed, loss, np.asarray(x, dtype=np.float64), state)
        if self.family == "fixed":
            v = state
        elif self.family == "iso":
            v = np.full_like(v, v.mean())
        v = (1 - self.cov_rate) * state + self.cov_rate * v
        return m, np.maximum(v, self.min_var), info
