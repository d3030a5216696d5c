"""Figures of the paper's toy sections, drawn from closed forms.

- ``plot_local_entropy``  Fig 2.1: f beside F_τ for several τ (wide minimum deepens).
- ``plot_heat``           Fig 2.2: f beside F^H_τ (a blur; sharp wells fade).
- ``plot_mode_vs_mean``   Fig 5.1: best fixed-variance Gaussian fits to a bimodal q,
                          argmin KL(φ‖q) (mode-seeking, Alg. 2) vs argmin KL(q‖φ) (mean, Alg. 1).
- ``plot_trajectories``   Algorithms 1 and 2 over contour plots.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kltrain  # noqa: E402
from kltrain import variational as V  # noqa: E402

from .landscapes import SHARP_CENTER, WIDE_CENTER, wide_and_sharp_bumps, wide_and_sharp_mixture  # noqa: E402
from .losses import GaussianMixtureLoss  # noqa: E402

BOX = (-2.5, 2.5, -2.0, 2.0)
OVERLAY_COLORS = ["C1", "C2", "C0", "C4", "C6"]  # red (C3) is the exact run
STARTS = np.array([[2.2, 1.6], [2.0, -1.5], [-2.2, 1.6], [0.3, 1.8]])


def _mesh(n=240):
    xs, ys = np.linspace(BOX[0], BOX[1], n), np.linspace(BOX[2], BOX[3], n)
    X, Y = np.meshgrid(xs, ys)
    return X, Y, np.column_stack([X.ravel(), Y.ravel()])


def _panel(ax, X, Y, Z, title):
    # clip the colour range at the 75% quantile: the far-away walls would wash out the minima
    levels = np.linspace(Z.min(), np.quantile(Z, 0.75), 30)
    cs = ax.contourf(X, Y, Z.reshape(X.shape), levels=levels, cmap="viridis", extend="max")
    # labels beside (not on) the minima: a marker would hide the sharp well
    ax.annotate("wide", WIDE_CENTER + [0, 0.7], color="w", ha="center", fontsize=8)
    ax.annotate("sharp", SHARP_CENTER + [0, 0.35], color="w", ha="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    return cs


def _row(path, first, rest, titles):
    X, Y, P = _mesh()
    fig, axes = plt.subplots(1, 1 + len(rest), figsize=(3.2 * (1 + len(rest)), 3))
    for ax, fn, title in zip(axes, [first] + rest, titles):
        fig.colorbar(_panel(ax, X, Y, fn(P), title), ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_local_entropy(out: Path, taus=(0.05, 0.2, 0.5)) -> Path:
    """Fig 2.1: local entropy flattens the sharp minimum (x) and deepens the wide one (+)."""
    loss = wide_and_sharp_mixture()
    rest = [lambda P, t=t: loss.local_entropy_values(P, t) for t in taus]
    return _row(Path(out) / "fig2_1_local_entropy.png", loss.values, rest,
                ["f"] + [f"F_τ, τ = {t}" for t in taus])


def plot_heat(out: Path, taus=(0.05, 0.2, 0.5)) -> Path:
    """Fig 2.2: heat regularization blurs f; the sharp well (x) fades fastest."""
    loss = wide_and_sharp_bumps()
    rest = [lambda P, t=t: loss.heat_regularization_values(P, t) for t in taus]
    return _row(Path(out) / "fig2_2_heat.png", loss.values, rest,
                ["f"] + [f"F^H_τ, τ = {t}" for t in taus])


def mode_and_mean_fits(q: GaussianMixtureLoss, var: float, grid=np.linspace(-3, 3, 241)):
    """Means m of φ = N(m, var): E_q[X] (minimises KL(q‖φ)) and the local minima of KL(φ‖q).

    ``q`` is given as a mixture *loss*, i.e. q = e^{−f} (its offset must be 0).
    """
    qd = V.GridDensity(*_density_nodes(q), log_pdf=lambda X: -q.values(X))
    kl_mode = np.array([V.kl_divergence(V.gaussian_density([m], var), qd) for m in grid])
    mean = float(q.weights @ q.means[:, 0])
    is_min = (kl_mode[1:-1] < kl_mode[:-2]) & (kl_mode[1:-1] < kl_mode[2:])
    return mean, grid[1:-1][is_min], grid, kl_mode


def _density_nodes(q: GaussianMixtureLoss):
    xs = np.linspace(-8, 8, 4001)[:, None]
    log_w = -q.values(xs) + np.log(xs[1, 0] - xs[0, 0])
    return xs, log_w - np.logaddexp.reduce(log_w)


def plot_mode_vs_mean(out: Path, var: float = 0.5) -> Path:
    """Fig 5.1: mode-seeking (left, KL(φ‖q)) vs mean-seeking (right, KL(q‖φ)) fits."""
    q = GaussianMixtureLoss(weights=[0.5, 0.5], means=[[-1.5], [1.5]], covs=[0.4 ** 2, 0.4 ** 2])
    mean, modes, grid, kl_mode = mode_and_mean_fits(q, var)
    xs = np.linspace(-4, 4, 400)[:, None]
    qx = np.exp(-q.values(xs))
    gauss = lambda m: np.exp(-0.5 * (xs[:, 0] - m) ** 2 / var) / np.sqrt(2 * np.pi * var)  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    axes[0].plot(xs, qx, "k", label="q")
    for m in modes:
        axes[0].plot(xs, gauss(m), "--", label=f"argmin KL(φ‖q): m = {m:+.2f}")
    axes[0].set_title("mode-seeking (Algorithm 2)", fontsize=9)
    axes[1].plot(xs, qx, "k", label="q")
    axes[1].plot(xs, gauss(mean), "--", label=f"argmin KL(q‖φ) = E_q[X] = {mean:+.2f}")
    axes[1].set_title("mean-seeking (Algorithm 1)", fontsize=9)
    axes[2].plot(grid, kl_mode)
    axes[2].set_title("m ↦ KL(N(m, τ) ‖ q): two minimisers", fontsize=9)
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out) / "fig5_1_mode_vs_mean.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_trajectories(out: Path, tau: float = 0.2, n_steps: int = 25, extra=None) -> Path:
    """Algorithm 1 on the mixture toy over F_τ, Algorithm 2 on the bumps toy over F^H_τ.

    ``extra`` maps a label to ``(algorithm, estimator)`` to overlay sampled runs
    (e.g. ``{"IS": (1, ImportanceSampling(100))}``), seeded per start.
    """
    mixture, bumps = wide_and_sharp_mixture(), wide_and_sharp_bumps()
    X, Y, P = _mesh()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    runs = {1: (mixture, kltrain.minimize_local_entropy, mixture.local_entropy_values(P, tau), "Algorithm 1, F_τ"),
            2: (bumps, kltrain.minimize_heat, bumps.heat_regularization_values(P, tau), "Algorithm 2, F^H_τ")}
    for ax, (alg, (loss, scheme, Z, title)) in zip(axes, runs.items()):
        _panel(ax, X, Y, Z, f"{title} (τ = {tau})")
        for i, x0 in enumerate(STARTS):
            traj = scheme(loss, x0, tau, n_steps)
            ax.plot(traj[:, 0], traj[:, 1], "r.-", lw=1, ms=3, label="exact" if i == 0 else None)
            for j, (label, (which, est)) in enumerate((extra or {}).items()):
                if which == alg:
                    t = scheme(loss, x0, tau, n_steps, estimator=est, rng=i)
                    ax.plot(t[:, 0], t[:, 1], ".-", color=OVERLAY_COLORS[j % len(OVERLAY_COLORS)], lw=0.8, ms=2,
                            label=label if i == 0 else None)
        ax.set_xlim(BOX[:2])
        ax.set_ylim(BOX[2:])
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(out) / "trajectories.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_all(out) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_local_entropy(out), plot_heat(out), plot_mode_vs_mean(out), plot_trajectories(out)]
