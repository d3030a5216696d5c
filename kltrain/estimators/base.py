"""The two estimator interfaces that the schemes plug into.

Algorithm 1 needs E_{q_{x,τ}}[X] (eq. 5.1); Algorithm 2 needs a minimiser of
x ↦ KL(φ_{x,τ} ‖ q_{x_k,τ}). Every way of computing either one — closed form,
quadrature, importance sampling (Alg. 4), SGLD (Alg. 3), Robbins–Monro
(Alg. 5) — is an object with the same two methods, in the style of blackjax's
pure kernels:

    state = estimator.init(loss, x, tau)
    result, state, info = estimator.step(rng, state, loss, x, tau)

``state`` carries what must persist between parameter updates (the SGLD
chain's last position, §5.1.1; a noise counter); ``info`` is a NamedTuple of
diagnostics (effective sample size, residuals, ...). A class attribute
``kind`` is ``"mean"`` for E_q[X] estimators and ``"prox"`` for Algorithm 2
steps, so that a scheme refuses the wrong kind with a clear error.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np


class MeanEstimator(Protocol):
    """Estimates E_{q_{x,τ}}[X], eq. (5.1): the second step of Algorithm 1."""

    kind: str  # "mean"

    def init(self, loss, x: np.ndarray, tau: float) -> Any: ...

    def step(self, rng: np.random.Generator, state: Any, loss, x: np.ndarray, tau: float
             ) -> tuple[np.ndarray, Any, NamedTuple]: ...


class ProxEstimator(Protocol):
    """Approximates argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}): the second step of Algorithm 2."""

    kind: str  # "prox"

    def init(self, loss, x_k: np.ndarray, tau: float) -> Any: ...

    def step(self, rng: np.random.Generator, state: Any, loss, x_k: np.ndarray, tau: float
             ) -> tuple[np.ndarray, Any, NamedTuple]: ...


class ExactInfo(NamedTuple):
    """Diagnostics of an exact E_q[X]: which method produced it."""

    method: str  # "closed form" or "quadrature"


class ProxInfo(NamedTuple):
    """Diagnostics of an Algorithm 2 step.

    residual : |h(x)| with h(x) = x − x_k + τ E_{φ_{x,τ}}[∇f] = x − x_k + τ∇F^H_τ(x)
        (the Euler–Lagrange residual of §5.2; zero at an exact step).
    n_iter : iterations used by the inner solver.
    """

    residual: float
    n_iter: int


def require_kind(estimator, kind: str, where: str) -> None:
    """TypeError unless ``estimator`` is of the given kind ("mean" or "prox")."""
    got = getattr(estimator, "kind", None)
    if got != kind or not callable(getattr(estimator, "step", None)):
        wanted = {"mean": "an E_q[X] estimator (kind 'mean')",
                  "prox": "an Algorithm 2 step estimator (kind 'prox')"}[kind]
        raise TypeError(f"{where} needs {wanted}; got {type(estimator).__name__} (kind {got!r})")
