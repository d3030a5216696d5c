"""numba CPU kernels: the population loss, importance sampling, SGLD and Robbins–Monro for MLPs.

All noise is regenerated from (seed, sample, coordinate) by
:mod:`kltrain.kernels.counter`, so these kernels see exactly the samples of the
NumPy references (:mod:`kltrain.kernels.numpy_backend`), up to float32 rounding.

- ``importance_partials``: one pass per sample j — generate ε_j into a
  thread-local buffer, evaluate f(x + √τ ε_j), and fold e^{−f} ε_j into a
  running log-sum-exp accumulator (no J×d matrix, no second pass).
- ``sgld_chain``: Algorithm 3's inner loop, gradient and update fused.
- ``robbins_monro``: Algorithm 5; only the W₁ rows of pixels that are nonzero
  in the minibatch (and the later layers) affect ∇f(z), so only their noise is drawn.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .counter import fill_normals, fill_normals_transposed, sample_key
from .cpu_mlp import (JIT, cross_entropy, dense_affine_rows, dense_t, layer_block, loss_and_grad, relu,
                      scratch_size_of, sparse_affine)

# Parallel kernels take ``n_threads`` as an argument: calling nb.get_num_threads()
# inside a jitted function makes numba refuse to cache it (a ctypes pointer),
# and recompiling costs ~10 s per process.
PJIT = dict(JIT, parallel=True)


@nb.njit(**JIT)
def transposed_tail(p, offsets):
    """A copy of p whose later layers' weights are stored transposed, (fan_out, fan_in), in place."""
    pt = p.copy()
    for layer in range(1, offsets.shape[0]):
        w, fi, fo = offsets[layer, 0], offsets[layer, 2], offsets[layer, 3]
        v = pt[w:w + fi * fo].reshape(fo, fi)
        pw = p[w:w + fi * fo].reshape(fi, fo)
        for o in range(fo):
            for h in range(fi):
                v[o, h] = pw[h, o]
    return pt


@nb.njit(**JIT)
def tail_transposable(offsets):
    """Whether every later layer's weight block starts at an even coordinate and has an even fan-out."""
    for layer in range(1, offsets.shape[0]):
        if offsets[layer, 0] % 2 or offsets[layer, 3] % 2:
            return False
    return True


@nb.njit(**JIT)
def fill_sample_noise(skey, e, offsets, transposed):
    """ε_j into e; with ``transposed`` each later layer's weight noise is stored as (fan_out, fan_in).

    Drawing it transposed (counter.fill_normals_transposed) saves perturbed_tail_loss a
    strided read of the noise per sample; ``untranspose_tail`` restores a sum of such vectors.
    """
    if not transposed or offsets.shape[0] == 1:
        fill_normals(skey, 0, e)
        return
    fill_normals(skey, 0, e[:offsets[1, 0]])
    for layer in range(1, offsets.shape[0]):
        w, bb, fi, fo = offsets[layer, 0], offsets[layer, 1], offsets[layer, 2], offsets[layer, 3]
        fill_normals_transposed(skey, w, e[w:w + fi * fo].reshape(fo, fi))
        fill_normals(skey, bb, e[bb:bb + fo])


@nb.njit(**JIT)
def untranspose_tail(v, offsets):
    """Undo fill_sample_noise's layout in place: later layers' (fan_out, fan_in) blocks back to (fan_in, fan_out)."""
    for layer in range(1, offsets.shape[0]):
        w, fi, fo = offsets[layer, 0], offsets[layer, 2], offsets[layer, 3]
        block = v[w:w + fi * fo].copy().reshape(fo, fi)
        out = v[w:w + fi * fo].reshape(fi, fo)
        for h in range(fi):
            for o in range(fo):
                out[h, o] = block[o, h]


