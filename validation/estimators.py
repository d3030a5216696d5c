"""Convergence of the sampling estimators (Algs 3–5) to the exact answers on the toys.

Each check measures the empirical rate (log-log slope of the RMSE over fixed
seeds) and compares it with theory: importance sampling and the SGLD time
average converge like J^{−1/2}; Robbins–Monro with a_j = c·j^{−α} like
J^{−α/2}. Negative controls: the same RMSE against a wrong target (which
plateaus at the bias), and the paper's misprinted schedule c·j^{+α}.

``sgld_mixing`` measures the *bias* of Algorithm 3 with the paper's ε_j = 1/(1000 + j),
J = 10³ (total time Σε_j ≈ 0.69) on the wide-and-sharp toy as a function of Σε_j/τ.
"""

from __future__ import annotations

from matplotlib.figure import Figure
import numpy as np  # noqa: E402

import kltrain  # noqa: E402
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro  # noqa: E402
from toyproblems import Quadratic, random_bumps, random_mixture, wide_and_sharp_mixture  # noqa: E402
from toyproblems.plots import write_trajectories  # noqa: E402

from .report import CheckResult  # noqa: E402
from .statistics import loglog_slope, rmse  # noqa: E402

MIX, X, TAU = random_mixture(np.random.default_rng(0), n_components=2), np.array([0.3, 0.2]), 0.3
QUAD, QX, QTAU = Quadratic(A=np.diag([1.0, 3.0]), center=[0.0, 0.0]), np.array([2.0, -2.0]), 0.5
BUMPS, BX, BTAU = random_bumps(np.random.default_rng(2)), np.array([0.3, 0.2]), 0.1
SGLD_TEMPERATURE = 0.02  # constant ε: the chain mixes in ≈ 1/(ε λ) ≈ 17 steps on QUAD
RM_C, RM_ALPHA = 0.5, 0.7


def _means(loss, x, tau, estimator, n_rep):
    return np.array([kltrain.posterior_mean(loss, x, tau, estimator=estimator, rng=r) for r in range(n_rep)])


def _proxes(estimator, n_rep):
    return np.array([kltrain.minimize_heat(BUMPS, BX, BTAU, 1, estimator=estimator, rng=r)[1]
                     for r in range(n_rep)])


