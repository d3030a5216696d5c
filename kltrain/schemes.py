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
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ._checks import as_generator, check_count, check_finite_values, check_point, check_positive
from .estimators import Exact, ExactProx, require_kind
from .losses import check_loss, loss_dim
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

    def init(self, loss, x):
        return self.estimator.init(loss, x, self.tau(0))

    def step(self, rng, state, loss, x, k):
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
    grad_norm: float


@dataclass(frozen=True)
class SGD:
    """Plain (stochastic) gradient descent x_{k+1} = x_k − η∇f(x_k), eq. (3.4): the baseline."""

    learning_rate: float

    def __post_init__(self):
        check_positive(self.learning_rate, "learning_rate")

    def init(self, loss, x):
        return None

    def step(self, rng, state, loss, x, k):
        g = check_finite_values(loss.grad(x), "the loss gradient")
        return x - self.learning_rate * g, state, SGDInfo(float(np.linalg.norm(g)))


@dataclass(frozen=True)
class SwitchAfter:
    """Run ``first`` for ``n_first`` updates, then ``then`` (§6.3: SGD, then IS/SGLD/HR)."""

    first: Any
    then: Any
    n_first: int

    def __post_init__(self):
        check_count(self.n_first, "n_first")

    def init(self, loss, x):
        return (self.first.init(loss, x), None)

    def step(self, rng, state, loss, x, k):
        first_state, then_state = state
        if k < self.n_first:
            x_next, first_state, info = self.first.step(rng, first_state, loss, x, k)
        else:
            if then_state is None:  # the regularized scheme starts where SGD stopped
                then_state = self.then.init(loss, x)
            x_next, then_state, info = self.then.step(rng, then_state, loss, x, k - self.n_first)
        return x_next, (first_state, then_state), info


def run(rule, loss, x0, n_steps, *, rng=None):
    """Iterate an update rule on a fixed loss: ``(points (n_steps+1, d), [info per step])``."""
    check_loss(loss)
    x = check_point(x0, loss_dim(loss), name="x0")
    n_steps = check_count(n_steps, "n_steps")
    rng = as_generator(rng)
    points, infos = [x], []
    state = rule.init(loss, x)
    for k in range(n_steps):
        x, state, info = rule.step(rng, state, loss, x, k)
        x = np.asarray(x, dtype=np.float64)
        points.append(x)
        infos.append(info)
    return np.stack(points), infos


def run_local_entropy(loss, x0, tau, n_steps, *, estimator=None, rng=None):
    """Algorithm 1 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    rule = LocalEntropy(tau, Exact() if estimator is None else estimator)
    return run(rule, loss, x0, n_steps, rng=rng)


def run_heat(loss, x0, tau, n_steps, *, estimator=None, rng=None):
    """Algorithm 2 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    rule = Heat(tau, ExactProx() if estimator is None else estimator)
    return run(rule, loss, x0, n_steps, rng=rng)


def minimize_local_entropy(loss, x0, tau, n_steps, *, estimator=None, rng=None) -> np.ndarray:
    """Algorithm 1: iterates x_0, ..., x_K (shape (n_steps+1, d)) with x_{k+1} = E_{q_{x_k,τ}}[X].

    ``tau`` is a float or a schedule k ↦ τ(k); ``estimator`` any kind-"mean" estimator
    (default exact); ``rng`` an int seed or Generator for the sampling estimators.
    """
    return run_local_entropy(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def minimize_heat(loss, x0, tau, n_steps, *, estimator=None, rng=None) -> np.ndarray:
    """Algorithm 2: iterates x_0, ..., x_K with x_{k+1} ∈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}).

    ``estimator`` is any kind-"prox" estimator: ``ExactProx`` (default) or ``RobbinsMonro``.
    """
    return run_heat(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def gradient_descent(grad, x0, step, n_steps) -> np.ndarray:
    """Plain x_{k+1} = x_k − η·grad(x_k), eq. (3.4): the comparison scheme for Algorithm 1."""
    x = np.asarray(x0, dtype=np.float64)
    points = [x]
    for _ in range(check_count(n_steps, "n_steps")):
        x = x - step * np.asarray(grad(x))
        points.append(x)
    return np.stack(points)


# Peers of Algorithms 1 and 2 (issue 14): Entropy-SGD and SAM, defined in kltrain.peers.
from .peers import SAM, EntropySGD  # noqa: E402,F401  (re-exported: update rules of this module's protocol)
