"""Algorithm 5 of the paper (Robbins–Monro, eq. 5.3) for the step of Algorithm 2.

The minimiser of x ↦ KL(φ_{x,τ} ‖ q_{x_k,τ}) solves (§5.2)

    h(x) = x − x_k + τ E_{Y∼φ_{x,τ}}[∇f(Y)] = 0,

and Robbins–Monro finds that root from noisy evaluations of h:

    x^0 = x_k
    x^j = x^{j−1} − a_j ( x^{j−1} − x_k + (τ/M) Σ_m ∇f(z^{(m)}) ),  z^{(m)} ~ φ_{x^{j−1},τ},  j = 1..J

with a_j = c·j^{−α}, α ∈ (1/2, 1]. (The paper prints a^l = c·l^α; see
:class:`kltrain.schedules.RobbinsMonroSteps` for why the exponent must be negative.)

Paper symbols → arguments: J ``n_iter``; M ``n_samples``; c, α ``c``, ``alpha``.
The M draws per iteration are evaluated as one batch (``loss.grads``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np

from .._checks import check_count
from ..losses import loss_grads
from ..noise import counter_normals, draw_seed
from ..schedules import RobbinsMonroSteps


DIVERGED = 1e8  # residual growth that counts as divergence (a converging iteration shrinks it)


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
    """

    kind: ClassVar[str] = "prox"
    n_iter: int
    n_samples: int
    c: float = field(default=0.1, kw_only=True)
    alpha: float = field(default=0.7, kw_only=True)
    projected: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        check_count(self.n_iter, "n_iter", 1)
        check_count(self.n_samples, "n_samples", 1)
        RobbinsMonroSteps(self.c, self.alpha)  # validates c and alpha

    def steps(self) -> np.ndarray:
        return RobbinsMonroSteps(self.c, self.alpha)(np.arange(1, self.n_iter + 1))

    def init(self, loss, x_k, tau):
        return None

    def step(self, rng, state, loss, x_k, tau):
        seed = draw_seed(rng)
        fast = getattr(loss, "projected_robbins_monro" if self.projected else "robbins_monro", None)
        if self.projected and not callable(fast):
            raise TypeError(f"projected=True needs an MLP minibatch loss; got {type(loss).__name__}")
        if callable(fast):  # e.g. an MLP minibatch loss with numba kernels
            x, residual = fast(x_k, tau, self.steps(), self.n_samples, seed)
            return x, state, RMInfo(residual, self.n_iter, seed)
        x, M, residual, first = np.array(x_k, dtype=np.float64), self.n_samples, 0.0, None
        for j, a in enumerate(self.steps(), start=1):
            z = x + np.sqrt(tau) * counter_normals(seed, np.arange((j - 1) * M, j * M), x.size)
            h = x - x_k + tau * loss_grads(loss, z).mean(axis=0)   # eq. (5.3)
            x = x - a * h
            residual = float(np.linalg.norm(h))
            first = residual if first is None else first
            self._check_stable(first, residual, j, tau)
        return x, state, RMInfo(residual, self.n_iter, seed)

    def _check_stable(self, first, residual, j, tau):
        """A residual grown by DIVERGED× means a_j·τ·L > 2: the iterates blow up (1e144 after a few steps)."""
        if residual > DIVERGED * max(first, 1.0):
            raise FloatingPointError(f"Robbins–Monro diverged at iteration {j} (τ = {tau!r}, c = {self.c!r}): "
                                     f"the residual |h| grew from {first:.3g} to {residual:.3g}; reduce c or τ")
