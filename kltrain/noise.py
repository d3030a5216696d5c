"""Counter-based Gaussian noise: ε[j, i] is a pure function of (seed, j, i).

Importance sampling needs J noise vectors of dimension d (J·d = 1.6·10⁸ for the
784–200–10 net). Storing them is wasteful and shipping them between workers or
to a GPU is worse, so every sampler here *regenerates* ε[j, i] from its
coordinates instead:

    key    = mix64(seed)
    h      = mix64(key + (j·2³² + ⌊i/2⌋)·γ)        SplitMix64's output number j·2³² + ⌊i/2⌋
    u1     = (⌊h / 2³³⌋ + ½)·2⁻³¹                   top 31 bits, in (0, 1)
    u2     = (⌊h / 2⁹⌋ mod 2²³ + ½)·2⁻²³            bits 9–31, in (0, 1)
    ε[j,i] = √(−2 log u1) · cos(2π u2 − (i mod 2)·π/2)   Box–Muller: cos for even i, sin for odd i

mix64 is SplitMix64's finaliser (Steele, Lea & Flood 2014), γ the golden-ratio
increment; SplitMix64 passes BigCrush. The same arithmetic is compiled for the
numba CPU and CUDA kernels (:mod:`kltrain.kernels.counter`), so all backends
see the same noise. Samples are < 2³², coordinates < 2³³.

The bit widths are chosen so that both uniforms convert from *signed* 32-bit
integers, which AVX2 does natively (the kernels vectorise without SVML). The
31-bit u1 truncates |ε| at √(2·31·log 2) ≈ 6.55, an event of probability
6·10⁻¹¹ per draw.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from numpy.typing import ArrayLike

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
TWO_POW_M31 = 2.0 ** -31
TWO_POW_M23 = 2.0 ** -23


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wraps modulo 2⁶⁴ by design)."""
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int) -> np.uint64:
    """The 64-bit stream key of an integer seed (0 ≤ seed < 2⁶⁴)."""
    if not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    return mix64(np.array([int(seed)], dtype=np.uint64))[0]


def counter_normals(seed: int, samples: ArrayLike, n_coords: int, coord_offset: int = 0) -> np.ndarray:
    """Standard normals ε[j, i] for j in ``samples`` and i in [offset, offset + n_coords).

    Returns a float64 array of shape (len(samples), n_coords).
    """
    key = stream_key(seed)
    j = np.asarray(samples, dtype=np.uint64).reshape(-1, 1)
    i = np.arange(coord_offset, coord_offset + n_coords, dtype=np.uint64)[None, :]
    h = mix64(key + ((j << np.uint64(32)) | (i >> np.uint64(1))) * GOLDEN)
    u1 = ((h >> np.uint64(33)).astype(np.float64) + 0.5) * TWO_POW_M31
    u2 = (((h >> np.uint64(9)) & np.uint64(0x7FFFFF)).astype(np.float64) + 0.5) * TWO_POW_M23
    phase = (i & np.uint64(1)).astype(np.float64) * (np.pi / 2)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2 - phase)


def draw_seed(rng: np.random.Generator) -> int:
    """A fresh 63-bit stream seed from a Generator (one per parameter update)."""
    return int(rng.integers(0, 2 ** 63))


def noise_rows(seed: int, start: int, stop: int, dim: int, max_values: int = 2 ** 16) -> Iterator[np.ndarray]:
    """Yield ε_j = ε[j, :] for j = start, ..., stop − 1, generated a block at a time.

    The same numbers as ``counter_normals(seed, [j], dim)[0]``; blocks of at most
    ``max_values`` numbers amortise the hashing without storing all the rows.
    """
    block = max(1, max_values // max(dim, 1))
    for lo in range(start, stop, block):
        yield from counter_normals(seed, np.arange(lo, min(lo + block, stop)), dim)
