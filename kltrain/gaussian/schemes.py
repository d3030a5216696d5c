r"""Two-step schemes that update the mean *and* the covariance (the paper's future work, §1).

The paper's Algorithms 1 and 2 alternate between q_{x_k,τ} ∝ e^{−f} φ_{x_k,τ} (eq. 2.6) and a
Gaussian φ_{x,τ} = N(x, τI) fitted to it by a KL divergence, with the covariance frozen at τI.
Here the Gaussian is N(m, C) with C free (or restricted to a family), in the paper's notation.

Paper symbols → arguments:  x_k → ``mean`` (m_k),  τI → ``cov`` (C_k),  f → ``loss``,
q_{x_k,τ} → q_k ∝ e^{−f} N(m_k, C_k),  F_τ → F(m, C),  F^H_τ → H(m, C).

1. Local-entropy form (Algorithm 1 generalised)
-----------------------------------------------
    F(m, C) := −log ∫ e^{−f(x)} N(x; m, C) dx          (eq. 2.2 with φ_{x,τ} → N(m, C))
    q_k     := e^{−f} N(m_k, C_k) / Z_k,  Z_k = e^{−F(m_k, C_k)}
    (m_{k+1}, C_{k+1}) := argmin_{m,C} KL(q_k ‖ N(m, C)) = (E_{q_k}[X], Cov_{q_k}[X]).

*Majorize–minimize, as Theorem 3.2 is proved.* For any (m, C), write e^{−f} N(m,C) =
Z_k q_k N(m,C)/N(m_k,C_k) and apply Jensen's inequality under q_k:

    F(m, C) ≤ A_k(m, C) := F(m_k, C_k) − E_{q_k}[log N(X; m, C) − log N(X; m_k, C_k)],

with equality at (m_k, C_k); exactly, A_k − F = KL(q_k ‖ q_{m,C}) ≥ 0, q_{m,C} ∝ e^{−f} N(m, C)
(the analogue of the paper's majorizer A(x, x̃) of §3.2). Minimising A_k over (m, C) is
maximising E_{q_k} log N(m, C), i.e. min KL(q_k ‖ N(m, C)), i.e. moment matching. Hence

    F(m_{k+1}, C_{k+1}) ≤ A_k(m_{k+1}, C_{k+1}) ≤ A_k(m_k, C_k) = F(m_k, C_k)   (non-increasing).

This is EM for the "marginal likelihood" ∫ e^{−f} dN(m, C) with latent X and the Gaussian's
parameters as unknowns (type-II maximum likelihood with e^{−f} as the likelihood).
∇_m F = C⁻¹(m − E_q[X]) gives m_{k+1} = m_k − C_k ∇_m F(m_k, C_k): gradient descent
preconditioned by C_k, which for C_k = τI is eq. (3.5).

*What C does: automatic τ-annealing.* For f = ½(x − c)ᵀA(x − c) conjugacy gives
C_{k+1}⁻¹ = C_k⁻¹ + A, so C_k⁻¹ = C_0⁻¹ + kA: C_k ≈ (kA)⁻¹ shrinks like 1/k along curved
directions and not at all along flat ones (a per-direction harmonic schedule, against τ
scoping's geometric τ₀/(1+τ₁)^k of §6.5.1). For convex f, Brascamp–Lieb gives
Cov_q ⪯ E_q[(C⁻¹ + ∇²f)⁻¹] ⪯ C, so C_{k+1} ⪯ C_k at every step. Since −log E_N e^{−f} ≥ min f with
equality only as N collapses onto argmin f, inf F = min f is approached as C → 0: the
full-covariance scheme has no non-degenerate fixed points unless f is flat under N (a
constant f leaves every (m, C) fixed); wide C first smooths (large-τ local entropy, wide
basins, Fig 2.1), then sharpens. For non-convex f, C may also grow (q_k straddling two wells).
Measured on the wide-and-sharp mixture (tests): from (0.2, 0.3) with C_0 = 0.3I the full
family ends in the *sharp* well (C_k⁻¹ then grows by Σ⁻¹ = 400 per step), where Algorithm 1
with τ = 0.3 ends in the wide one: a learned C anneals by itself, but it also gives up local
entropy's wide-minimum preference — a floor on C (or τ scoping's schedule) is what keeps it.

*Constrained families.* The m-step is E_q[X] whatever C is; minimising A_k over a family:
    "full":  C_{k+1} = Cov_q;           "diag": C_{k+1} = diag(Cov_q);
    "iso":   C_{k+1} = σ²I, σ² = tr(Cov_q)/d (σ² learned);
    "fixed": C_{k+1} = C_k — with C_0 = τI this is Algorithm 1 exactly.
Each is still MM within its family, so F stays non-increasing.

2. Heat form (Algorithm 2 generalised)
--------------------------------------
    H(m, C) := E_{N(m,C)}[f]                             (F^H_τ of §2.2 with C for τI)
    (m_{k+1}, C_{k+1}) := argmin_{m,C} KL(N(m, C) ‖ q_k)
                        = argmin_{m,C} H(m, C) + KL(N(m, C) ‖ N(m_k, C_k))   (+ F(m_k, C_k)),

Gaussian variational inference of q_k, i.e. a KL-proximal step on H (for C = C_k = τI the KL
is |m − m_k|²/(2τ): Algorithm 2, the proximal-point step on F^H_τ). Evaluating the objective
at (m_k, C_k) gives H(m_{k+1}, C_{k+1}) ≤ H(m_k, C_k) − KL(N_{k+1} ‖ N_k): H is
non-increasing, as in Theorem 4.2. With Bonnet's and Price's theorems, ∇_m H = E_N[∇f] and
∇_C H = ½E_N[∇²f], the stationarity (Opper–Archambeau) conditions are

    m_{k+1} = m_k − C_k E_{N_{k+1}}[∇f],      C_{k+1}⁻¹ = C_k⁻¹ + E_{N_{k+1}}[∇²f],

an implicit Newton-like step whose precision accumulates expected Hessians. Stein's lemma
makes both Hessian-free: E_N[∇f] = C⁻¹E_N[(X − m) f(X)], E_N[∇²f] = C⁻¹E_N[(X − m)∇f(X)ᵀ]
(:func:`stein_moments`). For f quadratic both forms give C_{k+1}⁻¹ = C_k⁻¹ + A and the same
mean (q_k is Gaussian, so both KLs vanish at the same point). Families: "diag" minimises over
diagonal C (with C_k diagonal: 1/c_{k+1,i} = 1/c_{k,i} + E_N[∂²_i f]); "iso" over σ²I
(d/σ²_{k+1} = d/σ²_k + E_N[Δf]); "fixed" keeps C_k and is Algorithm 2 when C_k = τI.

3. Relatives
------------
- Cross-entropy method: sample N(m_k, C_k), refit a Gaussian to the elite samples by maximum
  likelihood = argmin KL(q ‖ N) with q ∝ 1{f ≤ γ_k} N_k. The local-entropy form is CEM with
  soft weights e^{−f} instead of the elite indicator; its sampled version (importance
  sampling, Algorithm 4 with a learned proposal) *is* a weighted CEM, and CEM's well-known
  covariance collapse is the annealing above — here with a monotone F(m, C).
- CMA-ES / NES: NES does natural-gradient descent on J(m, C) = E_{N(m,C)}[f] = H. The KL
  proximal step of the heat form is the implicit version of that step (KL ≈ Fisher quadratic
  form to second order). EMNA's refit m ← Σ w_i x_i, C ← Σ w_i (x_i − m)(x_i − m)ᵀ is the
  sampled local-entropy form with rank weights for e^{−f}; CMA-ES's rank-μ update differs
  in two ways: it measures the spread about the *old* mean (enlarging C along the direction
  of progress) and blends it in with a rate c_μ < 1 (cf. ``cov_rate`` in
  :mod:`kltrain.gaussian.sampling`). In IGO terms (Ollivier et al.) the local-entropy form
  is IGO-ML with δt = 1 and weights e^{−f}.
- Variational online Newton (Khan et al. 2018; the Bayesian learning rule): S ← (1−ρ)S +
  ρ(E_q[∇²f] + S_prior), m ← m − ρ S⁻¹E_q[∇f], expectations at the *current* q. The heat
  form is its implicit, ρ = 1 version with the prior replaced by the last iterate:
  S_{k+1} = S_k + E_{N_{k+1}}[∇²f] — online Newton whose step size decays like 1/k by itself.

All the claims above that can be checked numerically are checked in tests/test_gaussian.py
(majorizer, monotonicity of F and H, C_k⁻¹ = C_0⁻¹ + kA, the fixed-point equations via Stein,
frozen covariance = Algorithms 1 and 2, and moments against independent quadrature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from . import exact as gx
from .._checks import check_count, check_covariance, check_point
from ..losses import check_loss, loss_dim, loss_grads

FORMS = ("local_entropy", "heat")
FAMILIES = ("full", "diag", "iso", "fixed")


# -- validation -----------------------------------------------------------------------------
def _check_gaussian(loss, mean, cov):
    """(mean, C): C a variance τ (τI), d variances (diagonal) or a symmetric positive definite matrix."""
    check_loss(loss)
    mean = check_point(mean, loss_dim(loss), name="mean")
    return mean, check_covariance(cov, mean.size, "cov")


def _check_iterate(mean, cov, cov_k, what, estimator, step):
    """(m_{k+1}, C_{k+1}) checked: FloatingPointError naming the scheme, the estimator, the step and C_k
    (the τ of these schemes) if the step stopped being a Gaussian — not finite, or C not positive
    definite — rather than "mean must be finite" from the next step's input check."""
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    at = (f"at step {step}, estimator {'Exact' if estimator is None else type(estimator).__name__}, "
          f"from C_k of mean variance {float(np.trace(cov_k)) / cov_k.shape[0]:.3g}")
    for name, value in (("mean", mean), ("covariance", cov)):
        if not np.all(np.isfinite(value)):
            raise FloatingPointError(f"{what}: the {name} is not finite {at}")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise FloatingPointError(f"{what}: the covariance is no longer positive definite (smallest eigenvalue "
                                 f"{float(np.linalg.eigvalsh(gx.sym(cov)).min()):.3g}) {at}") from None
    return mean, cov


