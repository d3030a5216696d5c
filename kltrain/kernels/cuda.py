"""numba.cuda kernels for the paper's MLPs (0 or 1 hidden layer): IS, SGLD, Robbins–Monro.

The noise is the counter-based generator of :mod:`kltrain.noise` — the same hash
and bit mapping as the CPU kernels, with the GPU's float32 log/sin/cos — so
every backend sees the same samples up to float rounding.

One thread block evaluates one network (one perturbed parameter vector x + s·ε_j)
on the whole minibatch: thread h owns hidden unit h, keeps its B pre-activations
in registers, and walks the active pixels of the minibatch (CSC form), drawing
each first-layer noise value once. The second layer's perturbed weights go to
shared memory. Limits (compile-time): batch ≤ MAX_BATCH, first-layer width ≤
MAX_HIDDEN, classes ≤ MAX_CLASSES.

Kernels: ``log_weights`` (a block per IS sample), ``accumulate`` + ``sum_rows``
(Σ_j w_j ε_j over a grid of coordinates × sample chunks, noise regenerated, then
the chunks summed in order), ``loss_grad`` (one block), ``langevin`` (a thread
per coordinate), ``rm_grads`` (a block per Robbins–Monro draw,
atomically summed) and ``rm_update``; ``normals`` for parity tests.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..noise import GOLDEN, MIX1, MIX2

MAX_BATCH, MAX_HIDDEN, MAX_CLASSES = 24, 256, 16
# Shared-array shapes must be compile-time constants: numba-cuda freezes module-level ints, but types an
# expression such as MAX_BATCH * MAX_HIDDEN inside a kernel as a runtime int64 and refuses it (the simulator
# accepts either, which is why the compile tier in tests/test_cuda_compile.py exists).
POOL_HIDDEN = MAX_BATCH * MAX_HIDDEN                 # pre-activations, one row per example
POOL_HEAD = MAX_HIDDEN * MAX_CLASSES + MAX_CLASSES   # the perturbed W₂ and b₂
POOL_LOGITS = MAX_BATCH * MAX_CLASSES                # logits, and ∂f/∂logits
_S1, _S9, _S27, _S30, _S31, _S32, _S33 = (np.uint64(k) for k in (1, 9, 27, 30, 31, 32, 33))
_M23 = np.uint64(0x7FFFFF)
_F_M31, _F_M23 = np.float32(2.0 ** -31), np.float32(2.0 ** -23)
_HALF, _TWO_PI = np.float32(0.5), np.float32(6.283185307179586)


# -- the counter-based generator ---------------------------------------------------------
@cuda.jit(device=True)
def sample_key(key, j):
    """The hash key of sample j of a stream: the same mixing as the CPU kernels, so both draw the same ε_j."""
    return key + (np.uint64(j) << _S32) * GOLDEN


@cuda.jit(device=True)
def normal(skey, c):
    """ε[j, c] for the sample whose key is skey (Box–Muller: cos for even c, sin for odd)."""
    z = skey + (np.uint64(c) >> _S1) * GOLDEN
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    z = z ^ (z >> _S31)
    u1 = (float32(np.int32(z >> _S33)) + _HALF) * _F_M31
    u2 = (float32(np.int32((z >> _S9) & _M23)) + _HALF) * _F_M23
    r = math.sqrt(float32(-2.0) * math.log(u1))
    if np.uint64(c) & _S1:
        return float32(r * math.sin(_TWO_PI * u2))
    return float32(r * math.cos(_TWO_PI * u2))


@cuda.jit(cache=True)
def normals(key, samples, start, out):
    """out[r, c] = ε[samples[r], start + c]."""
    r, c = cuda.grid(2)
    if r < out.shape[0] and c < out.shape[1]:
        out[r, c] = normal(sample_key(key, samples[r]), start + c)


# -- one network per block -------------------------------------------------------------
@cuda.jit(device=True)
def _first_layer(params, s, skey, w0, b0, H, relu, cols, colptr, col_row, col_val, B, pre1):
    """pre1[b·H + h] = (b₁ + sε)[h] + Σ_pixels A[b, i]·(W₁ + sε)[i, h], ReLU'd if ``relu``."""
    acc = cuda.local.array(MAX_BATCH, float32)
    for h in range(cuda.threadIdx.x, H, cuda.blockDim.x):
        bias = params[b0 + h]
        if s != 0:
            bias += s * normal(skey, b0 + h)
        for b in range(B):
            acc[b] = bias
        for c in range(cols.size):
            row = w0 + cols[c] * H + h
            w = params[row]
            if s != 0:
                w += s * normal(skey, row)
            for k in range(colptr[c], colptr[c + 1]):
                acc[col_row[k]] += col_val[k] * w
        for b in range(B):
            pre1[b * H + h] = max(acc[b], float32(0.0)) if relu else acc[b]
    cuda.syncthreads()


