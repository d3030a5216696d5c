"""Landscapes and trajectories of any 2D loss; the paper's toy figures are thin callers.

- ``plot_landscape``     f beside F_τ (eq. 2.2) or F^H_τ (§2.2) for several τ, from ``regularized_grid``.
- ``plot_trajectories``  Algorithm 1 (over F_τ) or 2 (over F^H_τ) from several starts, any estimators.
- ``explore``            the same landscape with a τ slider (a desktop window, or Jupyter with ipympl).
- ``animate_tau``        a GIF of τ scoping (§6.5.1): the landscape and the iterates as τ(k) shrinks.
- ``plot_local_entropy``, ``plot_heat``, ``plot_mode_vs_mean``, ``write_trajectories``: Figs 2.1,
  2.2, 5.1 and the trajectory figure, written to files.

Static figures are ``matplotlib.figure.Figure`` objects built without pyplot: nothing here
selects a backend or touches pyplot's global figure list (Jupyter shows a returned Figure;
``fig.savefig`` writes it). Only ``explore`` asks pyplot for a window, in the current backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import kltrain
from kltrain import variational as V
from kltrain.schedules import as_tau_schedule

from kltrain._checks import check_count, check_flag, check_tau

from .grid import Box, Kind, check_box, loss_values, regularized_grid
from .landscapes import SHARP_CENTER, WIDE_CENTER, wide_and_sharp_bumps, wide_and_sharp_mixture
from .losses import GaussianMixtureLoss

BOX: Box = (-2.5, 2.5, -2.0, 2.0)
COLORS = ["C3", "C1", "C2", "C0", "C4", "C6"]  # the first (red) is the exact run
STARTS = np.array([[2.2, 1.6], [2.0, -1.5], [-2.2, 1.6], [0.3, 1.8]])
TOY_MARKS = {"wide": WIDE_CENTER, "sharp": SHARP_CENTER}
SYMBOL = {"local_entropy": "F_τ", "heat": "F^H_τ"}
ALGORITHM = {"local_entropy": (kltrain.minimize_local_entropy, "Algorithm 1"),
             "heat": (kltrain.minimize_heat, "Algorithm 2")}
Paths = Mapping[str, Any] | Sequence[np.ndarray] | None


def _grid_of_loss(loss, box: Box, n: int):
    xs, ys = np.linspace(box[0], box[1], n), np.linspace(box[2], box[3], n)
    X, Y = np.meshgrid(xs, ys)
    return xs, ys, loss_values(loss, np.column_stack([X.ravel(), Y.ravel()])).reshape(X.shape)


def _contour(ax: Axes, xs, ys, Z, title: str, marks: Mapping[str, np.ndarray] | None):
    """Filled contours of Z[i, j] at (xs[j], ys[i]), colours clipped at the 75% quantile
    (the far walls would otherwise wash out the minima); labels beside, not on, the minima."""
    levels = np.linspace(Z.min(), np.quantile(Z, 0.75), 30)
    cs = ax.contourf(xs, ys, Z, levels=levels, cmap="viridis", extend="max")
    for label, point in (marks or {}).items():
        ax.annotate(label, np.asarray(point) + [0, 0.35], color="w", ha="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    return cs


def _draw_paths(ax: Axes, paths: Paths) -> None:
    """Overlay iterates: a mapping label → (k, 2) array (or list of them), or a list of arrays."""
    if paths is None:
        return
    items = paths.items() if isinstance(paths, Mapping) else [(None, paths)]
    for c, (label, runs) in enumerate(items):
        runs = [runs] if isinstance(runs, np.ndarray) and runs.ndim == 2 else runs
        for r, p in enumerate(runs):
            p = np.asarray(p)
            ax.plot(p[:, 0], p[:, 1], ".-", color=COLORS[c % len(COLORS)], lw=1, ms=3,
                    label=label if r == 0 else None)
    if isinstance(paths, Mapping):
        ax.legend(fontsize=7, loc="lower left")


def _axes(ax, n_panels: int) -> tuple[Figure, list[Axes]]:
    """A new row of n_panels axes, or the caller's Axes (one, or a sequence of n_panels)."""
    if ax is None:
        fig = Figure(figsize=(3.2 * n_panels, 3), layout="constrained")
        return fig, list(np.atleast_1d(fig.subplots(1, n_panels)))
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n_panels:
        raise ValueError(f"need {n_panels} axes (f and one per τ), got {len(axes)}")
    return axes[0].get_figure(), axes


