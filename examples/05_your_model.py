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
# # 5. Your own model: local entropy on a small CNN, beside SGD and SAM
#
# `kltrain.torch` turns Algorithm 1 (local entropy, with importance sampling or SGLD inside) and
# Algorithm 2 (heat regularization) into `torch.optim.Optimizer`s, so they train any PyTorch model.
# Here a small CNN with a BatchNorm layer (6,010 parameters) learns the 5,000 embedded MNIST digits
# (4,000 train / 1,000 test) with SGD, SAM (Foret et al. 2021) and local entropy, every method
# given **the same number of minibatch evaluations**:
#
# | method | one step costs | what is counted |
# |---|---|---|
# | SGD | 1 | one gradient |
# | SAM | 2 | two gradients (at x and at x + ε̂) |
# | local entropy, IS with J samples | J + 1 | J perturbed losses, one vmapped call per chunk, + the loss at x |
# | local entropy, SGLD with J steps | J | J − 1 gradients along the chain + the loss at x |
#
# Each evaluation is one minibatch of 32 images through the network; a gradient counts the same as a
# loss (the first cell measures what it costs more), so the table below also reports wall time. A run
# stops at the last whole step within the budget (IS: 987 of 1,000). Two more rows follow the paper's
# §6.3: SGD for half the budget, then local entropy from there.
#
# Set `KLTRAIN_EXAMPLES_QUICK=1` for a run of seconds (the tests do); the full run (5 seeds, 1,000
# evaluations each) takes about 5.5 minutes of one core.

# %%
# %matplotlib inline
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

import kltrain.torch as kt
from kltrain.estimators import SGLD
from kltrain.nets.data import load_mnist
from kltrain.studies import flatness

QUICK = os.environ.get("KLTRAIN_EXAMPLES_QUICK") == "1"
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
BUDGET = 40 if QUICK else 1000          # minibatch evaluations per run
BATCH = 32
torch.set_num_threads(1)                # small tensors: one thread is fastest and reproducible

X_train, y_train, X_test, y_test = (torch.as_tensor(a) for a in load_mnist(quiet=True))
X_train, X_test = X_train.reshape(-1, 1, 28, 28), X_test.reshape(-1, 1, 28, 28)


def cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),      # 8×12×12
                         nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),           # 16×4×4
                         nn.Linear(256, 10))


def seconds_per_call(fn, n=20):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


probe = cnn(0)
xb, yb = X_train[:BATCH], y_train[:BATCH]
forward = seconds_per_call(lambda: F.cross_entropy(probe(xb), yb))
gradient = seconds_per_call(lambda: F.cross_entropy(probe(xb), yb).backward())
print(f"{sum(p.numel() for p in probe.parameters()):,} parameters; {len(SEEDS)} seeds × {BUDGET} evaluations; "
      f"a loss takes {1e3 * forward:.1f} ms, a gradient {gradient / forward:.1f}× that")

# %% [markdown]
# ## The methods
#
# SGD and SAM are written out with `torch.optim.SGD` (learning rate 0.1, SAM's ρ = 0.05). Local
# entropy takes a closure that *returns* the minibatch loss (no `backward()`: the optimizer
# evaluates it batched under `torch.func.vmap`, or differentiates it itself). What it perturbs:
# every parameter handed to it, BatchNorm's weight and bias included; the running statistics are
# frozen during the perturbed evaluations and updated once per step, at x, as under SGD.
#
# τ: the paper's τ = 0.01 from scratch. After SGD, τ = 10⁻⁴ for IS and 10⁻³ for SGLD (the
# paper's ε_j ≈ 10⁻³ needs τ > ε_j/4 for the Langevin step to contract). These were picked from a
# handful of one-seed runs on seed 100, not on the seeds reported below.

# %%
def sgd_step(model, opt, closure):
    opt.zero_grad()
    closure().backward()
    opt.step()


