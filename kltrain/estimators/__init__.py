"""Estimators of E_{q_{x,τ}}[X] (Algorithm 1's step) and of Algorithm 2's step.

See :mod:`kltrain.estimators.base` for the interface.
"""

from .base import ExactInfo, MeanEstimator, ProxEstimator, ProxInfo, require_kind
from .exact import ClosedForm, Exact, ExactProx
from .quadrature import GridQuadrature

__all__ = [
    "ClosedForm", "Exact", "ExactInfo", "ExactProx", "GridQuadrature",
    "MeanEstimator", "ProxEstimator", "ProxInfo", "require_kind",
]
