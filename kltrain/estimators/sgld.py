"""Algorithm 3 of the paper (stochastic gradient Langevin dynamics) for E_{q_{x,τ}}[X].

    x^1 = x, or the previous update's last chain state (warm start, §5.1.1)
    x^{j+1} = x^j − (ε_j/2)(∇f(x^j) − (x − x^j)/τ) + η_j,   η_j ~ N(0, T·ε_j I),  j = 1..J−1
    E_q[X] ≈ Σ_{j=1}^J ε_j x^j / Σ_{j=1}^J ε_j

The drift is ½∇log q_{x,τ}: q ∝ exp(−f(x') − |x − x'|²/2τ) (eq. 2.6).

Paper symbols → arguments: J ``n_steps``; ε_j ``temperatures`` (default
1/(1000 + j), §6.2); the minibatch is the loss's business: by default every
inner step uses the update's minibatch (the paper), with ``fresh_minibatch``
each inner step calls ``loss.resample(rng)`` for a new one (§5.1.1's stochastic
gradients). η_j = √(T·ε_j) · ε[j, :] from the counter-based generator
(:mod:`kltrain.noise`), with the temperature T = ``temperature`` = 1 as printed in
the paper (the paper has no other noise level).

Temperature. With noise variance T·ε_j the chain targets q_{x,τ}^{1/T} ∝
exp(−(f(x') + |x − x'|²/2τ)/T), not q_{x,τ}. For T < 1 that law concentrates on
q's mode, argmin_{x'} f(x') + |x − x'|²/2τ = prox_{τf}(x); as T → 0 the estimate
tends to prox_{τf}(x), and Algorithm 1 becomes a proximal-point step on f
(close to SGD with step τ), no longer x_{k+1} = E_q[X]. T ≠ 1 is therefore a
different algorithm, not a tuning of Algorithm 3.

When to trust it (mixing). The chain runs for a total time Σ_j ε_j; with the
paper's ε_j = 1/(1000 + j) and J = 10³ that is ≈ ln 2 ≈ 0.69. The pull towards x
relaxes on the time scale 2τ, so Σε_j ≫ 2τ is needed just to forget the start, and
far more where q has a barrier (a second mode) to cross. On the wide-and-sharp toy
at x = (0.5, 0.5), τ = 0.2 (Σε_j/τ ≈ 3.5), 20 seeds average to about (0.08, 0.35)
against the exact E_q[X] = (0.95, 0.46): biased however many seeds are averaged.
``python -m validation`` measures this bias against Σε_j/τ (check "sgld_mixing").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._checks import check_chain, check_count, check_finite_result, check_positive
from ..fastpath import choose_projected, fast_path
from ..losses import loss_grad
from ..noise import draw_seed, noise_rows
from ..schedules import HarmonicTemperatures, temperatures_array


class SGLDState(NamedTuple):
    """What SGLD keeps between updates: the chain's last state (the warm start of §5.1.1)."""

    chain: np.ndarray | None  # last chain state, the next update's x^1 when warm-starting


class SGLDInfo(NamedTuple):
    """Diagnostics of an SGLD update: the chain's distance from x, the last gradient norm, the noise seed."""

    distance: float    # ‖x − x^J‖: how far the chain ended from the anchor x
    grad_norm: float   # ‖∇f(x^{J−1})‖ at the last gradient evaluation
    seed: int          # regenerates every η_j
    projected: bool | None = None  # True: the reduced chain ran (kltrain.nets.projected); False: per-sample


def langevin_step(x: np.ndarray, chain: np.ndarray, grad: np.ndarray, eps_j: float, tau: float,
                  noise: np.ndarray, noise_scale: float = 1.0) -> np.ndarray:
    """x^{j+1} = x^j − (ε_j/2)(∇f(x^j) − (x − x^j)/τ) + s√ε_j·noise: drift ½∇log q_{x,τ} (eq. 2.6)."""
    return chain - 0.5 * eps_j * (grad - (x - chain) / tau) + noise_scale * np.sqrt(eps_j) * noise


