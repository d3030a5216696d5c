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
# # 1. Local entropy and Algorithm 1
#
# The paper's local entropy (eq. 2.2) of a loss f is
#
# $$F_\tau(x) = -\log \int e^{-f(x')}\,\varphi_{x,\tau}(x')\,dx', \qquad \varphi_{x,\tau} = N(x, \tau I).$$
#
# It replaces f by a smoothed version in which a *wide* minimum counts more than a *sharp* one.
# Algorithm 1 minimises it by the two-step scheme $x_{k+1} = E_{q_{x_k,\tau}}[X]$ with
# $q_{x,\tau}(x') \propto \exp(-f(x') - |x-x'|^2/2\tau)$ (eq. 2.6), and eq. (3.5) says that this is
# gradient descent on $F_\tau$ with learning rate $\eta = \tau$. This notebook shows both on a 2D toy.

# %%
# %matplotlib inline
import numpy as np

import kltrain
from kltrain.losses import FunctionLoss, central_difference
from toyproblems import plot_landscape, plot_trajectories, regularized_grid, wide_and_sharp_mixture
from toyproblems.landscapes import SHARP_CENTER, WIDE_CENTER

# %% [markdown]
# ## A wide and a sharp minimum
# `wide_and_sharp_mixture()` has $e^{-f}$ = 0.7·N(wide, 0.5²I) + 0.3·N(sharp, 0.05²I): the sharp well
# is deeper in f, but as τ grows F_τ prefers the wide one (Fig 2.1 of the paper).

# %%
f = wide_and_sharp_mixture()
marks = {"wide": WIDE_CENTER, "sharp": SHARP_CENTER}
plot_landscape(f, [0.01, 0.1, 0.5], marks=marks)

# %%
for tau in [0.001, 0.01, 0.1, 0.5]:
    wide, sharp = kltrain.local_entropy(f, WIDE_CENTER, tau), kltrain.local_entropy(f, SHARP_CENTER, tau)
    print(f"τ = {tau:<5}  F_τ(wide) = {wide:6.3f}   F_τ(sharp) = {sharp:6.3f}   deeper: {'wide' if wide < sharp else 'sharp'}")

# %% [markdown]
# ## Algorithm 1 is gradient descent on F_τ with η = τ (eq. 3.5)
# We compute one step of Algorithm 1, $E_{q_{x,\tau}}[X]$, and compare it with a gradient step
# $x - \tau\nabla F_\tau(x)$, where $\nabla F_\tau$ comes from *central differences of F_τ itself*, an
# oracle independent of the mean's formula.

# %%
x = np.array([0.5, 0.5])
for tau in [0.05, 0.2, 0.5]:
    step = kltrain.posterior_mean(f, x, tau)                                 # Algorithm 1, one step
    gd = x - tau * central_difference(lambda z: kltrain.local_entropy(f, z, tau), x)   # GD, η = τ
    print(f"τ = {tau}: Algorithm 1 → {step.round(6)},  x − τ∇F_τ → {gd.round(6)},  |diff| = {np.abs(step - gd).max():.1e}")

# %% [markdown]
# And F_τ decreases along the iterates (Theorem 3.2):

# %%
tau = 0.2
path = kltrain.minimize_local_entropy(f, [2.0, 1.5], tau, n_steps=15)
values = [kltrain.local_entropy(f, p, tau) for p in path]
print("F_τ along the path:", np.round(values, 4))
assert np.all(np.diff(values) <= 1e-12)
plot_trajectories(f, [[2.2, 1.6], [2.0, -1.5], [-2.2, 1.6], [0.3, 1.8]], tau, marks=marks)

# %% [markdown]
# ## Any 2D loss
# Nothing above needs a closed form: `regularized_grid` convolves $e^{-f}$ with φ on a grid, in log
# space, and `kltrain.posterior_mean` falls back on grid quadrature for d ≤ 2. Here is a loss written
# on the spot: a tilted double well with a ripple.

# %%
def ripple(X):
    X = np.atleast_2d(X)
    return (X[:, 0] ** 2 - 1) ** 2 + 0.5 * X[:, 1] ** 2 + 0.3 * X[:, 0] + 0.4 * np.sin(6 * X[:, 0]) ** 2

g = FunctionLoss(lambda x: float(ripple(x)[0]), values_fn=ripple, dim=2, length_scale=0.2)
xs, ys, Z = regularized_grid(g, 0.1, n=128)
i, j = np.unravel_index(Z.argmin(), Z.shape)
print(f"argmin of F_τ on the grid (τ = 0.1): ({xs[j]:.2f}, {ys[i]:.2f})")
plot_landscape(g, [0.02, 0.1, 0.3], box=(-2, 2, -1.5, 1.5), n=128)

# %% [markdown]
# ## τ scoping (§6.5.1)
# The paper's experiments start with a large τ and shrink it, τ(k) = τ₀/(1 + τ₁)^k: first the smooth
# landscape pulls the iterates towards the wide basin, then the detail returns. `animate_tau` writes
# that as a GIF (Algorithm 1, exact steps; `explore(f)` gives a τ slider in a desktop window or with
# ipympl).

# %%
import tempfile
from pathlib import Path

from IPython.display import Image

from toyproblems import animate_tau

gif = animate_tau(f, Path(tempfile.mkdtemp()) / "tau_scoping.gif", n_steps=15, n=96)
Image(filename=str(gif))