def _check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _route(loss, quantity, estimator, d):
    """("closed" | "grid", grid settings): the loss's closed form unless GridQuadrature is asked for.

    Exact estimators only (None, ``Exact``, ``ClosedForm``, ``GridQuadrature``); sampling ones
    go through the ``tilted_moments``/``heat_moments`` hooks before this is reached.
    """
    name = type(estimator).__name__
    if estimator is not None and name not in ("Exact", "ClosedForm", "GridQuadrature"):
        raise TypeError(f"{name} is not an exact estimator; the sampled Gaussian schemes take "
                        "GaussianIS, GaussianSGLD or GaussianRobbinsMonro (kltrain.gaussian.sampling)")
    quadrature = getattr(estimator, "quadrature", estimator)          # Exact carries its grid
    if name == "GridQuadrature":
        return "grid", quadrature
    if gx.has_closed_form(loss, quantity):
        return "closed", None
    if name == "ClosedForm":
        raise ValueError(f"{type(loss).__name__} offers no closed form for the Gaussian {quantity}")
    if d > 2:
        raise ValueError(f"no exact Gaussian {quantity} for d = {d} > 2 without a closed form; pass "
                         "estimator=GaussianIS(...) from kltrain.gaussian.sampling")
    return "grid", quadrature


# -- the two objectives ---------------------------------------------------------------------
def tilted_moments(loss, mean, cov, *, estimator=None):
    """(F(m, C), E_q[X], Cov_q[X]) for q ∝ e^{−f} N(m, C): exact (closed form or d ≤ 2 grid)."""
    mean, cov = _check_gaussian(loss, mean, cov)
    route, quadrature = _route(loss, "tilted", estimator, mean.size)
    if route == "closed":
        log_z, m, C = gx.tilted_closed(loss, mean, cov)
    else:
        log_z, m, C = gx.tilted_grid(loss, mean, cov, quadrature)
    if not np.isfinite(log_z):
        raise FloatingPointError(f"gaussian.tilted_moments: log Z = {float(log_z)!r} is not finite (e^(−f) "
                                 f"under- or overflows on N(m, C)), estimator {type(estimator).__name__}")
    m, C = _check_iterate(m, C, cov, "gaussian.tilted_moments", estimator, 1)
    return -float(log_z), m, C


