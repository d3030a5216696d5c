"""The counter-based normals of :mod:`kltrain.noise`, computed by torch on the parameters' device.

ε[j, i] is the same pure function of (seed, j, i) as ``kltrain.noise.counter_normals``
(SplitMix64 hash, 31 + 23 bits, Box–Muller; see that module for the formula), so an
optimizer of :mod:`kltrain.torch` perturbs the parameters by exactly the ε_j that
kltrain's NumPy estimators draw for the same seed. It is a port, not a call: generating
the noise on the host (NumPy or the numba kernel) and copying it would cost a
host→device transfer of J·d numbers per update on a GPU, and this runs wherever the
parameters live.

torch has no unsigned 64-bit arithmetic on every device, so the hash runs on int64:
additions and products wrap modulo 2⁶⁴ exactly as uint64 would (two's complement),
and a logical right shift is an arithmetic shift masked to its low 64 − k bits. The
hash is bit-exact against the NumPy reference (``tests/test_torch.py`` compares the
integers); log and cos run in float64, so the normals agree to ~1e-15.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..noise import GOLDEN, MIX1, MIX2, stream_key


def _signed(u: int | np.integer) -> int:
    """The int64 with the bits of the uint64 ``u``."""
    u = int(u)
    return u - (1 << 64) if u >= 1 << 63 else u


_GOLDEN, _MIX1, _MIX2 = _signed(GOLDEN), _signed(MIX1), _signed(MIX2)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits: the arithmetic shift with the sign bits cleared."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors holding uint64 bits (wraps modulo 2⁶⁴)."""
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def pair_hashes(seed: int, samples: torch.Tensor, first_pair: int, n_pairs: int) -> torch.Tensor:
    """h[j, p] = mix64(key + (j·2³² + p)·γ) for p in [first_pair, first_pair + n_pairs): int64 bits, one per pair."""
    key = _signed(stream_key(seed))
    j = samples.to(torch.int64).reshape(-1, 1)
    p = torch.arange(first_pair, first_pair + n_pairs, dtype=torch.int64, device=samples.device)[None, :]
    return mix64(key + ((j << 32) | p) * _GOLDEN)


def counter_normals(seed: int, samples, n_coords: int, coord_offset: int = 0, *,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """ε[j, i] for j in ``samples`` and i in [offset, offset + n_coords): ``kltrain.noise.counter_normals`` in torch.

    One hash per Box–Muller pair (ε[j, 2p], ε[j, 2p+1]) = r·(cos θ, sin θ), computed in
    float64 and returned as ``dtype`` on ``device`` (default: the device of ``samples``
    if it is a tensor, else the CPU).
    """
    if not isinstance(samples, torch.Tensor):
        samples = torch.as_tensor(samples, dtype=torch.int64, device=device)
    elif device is not None:
        samples = samples.to(device)
    first, last = coord_offset // 2, (coord_offset + n_coords + 1) // 2          # pairs covering the range
    h = pair_hashes(seed, samples, first, last - first)
    u1 = (_shr(h, 33).to(torch.float64) + 0.5) * 2.0 ** -31                 # top 31 bits, in (0, 1)
    u2 = ((_shr(h, 9) & 0x7FFFFF).to(torch.float64) + 0.5) * 2.0 ** -23     # bits 9–31, in (0, 1)
    r, theta = torch.sqrt(-2.0 * torch.log(u1)), (2 * math.pi) * u2
    pairs = torch.stack((r * torch.cos(theta), r * torch.sin(theta)), dim=-1)  # (n, pairs, 2): even i, odd i
    lo = coord_offset - 2 * first
    return pairs.reshape(len(samples), -1)[:, lo:lo + n_coords].to(dtype)
