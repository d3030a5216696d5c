"""Schedules: τ scoping (§6.5.1), SGLD temperatures (Alg. 3), Robbins–Monro steps (Alg. 5).

A schedule is a frozen dataclass called with a 0-based update index k (τ) or a
1-based inner index j (temperatures, steps). ``as_tau_schedule`` turns a float
into a constant schedule, so schemes accept either.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._checks import check_count, check_positive, check_tau


@dataclass(frozen=True)
class ConstantTau:
    """τ(k) = τ."""

    tau: float

    def __post_init__(self):
        check_tau(self.tau)

    def __call__(self, k: int) -> float:
        return float(self.tau)


@dataclass(frozen=True)
class TauScoping:
    """τ(k) = τ₀ / (1 + τ₁)^k, the annealing of §6.5.1 (large τ first, then smaller).

    Fig 6.5 uses τ₀ = 1.5, τ₁ = 0.01: τ(500) = 1.5/1.01⁵⁰⁰ ≈ 0.0104. (Its caption
    reads "1.5 → 0.001"; the text's formula gives ≈ 0.01 after 500 updates.)
    """

    tau0: float
    tau1: float

    def __post_init__(self):
        check_tau(self.tau0)
        if not (np.isfinite(self.tau1) and self.tau1 > -1):
            raise ValueError(f"tau1 must be a finite number > -1, got {self.tau1!r}")

    def __call__(self, k: int) -> float:
        return float(self.tau0 / (1.0 + self.tau1) ** k)


@dataclass(frozen=True)
class ReverseTauScoping:
    """τ(k) = τ₀ (1 + τ₁)^k: the increasing "reverse annealing" of Fig 6.5 (0.01 → 1.5)."""

    tau0: float
    tau1: float

    def __post_init__(self):
        check_tau(self.tau0)
        check_positive(self.tau1, "tau1")

    def __call__(self, k: int) -> float:
        return float(self.tau0 * (1.0 + self.tau1) ** k)


def as_tau_schedule(tau: float | Callable[[int], float]) -> Callable[[int], float]:
    """A float becomes ConstantTau; a callable schedule is returned as is."""
    return tau if callable(tau) else ConstantTau(check_tau(tau))


@dataclass(frozen=True)
class HarmonicTemperatures:
    """SGLD temperatures ε_j = scale / (offset + j), j = 1, 2, ... (paper: 1/(1000 + j))."""

    offset: float = 1000.0
    scale: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.offset) and self.offset >= 0):
            raise ValueError(f"offset must be a finite number >= 0, got {self.offset!r}")
        check_positive(self.scale, "scale")

    def __call__(self, j: ArrayLike) -> np.ndarray:
        return self.scale / (self.offset + np.asarray(j, dtype=np.float64))


@dataclass(frozen=True)
class RobbinsMonroSteps:
    """a_j = c · j^{−α}, j = 1, 2, ..., with c > 0 and α ∈ (1/2, 1].

    The paper prints a^l = c·l^α. With α > 0 that step *grows* and the iteration
    diverges; the classical Robbins–Monro conditions Σ a_j = ∞, Σ a_j² < ∞ hold
    for c·j^{−α} exactly when α ∈ (1/2, 1], the range the paper states.
    """

    c: float
    alpha: float

    def __post_init__(self):
        check_positive(self.c, "c")
        if not (np.isfinite(self.alpha) and 0.5 < self.alpha <= 1.0):
            raise ValueError(f"alpha must lie in (1/2, 1], got {self.alpha!r}")

    def __call__(self, j: ArrayLike) -> np.ndarray:
        return self.c * np.asarray(j, dtype=np.float64) ** (-self.alpha)


def temperatures_array(temperatures: Callable[[np.ndarray], ArrayLike] | ArrayLike, n_steps: int) -> np.ndarray:
    """ε_1..ε_J from a schedule (callable of j) or a sequence; all must be positive and finite."""
    n_steps = check_count(n_steps, "n_steps", 1)
    if callable(temperatures):
        eps = np.asarray(temperatures(np.arange(1, n_steps + 1)), dtype=np.float64)
    else:
        eps = np.asarray(temperatures, dtype=np.float64)
        if eps.shape != (n_steps,):
            raise ValueError(f"temperatures must have length n_steps = {n_steps}, got shape {eps.shape}")
    bad = ~(np.isfinite(eps) & (eps > 0))
    if np.any(bad):
        raise ValueError(f"temperatures must be positive and finite, got {eps[bad][0]!r}")
    return eps