def sgld_chain(loss: Any, x: np.ndarray, tau: float, seed: int, start: np.ndarray, eps: np.ndarray,
               noise_scale: float = 1.0, rng: np.random.Generator | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Algorithm 3, the NumPy reference: (Σ_j ε_j x^j / Σ_j ε_j, x^J, ‖∇f(x^{J−1})‖).

    ``eps`` holds ε_1..ε_J; transition j uses noise sample j; ``rng`` given: a fresh
    minibatch per inner step (``loss.resample(rng)``).
    """
    chain = np.array(start, dtype=np.float64)
    total, grad_norm = eps[0] * chain, 0.0
    scale, what = chain_scale(x, chain, tau), f"the SGLD chain (τ = {tau!r})"
    for j, noise in enumerate(noise_rows(seed, 1, eps.size, chain.size), start=1):   # chain is x^j
        batch = loss if rng is None else loss.resample(rng)
        g = loss_grad(batch, chain)                                                 # ∇f, shape and finiteness checked
        chain = langevin_step(x, chain, g, eps[j - 1], tau, noise, noise_scale)
        check_chain(chain, x, scale, what, j)          # its own overflow, before the loss sees the point
        total += eps[j] * chain                                                       # Σ ε_j x^j
        grad_norm = float(np.linalg.norm(g))
    return total / eps.sum(), chain, grad_norm


def chain_scale(x: np.ndarray, start: np.ndarray, tau: float) -> float:
    """The distance a sane chain on q_{x,τ} keeps from x: max(1, √(τd), |x^1 − x|) (see check_chain)."""
    return max(1.0, float(np.sqrt(tau * x.size)), float(np.linalg.norm(start - x)))


@dataclass(frozen=True)
class SGLD:
    r"""Algorithm 3: a weighted time average of a Langevin chain targeting q_{x,τ}.

    .. math:: x^{j+1} = x^j - \frac{\varepsilon_j}{2}\Big(\nabla f(x^j) - \frac{x - x^j}{\tau}\Big) + \eta_j,
              \quad \eta_j \sim \mathcal{N}(0, T\varepsilon_j I), \qquad
              \mathbb{E}_{q_{x,\tau}}[X] \approx \frac{\sum_j \varepsilon_j x^j}{\sum_j \varepsilon_j}

    Parameters
    ----------
    n_steps : J ≥ 1, chain length (J − 1 transitions).
    temperatures : callable j ↦ ε_j (j = 1..J) or a length-J sequence; default 1/(1000 + j).
    warm_start : start the chain at the previous update's last state (paper §5.1.1).
    fresh_minibatch : draw a new minibatch per inner step via ``loss.resample(rng)``.
    temperature : T > 0, Langevin noise variance T·ε_j (1 = Algorithm 3 as printed); the
        chain targets q^{1/T}, tending to prox_{τf}(x) as T → 0 (see above).
    projected : True: the loss's reduced-coordinate fast path (:mod:`kltrain.fastpath`), not with
        ``fresh_minibatch``; False: per-sample; None (default): whichever the loss's cost model
        prices lower (per-sample with ``fresh_minibatch``); ``info.projected`` says which ran.
    """

    kind: ClassVar[str] = "mean"
    n_steps: int
    temperatures: Any = field(default=None, kw_only=True)
    warm_start: bool = field(default=True, kw_only=True)
    fresh_minibatch: bool = field(default=False, kw_only=True)
    projected: bool | None = field(default=None, kw_only=True)
    temperature: float = field(default=1.0, kw_only=True)

    def __post_init__(self):
        check_count(self.n_steps, "n_steps", 1)
        check_positive(self.temperature, "temperature")
        if self.projected and self.fresh_minibatch:
            raise ValueError("projected=True needs one minibatch per update; it cannot use fresh_minibatch=True")
        self.eps()  # validate temperatures now, not at the first step

    @property
    def noise_scale(self) -> float:
        """√T: the factor on √ε_j·ξ_j that the kernels take."""
        return float(np.sqrt(self.temperature))

    def eps(self) -> np.ndarray:
        temps = HarmonicTemperatures() if self.temperatures is None else self.temperatures
        return temperatures_array(temps, self.n_steps)

    def init(self, loss: Any, x: np.ndarray, tau: float) -> SGLDState:
        return SGLDState(chain=np.array(x, dtype=np.float64))

    def start(self, state: SGLDState | None, x: np.ndarray) -> np.ndarray:
        return state.chain if self.warm_start and state is not None and state.chain is not None else x

    def step(self, rng: np.random.Generator, state: SGLDState | None, loss: Any, x: np.ndarray,
             tau: float) -> tuple[np.ndarray, SGLDState, SGLDInfo]:
        if self.fresh_minibatch and not callable(getattr(loss, "resample", None)):
            raise TypeError("fresh_minibatch=True needs a loss with .resample(rng)")
        seed = draw_seed(rng)
        use = not self.fresh_minibatch and choose_projected(loss, self.projected, "SGLD", self.n_steps)
        chain_fn = fast_path(loss, "sgld_chain", use) or partial(sgld_chain, loss)
        start = self.start(state, x)
        mean, chain, grad_norm = chain_fn(x, tau, seed, start, self.eps(), self.noise_scale,
                                          rng if self.fresh_minibatch else None)
        # a fast path runs the chain in a kernel: its end and its average are checked here
        check_chain(np.asarray(chain, dtype=np.float64), x, chain_scale(x, start, tau),
                    f"the SGLD chain (τ = {tau!r})", self.n_steps)
        check_finite_result(np.asarray(mean), "the SGLD average", tau=tau, estimator=self)
        return mean, SGLDState(chain), SGLDInfo(float(np.linalg.norm(x - chain)), grad_norm, seed, projected=use)


def sgld_stability_hint(eps: np.ndarray, tau: float) -> str:
    """Why a chain blew up when ε_j ≥ 4τ: the pull (ε_j/2τ)(x − x^j) alone then oscillates without decay (or grows)."""
    worst = float(np.max(eps))
    if worst < 4 * tau:
        return ""
    return (f"; ε_j reaches {worst:.3g} ≥ 4τ = {4 * tau:.3g}, where the Langevin step's pull toward x, "
            f"x^j − x ← (1 − ε_j/2τ)(x^j − x), no longer contracts: use τ > ε_j/4 or smaller ε_j")
