"""numba.cuda kernels of the device-resident updates: the reduced IS update (Alg. 4) and fused SGD.

The reduced IS update (:mod:`kltrain.nets.projected` derives it) runs as five launches on one
stream, with the parameters, the training set and every intermediate on the device:

1. :func:`kltrain.kernels.cuda_qr.minibatch_qr` — the basis Ũ, Rᵀ and the rank r (one block);
2. :func:`reduce_params` — x̃ = (ŨᵀW₁, rest) and ŨᵀZ, Z the orthogonal normals regenerated
   tile by tile from the counter stream (never stored);
3. :func:`is_samples` — for each proposal sample, its noise ξ_j once into shared memory, the
   reduced network's loss, log w_j = −β f̃(x̃ + sξ_j), and an **online log-sum-exp**
   accumulation m ← max(m, log w_j), Σw, Σw², Σ_j w_j ξ_j (rescaled by e^{m_old − m_new}), so the
   noise is used while it is in shared memory and never regenerated; one partial per block;
4. :func:`is_finish` — the partials combined in a fixed order (eq. 5.2's x̃ + s Σw ξ/Σw), ESS,
   the orthogonal scale k = s·√Σ_j w̄_j², and an 8-number report;
5. :func:`lift` — W₁ ← W₁ + kZ + Ũ(c̃_new − c̃ − kŨᵀZ), the rest from x̃_new: in place, skipped
   when the report says the update failed (a NaN loss), so the parameters keep their last value.

The host then copies the report, and only the report: one synchronisation per update
(:mod:`kltrain.kernels.cuda_resident`).

:func:`sgd_step` is plain SGD (eq. 3.4) as one cooperative launch: forward, backward and update
separated by grid-wide barriers, parameters updated in place.

Limits (compile time, checked by the host): reduced dimension r·H + |rest| ≤ ``POOL_EPS``
(the paper's 784–200–10 at B = 20: 6,210), B·H ≤ ``POOL_PRE``, the batch and class limits
of :mod:`kltrain.kernels.cuda`. Per-thread accumulators are indexed only by compile-time loop
counters (fully unrolled, so registers: the compile tier checks that no kernel has local memory).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from .cuda import MAX_BATCH, MAX_CLASSES, normal, sample_key
from .cuda_qr import MAX_ROWS, META_RANK, META_STATUS, STATUS_FALLBACK

REDUCED_THREADS = 256          # threads per block of is_samples (and the accumulators' stride)
PER_THREAD = 27                # reduced coordinates one thread accumulates
POOL_EPS = 6912                # = REDUCED_THREADS·PER_THREAD: one sample's noise, in shared memory
POOL_PRE = 4096                # B·H hidden pre-activations
POOL_LOGITS = MAX_BATCH * MAX_CLASSES
TILE = 32                      # pixels (and hidden units) per reduce_params tile
ACC_ROWS = 3                   # basis columns per reduce_params thread: blockDim.y·ACC_ROWS ≥ r
SGD_THREADS = 256
# ptxas bounds: unbounded, is_samples takes 152 registers (one 256-thread block per SM); at ≤ 128 it
# spills 12 bytes and two blocks fit (25% theoretical occupancy); at ≤ 80, three blocks but 216 bytes spill.
LAUNCH_BOUNDS = {"is_samples": (REDUCED_THREADS, 2)}
NO_BAD_SAMPLE = np.int64(2 ** 62)

def _kernel(name):
    """``cuda.jit(cache=True)`` with the kernel's :data:`LAUNCH_BOUNDS` (the simulator takes none)."""
    from numba import config
    bounds = LAUNCH_BOUNDS.get(name)
    if bounds is None or getattr(config, "ENABLE_CUDASIM", 0):
        return cuda.jit(cache=True)
    return cuda.jit(cache=True, launch_bounds=bounds)


# lay (int64): the full net's shape as the reduced kernels read it
LAY_IN, LAY_HIDDEN, LAY_CLASSES, LAY_TWO, LAY_REST = range(5)
# report (float64): what the host reads back, the update's only device→host copy
(REPORT_STATUS, REPORT_LOSS, REPORT_ESS, REPORT_MAX_WEIGHT, REPORT_ORTH_SCALE, REPORT_RANK,
 REPORT_BAD_SAMPLE, REPORT_LOG_SCALE) = range(8)
