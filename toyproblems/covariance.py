"""Toy landscapes with the iterates' covariance ellipses (the Gaussian schemes of kltrain.gaussian).

Object-oriented matplotlib only: the function builds and returns a ``Figure`` and never
selects a backend, so callers (tests, the validation report, notebooks) choose their own.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse


def covariance_ellipse(mean, cov, n_sigma: float = 1.0, **kwargs) -> Ellipse:
    """The n_sigma contour {x : (x − m)ᵀC⁻¹(x − m) = n_sigma²} of N(m, C) as a patch."""
    evals, evecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    angle = np.degrees(np.arctan2(evecs[1, -1], evecs[0, -1]))        # major axis direction
    width, height = 2 * n_sigma * np.sqrt(evals[::-1])
    return Ellipse(xy=mean, width=width, height=height, angle=angle, **kwargs)


def plot_covariance_paths(loss, paths, *, extent=(-2.5, 2.5, -2.0, 2.0), n_sigma=1.0,
                          every=1, resolution=200, title=None) -> Figure:
    """f's contours with each path's means and 1σ ellipses.

    ``paths`` maps a label to a :class:`kltrain.gaussian.GaussianPath` (means (K+1, 2),
    covs (K+1, 2, 2)); every ``every``-th iterate gets an ellipse.
    """
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    f = np.asarray(loss.values(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape)
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    ax.contour(gx, gy, f, levels=25, cmap="Greys", linewidths=0.6)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple"]
    for i, (label, path) in enumerate(paths.items()):
        colour = colours[i % len(colours)]
        ax.plot(path.means[:, 0], path.means[:, 1], "o-", ms=3, color=colour, label=label)
        for m, C in zip(path.means[::every], path.covs[::every]):
            ax.add_patch(covariance_ellipse(m, C, n_sigma, fill=False, color=colour, lw=0.8))
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
           title=title or f"Gaussian two-step schemes: means and {n_sigma:g}σ ellipses")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def wide_and_sharp_figure(n_steps: int = 12) -> Figure:
    """Local-entropy form on the wide-and-sharp mixture from (0.2, 0.3), C_0 = 0.3I, per family."""
    from kltrain import gaussian
    from .landscapes import wide_and_sharp_mixture

    loss, x0 = wide_and_sharp_mixture(), np.array([0.2, 0.3])
    paths = {family: gaussian.minimize(loss, x0, 0.3 * np.eye(2), n_steps, family=family)
             for family in ("full", "iso", "fixed")}
    return plot_covariance_paths(loss, paths, title="local-entropy form, learned vs fixed C")


def reveal_frames(fig, paths, every=1):
    """(draw(k), n_frames): draw(k) shows iterates 0..k of each path on ``fig`` (from
    :func:`plot_covariance_paths`) and hides the rest; it creates no artists."""
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_label() in paths]
    full = [line.get_data() for line in lines]
    ellipses, start = [], 0
    for path in paths.values():
        n = len(path.means[::every])
        ellipses.append(ax.patches[start:start + n])
        start += n

    def draw(k):
        for line, (xs, ys), patches in zip(lines, full, ellipses):
            line.set_data(xs[:k + 1], ys[:k + 1])
            for i, patch in enumerate(patches):
                patch.set_visible(i * every <= k)
        return lines + [p for ps in ellipses for p in ps]

    return draw, max(len(p.means) for p in paths.values())


def animate_covariance_paths(loss, paths, *, interval=400, **kwargs):
    """A ``FuncAnimation`` revealing one iterate (mean and ellipse) per frame.

    Save it with ``anim.save("paths.gif", writer="pillow")``.
    """
    from matplotlib.animation import FuncAnimation

    fig = plot_covariance_paths(loss, paths, **kwargs)
    draw, n_frames = reveal_frames(fig, paths, kwargs.get("every", 1))
    return FuncAnimation(fig, draw, frames=n_frames, interval=interval, blit=False)