@nb.njit(**JIT)
def perturbed_tail_loss(p, pt, e, s, base0, t0, y, offsets, work, wt, bias, tmp, built, e_transposed=False):
    """f at p + s·e given the first layer's noise term t0 (B, H₁) (pt: ``transposed_tail(p)``).

    The first layer's pre-activation is base0 + s·t0 (base0 = A·W₁ + b₁ at p), or, when
    ``built``, already in work's first block (base0, t0 unread); its ReLU is applied here.
    Each later layer's perturbed weights Wᵀ + s·eᵀ go into the transposed scratch ``wt``
    (W's transpose is pt's, computed once per kernel call; the noise is read strided, or,
    when ``e_transposed``, is stored transposed already: fill_sample_noise). ``tmp``
    (≥ B·classes floats) is the cross-entropy's scratch.
    """
    B = y.size
    last = offsets.shape[0] - 1
    act = layer_block(work, offsets, B, 0, 0)
    floor = np.float32(0.0) if last > 0 else np.float32(-np.inf)   # no ReLU on the logits
    if built:
        if last > 0:
            relu(act)
    else:
        for b in range(B):
            ab, b0, tb = act[b], base0[b], t0[b]
            for o in range(ab.size):
                ab[o] = max(b0[o] + s * tb[o], floor)
    for layer in range(1, last + 1):
        w, bb, fi, fo = offsets[layer, 0], offsets[layer, 1], offsets[layer, 2], offsets[layer, 3]
        v = wt[:fo * fi].reshape(fo, fi)
        pv = pt[w:w + fi * fo].reshape(fo, fi)
        if e_transposed:
            et = e[w:w + fi * fo].reshape(fo, fi)
            for o in range(fo):
                vo, po, eo = v[o], pv[o], et[o]
                for h in range(fi):
                    vo[h] = po[h] + s * eo[h]
        else:
            ew = e[w:w + fi * fo].reshape(fi, fo)
            for o in range(fo):
                vo, po = v[o], pv[o]
                for h in range(fi):
                    vo[h] = po[h] + s * ew[h, o]
        for o in range(fo):
            bias[o] = p[bb + o] + s * e[bb + o]
        nxt = layer_block(work, offsets, B, layer, 0)
        dense_t(act, v, bias, nxt)
        if layer < last:
            relu(nxt)
        act = nxt
    return cross_entropy(act, y, tmp)


@nb.njit(**JIT)
def fold_log_weight(lw, sign, e, acc, stats):
    """Running log-sum-exp: stats[:3] = (m, Σw, Σw²) with w = e^{lw − m}; acc[:e.size] += sign·w·e."""
    if lw > stats[0]:
        scale = np.exp(stats[0] - lw)
        acc[:e.size] *= np.float32(scale)   # not the padding: it may share a line with the next row
        stats[1] *= scale
        stats[2] *= scale * scale
        stats[0] = lw
    w = np.exp(lw - stats[0])
    stats[1] += w
    stats[2] += w * w
    wf = np.float32(sign * w)
    for c in range(e.size):
        acc[c] += wf * e[c]


# The reductions below are over fixed-size blocks of samples, folded in block order:
# which thread evaluates a block changes nothing, so 1, 2 or 16 threads give the same
# bits (issue 11). A block's own sum is serial, in sample order.
IS_BLOCK = 32   # noise sources per IS block
IS_WAVE = 16    # IS blocks held at once before folding: at least this many, ...
WAVE_FLOATS = 1 << 20   # ... or more while they hold at most this many floats (memory: the larger of
#                          IS_WAVE·(d + 16) and WAVE_FLOATS floats; the reduced problem's J = 10³ is one
#                          wave: one parallel launch and one fold; blocks fold in order, so the same bits)


