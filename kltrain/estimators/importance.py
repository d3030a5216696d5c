"""Algorithm 4 of the paper (importance sampling, eq. 5.2): a gradient-free E_{q_{x,τ}}[X].

    x_j = x + √τ ε_j,  ε_j ~ N(0, I)          samples from the proposal φ_{x,τ}
    log w_j = −f(x_j)                          log weights (never exponentiated raw)
    E_q[X] ≈ Σ_j w_j x_j / Σ_j w_j = x + √τ Σ_j w_j ε_j / Σ_j w_j

Paper symbols → arguments: J ``n_samples``; τ ``tau``; the ε_j come from the
counter-based generator of :mod:`kltrain.noise`, so sample j is regenerated
from (seed, j) and never stored.

Sharding (the paper's parallel remark, §5.1.2): a shard of samples [start, stop)
reduces to an :class:`ISPartial` — its largest log weight m and the sums
Σ e^{lw−m}, Σ e^{2(lw−m)}, Σ e^{lw−m} ε_j. ``combine`` rescales partials to a
common m, so L shards give the same estimate as one run over their union, up
to rounding, in any order. ESS = (Σw)² / Σw² (blackjax's ``smc/ess.py``).

Antithetic pairs: samples 2p and 2p+1 use ε and −ε.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np

from .._checks import check_count
from ..losses import loss_values
from ..noise import counter_normals, draw_seed

CHUNK = 4096  # samples evaluated per batch in the generic path (bounds memory at CHUNK × d)


class ISPartial(NamedTuple):
    """Log-space sufficient statistics of importance weights over a shard of samples."""

    log_scale: float        # m = max_j log w_j over the shard
    sum_w: float            # Σ_j e^{log w_j − m}
    sum_w2: float           # Σ_j e^{2(log w_j − m)}
    sum_w_eps: np.ndarray   # Σ_j e^{log w_j − m} ε_j, shape (d,)
    n: int                  # number of samples


class ISInfo(NamedTuple):
    """Diagnostics of one importance-sampling estimate."""

    ess: float              # effective sample size, in [1, J]
    max_weight: float       # largest normalised weight, in [1/J, 1]
    log_weights: np.ndarray | None  # −f(x_j), when kept
    seed: int               # regenerates every ε_j


def partial_from_log_weights(log_w: np.ndarray, eps: np.ndarray) -> ISPartial:
    """Reduce a shard's log weights (n,) and noise rows (n, d) to an ISPartial."""
    m = float(np.max(log_w))
    w = np.exp(log_w - m)
    return ISPartial(m, float(w.sum()), float(w @ w), w @ eps, int(log_w.size))


def combine(partials) -> ISPartial:
    """Exact log-space consolidation of shards (any order, any sizes)."""
    partials = list(partials)
    if not partials:
        raise ValueError("combine needs at least one partial")
    m = max(p.log_scale for p in partials)
    scale = [np.exp(p.log_scale - m) for p in partials]
    return ISPartial(m, sum(s * p.sum_w for s, p in zip(scale, partials)),
                     sum(s * s * p.sum_w2 for s, p in zip(scale, partials)),
                     sum(s * p.sum_w_eps for s, p in zip(scale, partials)),
                     sum(p.n for p in partials))


def posterior_mean_from_partial(partial: ISPartial, x: np.ndarray, tau: float) -> np.ndarray:
    """eq. (5.2): x + √τ Σ w_j ε_j / Σ w_j."""
    return x + np.sqrt(tau) * partial.sum_w_eps / partial.sum_w


def effective_sample_size(partial: ISPartial) -> float:
    return float(partial.sum_w ** 2 / partial.sum_w2)


def rescaled_partial(log_w: np.ndarray, beta: float, seed: int, start: int, dim: int, antithetic: bool,
                     normals=None):
    """(ISPartial, log weights) of IS on β·f from the log weights −f(x_j) of samples [start, start + n).

    Same ε_j (regenerated from the counter stream by ``normals(seed, samples, dim)``, e.g. a
    backend's; default :func:`kltrain.noise.counter_normals`), log weights multiplied by β:
    log w_j = −β f(x_j). β = 1 returns the same estimate up to rounding.
    """
    log_w = np.asarray(log_w) * beta
    rows = max(1, 2 ** 22 // max(dim, 1))  # noise rows per chunk (bounded memory)
    stop = start + log_w.size
    parts = [partial_from_log_weights(log_w[lo - start:min(lo + rows, stop) - start],
                                      proposal_noise(seed, lo, min(lo + rows, stop), dim, antithetic, normals))
             for lo in range(start, stop, rows)]
    return combine(parts), log_w


def proposal_noise(seed: int, start: int, stop: int, dim: int, antithetic: bool, normals=None) -> np.ndarray:
    """ε_j for j in [start, stop): counter normals (``normals``, default counter_normals), ±pairs when antithetic."""
    normals = counter_normals if normals is None else normals
    j = np.arange(start, stop)
    if not antithetic:
        return np.asarray(normals(seed, j, dim), np.float64)
    sign = np.where(j % 2 == 0, 1.0, -1.0)[:, None]
    return sign * np.asarray(normals(seed, j // 2, dim), np.float64)


@dataclass(frozen=True)
class ImportanceSampling:
    """Algorithm 4: self-normalised importance sampling with proposal φ_{x,τ}.

    Parameters
    ----------
    n_samples : J, the number of proposal samples (≥ 1).
    antithetic : use pairs (ε, −ε); halves the noise draws, cancels odd moments.
    keep_log_weights : put all J log weights in the info (for diagnostics/plots).
    projected : for an MLP loss, draw the exact-in-distribution projected update
        (see :mod:`kltrain.projected`) instead of explicit per-sample noise.
    """

    kind: ClassVar[str] = "mean"
    n_samples: int
    antithetic: bool = field(default=False, kw_only=True)
    keep_log_weights: bool = field(default=True, kw_only=True)
    projected: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        check_count(self.n_samples, "n_samples", 1)

    def partial(self, loss, x, tau, seed: int, start: int = 0, stop: int | None = None):
        """The ISPartial of samples [start, stop) and their log weights (or None)."""
        stop = self.n_samples if stop is None else stop
        fast = getattr(loss, "importance_partial", None)
        if callable(fast):  # e.g. an MLP minibatch loss with numba kernels
            return fast(x, tau, seed, start, stop, self.antithetic)
        parts, log_ws = [], []
        for lo in range(start, stop, CHUNK):
            eps = proposal_noise(seed, lo, min(lo + CHUNK, stop), x.size, self.antithetic)
            log_w = -loss_values(loss, x + np.sqrt(tau) * eps)
            parts.append(partial_from_log_weights(log_w, eps))
            log_ws.append(log_w)
        return combine(parts), np.concatenate(log_ws)

    def init(self, loss, x, tau):
        return None

    def step(self, rng, state, loss, x, tau):
        seed = draw_seed(rng)
        if self.projected:
            update = getattr(loss, "projected_importance_update", None)
            if not callable(update):
                raise TypeError(f"projected=True needs an MLP minibatch loss; got {type(loss).__name__}")
            mean, info = update(x, tau, seed, self.n_samples, self.antithetic)
            return mean, state, info
        part, log_w = self.partial(loss, x, tau, seed)
        info = ISInfo(effective_sample_size(part), float(1.0 / part.sum_w),
                      log_w if self.keep_log_weights else None, seed)
        return posterior_mean_from_partial(part, x, tau), state, info
