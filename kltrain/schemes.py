"""Algorithms 1 and 2 of the paper, SGD, and "SGD first, then regularize" (§6.3).

Algorithm 1 (§3.1): x_{k+1} = E_{q_{x_k,τ}}[X] = argmin_x KL(q_{x_k,τ} ‖ φ_{x,τ}).
    By eq. (3.5) this *is* gradient descent on F_τ with learning rate η = τ,
    and F_τ(x_k) never increases (Theorem 3.2).

Algorithm 2 (§4.1): x_{k+1} ∈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}).
    Since KL(φ_{x,τ} ‖ q_{x_k,τ}) = F^H_τ(x) + |x − x_k|²/(2τ) + const, this is
    the proximal-point method on F^H_τ with step τ, and F^H_τ(x_k) never
    increases (Theorem 4.2).

Each scheme is an *update rule* with blackjax-style pure steps,

    state = rule.init(loss, x0)
    x_next, state, info = rule.step(rng, state, loss, x, k)      (k = 0, 1, ...)

so the toy driver :func:`run` and the MNIST training loop share them. τ is a
float or a schedule k ↦ τ(k) (:mod:`kltrain.schedules`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._checks import (as_generator, check_count, check_finite_result, check_point,
                      check_positive)
from .estimators import Exact, ExactProx, require_kind
from ._types import Estimator, Point, RngLike, TauLike
from .losses import Loss, check_loss, loss_dim, loss_grad
from .schedules import as_tau_schedule


@dataclass(frozen=True)
class _EstimatorRule:
    """x_{k+1} = estimator's step at x_k with τ(k); subclasses fix the estimator kind and default."""

    kind: ClassVar[str]
    where: ClassVar[str]
    tau: Any
    estimator: Any

    def __post_init__(self):
        object.__setattr__(self, "tau", as_tau_schedule(self.tau))
        require_kind(self.estimator, self.kind, self.where)

    def init(self, loss: Loss, x: np.ndarray) -> Any:
        return self.estimator.init(loss, x, self.tau(0))

    def step(self, rng: np.random.Generator, state: Any, loss: Loss, x: np.ndarray, k: int
             ) -> tuple[np.ndarray, Any, Any]:
        return self.estimator.step(rng, state, loss, x, self.tau(k))


@dataclass(frozen=True)
class LocalEntropy(_EstimatorRule):
    """Algorithm 1: x_{k+1} = estimate of E_{q_{x_k,τ(k)}}[X] (any "mean" estimator)."""

    kind: ClassVar[str] = "mean"
    where: ClassVar[str] = "Algorithm 1 (LocalEntropy)"
    estimator: Any = field(default_factory=Exact)


@dataclass(frozen=True)
class Heat(_EstimatorRule):
    """Algorithm 2: x_{k+1} ≈ argmin_x KL(φ_{x,τ(k)} ‖ q_{x_k,τ(k)}) (any "prox" estimator)."""

    kind: ClassVar[str] = "prox"
    where: ClassVar[str] = "Algorithm 2 (Heat)"
    estimator: Any = field(default_factory=ExactProx)


class SGDInfo(NamedTuple):
    """Diagnostics of an SGD step: the gradient norm."""

    grad_norm: float


@dataclass(frozen=True)
class SGD:
    """Plain (stochastic) gradient descent x_{k+1} = x_k − η∇f(x_k), eq. (3.4): the baseline."""

    learning_rate: float

    def __post_init__(self):
        check_positive(self.learning_rate, "learning_rate")

    def init(self, loss: Loss, x: np.ndarray) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Loss, x: np.ndarray, k: int
             ) -> tuple[np.ndarray, None, SGDInfo]:
        g = loss_grad(loss, x)
        return x - self.learning_rate * g, state, SGDInfo(float(np.linalg.norm(g)))


@dataclass(frozen=True)
class SwitchAfter:
    """Run ``first`` for ``n_first`` updates, then ``then`` (§6.3: SGD, then IS/SGLD/HR)."""

    first: Any
    then: Any
    n_first: int

    def __post_init__(self):
        check_count(self.n_first, "n_first")

    def init(self, loss: Loss, x: np.ndarray) -> tuple[Any, Any]:
        return (self.first.init(loss, x), None)

    def step(self, rng: np.random.Generator, state: tuple[Any, Any], loss: Loss, x: np.ndarray, k: int
             ) -> tuple[np.ndarray, tuple[Any, Any], Any]:
        first_state, then_state = state
        if k < self.n_first:
            x_next, first_state, info = self.first.step(rng, first_state, loss, x, k)
        else:
            if then_state is None:  # the regularized scheme starts where SGD stopped
                then_state = self.then.init(loss, x)
            x_next, then_state, info = self.then.step(rng, then_state, loss, x, k - self.n_first)
        return x_next, (first_state, then_state), info