REPORT_SIZE = 8
OK, BAD_SAMPLE, NO_WEIGHT, QR_FALLBACK = 0, 1, 2, 3


# -- 2. reduced parameters -------------------------------------------------------------------------
@cuda.jit(cache=True)
def reduce_params(params, basis, meta, lay, okey, xr, bz, bad):
    """xr = (ŨᵀW₁ flattened r×H, params' rest); bz = ŨᵀZ (r×H), Z[i, h] = ε[ORTHOGONAL, i·H + h].

    Block (TILE-wide h tile) × (blockDim.y basis lanes, ACC_ROWS columns each); the pixels in
    tiles of TILE rows staged in shared memory, each normal drawn once.
    """
    Ws = cuda.shared.array((TILE, TILE), float32)
    Zs = cuda.shared.array((TILE, TILE), float32)
    Us = cuda.shared.array((TILE, MAX_ROWS), float32)
    n_in, H, rest = lay[LAY_IN], lay[LAY_HIDDEN], lay[LAY_REST]
    r = meta[META_RANK]
    tx, ty, bx, by = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockDim.x, cuda.blockDim.y
    flat, n_threads = ty * bx + tx, bx * by
    h0 = cuda.blockIdx.x * bx
    h = h0 + tx
    c0 = c1 = c2 = z0 = z1 = z2 = float32(0.0)
    for i0 in range(0, n_in, TILE):
        for p in range(flat, TILE * bx, n_threads):
            i, hh = i0 + p // bx, h0 + p % bx
            inside = i < n_in and hh < H
            Ws[p // bx, p % bx] = params[i * H + hh] if inside else float32(0.0)
            Zs[p // bx, p % bx] = normal(okey, i * H + hh) if inside else float32(0.0)
        for p in range(flat, TILE * r, n_threads):
            i = i0 + p // r
            Us[p // r, p % r] = basis[i, p % r] if i < n_in else float32(0.0)
        cuda.syncthreads()
        for ii in range(min(TILE, n_in - i0)):
            w, z = Ws[ii, tx], Zs[ii, tx]
            if ty < r:
                u = Us[ii, ty]
                c0 += u * w
                z0 += u * z
            if ty + by < r:
                u = Us[ii, ty + by]
                c1 += u * w
                z1 += u * z
            if ty + 2 * by < r:
                u = Us[ii, ty + 2 * by]
                c2 += u * w
                z2 += u * z
        cuda.syncthreads()
    if h < H:
        if ty < r:
            xr[ty * H + h], bz[ty * H + h] = c0, z0
        if ty + by < r:
            xr[(ty + by) * H + h], bz[(ty + by) * H + h] = c1, z1
        if ty + 2 * by < r:
            xr[(ty + 2 * by) * H + h], bz[(ty + 2 * by) * H + h] = c2, z2
    for t in range(cuda.blockIdx.x * n_threads + flat, rest, cuda.gridDim.x * n_threads):
        xr[r * H + t] = params[n_in * H + t]
    if cuda.blockIdx.x == 0 and flat == 0:
        bad[0] = NO_BAD_SAMPLE


# -- 3. the samples: log weights and the online weighted noise sum -----------------------------------
@cuda.jit(device=True)
def _row_softmax(z, b, C, label):
    """(cross-entropy of row b of the B×C logits z (flat), the row's max, Σ_o e^{z − max})."""
    top = z[b * C]
    for o in range(1, C):
        top = max(top, z[b * C + o])
    total = float32(0.0)
    for o in range(C):
        total += math.exp(z[b * C + o] - top)
    return math.log(total) + top - z[b * C + label], top, total


@cuda.jit(device=True)
def _reduced_log_weight(xr, ss, eps, tri, r, y, idx, B, lay, beta, pre, logits, rowloss, scal):
    """−β f̃(x̃ + ss·ξ) on the reduced minibatch Rᵀ, ξ in ``eps`` (shared); every thread gets it."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    H, C, two = lay[LAY_HIDDEN], lay[LAY_CLASSES], lay[LAY_TWO]
    rH = r * H
    for p in range(tid, B * H, nt):                       # first layer: Rᵀ(c̃ + sξ) + b₁ + sξ
        b, h = p // H, p % H
        z = xr[rH + h] + ss * eps[rH + h]
        for k in range(r):
            t = tri[b, k]
            if t != 0:
                z += t * (xr[k * H + h] + ss * eps[k * H + h])
        pre[p] = max(z, float32(0.0)) if two == 1 else z
    cuda.syncthreads()
    if two == 1:                                          # second layer
        w2 = rH + H
        b2 = w2 + H * C
        for p in range(tid, B * C, nt):
            b, o = p // C, p % C
            z = xr[b2 + o] + ss * eps[b2 + o]
            for h in range(H):
                z += pre[b * H + h] * (xr[w2 + h * C + o] + ss * eps[w2 + h * C + o])
            logits[p] = z
        cuda.syncthreads()
    for b in range(tid, B, nt):                           # cross-entropy of each row
        if two == 1:
            rowloss[b] = _row_softmax(logits, b, C, y[idx[b]])[0]
        else:
            rowloss[b] = _row_softmax(pre, b, C, y[idx[b]])[0]
    cuda.syncthreads()
    if tid == 0:
        total = float32(0.0)
        for b in range(B):
            total += rowloss[b]
        scal[0] = -beta * total / B
    cuda.syncthreads()
    return scal[0]


@cuda.jit(device=True)
def _usable(lw):
    """A log weight that takes part: finite, or −inf (weight 0). NaN and +inf are errors."""
    return lw < math.inf


@_kernel("is_samples")
def is_samples(xr, tri, meta, y, idx, B, lay, s, key, J, antithetic, beta, log_w, part, stats, bad, loss0):
    """Block g: its samples' log weights and (m, Σw, Σw², Σw̃², Σ w ξ) in the log scale m.

    Samples u = g, g + gridDim, …; with ``antithetic`` unit u is the pair (2u, 2u+1) sharing
    ξ_u (signs ±), and Σw̃² sums (w_{2u} − w_{2u+1})², the orthogonal term's variance (the
    plain Σw² otherwise). Block 0 also writes −β f̃(x̃) (the minibatch loss) to loss0.
    """
    eps = cuda.shared.array(POOL_EPS, float32)
    pre = cuda.shared.array(POOL_PRE, float32)
    logits = cuda.shared.array(POOL_LOGITS, float32)
    rowloss = cuda.shared.array(MAX_BATCH, float32)
    scal = cuda.shared.array(2, float32)
    acc = cuda.local.array(PER_THREAD, float32)
    tid, nt, g = cuda.threadIdx.x, cuda.blockDim.x, cuda.blockIdx.x
    r = meta[META_RANK]
    dim = r * lay[LAY_HIDDEN] + lay[LAY_REST]
    base = tid * PER_THREAD                               # this thread's coordinates: base … base + PER_THREAD − 1
    for k in range(PER_THREAD):
        acc[k] = float32(0.0)
    for c in range(dim + tid, PER_THREAD * nt, nt):       # the pool's tail stays 0: the sums need no bounds test
        eps[c] = float32(0.0)
    if g == 0:
        for c in range(tid, dim, nt):
            eps[c] = float32(0.0)
        cuda.syncthreads()
        lw = _reduced_log_weight(xr, float32(0.0), eps, tri, r, y, idx, B, lay, beta, pre, logits, rowloss, scal)
        if tid == 0:
            loss0[0] = -lw
    m = float32(-math.inf)
    sw = sw2 = so = float64(0.0)
    units = (J + 1) // 2 if antithetic else J
    for u in range(g, units, cuda.gridDim.x):
        j0 = 2 * u if antithetic else u
        skey = sample_key(key, u)                         # antithetic: sample 2u and 2u+1 share ξ_u
        for c in range(tid, dim, nt):                     # a run-time loop: unrolled, it holds 10⁲ registers
            eps[c] = normal(skey, c)
        cuda.syncthreads()
        lw0 = _reduced_log_weight(xr, s, eps, tri, r, y, idx, B, lay, beta, pre, logits, rowloss, scal)
        lw1 = float32(-math.inf)
        pair = antithetic and j0 + 1 < J
        if pair:
            lw1 = _reduced_log_weight(xr, -s, eps, tri, r, y, idx, B, lay, beta, pre, logits, rowloss, scal)
        if tid == 0:
            log_w[j0] = lw0
            if not _usable(lw0):
                cuda.atomic.min(bad, 0, j0)
            if pair:
                log_w[j0 + 1] = lw1
                if not _usable(lw1):
                    cuda.atomic.min(bad, 0, j0 + 1)
        ok0, ok1 = _usable(lw0) and lw0 > -math.inf, _usable(lw1) and lw1 > -math.inf
        m_new = m
        if ok0 and lw0 > m_new:
            m_new = lw0
        if ok1 and lw1 > m_new:
            m_new = lw1
        scale = math.exp(m - m_new) if m > -math.inf else float32(0.0)
        w0 = math.exp(lw0 - m_new) if ok0 else float32(0.0)
        w1 = math.exp(lw1 - m_new) if ok1 else float32(0.0)
        wd = w0 - w1                                      # ξ enters with +1 for sample 2u, −1 for 2u+1
        sw = sw * scale + w0 + w1
        sw2 = sw2 * scale * scale + float64(w0) * w0 + float64(w1) * w1
        so = so * scale * scale + float64(wd) * wd
        for k in range(PER_THREAD):
            acc[k] = acc[k] * scale + wd * eps[base + k]
        m = m_new
        cuda.syncthreads()                                # eps is overwritten by the next unit
    for k in range(PER_THREAD):
        if base + k < dim:
            part[g, base + k] = acc[k]
    if tid == 0:
        stats[g, 0], stats[g, 1], stats[g, 2], stats[g, 3] = m, sw, sw2, so


# -- 4. combine ----------------------------------------------------------------------------------------
@cuda.jit(cache=True)
def is_finish(xr, meta, lay, s, stats, part, bad, loss0, new, report):
    """new = x̃ + s·Σ_j w_j ξ_j / Σ_j w_j (eq. 5.2), the blocks' partials in block order; thread 0: report."""
    c = cuda.grid(1)
    r = meta[META_RANK]
    dim = r * lay[LAY_HIDDEN] + lay[LAY_REST]
    top = -math.inf
    for g in range(stats.shape[0]):
        top = max(top, stats[g, 0])
    if c < dim:
        sw, acc = float64(0.0), float64(0.0)
        for g in range(stats.shape[0]):
            if stats[g, 0] > -math.inf:
                f = math.exp(stats[g, 0] - top)
                sw += f * stats[g, 1]
                acc += f * part[g, c]
        new[c] = float32(xr[c] + s * acc / sw) if sw > 0 else xr[c]   # sw = 0: no weight; the lift is skipped
    if c == 0:
        sw = sw2 = so = float64(0.0)
        for g in range(stats.shape[0]):
            if stats[g, 0] > -math.inf:
                f = math.exp(stats[g, 0] - top)
                sw += f * stats[g, 1]
                sw2 += f * f * stats[g, 2]
                so += f * f * stats[g, 3]
        status = OK
        if bad[0] != NO_BAD_SAMPLE:
            status = BAD_SAMPLE
        elif not top > -math.inf:
            status = NO_WEIGHT
        elif meta[META_STATUS] == STATUS_FALLBACK:
            status = QR_FALLBACK
        report[REPORT_STATUS] = status
        report[REPORT_LOSS] = loss0[0]
        report[REPORT_ESS] = sw * sw / sw2 if sw2 > 0 else 0.0
        report[REPORT_MAX_WEIGHT] = 1.0 / sw if sw > 0 else math.inf
        report[REPORT_ORTH_SCALE] = s * math.sqrt(so) / sw if sw > 0 else 0.0
        report[REPORT_RANK] = r
        report[REPORT_BAD_SAMPLE] = bad[0]
        report[REPORT_LOG_SCALE] = top


# -- 5. lift -------------------------------------------------------------------------------------------
@cuda.jit(cache=True)
def lift(params, basis, meta, lay, okey, xr, bz, new, report):
    """In place: W₁ += kZ + Ũ(c̃_new − c̃ − kŨᵀZ), rest = x̃_new's rest; nothing when the update failed."""
    c = cuda.grid(1)
    if report[REPORT_STATUS] != OK:
        return
    n_in, H, rest = lay[LAY_IN], lay[LAY_HIDDEN], lay[LAY_REST]
    r = meta[META_RANK]
    k = float32(report[REPORT_ORTH_SCALE])
    if c < n_in * H:
        i, h = c // H, c % H
        d = float32(0.0)
        for q in range(r):
            d += basis[i, q] * (new[q * H + h] - xr[q * H + h] - k * bz[q * H + h])
        params[c] = params[c] + k * normal(okey, c) + d
    elif c < n_in * H + rest:
        params[c] = new[r * H + c - n_in * H]


# -- SGD -------------------------------------------------------------------------------------------------
@cuda.jit(device=True)
def _block_sum_to(value, scratch, out, i):
    """Atomically add the block's sum of ``value`` (float64) to out[i]."""
    scratch[cuda.threadIdx.x] = value
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        total = float64(0.0)
        for t in range(cuda.blockDim.x):
            total += scratch[t]
        cuda.atomic.add(out, i, total)
    cuda.syncthreads()


@cuda.jit(cache=True)
def sgd_step(params, X, y, idx, B, lay, lr, beta, pre, delta, d1, report):
    """x ← x − η∇(βf)(x) on the minibatch X[idx], in place, as one cooperative launch.

    Phases between grid barriers: (1) pre = A W₁ + b₁ over the grid; (2) block 0: logits,
    cross-entropy, δ₂ = β(softmax − onehot)/B; (3) δ₁ = δ₂W₂ᵀ ⊙ 1[pre > 0] (one hidden layer);
    (4) every parameter's gradient from (A, pre, δ) and its update. report = (βf(x), |∇βf|²).
    """
    grid = cuda.cg.this_grid()
    logits = cuda.shared.array(POOL_LOGITS, float32)
    rowloss = cuda.shared.array(MAX_BATCH, float32)
    scratch = cuda.shared.array(1024, float64)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    n_in, H, C, two = lay[LAY_IN], lay[LAY_HIDDEN], lay[LAY_CLASSES], lay[LAY_TWO]
    b1 = n_in * H
    w2 = b1 + H
    b2 = w2 + H * C
    n_params = b2 + C if two == 1 else b1 + H
    if start == 0:
        report[1] = 0.0
    for p in range(start, B * H, stride):                 # (1)
        b, h = p // H, p % H
        row = idx[b]
        z = params[b1 + h]
        for i in range(n_in):
            a = X[row, i]
            if a != 0:
                z += a * params[i * H + h]
        pre[p] = z
    grid.sync()
    if cuda.blockIdx.x == 0:                              # (2)
        for p in range(tid, B * C, nt):
            b, o = p // C, p % C
            if two == 1:
                z = params[b2 + o]
                for h in range(H):
                    z += max(pre[b * H + h], float32(0.0)) * params[w2 + h * C + o]
                logits[p] = z
            else:
                logits[p] = pre[p]
        cuda.syncthreads()
        for b in range(tid, B, nt):
            label = y[idx[b]]
            rowloss[b], top, total = _row_softmax(logits, b, C, label)
            for o in range(C):
                delta[b * C + o] = beta * (math.exp(logits[b * C + o] - top) / total
                                           - (float32(1.0) if o == label else float32(0.0))) / B
        cuda.syncthreads()
        if tid == 0:
            total = float32(0.0)
            for b in range(B):
                total += rowloss[b]
            report[0] = beta * total / B
    grid.sync()
    if two == 1:                                          # (3)
        for p in range(start, B * H, stride):
            b, h = p // H, p % H
            g = float32(0.0)
            if pre[p] > 0:
                for o in range(C):
                    g += delta[b * C + o] * params[w2 + h * C + o]
            d1[p] = g
        grid.sync()
    norm2 = float64(0.0)
    for c in range(start, n_params, stride):              # (4)
        g = float32(0.0)
        if c < b1:                                        # ∂/∂W₁ = Aᵀ δ₁
            i, h = c // H, c % H
            for b in range(B):
                a = X[idx[b], i]
                if a != 0:
                    g += a * (d1[b * H + h] if two == 1 else delta[b * C + h])
        elif c < b1 + H:                                  # ∂/∂b₁ = Σ_b δ₁
            h = c - b1
            for b in range(B):
                g += d1[b * H + h] if two == 1 else delta[b * C + h]
        elif c < b2:                                      # ∂/∂W₂ = relu(pre)ᵀ δ₂
            h, o = (c - w2) // C, (c - w2) % C
            for b in range(B):
                g += max(pre[b * H + h], float32(0.0)) * delta[b * C + o]
        else:                                             # ∂/∂b₂ = Σ_b δ₂
            for b in range(B):
                g += delta[b * C + c - b2]
        params[c] -= lr * g
        norm2 += float64(g) * g
    _block_sum_to(norm2, scratch, report, 1)