def local_entropy(loss, mean, cov, *, estimator=None) -> float:
    """F(m, C) = −log ∫ e^{−f} dN(m, C): eq. (2.2) with φ_{x,τ} → N(m, C)."""
    return tilted_moments(loss, mean, cov, estimator=estimator)[0]


def heat_regularization(loss, mean, cov, *, estimator=None) -> float:
    """H(m, C) = E_{N(m,C)}[f]: F^H_τ of §2.2 with τI → C."""
    mean, cov = _check_gaussian(loss, mean, cov)
    route, quadrature = _route(loss, "expected_loss", estimator, mean.size)
    if route == "closed":
        value = gx.expected_loss_closed(loss, mean, cov)[0]
    else:
        value = gx.FrozenGrid(loss, mean, cov, quadrature)(mean, cov)[0]
    if not np.isfinite(value):
        raise FloatingPointError(f"gaussian.heat_regularization: E_N[f] = {value!r} is not finite, "
                                 f"estimator {type(estimator).__name__}")
    return value


def project(cov, family, cov_k):
    """The member of ``family`` that minimises the majorizer A_k given Cov_q = ``cov``."""
    if family == "full":
        return cov
    if family == "diag":
        return np.diag(np.diag(cov))
    if family == "iso":
        return np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return cov_k                                                      # "fixed": Algorithm 1