def _plot(path, ns, curves, xlabel, title):
    fig = Figure(figsize=(4.5, 3.4))
    ax = fig.subplots()
    for label, errs in curves.items():
        ax.loglog(ns, errs, "o-", label=label)
    ref = curves[next(iter(curves))]
    ax.loglog(ns, ref[0] * (np.asarray(ns) / ns[0]) ** -0.5, "k:", label="∝ J^{-1/2}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("RMSE")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def importance_sampling_rate(report, n_rep=40, Js=(100, 400, 1600, 6400, 25600)) -> CheckResult:
    """Algorithm 4's error against the exact E_q[X] falls like J^(−1/2) on the mixture toy."""
    runs = [_means(MIX, X, TAU, ImportanceSampling(J), n_rep) for J in Js]
    errs = [rmse(r, MIX.posterior_mean(X, TAU)) for r in runs]
    wrong = [rmse(r, MIX.posterior_mean(X, 1.2 * TAU)) for r in runs]
    _plot(report.figure("is_error_vs_J.png"), Js, {"IS vs exact E_q": errs, "vs E_q at 1.2τ (control)": wrong},
          "J (samples)", "Algorithm 4: importance sampling, mixture toy")
    slope = loglog_slope(Js, errs)
    return CheckResult("importance sampling error rate", "Alg. 4, eq. 5.2",
                       "RMSE of E_q[X] ∝ J^{-1/2} (|slope + 1/2|)", abs(slope + 0.5), 0.1,
                       abs(loglog_slope(Js, wrong) + 0.5), "slope against a wrong target",
                       f"measured slope {slope:.3f}; RMSE {errs[0]:.2e} (J={Js[0]}) → {errs[-1]:.2e} "
                       f"(J={Js[-1]}); {n_rep} seeds each")


def sgld_rate(report, n_rep=20, Js=(250, 1000, 4000, 16000)) -> CheckResult:
    """The SGLD time average's error falls like J^(−1/2) on a Gaussian q (constant step)."""
    runs = [_means(QUAD, QX, QTAU, SGLD(J, temperatures=np.full(J, SGLD_TEMPERATURE), warm_start=False), n_rep)
            for J in Js]
    errs = [rmse(r, QUAD.posterior_mean(QX, QTAU)) for r in runs]
    wrong = [rmse(r, QUAD.posterior_mean(QX, 2 * QTAU)) for r in runs]
    _plot(report.figure("sgld_error_vs_J.png"), Js, {"SGLD vs exact E_q": errs, "vs E_q at 2τ (control)": wrong},
          "J (chain length)", f"Algorithm 3: SGLD, ε = {SGLD_TEMPERATURE}, Gaussian q")
    slope = loglog_slope(Js, errs)
    return CheckResult("SGLD error rate", "Alg. 3",
                       "RMSE of the time average ∝ J^{-1/2} on a Gaussian q (|slope + 1/2|)", abs(slope + 0.5),
                       0.15, abs(loglog_slope(Js, wrong) + 0.5), "slope against a wrong target",
                       f"measured slope {slope:.3f}; constant temperature {SGLD_TEMPERATURE}; "
                       f"{n_rep} chains each, cold start at x")


class _MisprintedRM(RobbinsMonro):
    """The paper's printed schedule a_j = c·j^{+α} (negative control)."""

    def steps(self):
        return self.c * np.arange(1, self.n_iter + 1, dtype=float) ** self.alpha


def robbins_monro_rate(report, n_rep=12, Ns=(10, 100, 1000, 10000), n_samples=10) -> CheckResult:
    """Robbins–Monro reaches the exact Algorithm 2 step with error ∝ J^(−α/2); the printed c·j^(+α) does not."""
    exact = kltrain.minimize_heat(BUMPS, BX, BTAU, 1)[1]
    errs = [rmse(_proxes(RobbinsMonro(n, n_samples, c=RM_C, alpha=RM_ALPHA), n_rep), exact) for n in Ns]
    try:  # the printed a_j = c·j^{+α} grows: Robbins–Monro now stops it with FloatingPointError
        with np.errstate(all="ignore"):
            bad = _proxes(_MisprintedRM(50, n_samples, c=RM_C, alpha=RM_ALPHA), 3)
        control = rmse(bad, exact) if np.all(np.isfinite(bad)) else np.inf
    except FloatingPointError:
        control = np.inf
    _plot(report.figure("robbins_monro_error_vs_iterations.png"), Ns, {"Robbins–Monro vs exact prox": errs},
          "J (iterations)", f"Algorithm 5: a_j = {RM_C}·j^-{RM_ALPHA}, M = {n_samples}, bumps toy")
    slope, expected = loglog_slope(Ns, errs), -RM_ALPHA / 2
    return CheckResult("Robbins–Monro error rate", "Alg. 5, eq. 5.3",
                       f"x^J → exact Alg. 2 step with RMSE ∝ J^(-α/2) = J^({expected:.2f})",
                       abs(slope - expected), 0.1, control, "RMSE after 50 steps of c·j^{+α} (as printed)",
                       f"measured slope {slope:.3f} (theory {expected:.2f}); RMSE {errs[-1]:.1e} at J = {Ns[-1]}")


def trajectories_figure(report):
    """Algorithm 1 with IS and SGLD, Algorithm 2 with Robbins–Monro, beside the exact runs."""
    extra = {"IS, J = 1000": (1, ImportanceSampling(1000)),
             "SGLD, J = 1000, ε = 0.01": (1, SGLD(1000, temperatures=np.full(1000, 0.01))),
             "Robbins–Monro, J = 30, M = 30": (2, RobbinsMonro(30, 30, c=RM_C, alpha=RM_ALPHA))}
    path = write_trajectories(report.out / "figures", extra=extra)
    report.add_section("Toy trajectories with sampled estimators",
                       f"Exact runs (red) beside Algorithm 1 with importance sampling and SGLD and "
                       f"Algorithm 2 with Robbins–Monro.\n\n![trajectories](figures/{path.name})")


class _Stacked:
    """n independent copies of a 2-D loss as one loss on R^{2n}: SGLD on it runs n independent chains."""

    def __init__(self, loss, n):
        self.loss, self.n, self.dim = loss, n, 2 * n

    def value(self, z):
        return float(np.sum(self.loss.values(np.reshape(z, (self.n, 2)))))

    def grad(self, z):
        return np.asarray(self.loss.grads(np.reshape(z, (self.n, 2)))).ravel()


MIX_X = np.array([0.5, 0.5])                       # the tour's point (docs/tour.md)
MIX_TAUS = (0.002, 0.005, 0.01, 0.03, 0.1, 0.2, 0.5)
TOUR_TAU, MNIST_TAU = 0.2, 0.01


def _sgld_bias(loss, tau, estimator, n_chains):
    """|mean of n_chains SGLD estimates − exact E_q[X]| / |E_q[X] − x| (relative bias of the step)."""
    exact = kltrain.posterior_mean(loss, MIX_X, tau)
    runs = kltrain.posterior_mean(_Stacked(loss, n_chains), np.tile(MIX_X, n_chains), tau, estimator=estimator,
                                  rng=0).reshape(n_chains, 2)
    return float(np.linalg.norm(runs.mean(0) - exact) / np.linalg.norm(exact - MIX_X)), runs.mean(0), exact


def sgld_mixing(report, n_chains=32, long_eps=0.002, long_times=(0.7, 2.0, 7.0, 20.0)) -> CheckResult:
    """Algorithm 3 with the paper's ε_j: relative bias against Σε_j/τ (τ varied), wide-and-sharp toy."""
    loss, paper = wide_and_sharp_mixture(), SGLD(1000)          # ε_j = 1/(1000 + j), J = 10³
    total = float(paper.eps().sum())
    rel = {tau: _sgld_bias(loss, tau, paper, n_chains) for tau in MIX_TAUS}
    longer = [_sgld_bias(loss, TOUR_TAU, SGLD(int(t / long_eps), temperatures=np.full(int(t / long_eps), long_eps)),
                         n_chains)[0] for t in long_times]
    fig = Figure(figsize=(4.8, 3.4))
    ax = fig.subplots()
    ax.loglog([total / t for t in MIX_TAUS], [rel[t][0] for t in MIX_TAUS], "o-",
              label=f"paper's ε_j, J = 10³ (Σε_j = {total:.2f}), τ varied")
    ax.loglog([t / TOUR_TAU for t in long_times], longer, "s--", label=f"τ = {TOUR_TAU}, ε = {long_eps}, longer J")
    for tau, what in ((TOUR_TAU, "tour τ = 0.2"), (MNIST_TAU, "MNIST τ = 0.01")):
        ax.axvline(total / tau, color="grey", ls=":")
        ax.annotate(what, (total / tau, rel[tau][0]), fontsize=7, rotation=90, va="bottom")
    ax.set_xlabel("Σ ε_j / τ")
    ax.set_ylabel("|bias| / |E_q[X] − x|")
    ax.set_title(f"SGLD bias, wide-and-sharp toy, x = (0.5, 0.5), {n_chains} chains", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(report.figure("sgld_bias_vs_total_time.png"), dpi=110)
    tour = rel[TOUR_TAU]
    return CheckResult(
        "SGLD mixing with the paper's ε_j", "Alg. 3, §6.2 (ε_j = 1/(1000+j))",
        "relative bias of E_q[X] small when Σε_j/τ ≫ 1 and q has no barrier (τ = 0.01, Σε_j/τ ≈ 69)",
        rel[MNIST_TAU][0], 0.25, tour[0],
        f"relative bias at the tour's τ = 0.2 (Σε_j/τ ≈ {total / TOUR_TAU:.1f})",
        f"Σε_j = {total:.3f}; at τ = 0.2 the mean of {n_chains} chains is ({tour[1][0]:.2f}, {tour[1][1]:.2f}) "
        f"against the exact ({tour[2][0]:.2f}, {tour[2][1]:.2f}); longer chains at τ = 0.2 (Σε/τ up to "
        f"{long_times[-1] / TOUR_TAU:.0f}) still give relative bias {min(longer):.2f}–{max(longer):.2f}: "
        "the barrier between the modes, not Σε_j/τ alone, sets the time needed")


ALL = [importance_sampling_rate, sgld_rate, robbins_monro_rate, sgld_mixing]
