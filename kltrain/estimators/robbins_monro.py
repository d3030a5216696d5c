"""Algorithm 5 of the paper (Robbins–Monro, eq. 5.3) for the step of Algorithm 2.

The minimiser of x ↦ KL(φ_{x,τ} ‖ q_{x_k,τ}) solves (§5.2)

    h(x) = x − x_k + τ E_{Y∼φ_{x,τ}}[∇f(Y)] = 0,

and Robbins–Monro finds that root from noisy evaluations of h:

    x^0 = x_k
    x^j = x^{j−1} − a_j ( x^{j−1} − x_k + (τ/M) Σ_m ∇f(z^{(m)}) ),  z^{(m)} ~ φ_{x^{j−1},τ},  j = 1..J

with a_j = c·j^{−α}, α ∈ (1/2, 1]. (The paper prints a^l = c·l^α; see
:class:`kltrain.schedules.RobbinsMonroSteps` for why the exponent must be negative.)

Paper symbols → arguments: J ``n_iter``; M ``n_samples``; c, α ``c``, ``alpha``.
The M draws per iteration are evaluated as one batch (``loss.grads``). By default
every iteration uses the update's minibatch; with ``fresh_minibatch`` iteration j
uses a new one, ``loss.resample(rng)`` (the stochastic-gradient reading of §5.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np

from .._checks import check_count
from ..losses import loss_grads
from ..noise import counter_normals, draw_seed
from ..schedules import RobbinsMonroSteps


class RMInfo(NamedTuple):
    residual: float   # |ĥ(x^{J−1})|: the last noisy Euler–Lagrange residual
    n_iter: int
    seed: int         # regenerates every z^{(m)}


@dataclass(frozen=True)
class RobbinsMonro:
    """Algorithm 5: stochastic root-finding for h(x) = x − x_k + τ E_{φ_{x,τ}}[∇f] = 0.

    Parameters
    ----------
    n_iter : J ≥ 1 iterations.
    n_samples : M ≥ 1 draws z ~ φ_{x^j,τ} per iteration.
    c, alpha : steps a_j = c·j^{−α}; c > 0, α ∈ (1/2, 1] (paper §6: c = 0.1, α = 0.7).
    projected : for an MLP minibatch loss, iterate in the minibatch's reduced coordinates
        (:mod:`kltrain.projected`); same distribution, ~10× less work.
    fresh_minibatch : each iteration draws a new minibatch via ``loss.resample(rng)``.
    """

    kind: ClassVar[str] = "prox"
    n_iter: int
    n_samples: int
    c: float = field(default=0.1, kw_only=True)
    alpha: float = field(default=0.7, kw_only=True)
    projected: bool = field(default=False, kw_only=True)
    fresh_minibatch: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        check_count(self.n_iter, "n_iter", 1)
        check_count(self.n_samples, "n_samples", 1)
        RobbinsMonroSteps(self.c, self.alpha)  # validates c and alpha

    def steps(self) -> np.ndarray:
        return RobbinsMonroSteps(self.c, self.alpha)(np.arange(1, self.n_iter + 1))

    def init(self, loss, x_k, tau):
        return None

    def step(self, rng, state, loss, x_k, tau):
        if self.fresh_minibatch:
            return self._fresh(rng, state, loss, x_k, tau)
        seed = draw_seed(rng)
        fast = getattr(loss, "projected_robbins_monro" if self.projected else "robbins_monro", None)
        if self.projected and not callable(fast):
            raise TypeError(f"projected=True needs an MLP minibatch loss; got {type(loss).__name__}")
        if callable(fast):  # e.g. an MLP minibatch loss with numba kernels
            x, residual = fast(x_k, tau, self.steps(), self.n_samples, seed)
            return x, state, RMInfo(residual, self.n_iter, seed)
        x, M, residual = np.array(x_k, dtype=np.float64), self.n_samples, 0.0
        for j, a in enumerate(self.steps(), start=1):
            z = x + np.sqrt(tau) * counter_normals(seed, np.arange((j - 1) * M, j * M), x.size)
            h = x - x_k + tau * loss_grads(loss, z).mean(axis=0)   # eq. (5.3)
            x = x - a * h
            residual = float(np.linalg.norm(h))
        return x, state, RMInfo(residual, self.n_iter, seed)

    def _fresh(self, rng, state, loss, x_k, tau):
        """eq. (5.3) with a new minibatch (and noise seed) per iteration."""
        if not callable(getattr(loss, "resample", None)):
            raise TypeError("fresh_minibatch=True needs a loss with .resample(rng)")
        x, M, residual = np.array(x_k, dtype=np.float64), self.n_samples, 0.0
        for a in self.steps():
            batch, seed = loss.resample(rng), draw_seed(rng)
            term = getattr(batch, "heat_gradient_term", None)
            if callable(term):  # an MLP minibatch loss: τ·mean ∇f(z_m) on its reduced problem
                g_tau = np.asarray(term(x, tau, M, seed), np.float64)
            else:
                z = x + np.sqrt(tau) * counter_normals(seed, np.arange(M), x.size)
                g_tau = tau * loss_grads(batch, z).mean(axis=0)
            h = x - x_k + g_tau   # eq. (5.3)
            x = x - a * h
            residual = float(np.linalg.norm(h))
        return x, state, RMInfo(residual, self.n_iter, seed)