# -- local-entropy form ---------------------------------------------------------------------
def local_entropy_step(loss, mean, cov, *, family="full", estimator=None, rng=None):
    """(m_{k+1}, C_{k+1}) = moments of q_k ∝ e^{−f} N(m_k, C_k), projected onto ``family``.

    Algorithm 1 generalised (§1 above); ``family="fixed"`` with cov = τI is Algorithm 1,
    eq. (3.5). ``estimator=None`` is exact (closed form, or grid quadrature for d ≤ 2);
    a sampling estimator with a ``tilted_moments(rng, loss, mean, cov)`` method is used as is.
    """
    _check_choice(family, FAMILIES, "family")
    if callable(getattr(estimator, "heat_moments", None)):
        raise ValueError(f"{type(estimator).__name__} estimates the heat form's step")
    mean, cov = _check_gaussian(loss, mean, cov)
    if callable(getattr(estimator, "tilted_moments", None)):
        m_q, C_q = estimator.tilted_moments(rng, loss, mean, cov)
    else:
        _, m_q, C_q = tilted_moments(loss, mean, cov, estimator=estimator)
    return _check_iterate(m_q, project(np.asarray(C_q), family, cov), cov, "gaussian.local_entropy_step", estimator, 1)


# -- heat form ------------------------------------------------------------------------------
class _Chart:
    """θ ↔ (m, L), C = LLᵀ, for one family; log-parametrised diagonals keep C ≻ 0."""

    def __init__(self, family, mean_k, cov_k):
        self.family, self.d, self.L_k = family, mean_k.size, np.linalg.cholesky(cov_k)
        self.rows, self.cols = np.tril_indices(self.d)

    def theta0(self, mean_k):
        diag = np.log(np.diag(self.L_k))
        full = self.L_k[self.rows, self.cols].copy()
        full[self.rows == self.cols] = diag                           # rows/cols list the diagonal in order
        extra = {"full": full, "diag": diag, "iso": [diag.mean()], "fixed": []}[self.family]
        return np.concatenate([mean_k, np.asarray(extra, dtype=np.float64)])

    def unpack(self, theta):
        m, p = theta[:self.d], theta[self.d:]
        if self.family == "fixed":
            return m, self.L_k
        if self.family == "full":
            L = np.zeros((self.d, self.d))
            L[self.rows, self.cols] = p
            L[np.diag_indices(self.d)] = np.exp(np.diag(L))
            return m, L
        return m, np.diag(np.exp(p) * np.ones(self.d))                # "diag" or "iso"

    def pull_back(self, g_L, L):
        """∂J/∂θ for the covariance part, from the matrix gradient ∂J/∂L."""
        if self.family == "fixed":
            return np.empty(0)
        if self.family == "full":
            g = g_L[self.rows, self.cols].copy()
            on_diag = self.rows == self.cols
            g[on_diag] *= L[self.rows[on_diag], self.cols[on_diag]]   # d/dlog L_ii
            return g
        g = np.diag(g_L) * np.diag(L)
        return g if self.family == "diag" else np.array([g.sum()])


