"""The loss protocol: f(x) of eq. (2.1), seen as a function of the parameters x ∈ R^d.

A *loss* is any object with

- ``value(x) -> float`` and ``grad(x) -> ndarray`` (shape ``(d,)``);
- optionally ``values(X) -> ndarray`` over the rows of ``X`` (shape ``(n, d)``),
  and ``grads(X)``; when absent we loop over rows;
- optionally the fast paths of :class:`kltrain.fastpath.FastPaths` (an MLP minibatch
  offers them), which the sampling estimators use instead of their NumPy references;
- optionally ``dim`` (so that a point of the wrong dimension is refused) and
  ``length_scale`` (the smallest feature size of f, used to choose quadrature
  grids);
- optionally *closed forms* of the regularized quantities, which the exact
  estimators use when present: ``local_entropy(x, tau)``,
  ``local_entropy_grad(x, tau)``, ``posterior_mean(x, tau)``,
  ``heat_regularization(x, tau)``, ``heat_regularization_grad(x, tau)``.

:class:`OptionalLoss` and :class:`ClosedForms` below list these optional attributes
with their signatures; ``tests/test_fastpath.py`` checks that every name the package
looks up on a loss is listed there or in ``FastPaths``.

Nothing here knows about neural networks: an MLP bound to a minibatch is just
another loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ._checks import check_count, check_finite_values, check_positive


@runtime_checkable
class Loss(Protocol):
    """What the regularized losses and the schemes need from f."""

    def value(self, x: np.ndarray) -> float: ...

    def grad(self, x: np.ndarray) -> np.ndarray: ...


class OptionalLoss(Protocol):
    """Optional attributes of a loss; each is looked up (``getattr``) only where it is used."""

    dim: int             # the dimension d: a point of another dimension is refused
    length_scale: float  # the smallest feature size of f: GridQuadrature's node spacing
    source: object       # what ``resample`` draws from (an MLP minibatch's TrainingSet; None: it cannot)

    def values(self, X: np.ndarray) -> np.ndarray:
        """f at each row of X (n, d): importance sampling, grids. Default: a loop over ``value``."""
        ...

    def grads(self, X: np.ndarray) -> np.ndarray:
        """∇f at each row of X: Robbins–Monro's M draws. Default: a loop over ``grad``."""
        ...

    def resample(self, rng: np.random.Generator) -> Loss:
        """The same loss on a fresh minibatch: ``SGLD(fresh_minibatch=True)``."""
        ...


class ClosedForms(Protocol):
    """Exact regularized quantities; ``Exact``/``ClosedForm`` use any the loss offers."""

    def local_entropy(self, x: np.ndarray, tau: float) -> float: ...             # F_τ, eq. (2.2)

    def local_entropy_grad(self, x: np.ndarray, tau: float) -> np.ndarray: ...   # ∇F_τ

    def posterior_mean(self, x: np.ndarray, tau: float) -> np.ndarray: ...      # E_q[X], eq. (5.1)

    def heat_regularization(self, x: np.ndarray, tau: float) -> float: ...       # F^H_τ, §2.2

    def heat_regularization_grad(self, x: np.ndarray, tau: float) -> np.ndarray: ...  # ∇F^H_τ


def check_loss(loss: object) -> None:
    """TypeError unless ``loss`` has callable ``value`` and ``grad``."""
    for name in ("value", "grad"):
        if not callable(getattr(loss, name, None)):
            raise TypeError(f"loss must have a callable .{name}(x); got {type(loss).__name__}")


def loss_dim(loss: object) -> int | None:
    """The loss's dimension d when it declares one (an integer >= 1: ``dim = 2.7`` is a TypeError)."""
    dim = getattr(loss, "dim", None)
    return None if dim is None else check_count(dim, f"{type(loss).__name__}.dim", 1)


def _shaped(out, method: str, loss, shape: tuple) -> np.ndarray:
    """``out`` as float64 of exactly ``shape``; ValueError naming the method and both shapes.

    No broadcasting: a scalar gradient or a (n, 1) column would otherwise pass silently.
    """
    arr = np.asarray(out)
    if np.iscomplexobj(arr) or arr.dtype.kind not in "fiub":
        raise TypeError(f"{type(loss).__name__}.{method} must return real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{type(loss).__name__}.{method} returned shape {arr.shape}, expected {shape}")
    return arr.astype(np.float64, copy=False)


def loss_value(loss, x: np.ndarray) -> float:
    """f(x) as a float; a value that is not a scalar is a ValueError naming the shapes."""
    return float(_shaped(loss.value(x), "value", loss, ()))


def loss_grad(loss, x: np.ndarray) -> np.ndarray:
    """∇f(x) of shape (d,), checked finite."""
    return check_finite_values(_shaped(loss.grad(x), "grad", loss, np.shape(x)), "the loss gradient")


def loss_values(loss: Loss, X: np.ndarray) -> np.ndarray:
    """f at each row of X (shape (n,)), checked finite; uses ``loss.values`` if offered."""
    X = np.atleast_2d(X)
    values = getattr(loss, "values", None)
    if callable(values):
        out = _shaped(values(X), "values", loss, (X.shape[0],))
    else:
        out = np.fromiter((loss_value(loss, row) for row in X), dtype=np.float64, count=X.shape[0])
    return check_finite_values(out)


def loss_grads(loss: Loss, X: np.ndarray) -> np.ndarray:
    """∇f at each row of X (shape (n, d)); uses ``loss.grads`` if offered."""
    X = np.atleast_2d(X)
    grads = getattr(loss, "grads", None)
    if callable(grads):
        out = _shaped(grads(X), "grads", loss, X.shape)
    else:
        out = np.stack([_shaped(loss.grad(row), "grad", loss, row.shape) for row in X])
    return check_finite_values(out, "the loss gradient")


@dataclass(frozen=True)
class FunctionLoss:
    """Wrap plain callables as a loss (handy in notebooks and tests).

    >>> f = FunctionLoss(lambda x: float(x @ x), lambda x: 2 * x, dim=2)
    """

    value_fn: Callable[[np.ndarray], float]
    grad_fn: Callable[[np.ndarray], np.ndarray] | None = None
    values_fn: Callable[[np.ndarray], np.ndarray] | None = None  # vectorised f over rows
    dim: int | None = None
    length_scale: float | None = None
    fd_step: float = 1e-6  # central-difference step when no grad_fn is given

    def __post_init__(self) -> None:
        if self.dim is not None:
            check_count(self.dim, "dim", 1)
        if self.length_scale is not None:
            check_positive(self.length_scale, "length_scale")
        check_positive(self.fd_step, "fd_step")

    def value(self, x: np.ndarray) -> float:
        return float(_shaped(self.value_fn(np.asarray(x, dtype=np.float64)), "value", self, ()))

    def values(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.values_fn is not None:
            return np.asarray(self.values_fn(X), dtype=np.float64)
        return np.array([self.value(row) for row in X])

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.grad_fn is not None:
            return np.asarray(self.grad_fn(x), dtype=np.float64)
        return central_difference(self.value, x, self.fd_step)


def central_difference(fn: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """∇fn(x) by central differences, O(h²) accurate; the independent gradient oracle."""
    x = np.asarray(x, dtype=np.float64)
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fn(x + e) - fn(x - e)) / (2 * h)
    return g
