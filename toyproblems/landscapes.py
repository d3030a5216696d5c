"""Ready-made 2D landscapes and random toy problems (for plots, tests and validation).

``wide_and_sharp_*`` reproduce the situation of Figs 2.1/2.2: a wide, shallow
minimum beside a sharp, deeper one. Local entropy (Fig 2.1) makes the wide
one the deeper for τ ≳ 0.2; heat regularization (Fig 2.2) blurs the sharp one.
"""

from __future__ import annotations

import numpy as np

from .losses import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic

WIDE_CENTER = np.array([-1.0, 0.0])
SHARP_CENTER = np.array([1.2, 0.5])


def wide_and_sharp_mixture() -> GaussianMixtureLoss:
    """e^{−f} = 0.7·N(wide, 0.5²I) + 0.3·N(sharp, 0.05²I): closed-form F_τ."""
    return GaussianMixtureLoss(weights=[0.7, 0.3], means=[WIDE_CENTER, SHARP_CENTER],
                               covs=[0.5 ** 2, 0.05 ** 2])


def wide_and_sharp_bumps() -> GaussianBumpsLoss:
    """Bowl 0.2|x|²/2 with a wide well (depth 1) and a sharp well (depth 2): closed-form F^H_τ."""
    return GaussianBumpsLoss(amplitudes=[-1.0, -2.0], centers=[WIDE_CENTER, SHARP_CENTER],
                             covs=[0.5 ** 2, 0.05 ** 2], bowl=0.2)


def _random_spd(rng: np.random.Generator, dim: int, low: float, high: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q @ np.diag(rng.uniform(low, high, size=dim)) @ q.T


def random_mixture(rng: np.random.Generator, dim: int = 2, n_components: int | None = None,
                   offset: float = 0.0) -> GaussianMixtureLoss:
    """A random Gaussian-mixture loss: 1–3 components, means in [−2, 2]^d, std 0.15–1."""
    k = int(rng.integers(1, 4)) if n_components is None else n_components
    return GaussianMixtureLoss(weights=rng.uniform(0.2, 1.0, size=k),
                               means=rng.uniform(-2, 2, size=(k, dim)),
                               covs=np.stack([_random_spd(rng, dim, 0.15 ** 2, 1.0) for _ in range(k)]),
                               offset=offset)


def random_bumps(rng: np.random.Generator, dim: int = 2, n_bumps: int | None = None) -> GaussianBumpsLoss:
    """A random bowl with 1–4 wells and hills (amplitudes in [−2, 1], std 0.15–1)."""
    k = int(rng.integers(1, 5)) if n_bumps is None else n_bumps
    return GaussianBumpsLoss(amplitudes=rng.uniform(-2.0, 1.0, size=k),
                             centers=rng.uniform(-2, 2, size=(k, dim)),
                             covs=np.stack([_random_spd(rng, dim, 0.15 ** 2, 1.0) for _ in range(k)]),
                             bowl=_random_spd(rng, dim, 0.05, 0.5))


def random_quadratic(rng: np.random.Generator, dim: int = 2) -> Quadratic:
    """A random convex quadratic with curvatures in [0.1, 5]."""
    return Quadratic(A=_random_spd(rng, dim, 0.1, 5.0), center=rng.uniform(-2, 2, size=dim),
                     offset=float(rng.uniform(-1, 1)))
