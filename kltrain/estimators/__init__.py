"""Estimators of E_{q_{x,τ}}[X] (Algorithm 1's step) and of Algorithm 2's step.

See :mod:`kltrain.estimators.base` for the interface. Exact: ``Exact``,
``ClosedForm``, ``GridQuadrature`` (kind "mean") and ``ExactProx`` (kind "prox").
Sampling: ``ImportanceSampling`` (Alg. 4) and ``SGLD`` (Alg. 3), kind "mean";
``RobbinsMonro`` (Alg. 5), kind "prox".
"""

from .base import ExactInfo, MeanEstimator, ProxEstimator, ProxInfo, require_kind
from .exact import ClosedForm, Exact, ExactProx
from .importance import (ImportanceSampling, ISInfo, ISPartial, combine, effective_sample_size,
                         posterior_mean_from_partial)
from .quadrature import GridQuadrature
from .robbins_monro import RMInfo, RobbinsMonro
from .sgld import SGLD, SGLDInfo, SGLDState

__all__ = [
    "ClosedForm", "Exact", "ExactInfo", "ExactProx", "GridQuadrature", "ISInfo", "ISPartial",
    "ImportanceSampling", "MeanEstimator", "ProxEstimator", "ProxInfo", "RMInfo", "RobbinsMonro",
    "SGLD", "SGLDInfo", "SGLDState", "combine", "effective_sample_size",
    "posterior_mean_from_partial", "require_kind",
]
