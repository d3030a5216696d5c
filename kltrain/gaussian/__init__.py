"""Mean-and-covariance schemes: Algorithms 1 and 2 with the Gaussian's covariance free (§1's future work).

Read in this order:

    schemes    the exact two-step schemes on N(m, C): local_entropy_step, heat_step, minimize
    exact      their closed forms and grid quadrature (the oracles the schemes are checked against)
    sampling   the sampled versions for high dimension: GaussianIS, GaussianSGLD, GaussianRobbinsMonro,
               and DiagonalGaussianRule, the training loop's update rule with a learned diagonal C

``kltrain.gaussian.minimize(...)`` etc. name the schemes' functions, as before this package existed.
"""

from .sampling import DiagonalGaussianRule, GaussianIS, GaussianRobbinsMonro, GaussianSGLD, MomentsInfo
from .schemes import (FAMILIES, FORMS, GaussianPath, GaussianScheme, HeatInfo, heat_objective, heat_regularization,
                      heat_step, local_entropy, local_entropy_step, minimize, project, stein_moments, tilted_moments)

__all__ = [
    "FAMILIES", "FORMS", "DiagonalGaussianRule", "GaussianIS", "GaussianPath", "GaussianRobbinsMonro",
    "GaussianSGLD", "GaussianScheme", "HeatInfo", "MomentsInfo", "heat_objective", "heat_regularization",
    "heat_step", "local_entropy", "local_entropy_step", "minimize", "project", "stein_moments",
    "tilted_moments",
]