@cuda.jit(device=True)
def _second_layer(params, s, skey, w1, b1, H, C, B, pre1, w2s, logits):
    """logits = pre1 @ (W₂ + sε) + (b₂ + sε); the perturbed W₂, b₂ are kept in w2s."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for k in range(tid, H * C + C, nt):
        w2s[k] = params[w1 + k] + (s * normal(skey, w1 + k) if s != 0 else float32(0.0))
    cuda.syncthreads()
    for bo in range(tid, B * C, nt):
        b, o = bo // C, bo % C
        z = w2s[H * C + o]
        for h in range(H):
            z += pre1[b * H + h] * w2s[h * C + o]
        logits[bo] = z
    cuda.syncthreads()


@cuda.jit(device=True)
def _cross_entropy(logits, y, B, C, delta, losses):
    """losses[b] = CE of row b; delta = (softmax − onehot)/B (∂ mean loss / ∂ logits). Returns the mean."""
    b = cuda.threadIdx.x
    if b < B:
        top = logits[b * C]
        for o in range(1, C):
            top = max(top, logits[b * C + o])
        total = float32(0.0)
        for o in range(C):
            total += math.exp(logits[b * C + o] - top)
        losses[b] = math.log(total) + top - logits[b * C + y[b]]
        for o in range(C):
            delta[b * C + o] = math.exp(logits[b * C + o] - top) / (total * B)
        delta[b * C + y[b]] -= float32(1.0) / B
    cuda.syncthreads()
    mean = float32(0.0)
    for k in range(B):
        mean += losses[k]
    return mean / B


@cuda.jit(device=True)
def _network_loss(params, s, skey, lay, cols, colptr, col_row, col_val, y, B, pre1, w2s, logits, delta, losses):
    """f(params + s·ε) for the sample of ``skey``; lay = (w0, b0, H, w1, b1, C, two_layers)."""
    w0, b0, H, w1, b1, C, two = lay[0], lay[1], lay[2], lay[3], lay[4], lay[5], lay[6]
    _first_layer(params, s, skey, w0, b0, H, two == 1, cols, colptr, col_row, col_val, B, pre1)
    if two == 1:
        _second_layer(params, s, skey, w1, b1, H, C, B, pre1, w2s, logits)
        return _cross_entropy(logits, y, B, C, delta, losses)
    return _cross_entropy(pre1, y, B, C, delta, losses)


@cuda.jit(device=True)
def _backward(lay, cols, colptr, col_row, col_val, B, pre1, w2s, delta, out, accumulate):
    """∇f into ``out`` (assigned, or atomically added when ``accumulate``), after _network_loss."""
    w0, b0, H, w1, C, two = lay[0], lay[1], lay[2], lay[3], lay[5], lay[6]
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    d1 = delta
    if two == 1:
        for k in range(tid, H * C + C, nt):             # ∂/∂W₂ = pre1ᵀ·δ₂ and ∂/∂b₂ = Σ_b δ₂
            g = float32(0.0)
            if k < H * C:
                h, o = k // C, k % C
                for b in range(B):
                    g += pre1[b * H + h] * delta[b * C + o]
            else:
                for b in range(B):
                    g += delta[b * C + k - H * C]
            _store(out, w1 + k, g, accumulate)
        cuda.syncthreads()
        for k in range(tid, B * H, nt):                 # δ₁ = (δ₂ W₂ᵀ) ⊙ 1[pre1 > 0], in place of pre1
            b, h = k // H, k % H
            g = float32(0.0)
            if pre1[k] > 0:
                for o in range(C):
                    g += delta[b * C + o] * w2s[h * C + o]
            pre1[k] = g
        cuda.syncthreads()
        d1 = pre1
    for h in range(tid, H, nt):                         # ∂/∂b₁ and ∂/∂W₁ on the active pixel rows
        g = float32(0.0)
        for b in range(B):
            g += d1[b * H + h]
        _store(out, b0 + h, g, accumulate)
        for c in range(cols.size):
            g = float32(0.0)
            for k in range(colptr[c], colptr[c + 1]):
                g += col_val[k] * d1[col_row[k] * H + h]
            _store(out, w0 + cols[c] * H + h, g, accumulate)
    cuda.syncthreads()


@cuda.jit(device=True)
def _store(out, i, g, accumulate):
    if accumulate:
        cuda.atomic.add(out, i, g)
    else:
        out[i] = g


# -- kernels ---------------------------------------------------------------------------
@cuda.jit(cache=True)
def log_weights(params, s, key, start, antithetic, lay, cols, colptr, col_row, col_val, y, B, out):
    """out[i] = −f(params ± s·ε_src) for sample j = start + i (block i); antithetic pairs share ε."""
    pre1 = cuda.shared.array(POOL_HIDDEN, float32)
    w2s = cuda.shared.array(POOL_HEAD, float32)
    logits = cuda.shared.array(POOL_LOGITS, float32)
    delta = cuda.shared.array(POOL_LOGITS, float32)
    losses = cuda.shared.array(MAX_BATCH, float32)
    j = start + cuda.blockIdx.x
    src, sign = j, float32(1.0)
    if antithetic:
        src, sign = j // 2, float32(1.0 - 2.0 * (j % 2))
    loss = _network_loss(params, s * sign, sample_key(key, src), lay, cols, colptr, col_row, col_val, y, B,
                         pre1, w2s, logits, delta, losses)
    if cuda.threadIdx.x == 0:
        out[cuda.blockIdx.x] = -loss


@cuda.jit(cache=True)
def accumulate(key, start, antithetic, weights, chunk, partial):
    """partial[k, c] = Σ_{i in chunk k} weights[i]·ε_j[c], j = start + i (±ε pairs when antithetic).

    A 2D grid (coordinates × sample chunks): with one thread per coordinate looping over all J
    samples, the reduced problem's ~6·10³ coordinates filled 25 blocks of 132 SMs (12% of warps
    active under Nsight Compute). :func:`sum_rows` then adds the chunks in a fixed order, so the
    result's bits do not depend on scheduling (no atomics).
    """
    c, k = cuda.grid(2)
    if c < partial.shape[1] and k < partial.shape[0]:
        acc = float32(0.0)
        for i in range(k * chunk, min((k + 1) * chunk, weights.size)):
            j = start + i
            if antithetic:
                acc += weights[i] * float32(1.0 - 2.0 * (j % 2)) * normal(sample_key(key, j // 2), c)
            else:
                acc += weights[i] * normal(sample_key(key, j), c)
        partial[k, c] = acc


@cuda.jit(cache=True)
def sum_rows(partial, out):
    """out[c] = Σ_k partial[k, c], in the order k = 0, 1, …: the IS numerator Σ_j w_j ε_j."""
    c = cuda.grid(1)
    if c < out.size:
        acc = float32(0.0)
        for k in range(partial.shape[0]):
            acc += partial[k, c]
        out[c] = acc


@cuda.jit(cache=True)
def fill(out, value):
    """Set every entry of a device array to ``value`` (one thread per entry)."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = value


