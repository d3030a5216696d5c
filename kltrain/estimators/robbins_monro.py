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
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._checks import check_count
from ..fastpath import choose_projected, fast_path
from ..losses import loss_grads
from ..noise import counter_normals, draw_seed
from ..schedules import RobbinsMonroSteps


DIVERGED = 1e8  # residual growth that counts as divergence (a converging iteration shrinks it)


class RMInfo(NamedTuple):
    """Diagnostics of a Robbins–Monro step: the last noisy residual, the iterations, the noise seed."""

    residual: float   # |ĥ(x^{J−1})|: the last noisy Euler–Lagrange residual
    n_iter: int
    seed: int         # regenerates every z^{(m)}
    projected: bool | None = None  # True: the reduced iteration ran (kltrain.nets.projected); False: per-sample


def proposal_draws(seed: int, j: int, n_samples: int, dim: int) -> np.ndarray:
    """ε^{(m)} of iteration j, m = 1..M: noise samples (j−1)·M, ..., j·M − 1 of the update."""
    return counter_normals(seed, np.arange((j - 1) * n_samples, j * n_samples), dim)


def robbins_monro(loss: Any, x_k: np.ndarray, tau: float, seed: int, steps: np.ndarray, n_samples: int
                  ) -> tuple[np.ndarray, float]:
    """Algorithm 5, the NumPy reference: (x^J, |ĥ(x^{J−1})|) with a_j = steps[j−1]."""
    x, residual, first = np.array(x_k, dtype=np.float64), 0.0, None
    for j, a in enumerate(steps, start=1):
        z = x + np.sqrt(tau) * proposal_draws(seed, j, n_samples, x.size)   # z^{(m)} ~ φ_{x^{j−1},τ}
        h = x - x_k + tau * loss_grads(loss, z).mean(axis=0)                # eq. (5.3)
        x = x - a * h
        residual = float(np.linalg.norm(h))
        first = residual if first is None else first
        check_stable(first, residual, j, tau)
    return x, residual


def check_stable(first: float, residual: float, j: int, tau: float) -> None:
    """A residual grown by DIVERGED× means a_j·τ·L > 2: the iterates blow up (1e144 after a few steps)."""
    if residual > DIVERGED * max(first, 1.0):
        raise FloatingPointError(f"Robbins–Monro diverged at iteration {j} (τ = {tau!r}): the residual |h| grew "
                                 f"from {first:.3g} to {residual:.3g}; reduce the step constant c or τ")


@dataclass(frozen=True)
class RobbinsMonro:
    r"""Algorithm 5: stochastic root-finding for h(x) = x − x_k + τ E_{φ_{x,τ}}[∇f] = 0.

    .. math:: x^j = x^{j-1} - a_j\Big(x^{j-1} - x_k + \frac{\tau}{M}\sum_{m=1}^M \nabla f(z^{(m)})\Big),
              \quad z^{(m)} \sim \varphi_{x^{j-1},\tau}, \quad a_j = c\,j^{-\alpha} \qquad \text{(eq. 5.3)}

    Parameters
    ----------
    n_iter : J ≥ 1 iterations.
    n_samples : M ≥ 1 draws z ~ φ_{x^j,τ} per iteration.
    c, alpha : steps a_j = c·j^{−α}; c > 0, α ∈ (1/2, 1] (paper §6: c = 0.1, α = 0.7).
    projected : True: the loss's reduced-coordinate fast path (:mod:`kltrain.fastpath`); False:
        per-sample; None (default): whichever the loss's cost model prices lower (``info.projected``).
    fresh_minibatch : each iteration draws a new minibatch via ``loss.resample(rng)``; then ``projected``
        None or True takes the minibatch loss's reduced heat term where it has one, False the per-sample
        gradients.
    """

    kind: ClassVar[str] = "prox"
    n_iter: int
    n_samples: int
    c: float = field(default=0.1, kw_only=True)
    alpha: float = field(default=0.7, kw_only=True)
    projected: bool | None = field(default=None, kw_only=True)
    fresh_minibatch: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        check_count(self.n_iter, "n_iter", 1)
        check_count(self.n_samples, "n_samples", 1)
        RobbinsMonroSteps(self.c, self.alpha)  # validates c and alpha

    def steps(self) -> np.ndarray:
        return RobbinsMonroSteps(self.c, self.alpha)(np.arange(1, self.n_iter + 1))

    def init(self, loss: Any, x_k: np.ndarray, tau: float) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Any, x_k: np.ndarray,
             tau: float) -> tuple[np.ndarray, None, RMInfo]:
        if self.fresh_minibatch:
            return self._fresh(rng, state, loss, x_k, tau)
        seed = draw_seed(rng)
        use = choose_projected(loss, self.projected, "HR", self.n_samples, self.n_iter)
        rm = fast_path(loss, "robbins_monro", use) or partial(robbins_monro, loss)
        x, residual = rm(x_k, tau, seed, self.steps(), self.n_samples)
        return x, state, RMInfo(residual, self.n_iter, seed, projected=use)

    def _fresh(self, rng: np.random.Generator, state: None, loss: Any, x_k: np.ndarray,
               tau: float) -> tuple[np.ndarray, None, RMInfo]:
        """eq. (5.3) with a new minibatch (and noise seed) per iteration (§5.1.1's stochastic gradients)."""
        if not callable(getattr(loss, "resample", None)):
            raise TypeError("fresh_minibatch=True needs a loss with .resample(rng)")
        x, M, residual, first, seed = np.array(x_k, dtype=np.float64), self.n_samples, 0.0, None, 0
        for j, a in enumerate(self.steps(), start=1):
            batch, seed = loss.resample(rng), draw_seed(rng)
            term = fast_path(batch, "heat_gradient_term") if self.projected is not False else None
            if term is not None:  # an MLP minibatch loss: τ·mean ∇f(z_m) on its reduced problem
                g_tau = np.asarray(term(x, tau, seed, M), np.float64)
            else:
                g_tau = tau * loss_grads(batch, x + np.sqrt(tau) * proposal_draws(seed, 1, M, x.size)).mean(axis=0)
            h = x - x_k + g_tau                                   # eq. (5.3)
            x = x - a * h
            residual = float(np.linalg.norm(h))
            first = residual if first is None else first
            check_stable(first, residual, j, tau)
        return x, state, RMInfo(residual, self.n_iter, seed, projected=term is not None)   # heat_gradient_term: reduced
