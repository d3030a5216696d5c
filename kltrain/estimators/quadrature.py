"""Grid quadrature in log space for d ≤ 2: the "exact" reference for any loss.

The regularized quantities are Gaussian integrals (paper §2):

    F_τ(x)   = −log ∫ e^{−f(x')} φ_{x,τ}(x') dx'          eq. (2.2)
    E_q[X]   = ∫ x' e^{−f(x')} φ_{x,τ}(x') dx' / (same)     eq. (5.1)
    F^H_τ(x) = ∫ f(x') φ_{x,τ}(x') dx'                      §2.2

On a uniform grid the trapezoid rule is spectrally accurate for smooth
integrands that vanish at the box edge, so a grid of spacing ≈ (feature
size)/4 and half-width 10√τ gives errors near machine precision. Sums of
e^{−f} use log-sum-exp, so f shifted by ±1000 neither under- nor overflows.

The grid is chosen from τ, x and ``loss.length_scale`` (when the loss declares
one); if q's mass is not well inside the box (e^{−f} pulls it away from x),
the box is re-centred on the heaviest node and widened, a few times at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from .._logspace import logsumexp

from .._checks import check_positive
from ..losses import loss_values
from .base import ExactInfo


class Grid(NamedTuple):
    """Quadrature nodes ``points`` (n, d) of a uniform grid with cell volume e^{log_cell}."""

    points: np.ndarray
    log_cell: float
    shape: tuple[int, ...]
    offsets: np.ndarray                 # points − center as intended (exact even where x + offset rounds)


def uniform_grid(center: np.ndarray, half_width: float, spacing: float) -> Grid:
    """Square grid of spacing ``spacing`` covering center ± half_width (d = 1 or 2)."""
    d = center.size
    m = int(np.ceil(half_width / spacing))
    axis = np.arange(-m, m + 1) * spacing
    if d == 1:
        offsets = axis[:, None]
    else:
        offsets = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return Grid(center + offsets, d * np.log(spacing), (axis.size,) * d, offsets)


def gaussian_logpdf_iso(points: np.ndarray, mean: np.ndarray, tau: float) -> np.ndarray:
    """log φ_{mean,τ} at each row of ``points`` (isotropic variance τ)."""
    d = mean.size
    sq = np.sum((points - mean) ** 2, axis=1)
    return -0.5 * sq / tau - 0.5 * d * np.log(2 * np.pi * tau)


def _boundary_mask(shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[0], mask[-1] = True, True
    if len(shape) == 2:
        mask[:, 0], mask[:, -1] = True, True
    return mask.ravel()


RESOLUTION = 1e6  # nodes must be this many float64 steps of x apart for a difference quotient


def check_resolvable(x: np.ndarray, spacing: float, tau: float, what: str = "∇F^H_τ",
                     limit: str = "∇f(x)", steps: float = RESOLUTION) -> None:
    """ValueError when the grid's spacing is below ``steps`` float64 steps of x.

    ∇F^H_τ weighs f at x ± spacing against each other; below ~1e6 ulps of x the rounding
    of the nodes dominates the differences. F_τ and E_q[X] need only distinct nodes (the
    box test cannot pass on nodes that all round to x); F^H_τ's normalised weights need neither.
    """
    ulp = float(np.spacing(np.max(np.abs(x))))
    if spacing < steps * ulp:
        raise ValueError(f"tau = {tau!r} is too small for the quadrature of {what} at |x| = {np.max(np.abs(x)):.3g}: "
                         f"node spacing {spacing:.3g} is below {steps:g} float64 steps of x ({ulp:.3g}); "
                         f"as τ → 0, {what} → {limit}")


@dataclass(frozen=True)
class GridQuadrature:
    """Exact-to-quadrature F_τ, E_q[X], F^H_τ and ∇F^H_τ for losses on R or R².

    Parameters
    ----------
    half_width : grid half-width in units of √τ (φ_{x,τ} is e^{−50} of its peak at 10√τ).
    spacing : node spacing; ``None`` chooses min(√τ, loss.length_scale) / points_per_scale.
    points_per_scale : nodes per feature size when ``spacing`` is None.
    max_nodes : refuse grids larger than this (memory guard), asking for a coarser spacing.
    tail_log_tol : the box is accepted when the log-integrand on its edge is this far
        below its maximum (36 ≈ relative 2e-16).
    """

    kind: ClassVar[str] = "mean"
    half_width: float = 10.0
    spacing: float | None = None
    points_per_scale: float = 4.0
    max_nodes: int = 2_000_000
    tail_log_tol: float = 36.0
    max_recentre: int = 6

    def __post_init__(self):
        if not self.half_width > 0:
            raise ValueError(f"half_width must be > 0, got {self.half_width!r}")
        if self.spacing is not None and not self.spacing > 0:
            raise ValueError(f"spacing must be > 0, got {self.spacing!r}")
        if not self.points_per_scale > 0:
            raise ValueError(f"points_per_scale must be > 0, got {self.points_per_scale!r}")

    # -- grid choice -------------------------------------------------------
    def node_spacing(self, loss, tau: float) -> float:
        if self.spacing is not None:
            return self.spacing
        scale = np.sqrt(tau)
        ell = getattr(loss, "length_scale", None)
        if ell is not None:
            scale = min(scale, check_positive(ell, f"{type(loss).__name__}.length_scale"))
        return scale / self.points_per_scale

    def grid(self, loss, center: np.ndarray, tau: float, half_width: float | None = None) -> Grid:
        """Grid around ``center`` of half-width ``half_width`` (absolute; default 10√τ)."""
        if center.size > 2:
            raise ValueError(
                f"grid quadrature needs d <= 2, got d = {center.size}; pass a sampling estimator "
                "(kltrain.estimators.ImportanceSampling or SGLD) for higher dimensions"
            )
        hw = self.half_width * np.sqrt(tau) if half_width is None else half_width
        h = self.node_spacing(loss, tau)
        n_axis = 2 * int(np.ceil(hw / h)) + 1
        if n_axis ** center.size > self.max_nodes:
            raise ValueError(
                f"quadrature grid would need {n_axis ** center.size} nodes (> max_nodes = "
                f"{self.max_nodes}); pass GridQuadrature(spacing=...) with a coarser spacing"
            )
        return uniform_grid(center, hw, h)

    def posterior_grid(self, loss, x: np.ndarray, tau: float) -> tuple[Grid, np.ndarray]:
        """Grid holding q_{x,τ}'s mass and log of e^{−f} φ_{x,τ} · cell on it.

        Re-centres on the heaviest node and doubles the box until the edge is
        negligible: needed when e^{−f} pulls q far from x (steep losses).
        """
        check_resolvable(x, self.node_spacing(loss, tau), tau, "F_τ and E_q[X]", "f(x) and x", steps=16)
        center, hw = x, self.half_width * np.sqrt(tau)
        for _ in range(self.max_recentre + 1):
            grid = self.grid(loss, center, tau, hw)
            log_integrand = -loss_values(loss, grid.points) + gaussian_logpdf_iso(grid.points, x, tau)
            top = log_integrand.max()
            edge = log_integrand[_boundary_mask(grid.shape)].max()
            if edge < top - self.tail_log_tol:
                return grid, log_integrand + grid.log_cell
            center, hw = grid.points[np.argmax(log_integrand)], 2 * hw
        raise ValueError(
            "grid quadrature could not enclose q_{x,tau}; pass GridQuadrature(half_width=...) "
            "with a larger box"
        )

    def heat_grid(self, loss, x: np.ndarray, tau: float) -> tuple[Grid, np.ndarray, np.ndarray]:
        """Grid around x, f on it, and the quadrature weights φ_{x,τ}·cell."""
        grid = self.grid(loss, x, tau)
        # From the intended offsets, normalised: at tiny τ the nodes x + offset round onto a few
        # floats, and weights from the rounded nodes summed to 65× too much (issue 11).
        log_w = gaussian_logpdf_iso(grid.offsets, np.zeros_like(x), tau)
        weights = np.exp(log_w - logsumexp(log_w))
        return grid, loss_values(loss, grid.points), weights

    # -- regularized quantities --------------------------------------------
    def local_entropy(self, loss, x, tau) -> float:
        """F_τ(x) of eq. (2.2), φ normalised."""
        _, log_w = self.posterior_grid(loss, x, tau)
        return float(-logsumexp(log_w))

    def posterior_mean(self, loss, x, tau) -> np.ndarray:
        """E_{q_{x,τ}}[X] of eq. (5.1) with self-normalised log weights."""
        grid, log_w = self.posterior_grid(loss, x, tau)
        w = np.exp(log_w - logsumexp(log_w))
        return w @ grid.points

    def heat_regularization(self, loss, x, tau) -> float:
        """F^H_τ(x) = ∫ f φ_{x,τ} (§2.2)."""
        _, f, w = self.heat_grid(loss, x, tau)
        return float(w @ f)

    def heat_regularization_grad(self, loss, x, tau) -> np.ndarray:
        """∇F^H_τ(x) = E_φ[f(X)(X − x)]/τ (Gaussian integration by parts; needs no ∇f)."""
        check_resolvable(x, self.node_spacing(loss, tau), tau)
        grid, f, w = self.heat_grid(loss, x, tau)
        # subtracting f(x)-like constant leaves the integral unchanged but cuts cancellation
        fc = f - w @ f
        return (w * fc) @ grid.offsets / tau

    # -- estimator interface (see kltrain.estimators.base) -------------------
    def init(self, loss: Any, x: np.ndarray, tau: float) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Any, x: np.ndarray, tau: float
             ) -> tuple[np.ndarray, None, ExactInfo]:
        return self.posterior_mean(loss, x, tau), None, ExactInfo("quadrature")
