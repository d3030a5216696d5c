"""A JAX loss of a parameter pytree as a kltrain loss of the flat vector x (NumPy float64 in, float out).

The flat coordinates are those of ``jax.flatten_util.ravel_pytree`` (the pytree's leaves in
order, each flattened row-major), the same x the transformations of
:mod:`kltrain.jax.transforms` perturb; kltrain's NumPy estimators and the flatness
measures of :mod:`kltrain.studies.flatness` run on it. f is evaluated in the parameters'
dtype (x is cast), as the transformations evaluate it.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.flatten_util import ravel_pytree


class FlatLoss:
    """``value``, ``values``, ``grad``, ``grads`` and ``dim`` of x ↦ value_fn(unravel(x)); ``x0()`` is ``params`` flat."""

    def __init__(self, value_fn: Callable[[Any], jax.Array], params: Any):
        flat, unravel = ravel_pytree(params)
        self._x0, self.dim, self.dtype = np.asarray(flat, np.float64), int(flat.size), flat.dtype
        f = lambda v: value_fn(unravel(v))                # noqa: E731
        self._values = jax.jit(jax.vmap(f))
        self._grads = jax.jit(jax.vmap(jax.grad(f)))

    def x0(self) -> np.ndarray:
        return self._x0.copy()

    def values(self, X) -> np.ndarray:
        return np.asarray(self._values(np.asarray(X, dtype=self.dtype).reshape(-1, self.dim)), np.float64)

    def value(self, x) -> float:
        return float(self.values(np.asarray(x)[None, :])[0])

    def grads(self, X) -> np.ndarray:
        return np.asarray(self._grads(np.asarray(X, dtype=self.dtype).reshape(-1, self.dim)), np.float64)

    def grad(self, x) -> np.ndarray:
        return self.grads(np.asarray(x)[None, :])[0]
