"""Algorithm 4 of the paper (importance sampling, eq. 5.2): a gradient-free E_{q_{x,τ}}[X].

    x_j = x + √τ ε_j,  ε_j ~ N(0, I)          samples from the proposal φ_{x,τ}
    log w_j = −f(x_j)                          log weights (never exponentiated raw)
    E_q[X] ≈ Σ_j w_j x_j / Σ_j w_j = x + √τ Σ_j w_j ε_j / Σ_j w_j

Paper symbols → arguments: J ``n_samples``; τ ``tau``; the ε_j come from the
counter-based generator of :mod:`kltrain.noise`, so sample j is regenerated
from (seed, j) and never stored.

Sharding (the paper's parallel remark, §5.1.2): a shard of samples [start, stop)
reduces to an :class:`~kltrain.fastpath.ISPartial` — its largest log weight m and the sums
Σ e^{lw−m}, Σ e^{2(lw−m)}, Σ e^{lw−m} ε_j. ``combine`` rescales partials to a
common m, so L shards give the same estimate as one run over their union, up
to rounding, in any order. ESS = (Σw)² / Σw² (blackjax's ``smc/ess.py``).

Antithetic pairs: samples 2p and 2p+1 use ε and −ε.

Two diagnostics say when the estimate is not to be trusted. ESS ≈ 1 (fewer than two effective
samples) at J ≥ 100 means one sample carries the estimate: ``on_collapse`` warns (default),
raises :class:`ESSCollapse` (a FloatingPointError) or ignores it. The Pareto k̂ of the weights
(PSIS, Vehtari et al., "Pareto smoothed importance sampling", JMLR 2024) estimates the shape of
their right tail: k̂ > 0.7 means the weights' variance is (nearly) infinite and the estimate's
error falls slower than J^{−1/2}, however large the ESS looks; it is computed with the optional
``arviz-stats`` (``pip install 'kltrain[psis]'``) and is ``None`` without it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any, ClassVar, Iterable, NamedTuple

import numpy as np

from .._checks import check_count
from ..fastpath import ISPartial, choose_projected, fast_path
from ..losses import loss_values
from ..noise import counter_normals, draw_seed

MAX_SAMPLES = 2 ** 32 - 2  # sample indices wrap at 2³²; 2³² − 1 and − 2 are kltrain.nets.projected's extra draws
CHUNK = 4096           # samples evaluated per batch by the reference path ...
CHUNK_VALUES = 2 ** 22  # ... and at most this many noise numbers (4M float64 = 32 MB)


class ISInfo(NamedTuple):
    """Diagnostics of one importance-sampling estimate."""

    ess: float              # effective sample size, in [1, J]
    max_weight: float       # largest normalised weight, in [1/J, 1]
    log_weights: np.ndarray | None  # −f(x_j), when kept
    seed: int               # regenerates every ε_j
    pareto_k: float | None = None  # PSIS k̂ of the weights' tail (> 0.7: unreliable); None without arviz-stats
    projected: bool | None = None  # True: the reduced update ran (kltrain.nets.projected); False: per-sample


COLLAPSE_ACTIONS = ("warn", "raise", "ignore")
ESS_COLLAPSED = 2.0          # fewer than two effective samples: the estimate is one sample
COLLAPSE_MIN_SAMPLES = 100   # below this J an ESS near 1 is no surprise
PARETO_K_UNRELIABLE = 0.7    # Vehtari et al. (2024): above it the weights' tail is too heavy to trust


class ESSCollapseWarning(RuntimeWarning):
    """Importance sampling's effective sample size collapsed to about 1 (the estimate is one sample)."""


class ParetoKWarning(RuntimeWarning):
    """The importance weights' Pareto k̂ exceeds 0.7: their tail is too heavy for a reliable estimate."""


class ESSCollapse(FloatingPointError):
    """Raised instead of :class:`ESSCollapseWarning` with ``on_collapse="raise"``."""


def check_collapse(ess: float, n_samples: int, tau: Any, estimator: Any, action: str) -> None:
    """Warn (or raise, or nothing, per ``action``) when ESS < 2 with J >= 100 samples.

    The warning's text is fixed (no per-call numbers), so Python shows it once per call site
    rather than once per update of a training run; ESS and τ are in the info.
    """
    if action == "ignore" or n_samples < COLLAPSE_MIN_SAMPLES or not ess < ESS_COLLAPSED:
        return
    name = type(estimator).__name__
    if action == "raise":
        raise ESSCollapse(f"{name}: the effective sample size collapsed to {ess:.3g} of J = {n_samples} samples "
                          f"at τ = {tau}: the estimate is one sample; lower τ or raise J")
    warnings.warn(f"{name}: the effective sample size collapsed to about 1 of J = {n_samples} samples, so the "
                  f"estimate is one sample; lower τ or raise J (on_collapse='raise' makes this an error)",
                  ESSCollapseWarning, stacklevel=4)