@cuda.jit(cache=True)
def loss_grad(params, lay, cols, colptr, col_row, col_val, y, B, grad, loss_out):
    """One block: f(params) into loss_out[0] and ∇f into grad (inactive W₁ rows must be zero)."""
    pre1 = cuda.shared.array(POOL_HIDDEN, float32)
    w2s = cuda.shared.array(POOL_HEAD, float32)
    logits = cuda.shared.array(POOL_LOGITS, float32)
    delta = cuda.shared.array(POOL_LOGITS, float32)
    losses = cuda.shared.array(MAX_BATCH, float32)
    loss = _network_loss(params, float32(0.0), np.uint64(0), lay, cols, colptr, col_row, col_val, y, B,
                         pre1, w2s, logits, delta, losses)
    _backward(lay, cols, colptr, col_row, col_val, B, pre1, w2s, delta, grad, False)
    if cuda.threadIdx.x == 0:
        loss_out[0] = loss


@cuda.jit(cache=True)
def langevin(x, chain, grad, total, half, root, inv_tau, e_next, skey):
    """chain ← chain − (ε/2)(∇f − (x − chain)/τ) + s√ε·ε_j ; total += ε_next·chain (Alg. 3)."""
    c = cuda.grid(1)
    if c < chain.size:
        v = chain[c] - half * (grad[c] - (x[c] - chain[c]) * inv_tau) + root * normal(skey, c)
        chain[c] = v
        total[c] += e_next * v


@cuda.jit(cache=True)
def rm_grads(x, s, key, sample0, lay, cols, colptr, col_row, col_val, y, B, gsum):
    """Block m: gsum += ∇f(x + s·ε_{sample0+m}) (atomic), for Robbins–Monro's M draws."""
    pre1 = cuda.shared.array(POOL_HIDDEN, float32)
    w2s = cuda.shared.array(POOL_HEAD, float32)
    logits = cuda.shared.array(POOL_LOGITS, float32)
    delta = cuda.shared.array(POOL_LOGITS, float32)
    losses = cuda.shared.array(MAX_BATCH, float32)
    skey = sample_key(key, sample0 + cuda.blockIdx.x)
    _network_loss(x, s, skey, lay, cols, colptr, col_row, col_val, y, B, pre1, w2s, logits, delta, losses)
    _backward(lay, cols, colptr, col_row, col_val, B, pre1, w2s, delta, gsum, True)


@cuda.jit(cache=True)
def rm_update(x, x_k, gsum, a, scale, res2):
    """h = x − x_k + scale·gsum (eq. 5.3); x ← x − a·h; gsum ← 0; res2 += |h|²."""
    c = cuda.grid(1)
    if c < x.size:
        h = x[c] - x_k[c] + scale * gsum[c]
        x[c] -= a * h
        gsum[c] = float32(0.0)
        cuda.atomic.add(res2, 0, np.float64(h) * np.float64(h))