def heat_objective(expected, mean_k, cov_k, family):
    """θ-free form: (m, C) ↦ (J, ∇_m J, ∇_C J), J = H(m, C) + KL(N(m, C) ‖ N(m_k, C_k)).

    ``expected(m, C)`` returns (H, ∇_m H, ∇_C H). For ``family="fixed"`` the C-terms of the
    KL (zero at C = C_k) are dropped, leaving Algorithm 2's H + |m − m_k|²/(2τ) exactly.
    """
    P_k = np.linalg.inv(cov_k)
    logdet_k = np.linalg.slogdet(cov_k)[1]

    def fun(m, C):
        h, g_m, g_C = expected(m, C)
        dm = m - mean_k
        value = h + 0.5 * dm @ P_k @ dm
        if family != "fixed":
            value += 0.5 * (np.trace(P_k @ C) - m.size + logdet_k - np.linalg.slogdet(C)[1])
            g_C = g_C + 0.5 * (P_k - np.linalg.inv(C))
        return value, g_m + P_k @ dm, g_C
    return fun


class HeatInfo(NamedTuple):
    """Diagnostics of a heat step: objective J at the end, L-BFGS iterations, gradient norm."""

    objective: float
    n_iter: int
    grad_norm: float


def heat_step(loss, mean, cov, *, family="full", estimator=None, rng=None, return_info=False,
              gtol=1e-11, max_iter=1000):
    """(m_{k+1}, C_{k+1}) = argmin KL(N(m, C) ‖ q_k) over ``family``: Gaussian VI of q_k.

    Algorithm 2 generalised (§2 above); ``family="fixed"`` with cov = τI is Algorithm 2.
    H(m, C) is closed form for quadratic and Gaussian-bump losses, else tabulated on one grid
    per step (d ≤ 2). L-BFGS runs over (m, Cholesky factor of C) from (m_k, C_k), so J never
    exceeds its value there — all that the monotonicity of H needs.
    """
    _check_choice(family, FAMILIES, "family")
    mean_k, cov_k = _check_gaussian(loss, mean, cov)
    if callable(getattr(estimator, "tilted_moments", None)):
        raise ValueError(f"{type(estimator).__name__} estimates the local-entropy form's moments")
    if callable(getattr(estimator, "heat_moments", None)):            # e.g. GaussianRobbinsMonro
        m, C = _check_iterate(*estimator.heat_moments(rng, loss, mean_k, cov_k), cov_k, "gaussian.heat_step", estimator, 1)
        return (m, project(C, family, cov_k)) + ((None,) if return_info else ())
    route, quadrature = _route(loss, "expected_loss", estimator, mean_k.size)
    if route == "closed":
        expected = lambda m, C: gx.expected_loss_closed(loss, m, C)  # noqa: E731
    else:
        expected = gx.FrozenGrid(loss, mean_k, cov_k, quadrature)
    chart = _Chart(family, mean_k, cov_k)
    fun = heat_objective(expected, mean_k, cov_k, family)
    d = mean_k.size

    def theta_fun(theta):
        m, L = chart.unpack(theta)
        value, g_m, g_C = fun(m, cov_k if family == "fixed" else L @ L.T)
        g_L = np.tril(2 * g_C @ L)                                    # ∂J/∂L for C = LLᵀ
        return value, np.concatenate([g_m, chart.pull_back(g_L, L)])

    # BFGS, not L-BFGS-B: a handful of parameters, and L-BFGS-B's compiled core costs
    # milliseconds per call on a loaded machine
    res = _scipy_minimize(theta_fun, chart.theta0(mean_k), jac=True, method="BFGS",
                          options={"gtol": gtol, "maxiter": max_iter})
    m, L = chart.unpack(res.x)
    if family == "fixed":
        m = _newton_polish(fun, m, cov_k)
        out = (m, cov_k)
    else:
        out = (m, gx.sym(L @ L.T))
    out = _check_iterate(*out, cov_k, "gaussian.heat_step", estimator, 1)
    if return_info:
        value, g_m, _ = fun(*out)
        return out + (HeatInfo(float(value), int(res.nit), float(np.linalg.norm(g_m))),)
    return out