@cache
def _pareto_khat_fn():
    """arviz-stats' k̂ of a weight vector, or None when arviz-stats is not installed."""
    try:
        from arviz_stats.base import array_stats
    except ImportError:
        return None
    return lambda w: array_stats.pareto_khat(w, chain_axis=None, draw_axis=-1, tail="right", r_eff=1.0)


def pareto_k(log_weights: np.ndarray) -> float | None:
    """PSIS k̂ of the importance weights e^{lw} (right tail, r_eff = 1); None without arviz-stats.

    NaN where no generalized-Pareto tail can be fitted: fewer than 25 samples (arviz-stats needs
    5 tail draws, 3√J of them past J = 225, J/5 below), a flat tail (equal weights), or a tail
    whose weights underflow e^{lw − max lw} (spanning more than 745 nats: ESS ≈ 1 says it then).
    """
    fit = _pareto_khat_fn()
    if fit is None:
        return None
    log_weights = np.asarray(log_weights, dtype=np.float64)
    n = log_weights.size
    n_tail = int(3 * np.sqrt(n)) if n > 225 else n // 5
    if n_tail < 5:
        return float("nan")
    w = np.exp(log_weights - np.max(log_weights))
    tail = np.partition(w, n - n_tail - 1)[n - n_tail - 1:]    # the tail draws and the cutoff below them
    if not np.all(tail > 0) or np.ptp(tail) == 0:
        return float("nan")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fit(w))


def check_pareto_k(k: float | None, estimator: Any) -> None:
    """One warning line when k̂ > 0.7 (fixed text: shown once per call site)."""
    if k is not None and k > PARETO_K_UNRELIABLE:
        warnings.warn(f"{type(estimator).__name__}: the importance weights' Pareto k̂ exceeds "
                      f"{PARETO_K_UNRELIABLE} (heavy tail): the estimate is unreliable; k̂ is in the info",
                      ParetoKWarning, stacklevel=4)


def check_sample_range(start: int, stop: int) -> None:
    """Refuse an empty sample range ``[start, stop)`` with a ``ValueError`` naming it."""
    if stop <= start:
        raise ValueError(f"importance sampling needs at least one sample, got samples [{start}, {stop})")


def check_log_weights(log_w: np.ndarray, tau: float, start: int = 0) -> None:
    """FloatingPointError naming the loss if a log weight −f(x_j) is NaN or +inf, or none is finite.

    Any of these would make the estimate NaN or, worse, silently drop samples.
    """
    log_w = np.asarray(log_w)
    bad = np.isnan(log_w) | (log_w == np.inf)
    if np.any(bad):
        j = int(np.argmax(bad))
        raise FloatingPointError(f"importance sampling (τ = {tau!r}): the loss f(x + √τ ε_j) is {float(-log_w[j])!r} "
                                 f"at sample j = {start + j}; every sample's loss must be finite")
    if log_w.size and not np.any(np.isfinite(log_w)):
        raise FloatingPointError(f"importance sampling (τ = {tau!r}): the loss is +inf at all {log_w.size} "
                                 f"samples, so no weight is left")


def partial_from_log_weights(log_w: np.ndarray, eps: np.ndarray) -> ISPartial:
    """Reduce a shard's log weights (n,) and noise rows (n, d) to an ISPartial."""
    m = float(np.max(log_w))
    w = np.exp(log_w - m)
    return ISPartial(m, float(w.sum()), float(w @ w), w @ eps, int(log_w.size))


def combine(partials: Iterable[ISPartial]) -> ISPartial:
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
    """(Σw)²/Σw² of the normalised importance weights of a partial: J for equal weights, 1 for one dominant."""
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