def plot_landscape(loss, taus: float | Sequence[float], *, kind: Kind = "local_entropy",
                   box: Box = BOX, n: int = 200, trajectories: Paths = None, ax=None,
                   show_loss: bool = True, marks: Mapping[str, np.ndarray] | None = None) -> Figure:
    """f (if ``show_loss``) beside F_τ or F^H_τ for each τ, with optional trajectories overlaid.

    Works for any 2D loss with ``values`` or ``value``; the regularized panels come from
    :func:`toyproblems.grid.regularized_grid`. Returns the Figure (new, or ``ax``'s).
    """
    taus = [check_tau(t) for t in np.atleast_1d(np.asarray(taus, dtype=object)).tolist()]
    if not taus and not show_loss:
        raise ValueError("plot_landscape has nothing to draw: no τ and show_loss=False")
    show_loss = check_flag(show_loss, "show_loss")
    box, n = check_box(box), check_count(n, "n", 2)
    if getattr(loss, "dim", 2) != 2:
        raise ValueError(f"plot_landscape needs a 2D loss, got dim = {loss.dim}")
    fig, axes = _axes(ax, len(taus) + show_loss)
    panels = [_grid_of_loss(loss, box, n) + ("f",)] if show_loss else []
    panels += [regularized_grid(loss, t, kind=kind, box=box, n=n) + (f"{SYMBOL[kind]}, τ = {t:g}",)
               for t in taus]
    for i, (a, (xs, ys, Z, title)) in enumerate(zip(axes, panels)):
        fig.colorbar(_contour(a, xs, ys, Z, title, marks), ax=a, shrink=0.8)
        if i >= show_loss:
            _draw_paths(a, trajectories)
    return fig


def run_from_starts(loss, starts, tau, estimator=None, *, kind: Kind = "local_entropy",
                    n_steps: int = 25, rng: int = 0) -> list[np.ndarray]:
    """Algorithm 1 (kind "local_entropy") or 2 ("heat") from each start; start i is seeded rng + i."""
    scheme = ALGORITHM[kind][0]
    return [scheme(loss, x0, tau, n_steps, estimator=estimator, rng=rng + i)
            for i, x0 in enumerate(np.atleast_2d(starts))]


def plot_trajectories(loss, starts, tau, estimators: Mapping[str, Any] | None = None, *,
                      kind: Kind = "local_entropy", n_steps: int = 25, box: Box = BOX, n: int = 200,
                      ax=None, rng: int = 0, marks: Mapping[str, np.ndarray] | None = None) -> Figure:
    """Algorithm 1 over F_τ (or 2 over F^H_τ) from ``starts``, one colour per estimator.

    ``estimators`` maps a label to any estimator of the right kind ("mean" for Algorithm 1,
    "prox" for 2); ``None`` as a value, and the default ``{"exact": None}``, is the exact step.
    ``tau`` may be a schedule; the background is drawn at τ(0).
    """
    estimators = {"exact": None} if estimators is None else estimators
    paths = {label: run_from_starts(loss, starts, tau, est, kind=kind, n_steps=n_steps, rng=rng)
             for label, est in estimators.items()}
    tau0 = as_tau_schedule(tau)(0)
    fig = plot_landscape(loss, [tau0], kind=kind, box=box, n=n, trajectories=paths, ax=ax,
                         show_loss=False, marks=marks)
    (fig.axes[0] if ax is None else ax).set_title(f"{ALGORITHM[kind][1]} over {SYMBOL[kind]} (τ = {tau0:g})", fontsize=9)
    return fig


def explore(loss, taus: Sequence[float] | None = None, *, kind: Kind = "local_entropy",
            box: Box = BOX, n: int = 128, starts=None, n_steps: int = 25):
    """An interactive τ slider over F_τ (or F^H_τ), with exact trajectories from ``starts``.

    Returns ``(fig, slider)``; keep the slider referenced. It needs an interactive backend
    (a desktop window, or ``%matplotlib widget`` with ipympl in Jupyter); under Agg it still
    builds and responds to ``slider.set_val``. Grids are computed once per τ and cached.
    """
    import matplotlib.pyplot as plt  # pyplot only here: a window needs its figure manager
    from matplotlib.widgets import Slider

    taus = np.geomspace(0.01, 1.0, 21) if taus is None else np.asarray(taus, dtype=float)
    fig = plt.figure(figsize=(5, 4.6))
    ax, slider_ax = fig.add_axes((0.1, 0.2, 0.8, 0.72)), fig.add_axes((0.2, 0.05, 0.6, 0.04))
    cache: dict[int, tuple] = {}

    def draw(i: int) -> None:
        if i not in cache:
            grid = regularized_grid(loss, float(taus[i]), kind=kind, box=box, n=n)
            runs = None if starts is None else run_from_starts(loss, starts, float(taus[i]),
                                                               kind=kind, n_steps=n_steps)
            cache[i] = grid + (runs,)
        xs, ys, Z, runs = cache[i]
        ax.clear()
        _contour(ax, xs, ys, Z, f"{SYMBOL[kind]}, τ = {taus[i]:.3g}", None)
        _draw_paths(ax, runs)
        fig.canvas.draw_idle()

    slider = Slider(slider_ax, "log₁₀ τ", np.log10(taus[0]), np.log10(taus[-1]),
                    valinit=np.log10(taus[0]), valstep=np.log10(taus))
    slider.on_changed(lambda v: draw(int(np.argmin(np.abs(np.log10(taus) - v)))))
    draw(0)
    return fig, slider