def _newton_polish(fun, m, cov_k, n_steps=3):
    """Newton steps on m ↦ J(m, C_k), kept only while |∇J| falls: residuals to rounding.

    ∇²_m J = C_k⁻¹ + E_N[∇²f] = C_k⁻¹ + 2∇_C H (Price's theorem), so no new derivative is needed.
    """
    P_k = np.linalg.inv(cov_k)
    _, g, g_C = fun(m, cov_k)
    for _ in range(n_steps):
        trial = m - np.linalg.solve(P_k + 2 * g_C, g)
        _, g_t, g_C_t = fun(trial, cov_k)
        if not np.linalg.norm(g_t) < np.linalg.norm(g):
            break
        m, g, g_C = trial, g_t, g_C_t
    return m


# -- diagnostics: the fixed-point equations, Hessian-free -----------------------------------
def stein_moments(loss, mean, cov, *, quadrature=None):
    """(E_N[∇f], E_N[∇²f]) under N(m, C) by grid quadrature (d ≤ 2), Hessian-free (Stein):

        E_N[∇²f] = sym(C⁻¹ E_N[(X − m) ∇f(X)ᵀ]).

    Independent of :func:`heat_step`'s closed forms; used to check the Opper–Archambeau
    conditions m_{k+1} = m_k − C_k E[∇f], C_{k+1}⁻¹ = C_k⁻¹ + E[∇²f].
    """
    mean, cov = _check_gaussian(loss, mean, cov)
    half, pps, max_nodes, _, _ = gx._grid_settings(quadrature)
    X, _, _ = gx.uniform_grid(mean, half * np.sqrt(np.linalg.eigvalsh(cov).max()),
                              gx.grid_spacing(loss, cov, pps), max_nodes)
    log_w = gx.gaussian_logpdf(X, mean, cov)
    w = np.exp(log_w - gx.logsumexp(log_w))
    G = loss_grads(loss, X)                                           # (n, d)
    return w @ G, gx.sym(np.linalg.solve(cov, ((w[:, None] * (X - mean)).T @ G)))


# -- the driver -----------------------------------------------------------------------------
class GaussianPath(NamedTuple):
    """Iterates of a Gaussian scheme: means (K+1, d) and covariances (K+1, d, d)."""

    means: np.ndarray
    covs: np.ndarray


@dataclass(frozen=True)
class GaussianScheme:
    """One two-step scheme: ``form`` ∈ {"local_entropy", "heat"}, ``family`` of covariances.

    ``estimator``: None (exact), ``GridQuadrature``/``ClosedForm`` (forced), or a sampling
    estimator of :mod:`kltrain.gaussian.sampling` (``GaussianIS``/``GaussianSGLD`` for the
    local-entropy form, ``GaussianRobbinsMonro`` for the heat form; diagonal covariances).
    """

    form: str = "local_entropy"   # Algorithm 1 generalised; "heat" for Algorithm 2's
    family: str = "full"          # "full" | "diag" | "iso" | "fixed" (= the paper's τI)
    estimator: Any = None         # None: closed form, or grid quadrature for d <= 2

    def __post_init__(self):
        _check_choice(self.form, FORMS, "form")
        _check_choice(self.family, FAMILIES, "family")
        wrong = "tilted_moments" if self.form == "heat" else "heat_moments"
        if callable(getattr(self.estimator, wrong, None)):
            raise ValueError(f"{type(self.estimator).__name__} does not serve the {self.form} form")

    def step(self, rng, loss, mean, cov):
        step = local_entropy_step if self.form == "local_entropy" else heat_step
        return step(loss, mean, cov, family=self.family, estimator=self.estimator, rng=rng)


def minimize(loss, mean0, cov0, n_steps, *, form="local_entropy", family="full", estimator=None,
             rng=None) -> GaussianPath:
    """Run a Gaussian two-step scheme for ``n_steps`` updates from N(mean0, cov0)."""
    from .._checks import as_generator

    scheme = GaussianScheme(form, family, estimator)
    mean, cov = _check_gaussian(loss, mean0, cov0)
    rng = as_generator(rng) if rng is not None or estimator is not None else None
    means, covs = [mean], [cov]
    what = f"gaussian.minimize ({form}, {family})"
    for k in range(check_count(n_steps, "n_steps")):
        try:
            mean, cov = scheme.step(rng, loss, mean, cov)
        except FloatingPointError as err:             # an estimator that diverged: say which update
            raise type(err)(f"{err} ({what}, step {k + 1})") from err
        mean, cov = _check_iterate(mean, cov, covs[-1], what, estimator, k + 1)
        means.append(mean)
        covs.append(cov)
    return GaussianPath(np.stack(means), np.stack(covs))
