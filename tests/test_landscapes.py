"""regularized_grid against closed forms (losses it never saw included), and the plot functions."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import toyproblems.grid as G
from toyproblems import (Quadratic, animate_tau, explore, plot_landscape, plot_trajectories, random_bumps,
                         random_mixture, regularized_grid, wide_and_sharp_bumps, wide_and_sharp_mixture)

BOX = (-2.5, 2.5, -2.0, 2.0)


def closed_form(loss, tau, kind, xs, ys):
    X, Y = np.meshgrid(xs, ys)
    P = np.column_stack([X.ravel(), Y.ravel()])
    if kind == "local_entropy":
        vals = loss.local_entropy_values(P, tau) if hasattr(loss, "local_entropy_values") else \
            np.array([loss.local_entropy(p, tau) for p in P])
    else:
        vals = loss.heat_regularization_values(P, tau) if hasattr(loss, "heat_regularization_values") else \
            np.array([loss.heat_regularization(p, tau) for p in P])
    return vals.reshape(X.shape)


def grid_error(loss, tau, kind, n=256, box=BOX):
    xs, ys, Z = regularized_grid(loss, tau, kind=kind, box=box, n=n)
    assert Z.shape == (n, n) and xs.shape == ys.shape == (n,)
    return np.abs(Z - closed_form(loss, tau, kind, xs, ys)).max()


class ValuesOnly:
    """A loss the grid has never seen, hiding everything but ``value``: no closed forms, no ``values``."""

    def __init__(self, loss):
        self._loss, self.dim = loss, 2

    def value(self, x):
        return self._loss.value(x)


@pytest.mark.parametrize("tau", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("kind, loss", [("local_entropy", wide_and_sharp_mixture()),
                                        ("heat", wide_and_sharp_bumps())])
def test_grid_matches_closed_forms_on_the_toys(kind, loss, tau):
    assert grid_error(loss, tau, kind) < 1e-4


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_grid_matches_closed_forms_on_fresh_random_losses(seed):
    """Held-out losses: new random mixtures/bumps/quadratics, on a box that is not the default."""
    rng = np.random.default_rng(seed)
    tau = float(rng.uniform(0.01, 0.6))
    box = (-3.0, 2.0, -2.2, 2.6)
    assert grid_error(random_mixture(rng), tau, "local_entropy", box=box) < 1e-4
    assert grid_error(random_bumps(rng), tau, "heat", box=box) < 1e-4
    quad = Quadratic(A=[[1.5, 0.4], [0.4, 0.7]], center=rng.uniform(-1, 1, 2))
    assert grid_error(quad, tau, "local_entropy", box=box, n=96) < 1e-4  # closed form is per point: slow
    assert grid_error(quad, tau, "heat", box=box, n=96) < 1e-4


def test_grid_needs_only_value():
    loss = random_mixture(np.random.default_rng(7), n_components=2)
    xs, ys, Z = regularized_grid(ValuesOnly(loss), 0.05, n=64)
    np.testing.assert_allclose(Z, closed_form(loss, 0.05, "local_entropy", xs, ys), atol=1e-4)


def test_grid_is_log_space_for_huge_losses():
    """f ≈ 10⁴ everywhere: e^{−f} underflows, F_τ must not (it shifts by the offset, eq. 2.2)."""
    loss = random_mixture(np.random.default_rng(3), offset=1e4)
    assert grid_error(loss, 0.1, "local_entropy", n=96) < 1e-4


def test_the_exact_log_space_fallback_gives_the_same_grid(monkeypatch):
    """Force every sum through the log-sum-exp path taken where BLAS sums would underflow."""
    loss = random_mixture(np.random.default_rng(11))
    fast = regularized_grid(loss, 0.1, n=48)[2]
    monkeypatch.setattr(G, "UNDERFLOW", np.inf)
    np.testing.assert_allclose(regularized_grid(loss, 0.1, n=48)[2], fast, rtol=0, atol=1e-10)


def test_negative_control_without_padding_the_edges_are_wrong(monkeypatch):
    """No padding: points near the box edges lose half their neighbourhood, and the check must fail."""
    monkeypatch.setattr(G, "PAD_SDS", 0.0)
    assert grid_error(wide_and_sharp_mixture(), 0.2, "local_entropy") > 1e-2
    assert grid_error(wide_and_sharp_bumps(), 0.2, "heat") > 1e-2


def test_negative_control_the_other_regularization_does_not_match():
    assert grid_error(Quadratic(A=np.eye(2), center=[0.0, 0.0]), 0.3, "heat") < 1e-4
    xs, ys, Z = regularized_grid(Quadratic(A=np.eye(2), center=[0.0, 0.0]), 0.3, kind="local_entropy", n=64)
    assert np.abs(Z - closed_form(Quadratic(A=np.eye(2), center=[0.0, 0.0]), 0.3, "heat", xs, ys)).max() > 1e-2


@pytest.mark.parametrize("bad", [dict(tau=0.0), dict(tau=np.nan), dict(kind="entropy"),
                                 dict(box=(1.0, 0.0, 0.0, 1.0)), dict(n=1)])
def test_grid_rejects_bad_input(bad):
    args = dict(tau=0.1, kind="heat", box=BOX, n=16) | bad
    with pytest.raises(ValueError):
        regularized_grid(wide_and_sharp_bumps(), args.pop("tau"), **args)


def test_plot_landscape_returns_a_figure_and_leaves_the_backend_alone():
    before = matplotlib.get_backend()
    fig = plot_landscape(random_bumps(np.random.default_rng(5)), [0.05, 0.3], kind="heat", n=48,
                         trajectories={"a path": np.array([[0.0, 0.0], [0.5, 0.5]])})
    assert isinstance(fig, Figure) and matplotlib.get_backend() == before
    assert len([a for a in fig.axes if a.get_title()]) == 3  # f, then one panel per τ
    assert fig.axes[1].get_legend() is not None


def test_plot_landscape_draws_into_given_axes():
    fig = Figure()
    ax = fig.subplots()
    assert plot_landscape(wide_and_sharp_mixture(), 0.1, ax=ax, show_loss=False, n=32) is fig
    with pytest.raises(ValueError):
        plot_landscape(wide_and_sharp_mixture(), [0.1, 0.2], ax=ax, n=32)


def test_plot_trajectories_with_any_estimator():
    from kltrain.estimators import ImportanceSampling, RobbinsMonro
    starts = np.array([[1.5, 1.0], [-1.5, -1.0]])
    fig = plot_trajectories(random_mixture(np.random.default_rng(9)), starts, 0.2,
                            {"exact": None, "IS": ImportanceSampling(50)}, n_steps=3, n=32)
    assert len(fig.axes[0].lines) == 4  # two estimators × two starts
    fig = plot_trajectories(wide_and_sharp_bumps(), starts, 0.2, {"RM": RobbinsMonro(5, 5)},
                            kind="heat", n_steps=2, n=32)
    assert len(fig.axes[0].lines) == 2


def test_explore_slider_redraws():
    fig, slider = explore(wide_and_sharp_mixture(), [0.05, 0.5], n=32, starts=[[2.0, 1.5]], n_steps=3)
    ax = fig.axes[0]
    assert "0.05" in ax.get_title()
    slider.set_val(np.log10(0.5))
    assert "0.5" in ax.get_title() and len(ax.lines) == 1
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_animate_tau_writes_a_gif(tmp_path):
    from PIL import Image
    path = animate_tau(wide_and_sharp_mixture(), tmp_path / "scoping.gif", n_steps=3, n=32)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 4


def test_no_module_selects_a_matplotlib_backend():
    """Importing kltrain/toyproblems/validation must not break Jupyter or desktop plotting."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    offenders = [str(p) for pkg in ("kltrain", "toyproblems", "validation") for p in (root / pkg).rglob("*.py")
                 if "matplotlib.use(" in p.read_text() or "switch_backend(" in p.read_text()]
    assert offenders == []