def sam_step(model, opt, closure, rho=0.05):
    opt.zero_grad()
    closure().backward()
    params = [p for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
        ascent = [rho * p.grad / norm for p in params]            # ε̂ = ρ ∇f / ‖∇f‖
        for p, e in zip(params, ascent):
            p.add_(e)
    opt.zero_grad()
    closure().backward()                                          # ∇f(x + ε̂)
    with torch.no_grad():
        for p, e in zip(params, ascent):
            p.sub_(e)
    opt.step()


J_IS, J_SGLD = (5, 4) if QUICK else (20, 10)
METHODS = {  # name: (evaluations per step, optimizer factory or None for SGD/SAM, SGD warm-up fraction)
    "SGD": (1, None, 0.0),
    "SAM": (2, None, 0.0),
    f"LE-IS, J = {J_IS}": (J_IS + 1, lambda m, s: kt.LocalEntropy(m.parameters(), 0.01, "is", J_IS, model=m, seed=s,
                                                                  chunk_size=J_IS), 0.0),
    f"LE-SGLD, J = {J_SGLD}": (J_SGLD, lambda m, s: kt.LocalEntropy(m.parameters(), 0.01, "sgld", J_SGLD, model=m,
                                                                     seed=s), 0.0),
    "SGD, then LE-IS": (J_IS + 1, lambda m, s: kt.LocalEntropy(m.parameters(), 1e-4, "is", J_IS, model=m, seed=s,
                                                               chunk_size=J_IS), 0.5),
    "SGD, then LE-SGLD": (J_SGLD, lambda m, s: kt.LocalEntropy(m.parameters(), 1e-3, SGLD(J_SGLD), model=m, seed=s),
                          0.5),
}


def train(name, seed):
    """One run: (model, evaluations used, seconds); minibatches drawn from the seed, the same for every method."""
    per_step, make, warm_up = METHODS[name]
    model, batches = cnn(seed), torch.Generator().manual_seed(seed)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    regularized = make(model, seed) if make is not None else None
    used, start = 0, time.perf_counter()
    while True:
        plain_sgd = regularized is None and name != "SAM" or used < warm_up * BUDGET
        cost = 1 if plain_sgd else per_step
        if used + cost > BUDGET:
            break
        idx = torch.randint(0, len(X_train), (BATCH,), generator=batches)
        xb, yb = X_train[idx], y_train[idx]
        closure = lambda: F.cross_entropy(model(xb), yb)                       # noqa: E731
        if plain_sgd:
            sgd_step(model, sgd, closure)
        elif name == "SAM":
            sam_step(model, sgd, closure)
        else:
            regularized.step(closure)                                          # Algorithm 1 through the adapter
        used += cost
    return model, used, time.perf_counter() - start


def accuracy(model, X, y):
    model.eval()
    with torch.no_grad():
        acc = (model(X).argmax(dim=1) == y).float().mean().item()
    model.train()
    return acc


runs = {name: [train(name, seed) for seed in SEEDS] for name in METHODS}
for name, rs in runs.items():
    accs = [accuracy(m, X_test, y_test) for m, _, _ in rs]
    print(f"{name:20} held-out accuracy {np.mean(accs):.3f}  (evaluations {rs[0][1]}, {np.mean([r[2] for r in rs]):.1f} s)")

# %% [markdown]
# ## How flat is where each method ended?
#
# `kltrain.studies.flatness` measures any loss with `value`/`grad` (and `values`) on a flat
# parameter vector; `kt.FlatLoss` gives the CNN's training loss that form (here on 1,000 training
# images, the network in eval mode so that f is a fixed function of the weights):
# SAM's ρ-sharpness max_{‖δ‖≤0.05} f(x + δ) − f(x), Hutchinson's estimate of the Hessian's trace,
# and F_τ(x) − f(x) at τ = 10⁻³ (local entropy minus the loss: how much the loss rises, on the
# log-mean-exp scale, under Gaussian weight noise of variance τ).

# %%
N_FLAT = 200 if QUICK else 1000
X_flat, y_flat = X_train[:N_FLAT], y_train[:N_FLAT]
FLAT = dict(rho=0.05, n_steps=2 if QUICK else 5, probes=2 if QUICK else 10, le_samples=4 if QUICK else 32)


def flatness_of(model, seed):
    model.eval()
    loss = kt.FlatLoss(model, lambda: F.cross_entropy(model(X_flat), y_flat))
    x = loss.x0()
    f = loss.value(x)
    out = {"train loss": f,
           "sharpness": flatness.sharpness(loss, x, rho=FLAT["rho"], n_steps=FLAT["n_steps"], rng=seed).value,
           "Hessian trace": flatness.hessian_trace(loss, x, n_probes=FLAT["probes"], rng=seed).value,
           "F_τ − f": flatness.local_entropy_is(loss, x, 1e-3, n_samples=FLAT["le_samples"], rng=seed).value - f}
    model.train()
    return out


rows = []
for name, rs in runs.items():
    accs = np.array([accuracy(m, X_test, y_test) for m, _, _ in rs])
    flat = [flatness_of(m, seed) for (m, _, _), seed in zip(rs, SEEDS)]
    row = {"method": name, "accuracy": accs.mean(), "± SE": accs.std(ddof=1) / np.sqrt(len(accs)),
           "evaluations": rs[0][1], "seconds": np.mean([r[2] for r in rs])}
    row.update({k: np.mean([d[k] for d in flat]) for k in flat[0]})
    rows.append(row)

header = list(rows[0])
lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
for row in rows:
    lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
print("\n".join(lines))

# %% [markdown]
# Means over the seeds (accuracy ± its standard error); "train loss" and the flatness columns are on the
# 1,000 training images above. Our full run (5 seeds, 2-core CPU) gave:
#
# | method | accuracy | train loss | sharpness | Hessian trace | F_τ − f |
# |---|---|---|---|---|---|
# | SGD | 0.973 ± 0.005 | 0.011 | 0.024 | 32 | 0.023 |
# | SAM | 0.967 ± 0.002 | 0.049 | 0.026 | 46 | 0.023 |
# | LE-IS, J = 20 | 0.222 ± 0.019 | 1.84 | 0.30 | 136 | 0.10 |
# | LE-SGLD, J = 10 | 0.139 ± 0.021 | 15.7 | 2.65 | 799 | −0.39 |
# | SGD, then LE-IS | 0.965 ± 0.002 | 0.061 | 0.057 | 69 | 0.045 |
# | SGD, then LE-SGLD | 0.646 ± 0.012 | 0.88 | 0.66 | 670 | 0.23 |
#
# At equal numbers of evaluations, local entropy from scratch trains far more slowly than SGD and
# SAM: Algorithm 1 is gradient descent on F_τ with step τ (eq. 3.5), and each of its steps spends J
# evaluations. Started from SGD's point, IS with τ = 10⁻⁴ keeps most of SGD's accuracy but ends at a
# higher training loss and *sharper* by both sharpness and Hessian trace; SGLD as printed (T = 1)
# loses a third of the accuracy. On this problem, at these settings, neither local-entropy scheme
# found flatter weights than SGD by sharpness or Hessian trace (F_τ − f is lower for LE-SGLD from
# scratch, at a training loss of 15.7: far from a minimum, where F_τ − f says little about width);
# SAM was not flatter either (its loss is higher, its trace larger).
# The flatness columns are one measurement per seed, not tested for significance here.

# %%
fig = Figure(figsize=(6, 3.2), layout="constrained")
ax = fig.subplots()
names = [r["method"] for r in rows]
ax.barh(names, [r["accuracy"] for r in rows], xerr=[r["± SE"] for r in rows], color="tab:blue")
ax.invert_yaxis()
ax.set_xlabel(f"held-out accuracy after {BUDGET} minibatch evaluations")
fig
