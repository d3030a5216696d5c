"""numba CPU kernels for :class:`kltrain.gaussian.sampling.GaussianIS` and ``GaussianSGLD`` on an MLP minibatch.

Importance sampling of q ∝ e^{−βf} N(m, diag c) with the proposal N(m, diag c): sample j is
x_j = m + u_j, u_j = √c ∘ ε_j, with ε_j regenerated from (seed, j) exactly as the NumPy
reference draws it (:func:`kltrain.noise.counter_normals`). One pass per sample, no J×d
matrix: u_j's weighted first and second moments are folded into running log-sum-exp
accumulators, in fixed blocks folded in block order (the same bits on 1 or 2 threads,
as :func:`kltrain.kernels.cpu.importance_partials`).

The C-preconditioned Langevin chain (``diagonal_sgld_moments``) draws step j's noise ξ_j as
sample j of the stream, as the reference does, and accumulates the chain's moments about m.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .counter import fill_normals, sample_key
from .cpu import (BLOCK, IS_BLOCK, IS_WAVE, PJIT, SERIAL_BELOW, fold_block, fold_log_weight, noise_block,
                  perturbed_tail_loss, transposed_tail, work_size_of)
from .cpu_mlp import JIT, loss_and_grad, scratch_size_of, sparse_affine


@nb.njit(**JIT)
def fold_square(lw, u, stats, acc2):
    """acc2 += w·u² with w = e^{lw − m}, rescaling acc2 first if lw raises the running max m.

    Called *before* :func:`~kltrain.kernels.cpu.fold_log_weight` (which moves m) so both sums share one m.
    """
    if lw > stats[0]:
        acc2 *= np.float32(np.exp(stats[0] - lw))
        w = np.float32(1.0)
    else:
        w = np.float32(np.exp(lw - stats[0]))
    for c in range(acc2.size):
        acc2[c] += w * u[c] * u[c]


@nb.njit(**PJIT)
def diagonal_importance_sums(p, sd, key, n_samples, scale, base0, y, indptr, idx, val, offsets, n_threads):
    """(stats (m, Σw, Σw²), Σw·u (d,), Σw·u² (d,), log_w) over samples 0..J−1, float64 sums.

    u_j = sd ∘ ε_j, log w_j = −β·f(p + u_j) with β = ``scale``. The first layer's perturbation
    enters as A·U₁ + u_b₁ (``sparse_affine`` on u_j), added to base0 = A·W₁ + b₁.
    """
    d = p.size
    n_blocks = (n_samples + IS_BLOCK - 1) // IS_BLOCK
    log_w = np.empty(n_samples)
    stats = np.empty((IS_WAVE, 3))
    acc = np.empty((IS_WAVE, d), dtype=np.float32)
    acc2 = np.empty((IS_WAVE, d), dtype=np.float32)
    total, total_acc, total_acc2 = np.array([-np.inf, 0.0, 0.0]), np.zeros(d), np.zeros(d)
    pt = transposed_tail(p, offsets)
    n_logits = y.size * offsets[offsets.shape[0] - 1, 3]
    for wave in range(0, n_blocks, IS_WAVE):
        n_wave = min(IS_WAVE, n_blocks - wave)
        for t in nb.prange(n_threads):
            u = np.empty(d, dtype=np.float32)
            wt, bias = np.empty(scratch_size_of(offsets), dtype=np.float32), np.empty(d, dtype=np.float32)
            work = np.empty(work_size_of(offsets, y.size), dtype=np.float32)
            t0 = np.empty((y.size, offsets[0, 3]), dtype=np.float32)
            tmp = np.empty(n_logits, dtype=np.float32)
            for i in range(t, n_wave, n_threads):
                lo = (wave + i) * IS_BLOCK
                stats[i] = np.array([-np.inf, 0.0, 0.0])
                acc[i] = 0.0
                acc2[i] = 0.0
                for j in range(lo, min(lo + IS_BLOCK, n_samples)):
                    fill_normals(sample_key(key, j), 0, u)
                    for c in range(d):
                        u[c] *= sd[c]
                    sparse_affine(u, offsets[0, 0], offsets[0, 1], offsets[0, 3], indptr, idx, val, t0)
                    lw = -scale * perturbed_tail_loss(p, pt, u, np.float32(1.0), base0, t0, y, offsets, work, wt,
                                                      bias, tmp, False)
                    log_w[j] = lw
                    fold_square(lw, u, stats[i], acc2[i])
                    fold_log_weight(lw, 1.0, u, acc[i], stats[i])
        for i in range(n_wave):
            before = total.copy()                 # fold_block rescales by the pre-fold max
            fold_block(stats[i], acc[i], total, total_acc)
            _fold_second(before, stats[i], acc2[i], total_acc2)
    return total, total_acc, total_acc2, log_w


@nb.njit(**JIT)
def _fold_second(before, stats, acc2, total_acc2):
    """The second-moment half of :func:`kltrain.kernels.cpu.fold_block` (same rescaling)."""
    m = max(before[0], stats[0])
    if m == -np.inf:
        return
    a, b = np.exp(before[0] - m), np.exp(stats[0] - m)
    for c in range(total_acc2.size):
        total_acc2[c] = a * total_acc2[c] + b * np.float64(acc2[c])


@nb.njit(**JIT)
def _preconditioned_block(blk, x, m, var, grad, s1, s2, eps, beta, skey):
    """x ← x − ε(c∘β∇f + x − m) + √(2εc)∘ξ on one block of coordinates; s1 += x − m, s2 += (x − m)²."""
    lo, xi = noise_block(skey, blk, x.size)
    for k in range(xi.size):
        c = lo + k
        x[c] += -eps * (var[c] * beta * grad[c] + (x[c] - m[c])) + np.sqrt(2 * eps * var[c]) * xi[k]
        dev = np.float64(x[c]) - m[c]
        s1[c] += dev
        s2[c] += dev * dev


@nb.njit(**PJIT)
def _preconditioned_parallel(x, m, var, grad, s1, s2, eps, beta, skey):
    for blk in nb.prange((x.size + BLOCK - 1) // BLOCK):
        _preconditioned_block(blk, x, m, var, grad, s1, s2, eps, beta, skey)


@nb.njit(**JIT)
def diagonal_sgld_moments(m, var, eps, n_steps, beta, key, y, indptr, idx, val, cols, colptr, col_row, col_val,
                          offsets):
    """The chain's (Σ_j (x_j − m), Σ_j (x_j − m)²) over its J states, float64; x_0 = m, m float64.

    Blocks of coordinates are independent given ∇f, so the parallel and serial sweeps give the same bits.
    """
    x = m.astype(np.float32)
    grad = np.zeros_like(x)
    work = np.empty(work_size_of(offsets, y.size), dtype=np.float32)
    s1, s2 = np.zeros(m.size), np.zeros(m.size)
    varf = var.astype(np.float32)
    e, b = np.float32(eps), np.float32(beta)
    for j in range(n_steps):
        loss_and_grad(x, y, indptr, idx, val, cols, colptr, col_row, col_val, offsets, work, grad)
        skey = sample_key(key, j)
        if x.size < SERIAL_BELOW:
            for blk in range((x.size + BLOCK - 1) // BLOCK):
                _preconditioned_block(blk, x, m, varf, grad, s1, s2, e, b, skey)
        else:
            _preconditioned_parallel(x, m, varf, grad, s1, s2, e, b, skey)
    return s1, s2
