"""The host side of :mod:`kltrain.kernels.cuda_chains`: SGLD chains and Robbins–Monro iterations, R per launch.

``sgld_chain_many(calls)`` and ``robbins_monro_many(calls)`` take a list of argument
tuples of the backend functions ``sgld_chain(mb, x, chain, tau, eps, seed,
noise_scale)`` and ``robbins_monro(mb, x_k, tau, steps, n_samples, seed,
grad_scale)`` (:mod:`kltrain.kernels.numpy_backend`'s interface) and return their
results in order. Calls that fit one launch (same hidden and output widths, same
number of steps, draws) become the R blocks of one launch; each run keeps its own
minibatch, rank, τ, seed and step sizes. A run's result does not depend on which
runs share its launch: blocks never exchange data.

The kernels hold the first layer's inputs in registers, so they take only nets whose
input is the reduced problem's r ≤ MAX_BATCH coordinates (:func:`fits`); the
per-sample 784-input problem stays on :mod:`kltrain.kernels.cuda`'s kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import cuda as nbcuda

from ..noise import stream_key
from . import cuda_chains as KC

NOISE_FLOATS = 1 << 26   # noise buffered per launch (256 MB); longer chains run in several launches
NOISE_THREADS = 64
RM_APPLY_THREADS = 256


def fits(mb) -> bool:
    """Whether the persistent kernels take this minibatch's net: ≤ MAX_R inputs (the reduced problem),
    0 or 1 hidden layer of ≤ MAX_HIDDEN units, ≤ MAX_CLASSES classes, batch ≤ MAX_BATCH."""
    return fits_sizes(mb.net.sizes, mb.batch_size)


def fits_sizes(sizes, batch: int) -> bool:
    """:func:`fits` for a net of ``sizes`` on ``batch`` rows."""
    return (len(sizes) in (2, 3) and sizes[0] <= KC.MAX_R and sizes[-1] <= KC.MAX_CLASSES
            and (len(sizes) == 2 or sizes[1] <= KC.MAX_HIDDEN) and batch <= KC.MAX_BATCH)


def threads_for(mb_list) -> int:
    """Threads per block: one per hidden unit (≥ classes, ≥ batch rows for the softmax), whole warps."""
    need = max(max(mb.net.sizes[1], mb.net.sizes[-1], mb.batch_size) for mb in mb_list)
    return min(KC.MAX_THREADS, max(32, -(-need // 32) * 32))


@dataclass(frozen=True)
class _Batch:
    """The launch-ready inputs of R minibatches of one net shape (device arrays)."""

    xin: object      # (R, POOL_X) float32: X̃ zero-padded to MAX_BATCH × MAX_R
    yin: object      # (R, MAX_BATCH) int64
    dims: object     # (R, 2) int64: (B, r)
    n_coords: np.ndarray  # (R,) parameters of each run's net
    d_n_coords: object    # … on the device
    H: int
    C: int
    two: int
    threads: int


def _batch(mbs) -> _Batch:
    R = len(mbs)
    xin = np.zeros((R, KC.MAX_BATCH, KC.MAX_R), np.float32)
    yin = np.zeros((R, KC.MAX_BATCH), np.int64)
    dims = np.zeros((R, 2), np.int64)
    for k, mb in enumerate(mbs):
        B, r = mb.X.shape
        xin[k, :B, :r] = mb.X
        yin[k, :B] = mb.y
        dims[k] = B, r
    sizes = mbs[0].net.sizes
    two = int(len(sizes) == 3)
    n_coords = np.array([mb.net.n_params for mb in mbs], np.int64)
    return _Batch(nbcuda.to_device(xin.reshape(R, -1)), nbcuda.to_device(yin), nbcuda.to_device(dims), n_coords,
                  nbcuda.to_device(n_coords), sizes[1] if two else sizes[-1], sizes[-1], two, threads_for(mbs))


def _padded(rows, width) -> np.ndarray:
    out = np.zeros((len(rows), width), np.float32)
    for k, row in enumerate(rows):
        out[k, :len(row)] = row
    return out


def _noise(keys, first, n_rows, b: _Batch, width):
    """Device (R, n_rows, width) float32: ε[first + k, c] of each run's stream (``keys``: on the device)."""
    out = nbcuda.device_array((b.n_coords.size, n_rows, width), np.float32)
    pairs = (width + 1) // 2
    grid = (-(-pairs // NOISE_THREADS), n_rows, b.n_coords.size)
    KC.chain_noise[grid, (NOISE_THREADS, 1, 1)](keys, first, b.d_n_coords, out)
    return out


def _keys(calls, seed_at):
    return nbcuda.to_device(np.array([stream_key(c[seed_at]) for c in calls], np.uint64))


def _groups(calls, key) -> dict:
    """{launch key: [indices of calls]} in first-seen order."""
    out: dict = {}
    for i, call in enumerate(calls):
        out.setdefault(key(call), []).append(i)
    return out


def _shape_key(mb):
    return mb.net.sizes[1:]


# -- Algorithm 3 ---------------------------------------------------------------------------
def sgld_chain(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """One chain (the backend's ``sgld_chain``): (Σ ε_j x^j / Σ ε_j, x^J, |∇f(x^{J−1})|)."""
    return sgld_chain_many([(mb, x, chain, tau, eps, seed, noise_scale)])[0]


def sgld_chain_many(calls) -> list:
    """``sgld_chain(*call)`` for every call, compatible calls in one launch each."""
    calls = [tuple(c) + (1.0,) * (7 - len(c)) for c in calls]
    results: list = [None] * len(calls)
    for idx in _groups(calls, lambda c: (_shape_key(c[0]), np.size(c[4]))).values():
        for i, res in zip(idx, _sgld_launch([calls[i] for i in idx])):
            results[i] = res
    return results


def _sgld_launch(calls):
    mbs = [c[0] for c in calls]
    eps = [np.asarray(c[4], np.float64) for c in calls]
    chains0 = [np.ascontiguousarray(c[2], np.float32) for c in calls]
    steps = eps[0].size - 1
    if steps == 0:
        return [(np.float32(e[0]) * ch / np.float32(e.sum()), ch.copy(), 0.0) for e, ch in zip(eps, chains0)]
    b = _batch(mbs)
    R, width = len(calls), int(b.n_coords.max())
    # float32 coefficients exactly as the CPU kernel forms them (kltrain.kernels.cpu.langevin_update)
    coef = np.empty((R, steps, 3), np.float32)
    for k, (c, e) in enumerate(zip(calls, eps)):
        coef[k, :, 0] = (0.5 * e[:-1]).astype(np.float32)
        coef[k, :, 1] = (c[6] * np.sqrt(e[:-1])).astype(np.float32)
        coef[k, :, 2] = e[1:].astype(np.float32)
    inv_tau = np.array([np.float32(1.0 / c[3]) for c in calls], np.float32)
    keys = _keys(calls, 5)
    x = nbcuda.to_device(_padded([np.asarray(c[1], np.float32) for c in calls], width))
    chain = nbcuda.to_device(_padded(chains0, width))
    total = nbcuda.to_device(_padded([(e[0] * ch).astype(np.float32) for e, ch in zip(eps, chains0)], width))
    grad_sq = nbcuda.to_device(np.zeros(R))
    d_inv = nbcuda.to_device(inv_tau)
    chunk = max(1, min(steps, 65535, NOISE_FLOATS // (R * width)))
    for lo in range(0, steps, chunk):
        hi = min(lo + chunk, steps)
        noise = _noise(keys, lo + 1, hi - lo, b, width)     # step k uses noise sample k + 1
        KC.sgld_chains[R, b.threads](b.xin, b.yin, b.dims, b.H, b.C, b.two, x, chain, total,
                                     nbcuda.to_device(np.ascontiguousarray(coef[:, lo:hi])), d_inv, noise, grad_sq)
    total_h, chain_h, gsq = total.copy_to_host(), chain.copy_to_host(), grad_sq.copy_to_host()
    out = []
    for k, (n, e) in enumerate(zip(b.n_coords, eps)):
        out.append((total_h[k, :n] / np.float32(e.sum()), chain_h[k, :n].copy(), float(np.sqrt(gsq[k]))))
    return out


# -- Algorithm 5 ---------------------------------------------------------------------------
def robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0, groups=None):
    """One Robbins–Monro iteration (the backend's ``robbins_monro``): (x^J, |ĥ| at the last iteration)."""
    return robbins_monro_many([(mb, x_k, tau, steps, n_samples, seed, grad_scale)], groups)[0]


def default_groups(n_draws: int, n_runs: int) -> int:
    """Blocks per run for Robbins–Monro: 1 (every iteration in one launch, the draws in series)
    once R runs fill the SMs; else the M draws spread over up to SMs/R blocks, with two
    launches per iteration. Under the simulator: 1."""
    if getattr(nbcuda, "simulator_enabled", False) or _simulated():
        return 1
    sms = nbcuda.get_current_device().MULTIPROCESSOR_COUNT
    return max(1, min(n_draws, sms // max(n_runs, 1)))


def _simulated() -> bool:
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def robbins_monro_many(calls, groups=None) -> list:
    """``robbins_monro(*call)`` for every call, compatible calls in one set of launches each.

    ``groups`` (G): blocks per run (None: :func:`default_groups`); any G gives the same
    iteration up to the order of float32 sums over the draws.
    """
    calls = [tuple(c) + (1.0,) * (7 - len(c)) for c in calls]
    results: list = [None] * len(calls)
    key = lambda c: (_shape_key(c[0]), np.size(c[3]), int(c[4]))   # noqa: E731
    for idx in _groups(calls, key).values():
        G = groups or default_groups(int(calls[idx[0]][4]), len(idx))
        for i, res in zip(idx, _rm_launch([calls[i] for i in idx], G)):
            results[i] = res
    return results


def _rm_launch(calls, G):
    mbs = [c[0] for c in calls]
    b = _batch(mbs)
    R, width = len(calls), int(b.n_coords.max())
    J, M = np.size(calls[0][3]), int(calls[0][4])
    G = max(1, min(G, M))
    d_xk = nbcuda.to_device(_padded([np.asarray(c[1], np.float32) for c in calls], width))
    x = nbcuda.device_array_like(d_xk)
    x.copy_to_device(d_xk)
    steps = nbcuda.to_device(np.array([np.asarray(c[3], np.float64).astype(np.float32) for c in calls]))
    root_tau = nbcuda.to_device(np.array([np.float32(np.sqrt(c[2])) for c in calls], np.float32))
    scale = nbcuda.to_device(np.array([np.float32(c[6] * c[2] / M) for c in calls], np.float32))
    keys = _keys(calls, 5)
    res2 = nbcuda.to_device(np.zeros(R))
    partial = nbcuda.device_array((R, G, width) if G > 1 else (1, 1, 1), np.float32)
    buffered = max(1, min(J, NOISE_FLOATS // (R * M * width), 65535 // M))    # iterations of noise at once
    for lo in range(0, J, buffered):
        hi = min(lo + buffered, J)
        noise = _noise(keys, lo * M, (hi - lo) * M, b, width)   # draw m of iteration j: sample jM + m
        # G = 1: one launch for all buffered iterations; G > 1: per iteration, the draws, then rm_apply
        for first, stop in ([(lo, hi)] if G == 1 else [(j, j + 1) for j in range(lo, hi)]):
            KC.rm_chains[(G, R), b.threads](b.xin, b.yin, b.dims, b.H, b.C, b.two, x, d_xk, root_tau, steps, scale,
                                            first, stop, lo, M, noise, partial, res2)
            if G > 1:
                grid = (-(-width // RM_APPLY_THREADS), R)
                KC.rm_apply[grid, (RM_APPLY_THREADS, 1)](x, d_xk, partial, b.d_n_coords, steps, scale, first, res2)
    x_h, r2 = x.copy_to_host(), res2.copy_to_host()
    return [(x_h[k, :n].copy(), float(np.sqrt(r2[k]))) for k, n in enumerate(b.n_coords)]