@nb.njit(**PJIT)
def importance_partials(p, s, key, start, stop, antithetic, base0, y, indptr, idx, val, offsets, n_threads,
                        X, kend, dense):
    """IS over samples [start, stop): (stats (m, Σw, Σw²), Σwε (d,) float64, log_w).

    Antithetic: samples 2q and 2q+1 share ε (the second with −ε), generated once.
    Blocks of IS_BLOCK noise sources are evaluated a wave at a time, thread t taking
    blocks t, t + n_threads, ...; each wave is then folded into the total in block order.
    The first layer's noise term reads the minibatch in CSR form (``indptr, idx, val``),
    or, when ``dense``, as the dense X with row extents ``kend`` (the reduced problem);
    then, without antithetic pairs, the perturbed pre-activation is written directly.
    """
    d = p.size
    per = 2 if antithetic else 1
    first, last = start // per, (stop - 1) // per + 1      # noise sources to generate
    n_blocks = (last - first + IS_BLOCK - 1) // IS_BLOCK
    log_w = np.empty(stop - start)
    # padded rows (stats: 128 bytes, as numba aligns arrays to 32 only; acc: 16 floats more than d),
    # so that blocks folded on two threads share no cache line; rows stay C-contiguous (a
    # [:, :d] view would not vectorise)
    wave_size = max(IS_WAVE, min(WAVE_FLOATS // (d + 16), n_blocks))
    stats = np.empty((wave_size, 16))
    acc = np.empty((wave_size, d + 16), dtype=np.float32)
    total, total_acc = np.array([-np.inf, 0.0, 0.0]), np.zeros(d)
    pt = transposed_tail(p, offsets)
    tr = tail_transposable(offsets)
    B, C = y.size, offsets[offsets.shape[0] - 1, 3]
    zero0 = np.zeros_like(base0)
    for wave in range(0, n_blocks, wave_size):
        n_wave = min(wave_size, n_blocks - wave)
        for t in nb.prange(n_threads):
            e = np.empty(d, dtype=np.float32)
            wt, bias = np.empty(scratch_size_of(offsets), dtype=np.float32), np.empty(d, dtype=np.float32)
            work = np.empty(work_size_of(offsets, B), dtype=np.float32)
            t0 = np.empty((B, offsets[0, 3]), dtype=np.float32)
            tmp = np.empty(B * C, dtype=np.float32)
            act0 = layer_block(work, offsets, B, 0, 0)
            fused = dense and per == 1
            for i in range(t, n_wave, n_threads):
                lo = first + (wave + i) * IS_BLOCK
                stats[i, 0], stats[i, 1], stats[i, 2] = -np.inf, 0.0, 0.0
                acc[i] = 0.0
                for src in range(lo, min(lo + IS_BLOCK, last)):
                    fill_sample_noise(sample_key(key, src), e, offsets, tr)
                    if fused:
                        dense_affine_rows(e, offsets[0, 0], offsets[0, 1], offsets[0, 3], X, kend, base0,
                                          np.float32(s), act0)
                    elif dense:
                        dense_affine_rows(e, offsets[0, 0], offsets[0, 1], offsets[0, 3], X, kend, zero0,
                                          np.float32(1.0), t0)
                    else:
                        sparse_affine(e, offsets[0, 0], offsets[0, 1], offsets[0, 3], indptr, idx, val, t0)
                    for r in range(per):
                        j = src * per + r
                        if start <= j < stop:
                            sign = 1.0 - 2.0 * r  # +ε, then −ε for the antithetic partner
                            lw = -perturbed_tail_loss(p, pt, e, np.float32(s * sign), base0, t0, y, offsets, work,
                                                      wt, bias, tmp, fused, tr)
                            log_w[j - start] = lw
                            fold_log_weight(lw, sign, e, acc[i], stats[i])
        if d < PARALLEL_FOLD:
            for i in range(n_wave):
                fold_block(stats[i], acc[i], total, total_acc)
        else:
            fold_wave_parallel(stats, acc, n_wave, total, total_acc)
    if tr:
        untranspose_tail(total_acc, offsets)
    return total, total_acc, log_w


@nb.njit(**JIT)
def fold_block(stats, acc, total, total_acc):
    """total ← total ⊕ block in log space (float64): rescale both to the larger log weight m."""
    m = max(total[0], stats[0])
    if m == -np.inf:   # neither has a finite weight yet
        return
    a, b = np.exp(total[0] - m), np.exp(stats[0] - m)
    total[1] = a * total[1] + b * stats[1]
    total[2] = a * a * total[2] + b * b * stats[2]
    total[0] = m
    for c in range(total_acc.size):
        total_acc[c] = a * total_acc[c] + b * np.float64(acc[c])


PARALLEL_FOLD = 1 << 16   # a wave's fold runs over coordinate chunks on all threads from this d on
FOLD_CHUNK = 1 << 13


@nb.njit(**PJIT)
def fold_wave_parallel(stats, acc, n_wave, total, total_acc):
    """fold_block of blocks 0..n_wave−1 in order, split over coordinate chunks (the same sums per coordinate).

    The scale factors (a, b) of each step depend on the stats alone and are computed
    first; each coordinate then sees the same sequence of updates as in serial folding,
    whatever the number of threads.
    """
    ab = np.zeros((n_wave, 2))
    skip = np.zeros(n_wave, dtype=np.bool_)
    for i in range(n_wave):
        m = max(total[0], stats[i, 0])
        if m == -np.inf:   # neither has a finite weight yet: fold_block leaves the total alone
            skip[i] = True
            continue
        a, b = np.exp(total[0] - m), np.exp(stats[i, 0] - m)
        total[1] = a * total[1] + b * stats[i, 1]
        total[2] = a * a * total[2] + b * b * stats[i, 2]
        total[0] = m
        ab[i, 0], ab[i, 1] = a, b
    d = total_acc.size
    for chunk in nb.prange((d + FOLD_CHUNK - 1) // FOLD_CHUNK):
        lo, hi = chunk * FOLD_CHUNK, min((chunk + 1) * FOLD_CHUNK, d)
        t = total_acc[lo:hi]
        for i in range(n_wave):
            if skip[i]:
                continue
            a, b, ai = ab[i, 0], ab[i, 1], acc[i, lo:hi]
            for c in range(hi - lo):
                t[c] = a * t[c] + b * np.float64(ai[c])


@nb.njit(**JIT)
def work_size_of(offsets, batch):
    """Length of one thread's work array: activations and deltas of every layer (2·batch·Σ fan_out)."""
    total = 0
    for k in range(offsets.shape[0]):
        total += offsets[k, 3]
    return 2 * batch * total


BLOCK = 2048  # coordinates per noise block: generated contiguously (vectorised), then applied
SERIAL_BELOW = 8 * BLOCK  # smaller updates run serially: a parallel launch per inner step costs more


@nb.njit(**JIT)
def noise_block(skey, blk, n):
    """(lo, ε[lo:hi]): noise block ``blk`` (BLOCK coordinates) of an n-vector, generated contiguously."""
    lo = blk * BLOCK
    z = np.empty(min(lo + BLOCK, n) - lo, dtype=np.float32)
    fill_normals(skey, lo, z)
    return lo, z


@nb.njit(**JIT)
def _langevin_block(blk, x, chain, grad, total, half, root, inv_tau, en, skey):
    lo, z = noise_block(skey, blk, chain.size)
    hi = lo + z.size
    c, g, xb, tb = chain[lo:hi], grad[lo:hi], x[lo:hi], total[lo:hi]
    for k in range(hi - lo):
        c[k] += -half * (g[k] - (xb[k] - c[k]) * inv_tau) + root * z[k]
        tb[k] += en * c[k]


@nb.njit(**PJIT)
def _langevin_parallel(x, chain, grad, total, half, root, inv_tau, en, skey):
    for blk in nb.prange((chain.size + BLOCK - 1) // BLOCK):
        _langevin_block(blk, x, chain, grad, total, half, root, inv_tau, en, skey)


@nb.njit(**JIT)
def langevin_update(x, chain, grad, total, e, e_next, tau, key, j, noise_scale):
    """chain ← chain − (e/2)(∇f − (x − chain)/τ) + s·√e·ε_j ;  total += e_next·chain (Alg. 3; s = √T, T the SGLD temperature, 1 as printed)."""
    half, root = np.float32(0.5 * e), np.float32(noise_scale * np.sqrt(e))
    inv_tau, en = np.float32(1.0 / tau), np.float32(e_next)
    skey = sample_key(key, j)
    if chain.size < SERIAL_BELOW:
        for blk in range((chain.size + BLOCK - 1) // BLOCK):
            _langevin_block(blk, x, chain, grad, total, half, root, inv_tau, en, skey)
    else:
        _langevin_parallel(x, chain, grad, total, half, root, inv_tau, en, skey)


@nb.njit(**JIT)
def sgld_chain(x, chain, tau, eps, key, y, indptr, idx, val, cols, colptr, col_row, col_val, offsets, noise_scale):
    """Algorithm 3 on a fixed minibatch: returns (Σ ε_j x^j / Σ ε_j, last state, last |∇f|).

    ``chain`` (x^1) is updated in place; noise sample j drives the step from x^j.
    """
    grad = np.zeros_like(x)
    work = np.empty(work_size_of(offsets, y.size), dtype=np.float32)
    total = (eps[0] * chain).astype(np.float32)
    for j in range(1, eps.size):
        loss_and_grad(chain, y, indptr, idx, val, cols, colptr, col_row, col_val, offsets, work, grad)
        langevin_update(x, chain, grad, total, eps[j - 1], eps[j], tau, key, j, noise_scale)
    grad_norm = np.sqrt(np.sum(grad.astype(np.float64) ** 2)) if eps.size > 1 else 0.0
    return total / np.float32(eps.sum()), chain, grad_norm


@nb.njit(**JIT)
def fill_needed_noise(skey, x, root_tau, cols, offsets, z):
    """z = x + √τ·ε on the coordinates ∇f reads: active W₁ rows and everything after W₁."""
    H, w0, tail = offsets[0, 3], offsets[0, 0], offsets[0, 1]
    for c in range(cols.size):
        r = w0 + cols[c] * H
        fill_normals(skey, r, z[r:r + H])
    fill_normals(skey, tail, z[tail:])
    for c in range(cols.size):
        r = w0 + cols[c] * H
        for o in range(H):
            z[r + o] = x[r + o] + root_tau * z[r + o]
    for k in range(tail, x.size):
        z[k] = x[k] + root_tau * z[k]


RM_MAX_BLOCKS = 16  # Robbins–Monro: M draws in at most this many blocks (a function of M alone; more
#                     blocks of a 159k-parameter gradient cost memory traffic: 64 made HR 2× slower)


@nb.njit(**PJIT)
def robbins_monro(x_k, tau, steps, n_samples, key, y, indptr, idx, val, cols, colptr, col_row, col_val,
                  offsets, n_threads, grad_scale):
    """Algorithm 5: x^j = x^{j−1} − a_j (x^{j−1} − x_k + (βτ/M) Σ_m ∇f(z_m)), z_m ~ φ_{x^{j−1},τ}.

    β = ``grad_scale`` is the loss scale (f → β·f; 1 as printed). Returns (x^J, |ĥ| at the last
    iteration). Sample m of iteration j is noise sample (j−1)·M + m. Σ_m is a sum of per-block
    sums in block order (thread t takes blocks t, t + n_threads, ...).
    """
    d, M = x_k.size, n_samples
    per = (M + RM_MAX_BLOCKS - 1) // RM_MAX_BLOCKS
    n_blocks = (M + per - 1) // per
    x = x_k.copy()
    root_tau = np.float32(np.sqrt(tau))
    grads = np.zeros((n_threads, d), dtype=np.float32)   # rows of inactive pixels stay zero
    sums = np.zeros((n_blocks, d), dtype=np.float32)
    zs = np.zeros((n_threads, d), dtype=np.float32)
    works = np.empty((n_threads, work_size_of(offsets, y.size)), dtype=np.float32)
    residual = 0.0
    for j in range(1, steps.size + 1):
        for t in nb.prange(n_threads):
            for blk in range(t, n_blocks, n_threads):
                sums[blk, :] = 0.0
                for m in range(blk * per, min(blk * per + per, M)):
                    fill_needed_noise(sample_key(key, (j - 1) * M + m), x, root_tau, cols, offsets, zs[t])
                    loss_and_grad(zs[t], y, indptr, idx, val, cols, colptr, col_row, col_val, offsets,
                                  works[t], grads[t])
                    sums[blk] += grads[t]
        a, scale = np.float32(steps[j - 1]), np.float32(grad_scale * tau / M)
        g = sums[0].copy()
        for blk in range(1, n_blocks):   # row by row (contiguous), in block order
            g += sums[blk]
        res2 = 0.0
        for c in range(d):
            h = x[c] - x_k[c] + scale * g[c]        # eq. (5.3)
            res2 += np.float64(h) * h
            x[c] -= a * h
        residual = np.sqrt(res2)
    return x, residual
