"""2D toy losses with closed-form regularizations, and plots of Figs 2.1, 2.2 and 5.1.

``python -m toyproblems --out DIR`` writes the figures.
"""

from .landscapes import (random_bumps, random_mixture, random_quadratic, wide_and_sharp_bumps,
                         wide_and_sharp_mixture)
from .losses import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic

__all__ = [
    "GaussianBumpsLoss", "GaussianMixtureLoss", "Quadratic", "random_bumps",
    "random_mixture", "random_quadratic", "wide_and_sharp_bumps", "wide_and_sharp_mixture",
]