def run(rule: Any, loss: Loss, x0: Point, n_steps: int, *, rng: RngLike = None
        ) -> tuple[np.ndarray, list[Any]]:
    """Iterate an update rule on a fixed loss: ``(points (n_steps+1, d), [info per step])``."""
    check_loss(loss)
    x = check_point(x0, loss_dim(loss), name="x0")
    n_steps = check_count(n_steps, "n_steps")
    rng = as_generator(rng)
    points, infos = [x], []
    state = rule.init(loss, x)
    for k in range(n_steps):
        try:
            x, state, info = rule.step(rng, state, loss, x, k)
        except FloatingPointError as err:  # a loss that overflowed mid-estimate: say where
            raise type(err)(f"{err} ({step_context(rule, k)})") from err
        x = np.asarray(x, dtype=np.float64)
        check_step(rule, x, k, "the iterate")
        points.append(x)
        infos.append(info)
    return np.stack(points), infos


def _inner(rule: Any, k: int) -> tuple[Any, int]:
    """(the rule that runs update k, its own step index): SwitchAfter hands over after n_first."""
    if isinstance(rule, SwitchAfter) and k >= rule.n_first:
        return rule.then, k - rule.n_first
    return (rule.first, k) if isinstance(rule, SwitchAfter) else (rule, k)


def step_context(rule: Any, k: int) -> str:
    """"τ = …, estimator …, step k+1" for error messages."""
    inner, k_inner = _inner(rule, k)
    tau = f"τ = {_tau_at(inner, k_inner)!r}, " if hasattr(inner, "tau") else ""
    return f"{tau}estimator {type(getattr(inner, 'estimator', inner)).__name__}, step {k + 1}"


def _tau_at(rule: Any, k: int) -> Any:
    """τ of update k: a rule's ``tau`` is a schedule here, but a plain float in e.g. DiagonalGaussianRule."""
    return rule.tau(k) if callable(rule.tau) else rule.tau


def check_step(rule: Any, x: np.ndarray, k: int, what: str) -> None:
    """FloatingPointError naming τ(k), the estimator and the step if ``x`` is not finite."""
    if np.all(np.isfinite(x)):
        return
    inner, k_inner = _inner(rule, k)
    tau = _tau_at(inner, k_inner) if hasattr(inner, "tau") else None
    name = getattr(inner, "where", type(inner).__name__)
    check_finite_result(x, f"{name}: {what}", tau=tau, estimator=getattr(inner, "estimator", inner), step=k + 1)


def run_local_entropy(loss: Loss, x0: Point, tau: TauLike, n_steps: int, *, estimator: Estimator = None,
                      rng: RngLike = None) -> tuple[np.ndarray, list[Any]]:
    """Algorithm 1 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    rule = LocalEntropy(tau, Exact() if estimator is None else estimator)
    return run(rule, loss, x0, n_steps, rng=rng)


def run_heat(loss: Loss, x0: Point, tau: TauLike, n_steps: int, *, estimator: Estimator = None,
             rng: RngLike = None) -> tuple[np.ndarray, list[Any]]:
    """Algorithm 2 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    rule = Heat(tau, ExactProx() if estimator is None else estimator)
    return run(rule, loss, x0, n_steps, rng=rng)


def minimize_local_entropy(loss: Loss, x0: Point, tau: TauLike, n_steps: int, *, estimator: Estimator = None,
                           rng: RngLike = None) -> np.ndarray:
    r"""Algorithm 1: iterates x_0, ..., x_K (shape (n_steps+1, d)) with x_{k+1} = E_{q_{x_k,τ}}[X].

    .. math:: x_{k+1} = \mathbb{E}_{q_{x_k,\tau}}[X] = x_k - \tau\,\nabla F_\tau(x_k) \qquad \text{(eq. 3.5)}

    ``tau`` is a float or a schedule k ↦ τ(k); ``estimator`` any kind-"mean" estimator
    (default exact); ``rng`` an int seed or Generator for the sampling estimators.
    """
    return run_local_entropy(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def minimize_heat(loss: Loss, x0: Point, tau: TauLike, n_steps: int, *, estimator: Estimator = None,
                  rng: RngLike = None) -> np.ndarray:
    r"""Algorithm 2: iterates x_0, ..., x_K with x_{k+1} ∈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}).

    .. math:: x_{k+1} \in \operatorname*{argmin}_x \mathrm{KL}(\varphi_{x,\tau} \,\|\, q_{x_k,\tau})
              = \operatorname*{argmin}_x \Big( F^H_\tau(x) + \frac{|x - x_k|^2}{2\tau} \Big)

    ``estimator`` is any kind-"prox" estimator: ``ExactProx`` (default) or ``RobbinsMonro``.
    """
    return run_heat(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def gradient_descent(grad: Callable[[np.ndarray], ArrayLike], x0: Point, step: float, n_steps: int
                     ) -> np.ndarray:
    """Plain x_{k+1} = x_k − η·grad(x_k), eq. (3.4): the comparison scheme for Algorithm 1."""
    x = np.asarray(x0, dtype=np.float64)
    points = [x]
    for _ in range(check_count(n_steps, "n_steps")):
        x = x - step * np.asarray(grad(x))
        points.append(x)
    return np.stack(points)