def animate_tau(loss, path, *, tau: Any = None, kind: Kind = "local_entropy", starts=STARTS,
                estimator=None, n_steps: int = 20, box: Box = BOX, n: int = 128, fps: int = 4) -> Path:
    """Write a GIF (pillow) of τ scoping, §6.5.1: frame k shows F_τ(k) (or F^H_τ(k)) and the
    iterates x_0..x_k of Algorithm 1 (or 2) run with the schedule ``tau``
    (default ``TauScoping(0.5, 0.15)``: τ from 0.5 down to ≈0.03 over 20 steps)."""
    from matplotlib.animation import PillowWriter

    from kltrain.schedules import TauScoping

    schedule = TauScoping(0.5, 0.15) if tau is None else as_tau_schedule(tau)
    runs = run_from_starts(loss, starts, schedule, estimator, kind=kind, n_steps=n_steps)
    fig = Figure(figsize=(4.4, 3.6), layout="constrained")
    ax = fig.subplots()
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi=80):
        for k in range(n_steps + 1):
            ax.clear()
            xs, ys, Z = regularized_grid(loss, schedule(k), kind=kind, box=box, n=n)
            _contour(ax, xs, ys, Z, f"k = {k}, {SYMBOL[kind]} with τ(k) = {schedule(k):.3f}", None)
            _draw_paths(ax, [r[: k + 1] for r in runs])
            writer.grab_frame()
    return Path(path)


# -- the paper's figures, written to files ---------------------------------------------------

def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def plot_local_entropy(out: Path, taus=(0.05, 0.2, 0.5)) -> Path:
    """Fig 2.1: local entropy flattens the sharp minimum and deepens the wide one."""
    fig = plot_landscape(wide_and_sharp_mixture(), taus, kind="local_entropy", marks=TOY_MARKS)
    return _save(fig, Path(out) / "fig2_1_local_entropy.png")


def plot_heat(out: Path, taus=(0.05, 0.2, 0.5)) -> Path:
    """Fig 2.2: heat regularization blurs f; the sharp well fades fastest."""
    fig = plot_landscape(wide_and_sharp_bumps(), taus, kind="heat", marks=TOY_MARKS)
    return _save(fig, Path(out) / "fig2_2_heat.png")


def write_trajectories(out: Path, tau: float = 0.2, n_steps: int = 25,
                       extra: Mapping[str, tuple[int, Any]] | None = None) -> Path:
    """Algorithm 1 on the mixture toy, Algorithm 2 on the bumps toy, exact runs in red.

    ``extra`` maps a label to ``(algorithm, estimator)`` to overlay sampled runs
    (e.g. ``{"IS": (1, ImportanceSampling(100))}``), seeded per start.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, alg, kind, loss in zip(fig.subplots(1, 2), (1, 2), ("local_entropy", "heat"),
                                   (wide_and_sharp_mixture(), wide_and_sharp_bumps())):
        ests = {"exact": None} | {k: e for k, (a, e) in (extra or {}).items() if a == alg}
        plot_trajectories(loss, STARTS, tau, ests, kind=kind, n_steps=n_steps, ax=ax, marks=TOY_MARKS)
    return _save(fig, Path(out) / "trajectories.png")


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
    gauss: Callable[[float], np.ndarray] = (
        lambda m: np.exp(-0.5 * (xs[:, 0] - m) ** 2 / var) / np.sqrt(2 * np.pi * var))
    fig = Figure(figsize=(11, 3), layout="constrained")
    axes = fig.subplots(1, 3)
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
    return _save(fig, Path(out) / "fig5_1_mode_vs_mean.png")


def make_all(out) -> list[Path]:
    """Write Figs 2.1, 2.2, 5.1 and the trajectories of Algorithms 1 and 2 into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_local_entropy(out), plot_heat(out), plot_mode_vs_mean(out), write_trajectories(out)]
