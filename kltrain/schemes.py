"""Algorithms 1 and 2 of the paper: the two-step schemes for F_τ and F^H_τ.

Algorithm 1 (§3.1): x_{k+1} = E_{q_{x_k,τ}}[X] = argmin_x KL(q_{x_k,τ} ‖ φ_{x,τ}).
    By eq. (3.5) this *is* gradient descent on F_τ with learning rate η = τ,
    and F_τ(x_k) never increases (Theorem 3.2).

Algorithm 2 (§4.1): x_{k+1} ∈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}).
    Since KL(φ_{x,τ} ‖ q_{x_k,τ}) = F^H_τ(x) + |x − x_k|²/(2τ) + const, this is
    the proximal-point method on F^H_τ with step τ, and F^H_τ(x_k) never
    increases (Theorem 4.2).

Both take any estimator of the matching kind (kltrain.estimators): exact by
default, or importance sampling / SGLD (Alg. 1), Robbins–Monro (Alg. 2).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_count, check_point, check_tau
from .estimators import Exact, ExactProx, require_kind
from .losses import check_loss, loss_dim


def _iterate(loss, x0, tau, n_steps, estimator, rng, kind: str, where: str):
    check_loss(loss)
    x = check_point(x0, loss_dim(loss), name="x0")
    tau = check_tau(tau)
    n_steps = check_count(n_steps, "n_steps")
    require_kind(estimator, kind, where)
    rng = as_generator(rng)
    points, infos = [x], []
    state = estimator.init(loss, x, tau)
    for _ in range(n_steps):
        x, state, info = estimator.step(rng, state, loss, x, tau)
        x = np.asarray(x, dtype=np.float64)
        points.append(x)
        infos.append(info)
    return np.stack(points), infos


def run_local_entropy(loss, x0, tau, n_steps, *, estimator=None, rng=None):
    """Algorithm 1 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    estimator = Exact() if estimator is None else estimator
    return _iterate(loss, x0, tau, n_steps, estimator, rng, "mean", "minimize_local_entropy")


def run_heat(loss, x0, tau, n_steps, *, estimator=None, rng=None):
    """Algorithm 2 with diagnostics: ``(points (n_steps+1, d), [info per step])``."""
    estimator = ExactProx() if estimator is None else estimator
    return _iterate(loss, x0, tau, n_steps, estimator, rng, "prox", "minimize_heat")


def minimize_local_entropy(loss, x0, tau, n_steps, *, estimator=None, rng=None) -> np.ndarray:
    """Algorithm 1: iterates x_0, ..., x_K (shape (n_steps+1, d)) with x_{k+1} = E_{q_{x_k,τ}}[X]."""
    return run_local_entropy(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def minimize_heat(loss, x0, tau, n_steps, *, estimator=None, rng=None) -> np.ndarray:
    """Algorithm 2: iterates x_0, ..., x_K with x_{k+1} ∈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ})."""
    return run_heat(loss, x0, tau, n_steps, estimator=estimator, rng=rng)[0]


def gradient_descent(grad, x0, step, n_steps) -> np.ndarray:
    """Plain x_{k+1} = x_k − η·grad(x_k), eq. (3.4): the comparison scheme for Algorithm 1."""
    x = np.asarray(x0, dtype=np.float64)
    points = [x]
    for _ in range(check_count(n_steps, "n_steps")):
        x = x - step * np.asarray(grad(x))
        points.append(x)
    return np.stack(points)
