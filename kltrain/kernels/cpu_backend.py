"""The numba CPU backend: the interface of kltrain.kernels.numpy_backend on the numba kernels.

Threads. Importance sampling uses every numba thread: one parallel region per update, the
samples split between them. The *chains* are sequences of dependent steps,
each ending in a barrier on several threads (SGLD on the full problem: one parallel Langevin
update of ~50 µs per step; Robbins–Monro: its M draws split per iteration). They run on one
numba thread (``CHAIN_THREADS``), the choice ``kltrain bench --threads`` supports on this
shared 2-core host (``validation/data/bench-like-for-like.json``): one thread ÷ two was 1.02
and 0.97 for SGLD (reduced, per-sample) and 1.56 and 1.55 for Robbins–Monro at load ≈ 3.7,
but 0.93, 0.09, 0.29, 0.43 at load ≈ 10 ("threads_heavy_load"), and reduced Robbins–Monro on
two threads, re-timed minutes later at load ≈ 2.7, took 0.17 and 0.32 s at B = 20 where one
thread had taken 0.071 and 0.039 s ("hr_two_threads"): a barrier waits for whichever thread another process has descheduled. The
bits do not depend on it (tests/test_thread_count.py).
"""

from __future__ import annotations

from contextlib import contextmanager

import numba as nb
import numpy as np

from ..estimators.importance import ISPartial, check_log_weights, check_sample_range
from ..noise import stream_key
from . import cpu, cpu_gaussian, cpu_mlp
from .counter import counter_normals_f32

name = "cpu"   # the backend's name (kltrain.kernels.resolve): a wrapper such as GatheringBackend reports it


CHAIN_THREADS: dict[str, int | None] = {"sgld": 1, "robbins_monro": 1}   # numba threads (None: all)


def chain_threads(chain: str) -> int:
    """Threads a chain ("sgld" or "robbins_monro") runs on now: CHAIN_THREADS's, at most numba's current count."""
    n, want = nb.get_num_threads(), CHAIN_THREADS[chain]
    return n if want is None else max(1, min(want, n))


@contextmanager
def _on_threads(n: int):
    """numba's thread count set to ``n`` for the calling thread, restored after."""
    old = nb.get_num_threads()
    nb.set_num_threads(n)
    try:
        yield
    finally:
        nb.set_num_threads(old)


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _first_layer_base(mb, params):
    """A·W₁ + b₁ at the unperturbed parameters, (B, H₁), by the sparse kernel (no BLAS)."""
    w0, b0, _, H = mb.net.layer_offsets[0]
    out = np.empty((mb.batch_size, H), dtype=np.float32)
    cpu_mlp.sparse_affine(params, w0, b0, H, mb.indptr, mb.idx, mb.val, out)
    return out


def loss_and_grad(mb, params):
    """The minibatch loss and its gradient at ``params`` (numba, float32)."""
    params = _f32(params)
    grad = np.zeros_like(params)
    work = np.empty(cpu_mlp.work_size(mb.net, mb.batch_size), dtype=np.float32)
    loss = cpu_mlp.loss_and_grad(params, mb.y, mb.indptr, mb.idx, mb.val, mb.cols, mb.colptr, mb.col_row,
                                 mb.col_val, mb.offsets, work, grad)
    return loss, grad


def _dense_rows(mb):
    """(X, kend, dense): row b's nonzeros lie in X[b, :kend[b]]; dense when those prefixes are ≥ half full.

    The reduced problem's Rᵀ is lower-trapezoidal and dense there: the kernels then read
    it as a dense matrix (faster than CSR); MNIST minibatches (~20% nonzero) stay CSR.
    """
    nonzero = mb.X != 0
    kend = np.where(nonzero.any(axis=1), mb.X.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0).astype(np.int64)
    return mb.X, kend, bool(mb.idx.size >= 0.5 * kend.sum() and kend.sum() > 0)


