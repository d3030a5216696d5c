# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. The estimators against the exact answers
#
# Algorithms 1 and 2 need an expectation or a minimiser that has no closed form for a neural
# network. The paper estimates them by sampling:
#
# | estimator | paper | estimates | error |
# |---|---|---|---|
# | `ImportanceSampling(J)` | Alg. 4, eq. (5.2) | $E_{q_{x,\tau}}[X]$ | ∝ J^{−1/2}, while the effective sample size holds |
# | `SGLD(J)` | Alg. 3 | $E_{q_{x,\tau}}[X]$ | ∝ J^{−1/2} *once the chain has mixed* |
# | `RobbinsMonro(J, M)` | Alg. 5, eq. (5.3) | Algorithm 2's step | ∝ J^{−α/2} with $a_j = c\,j^{-\alpha}$ |
#
# On the toys the exact answers are closed form, so we can measure the errors, and see where each
# estimator fails.

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure

import kltrain
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.schedules import HarmonicTemperatures
from toyproblems import wide_and_sharp_bumps, wide_and_sharp_mixture

f, x, tau = wide_and_sharp_mixture(), np.array([0.5, 0.5]), 0.2
exact = kltrain.posterior_mean(f, x, tau)
print("exact E_q[X] =", exact.round(4))


def rmse(estimates, target):
    return float(np.sqrt(np.mean(np.sum((np.asarray(estimates) - target) ** 2, axis=1))))


def slope(ns, errs):
    return np.polyfit(np.log(ns), np.log(errs), 1)[0]

# %% [markdown]
# ## Importance sampling: error ∝ J^{−1/2}
# 20 seeds per J; the log-log slope of the RMSE should be about −1/2.

# %%
Js = [100, 400, 1600, 6400]
is_err = [rmse([kltrain.posterior_mean(f, x, tau, estimator=ImportanceSampling(J), rng=s) for s in range(20)], exact)
          for J in Js]
print("IS RMSE:", np.round(is_err, 4), f" slope {slope(Js, is_err):.2f} (theory −0.5)")

# %% [markdown]
# ## Where importance sampling fails: the effective sample size
# The weights are $w_j = e^{-f(x_j)}$ with $x_j \sim N(x, \tau I)$. When f varies by much more than 1
# across the proposal, a few samples carry all the weight and the effective sample size
# ESS = (Σw)²/Σw² collapses. The spread of log weights is about $\sqrt{\tau}\,|\nabla f|$ (plus τ times
# the curvature), so what matters is τ *relative to the loss's scale*: here we keep τ = 0.2 and make f
# steeper by a factor β (as summing instead of averaging over N data points would, eq. 2.1).

# %%
from kltrain.losses import FunctionLoss

for beta in [1, 10, 100, 1000]:
    fb = FunctionLoss(lambda z, b=beta: b * f.value(z), values_fn=lambda Z, b=beta: b * f.values(Z), dim=2)
    _, _, info = ImportanceSampling(1000).step(np.random.default_rng(0), None, fb, x, tau)
    print(f"β = {beta:5}: ESS = {info.ess:7.1f} of 1000   largest weight = {info.max_weight:.3f}")

# %% [markdown]
# With the loss fixed, shrinking τ shrinks the spread √τ|∇f|, so ESS rises towards J as τ → 0; the
# price is that the update (the step $E_q[X] - x ≈ -\tau\nabla F_\tau$) shrinks with it.

# %%
for t in [1.0, 0.2, 0.05, 0.01, 0.001]:
    _, _, info = ImportanceSampling(1000).step(np.random.default_rng(0), None, f, x, t)
    print(f"τ = {t:<6}: ESS = {info.ess:7.1f} of 1000")

# %% [markdown]
# ## SGLD: unbiased only once the chain has mixed
# Algorithm 3 averages a Langevin chain with steps ε_j. With the paper's ε_j = 1/(1000 + j) and
# J = 1000 the chain runs for a total time Σε_j ≈ 0.69. Here most of q's mass sits in the narrow
# (std 0.05) sharp well, and a chain started at x = (0.5, 0.5) slides into the wide well instead and
# stays there: the estimate is biased, averaging seeds does not remove the bias, and neither does a
# chain 10× longer with a 14× longer total time. That is a *mixing-time* failure, not a variance one.

# %%
configs = {"paper ε_j = 1/(1000+j), J = 1000": SGLD(1000, temperatures=HarmonicTemperatures(1000)),
           "constant ε = 0.001, J = 10000": SGLD(10000, temperatures=np.full(10000, 0.001))}
for label, est in configs.items():
    runs = np.array([kltrain.posterior_mean(f, x, tau, estimator=est, rng=s) for s in range(3)])
    print(f"{label:34}: mean over seeds {runs.mean(0).round(3)}  (exact {exact.round(3)}),  "
          f"RMSE {rmse(runs, exact):.3f}")

# %% [markdown]
# Without a barrier, on a quadratic (q is Gaussian), the same chain with a constant ε mixes in about
# 1/(ελ) steps and the error falls like J^{−1/2} down to the discretisation bias of order ε.

# %%
from toyproblems import Quadratic

quad, xq, tq, eps = Quadratic(A=np.diag([1.0, 3.0]), center=[0.0, 0.0]), np.array([2.0, -2.0]), 0.5, 0.02
exact_q = kltrain.posterior_mean(quad, xq, tq)
Ks = [250, 1000, 4000]
sgld_err = [rmse([kltrain.posterior_mean(quad, xq, tq, estimator=SGLD(K, temperatures=np.full(K, eps)), rng=s)
                  for s in range(8)], exact_q) for K in Ks]
print("SGLD RMSE on the quadratic:", np.round(sgld_err, 4), f" slope {slope(Ks, sgld_err):.2f} (theory −0.5)")

# %% [markdown]
# ## Robbins–Monro for Algorithm 2: error ∝ J^{−α/2}
# With $a_j = c\,j^{-\alpha}$ (the paper prints $c\,l^{\alpha}$, which diverges; see
# `kltrain.schedules.RobbinsMonroSteps`).

# %%
g, c, alpha = wide_and_sharp_bumps(), 0.5, 0.7
prox = kltrain.minimize_heat(g, x, tau, 1)[1]
Ns = [10, 40, 160, 640]
rm_err = [rmse([kltrain.minimize_heat(g, x, tau, 1, estimator=RobbinsMonro(n, 10, c=c, alpha=alpha), rng=s)[1]
                for s in range(10)], prox) for n in Ns]
print("Robbins–Monro RMSE:", np.round(rm_err, 4), f" slope {slope(Ns, rm_err):.2f} (theory {-alpha / 2:.2f})")

# %%
fig = Figure(figsize=(5, 3.5), layout="constrained")
ax = fig.subplots()
ax.loglog(Js, is_err, "o-", label="IS, E_q[X] (J samples)")
ax.loglog(Ks, sgld_err, "^-", label="SGLD on the quadratic, ε = 0.02")
ax.loglog(Ns, rm_err, "s-", label="Robbins–Monro, Alg. 2 step (J iterations)")
ax.loglog(Js, is_err[0] * (np.array(Js) / Js[0]) ** -0.5, "k:", label="∝ J^(-1/2)")
ax.set_xlabel("J")
ax.set_ylabel("RMSE")
ax.legend(fontsize=7)
fig
