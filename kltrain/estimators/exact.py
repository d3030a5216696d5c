"""Exact estimators: closed forms when the loss offers them, else grid quadrature.

``Exact()`` is what ``estimator=None`` means everywhere in the public API. For
each quantity it asks the loss for a closed form (see :mod:`kltrain.losses`),
falls back to :class:`~kltrain.estimators.GridQuadrature` when d ≤ 2, and otherwise raises a
ValueError saying which estimator to pass.

``ExactProx`` is the exact step of Algorithm 2. Expanding the KL divergence
(with F_τ as printed in eq. 2.2),

    KL(φ_{x,τ} ‖ q_{x_k,τ}) = F^H_τ(x) + |x − x_k|²/(2τ) − F_τ(x_k),

so argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}) is the proximal-point step on F^H_τ with
step τ, just as Algorithm 1 is gradient descent on F_τ with step τ (eq. 3.5).
Minimisers need not be unique (§4.1): we return the local minimiser that
L-BFGS reaches from x_k, which never increases F^H_τ + |x − x_k|²/(2τ) above
its value at x_k — all that Theorem 4.2's monotonicity needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
from scipy.optimize import minimize

from .base import ExactInfo, ProxInfo
from .quadrature import GridQuadrature

_QUANTITIES = ("local_entropy", "local_entropy_grad", "posterior_mean",
               "heat_regularization", "heat_regularization_grad")


@dataclass(frozen=True)
class ClosedForm:
    """Use the loss's own closed forms; ValueError if it has none for a quantity."""

    kind: ClassVar[str] = "mean"

    def _closed(self, loss, name):
        fn = getattr(loss, name, None)
        if not callable(fn):
            raise ValueError(f"{type(loss).__name__} offers no closed form for {name}; "
                             "use GridQuadrature (d <= 2) or a sampling estimator")
        return fn

    def local_entropy(self, loss: Any, x: np.ndarray, tau: float) -> float:
        return float(self._closed(loss, "local_entropy")(x, tau))

    def posterior_mean(self, loss: Any, x: np.ndarray, tau: float) -> np.ndarray:
        return np.asarray(self._closed(loss, "posterior_mean")(x, tau), dtype=np.float64)

    def heat_regularization(self, loss: Any, x: np.ndarray, tau: float) -> float:
        return float(self._closed(loss, "heat_regularization")(x, tau))

    def heat_regularization_grad(self, loss: Any, x: np.ndarray, tau: float) -> np.ndarray:
        return np.asarray(self._closed(loss, "heat_regularization_grad")(x, tau), dtype=np.float64)

    def init(self, loss: Any, x: np.ndarray, tau: float) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Any, x: np.ndarray, tau: float
             ) -> tuple[np.ndarray, None, ExactInfo]:
        return self.posterior_mean(loss, x, tau), None, ExactInfo("closed form")


@dataclass(frozen=True)
class Exact:
    """Closed form where the loss offers one, else grid quadrature (d ≤ 2)."""

    kind: ClassVar[str] = "mean"
    quadrature: GridQuadrature = field(default_factory=GridQuadrature)

    def method_for(self, loss: Any, name: str, dim: int) -> ClosedForm | GridQuadrature:
        """The object that computes ``name`` exactly for this loss."""
        if name in _QUANTITIES and callable(getattr(loss, name, None)):
            return ClosedForm()
        if dim <= 2:
            return self.quadrature
        raise ValueError(
            f"no exact {name} for a {dim}-dimensional {type(loss).__name__} without a closed "
            "form; pass estimator=ImportanceSampling(...) or SGLD(...) from kltrain.estimators"
        )

    def local_entropy(self, loss: Any, x: np.ndarray, tau: float) -> float:
        return self.method_for(loss, "local_entropy", x.size).local_entropy(loss, x, tau)

    def posterior_mean(self, loss: Any, x: np.ndarray, tau: float) -> np.ndarray:
        return self.method_for(loss, "posterior_mean", x.size).posterior_mean(loss, x, tau)

    def heat_regularization(self, loss: Any, x: np.ndarray, tau: float) -> float:
        return self.method_for(loss, "heat_regularization", x.size).heat_regularization(loss, x, tau)

    def heat_regularization_grad(self, loss: Any, x: np.ndarray, tau: float) -> np.ndarray:
        method = self.method_for(loss, "heat_regularization_grad", x.size)
        return method.heat_regularization_grad(loss, x, tau)

    def init(self, loss: Any, x: np.ndarray, tau: float) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Any, x: np.ndarray, tau: float
             ) -> tuple[np.ndarray, None, ExactInfo]:
        method = self.method_for(loss, "posterior_mean", x.size)
        return method.step(rng, state, loss, x, tau)


@dataclass(frozen=True)
class ExactProx:
    """Exact Algorithm 2 step: argmin_x F^H_τ(x) + |x − x_k|²/(2τ), from x_k.

    Parameters
    ----------
    values : computes F^H_τ and ∇F^H_τ (closed form or quadrature; default ``Exact()``).
    gtol : L-BFGS stopping tolerance on the gradient norm.
    max_iter : L-BFGS iteration cap.
    """

    kind: ClassVar[str] = "prox"
    values: Exact | ClosedForm | GridQuadrature = field(default_factory=Exact)
    gtol: float = 1e-11
    max_iter: int = 1000

    def init(self, loss: Any, x_k: np.ndarray, tau: float) -> None:
        return None

    def objective(self, loss: Any, x_k: np.ndarray, tau: float) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """x ↦ (F^H_τ(x) + |x − x_k|²/(2τ), its gradient): the proximal objective."""
        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            value = self.values.heat_regularization(loss, x, tau) + (x - x_k) @ (x - x_k) / (2 * tau)
            grad = self.values.heat_regularization_grad(loss, x, tau) + (x - x_k) / tau
            return value, grad
        return fun

    def step(self, rng: np.random.Generator, state: None, loss: Any, x_k: np.ndarray, tau: float
             ) -> tuple[np.ndarray, None, ProxInfo]:
        fun = self.objective(loss, x_k, tau)
        res = minimize(fun, x_k, jac=True, method="L-BFGS-B",
                       options={"gtol": self.gtol, "ftol": 1e-15, "maxiter": self.max_iter})
        x_next = res.x
        _, grad = fun(x_next)
        # h(x) = x − x_k + τ∇F^H_τ(x) = τ × gradient of the prox objective
        return x_next, None, ProxInfo(residual=float(tau * np.linalg.norm(grad)), n_iter=int(res.nit))
