"""Type aliases of the public API (for readers and mypy; nothing here is checked at run time)."""

from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np
from numpy.typing import ArrayLike

Point = ArrayLike                               #: a point x ∈ R^d: anything np.asarray accepts, shape (d,)
TauLike = Union[float, Callable[[int], float]]  #: τ, or a schedule k ↦ τ(k) (kltrain.schedules)
RngLike = Union[np.random.Generator, int, None]  #: a Generator, an int seed, or None (fresh entropy)
Estimator = Any  #: an object with kind, init and step (kltrain.estimators.base.MeanEstimator/ProxEstimator)

__all__ = ["ArrayLike", "Estimator", "Point", "RngLike", "TauLike"]
