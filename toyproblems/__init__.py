"""2D toy losses with closed-form regularizations; landscapes and trajectories of any 2D loss.

``regularized_grid`` computes F_τ or F^H_τ on a grid for any 2D loss; ``plot_landscape``,
``plot_trajectories``, ``explore`` (τ slider) and ``animate_tau`` (GIF) draw them.
``python -m toyproblems --out DIR`` writes the paper's Figs 2.1, 2.2, 5.1 and the trajectories.
"""

from .landscapes import (random_bumps, random_mixture, random_quadratic, wide_and_sharp_bumps,
                         wide_and_sharp_mixture)
from .grid import regularized_grid
from .losses import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic
from .plots import animate_tau, explore, plot_landscape, plot_trajectories

__all__ = [
    "GaussianBumpsLoss", "GaussianMixtureLoss", "Quadratic", "animate_tau", "explore",
    "plot_landscape", "plot_trajectories", "random_bumps", "random_mixture", "random_quadratic",
    "regularized_grid", "wide_and_sharp_bumps", "wide_and_sharp_mixture",
]