def importance_partial(loss: Any, x: np.ndarray, tau: float, seed: int, start: int, stop: int,
                       antithetic: bool = False) -> tuple[ISPartial, np.ndarray]:
    """Algorithm 4 over samples [start, stop), the NumPy reference: (ISPartial, log weights).

    Samples are evaluated in chunks of at most CHUNK rows and CHUNK_VALUES numbers, so that
    memory stays bounded for an MLP's 159,010 coordinates.
    """
    check_sample_range(start, stop)
    chunk = max(1, min(CHUNK, CHUNK_VALUES // max(x.size, 1)))
    parts, log_ws = [], []
    for lo in range(start, stop, chunk):
        eps = proposal_noise(seed, lo, min(lo + chunk, stop), x.size, antithetic)
        log_w = -loss_values(loss, x + np.sqrt(tau) * eps)          # x_j = x + √τ ε_j; log w_j = −f(x_j)
        check_log_weights(log_w, tau, lo)                            # NaN or +inf would be dropped silently
        parts.append(partial_from_log_weights(log_w, eps))
        log_ws.append(log_w)
    return combine(parts), np.concatenate(log_ws)


@dataclass(frozen=True)
class ImportanceSampling:
    r"""Algorithm 4: self-normalised importance sampling with proposal φ_{x,τ}.

    .. math:: \mathbb{E}_{q_{x,\tau}}[X] \approx \frac{\sum_j w_j x_j}{\sum_j w_j}, \qquad
              x_j = x + \sqrt{\tau}\,\varepsilon_j, \quad \log w_j = -f(x_j) \qquad \text{(eq. 5.2)}

    Parameters
    ----------
    n_samples : J, the number of proposal samples (≥ 1).
    antithetic : use pairs (ε, −ε); halves the noise draws, cancels odd moments.
    keep_log_weights : put all J log weights in the info (for diagnostics/plots).
    projected : True: the loss's reduced-coordinate fast path (:mod:`kltrain.fastpath`); False:
        per-sample; None (default): whichever the loss's cost model prices lower (``info.projected``
        says which ran).
    on_collapse : ESS < 2 with J >= 100: "warn" (default), "raise" (:class:`~kltrain.estimators.importance.ESSCollapse`) or "ignore".
    pareto_k : put the weights' PSIS k̂ in the info (with arviz-stats installed; 0.4 ms at J = 10³)
        and warn when it exceeds 0.7.
    """

    kind: ClassVar[str] = "mean"
    n_samples: int
    antithetic: bool = field(default=False, kw_only=True)
    keep_log_weights: bool = field(default=True, kw_only=True)
    projected: bool | None = field(default=None, kw_only=True)
    on_collapse: str = field(default="warn", kw_only=True)
    pareto_k: bool = field(default=True, kw_only=True)

    def __post_init__(self):
        check_count(self.n_samples, "n_samples", 1)
        if self.on_collapse not in COLLAPSE_ACTIONS:
            raise ValueError(f"on_collapse must be one of {COLLAPSE_ACTIONS}, got {self.on_collapse!r}")
        if self.n_samples >= MAX_SAMPLES:  # the counter generator's sample index is 32 bits
            raise ValueError(f"n_samples must be < {MAX_SAMPLES} (2**32 − 2: noise sample indices are 32-bit, "
                             f"the top two reserved), got {self.n_samples}")

    def partial(self, loss: Any, x: np.ndarray, tau: float, seed: int, start: int = 0,
                stop: int | None = None) -> tuple[ISPartial, np.ndarray]:
        """The ISPartial of samples [start, stop) and their log weights."""
        stop = self.n_samples if stop is None else stop
        check_sample_range(start, stop)
        partial_fn = fast_path(loss, "importance_partial") or partial(importance_partial, loss)
        return partial_fn(x, tau, seed, start, stop, self.antithetic)

    def init(self, loss: Any, x: np.ndarray, tau: float) -> None:
        return None

    def step(self, rng: np.random.Generator, state: None, loss: Any, x: np.ndarray,
             tau: float) -> tuple[np.ndarray, None, ISInfo]:
        seed = draw_seed(rng)
        if choose_projected(loss, self.projected, "IS", self.n_samples):  # the whole update in reduced coordinates
            mean, info = fast_path(loss, "importance_update", projected=True)(
                x, tau, seed, self.n_samples, self.antithetic)
            if isinstance(info, ISInfo):
                info = info._replace(projected=True)
        else:
            part, log_w = self.partial(loss, x, tau, seed)
            mean = posterior_mean_from_partial(part, x, tau)
            info = ISInfo(effective_sample_size(part), float(1.0 / part.sum_w), log_w, seed, projected=False)
        return mean, state, self._diagnosed(info, tau)

    def _diagnosed(self, info: ISInfo, tau: float) -> ISInfo:
        """The info with k̂ (and the log weights dropped unless kept); warns or raises on collapse."""
        if not isinstance(info, ISInfo):   # a fast path that reports no diagnostics
            return info
        k = pareto_k(info.log_weights) if self.pareto_k and info.log_weights is not None else None
        check_collapse(info.ess, self.n_samples, tau, self, self.on_collapse)
        check_pareto_k(k, self)
        return info._replace(pareto_k=k, log_weights=info.log_weights if self.keep_log_weights else None)