def importance_partial(mb, params, tau, seed, start, stop, antithetic):
    """The importance-sampling partial sums over samples ``[start, stop)`` and their log weights (numba, float32)."""
    check_sample_range(start, stop)
    params = _f32(params)
    stats, acc, log_w = cpu.importance_partials(
        params, np.sqrt(tau), stream_key(seed), start, stop, antithetic, _first_layer_base(mb, params),
        mb.y, mb.indptr, mb.idx, mb.val, mb.offsets, nb.get_num_threads(), *_dense_rows(mb))
    check_log_weights(log_w, tau, start)  # a NaN weight would poison (or drop) its whole block
    return ISPartial(float(stats[0]), float(stats[1]), float(stats[2]), acc, stop - start), log_w


def diagonal_importance_moments(mb, params, var, seed, n_samples, scale=1.0):
    """GaussianIS on β·f: (mean, diagonal variances, ESS) of q ∝ e^{−βf} N(params, diag var)."""
    mean = np.asarray(params, np.float64)
    p = _f32(mean)
    stats, s1, s2, log_w = cpu_gaussian.diagonal_importance_sums(
        p, _f32(np.sqrt(var)), stream_key(seed), n_samples, scale, _first_layer_base(mb, p), mb.y, mb.indptr,
        mb.idx, mb.val, mb.offsets, nb.get_num_threads())
    check_log_weights(log_w, "diag C", 0)
    s1, s2 = s1 / stats[1], s2 / stats[1]      # moments of u = x − m under the normalised weights
    return mean + s1, np.maximum(s2 - s1 * s1, 0.0), float(stats[1] ** 2 / stats[2])


def diagonal_sgld_moments(mb, params, var, seed, n_steps, step, scale=1.0):
    """GaussianSGLD on β·f: the chain's (mean, diagonal variances) of q ∝ e^{−βf} N(params, diag var)."""
    mean = np.asarray(params, np.float64)
    s1, s2 = cpu_gaussian.diagonal_sgld_moments(
        mean, np.asarray(var, np.float64), step, n_steps, scale, stream_key(seed), mb.y, mb.indptr, mb.idx, mb.val,
        mb.cols, mb.colptr, mb.col_row, mb.col_val, mb.offsets)
    s1, s2 = s1 / n_steps, s2 / n_steps
    return mean + s1, np.maximum(s2 - s1 * s1, 0.0)


def population_losses(mb, params, tau, seed, samples):
    """f(x + √τ ε_j) for each j in ``samples`` (via one-sample IS partials)."""
    return np.array([-importance_partial(mb, params, tau, seed, j, j + 1, False)[1][0] for j in samples])


def sgld_chain(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """One SGLD chain of ``len(eps)`` steps from ``chain``: its weighted mean, last state and last gradient norm."""
    chain = _f32(chain).copy()
    with _on_threads(chain_threads("sgld")):
        mean, chain, grad_norm = cpu.sgld_chain(
            _f32(x), chain, tau, np.asarray(eps, np.float64), stream_key(seed), mb.y, mb.indptr, mb.idx, mb.val,
            mb.cols, mb.colptr, mb.col_row, mb.col_val, mb.offsets, noise_scale)
    return mean, chain, float(grad_norm)


def langevin_step(x, chain, grad, total, e, e_next, tau, seed, j, noise_scale=1.0):
    """One Algorithm 3 transition in place (chain, total) with noise sample j."""
    with _on_threads(chain_threads("sgld")):
        cpu.langevin_update(x, chain, grad, total, e, e_next, tau, stream_key(seed), j, noise_scale)


def robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Robbins–Monro iterations of Algorithm 2's step from ``x_k``: the point and its last residual."""
    n = chain_threads("robbins_monro")
    with _on_threads(n):
        x, residual = cpu.robbins_monro(
            _f32(x_k), tau, np.asarray(steps, np.float64), n_samples, stream_key(seed), mb.y, mb.indptr, mb.idx,
            mb.val, mb.cols, mb.colptr, mb.col_row, mb.col_val, mb.offsets, n, float(grad_scale))
    return x, float(residual)


def normals(seed, samples, n_coords):
    """The counter-based normals ε[j, i] of ``seed`` for the sample indices ``samples`` (float32)."""
    return counter_normals_f32(stream_key(seed), np.asarray(samples, dtype=np.int64), 0, n_coords)
