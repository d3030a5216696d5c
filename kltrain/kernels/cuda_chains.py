"""Persistent numba.cuda kernels for the reduced SGLD chain (Alg. 3) and Robbins–Monro iteration (Alg. 5).

The reduced problem of :mod:`kltrain.nets.projected` is a tiny MLP: r ≤ B inputs
(X̃ = Rᵀ, B×r), H hidden units, C classes. One thread block runs one chain from
its first step to its last, looping with block barriers instead of a launch per
step (the launch-per-step kernels of :mod:`kltrain.kernels.cuda` paid ~58 µs a
step on an H200). R independent runs are R blocks of one launch (``blockIdx.y``):
the experiment-level batch of :mod:`kltrain.studies.batch`.

Mapping (why it is fast where a first one-block attempt was slow). Thread h owns
hidden unit h: its column of W₁ lives in *registers* (a ``local.array`` touched
only by loops of constant trip count MAX_R, which NVVM unrolls, so every index is a
constant: the compile tier checks that no kernel has a stack frame), its row of
W₂ in shared memory. Per step, thread h computes its B pre-activations, the
block shares them for the output layer, and the backward pass needs nothing
across threads: ∂W₂[h, :], δ₁[:, h] and ∂W₁[:, h] are thread h's alone, so the
Langevin (or Robbins–Monro) update of h's coordinates needs no barrier. Three
barriers a step. Padded sizes (X̃ zero-filled to MAX_BATCH × MAX_R, δ to
MAX_CLASSES columns) keep the unrolled loops branch-free.

Noise: the chains see the counter-based ε[j, c] of :mod:`kltrain.noise` (the
CPU kernels' samples, up to the GPU's float32 log/sin/cos), generated for all
steps before the chain by :func:`chain_noise`, a fully parallel grid (one hash per
Box–Muller pair). The chain itself then does no RNG work on its serial path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from ..noise import GOLDEN, MIX1, MIX2
from .cuda import MAX_BATCH, MAX_CLASSES, MAX_HIDDEN

MAX_R = MAX_BATCH            # the reduced problem's inputs: its rank r ≤ B
MAX_THREADS = 256            # ≥ MAX_HIDDEN: one thread per hidden unit
POOL_X = MAX_BATCH * MAX_R   # X̃, zero-padded: row b at b·MAX_R
POOL_ACT = MAX_BATCH * MAX_HIDDEN                  # activations, then δ₁; column h belongs to thread h
POOL_HEAD = MAX_HIDDEN * MAX_CLASSES + MAX_CLASSES  # W₂ (row stride C) and b₂ of the current point
POOL_DELTA = MAX_BATCH * MAX_CLASSES               # logits, then δ = ∂f/∂logits, row stride MAX_CLASSES

_S9, _S27, _S30, _S31, _S32, _S33 = (np.uint64(k) for k in (9, 27, 30, 31, 32, 33))
_M23 = np.uint64(0x7FFFFF)
_F_M31, _F_M23 = np.float32(2.0 ** -31), np.float32(2.0 ** -23)
_HALF, _TWO_PI = np.float32(0.5), np.float32(6.283185307179586)


# -- noise for every step, before the chain --------------------------------------------------
@cuda.jit(cache=True)
def chain_noise(keys, first, n_coords, out):
    """out[run, k, c] = ε[first + k, c] of stream keys[run] for c < n_coords[run] (0 beyond).

    One thread per Box–Muller pair (c = 2p, 2p + 1): the formula of ``cuda.normal``, one hash
    for both values. Grid (pairs, rows, runs).
    """
    p, k, run = cuda.grid(3)
    if run >= out.shape[0] or k >= out.shape[1] or 2 * p >= out.shape[2]:
        return
    z = keys[run] + (np.uint64(first + k) << _S32) * GOLDEN + np.uint64(p) * GOLDEN
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    z = z ^ (z >> _S31)
    u1 = (float32(np.int32(z >> _S33)) + _HALF) * _F_M31
    u2 = (float32(np.int32((z >> _S9) & _M23)) + _HALF) * _F_M23
    radius = math.sqrt(float32(-2.0) * math.log(u1))
    n = n_coords[run]
    out[run, k, 2 * p] = float32(radius * math.cos(_TWO_PI * u2)) if 2 * p < n else float32(0.0)
    if 2 * p + 1 < out.shape[2]:
        out[run, k, 2 * p + 1] = float32(radius * math.sin(_TWO_PI * u2)) if 2 * p + 1 < n else float32(0.0)


# -- the network, one block -------------------------------------------------------------------
@cuda.jit(device=True)
def _load_batch(xin, B, tid, nt, xs, delta):
    """xs ← this run's padded X̃; δ ← 0 (its padding stays 0: the unrolled loops read it)."""
    for k in range(tid, POOL_X, nt):
        xs[k] = xin[k]
    for k in range(tid, POOL_DELTA, nt):
        delta[k] = float32(0.0)


@cuda.jit(device=True)
def _hidden(w1, bias, h, H, B, two, xs, act, delta):
    """Thread h: its B pre-activations (bias + Σ_i X̃[b, i]·W₁[i, h]); ReLU'd into act, or, with
    no hidden layer, the logits into δ's column h. MAX_R is a constant: w1's indices are too."""
    for b in range(B):
        acc = bias
        for i in range(MAX_R):
            acc += xs[b * MAX_R + i] * w1[i]
        if two:
            act[b * H + h] = max(acc, float32(0.0))
        else:
            delta[b * MAX_CLASSES + h] = acc


@cuda.jit(device=True)
def _logits(tid, nt, H, C, B, act, head, delta):
    """logits[b, o] = b₂[o] + Σ_h act[b, h]·W₂[h, o], one (b, o) per thread."""
    for bo in range(tid, B * C, nt):
        b = bo // C
        o = bo - b * C
        z = head[H * C + o]
        for h in range(H):
            z += act[b * H + h] * head[h * C + o]
        delta[b * MAX_CLASSES + o] = z


@cuda.jit(device=True)
def _softmax_delta(tid, B, C, y, delta):
    """Row b (thread b): logits → δ = (softmax − onehot(y_b))/B in place (∂ mean CE / ∂ logits)."""
    if tid < B:
        row = tid * MAX_CLASSES
        top = delta[row]
        for o in range(1, C):
            top = max(top, delta[row + o])
        total = float32(0.0)
        for o in range(C):
            e = math.exp(delta[row + o] - top)
            delta[row + o] = e
            total += e
        for o in range(C):
            delta[row + o] = delta[row + o] / (total * float32(B))
        delta[row + y[tid]] -= float32(1.0) / float32(B)


@cuda.jit(device=True)
def _forward(own, tid, nt, w1, bias, H, C, B, two, y, xs, act, head, delta):
    """δ = ∂f/∂logits at the point whose first layer is (w1, bias) per thread and W₂, b₂ in head."""
    if own:
        _hidden(w1, bias, tid, H, B, two, xs, act, delta)
    cuda.syncthreads()
    if two:
        _logits(tid, nt, H, C, B, act, head, delta)
        cuda.syncthreads()
    _softmax_delta(tid, B, C, y, delta)
    cuda.syncthreads()


@cuda.jit(device=True)
def _unit_backward(h, H, C, B, two, xs, act, head, delta, g1, g2):
    """Thread h's gradient after _forward, *added* to g1 (∂W₁[:, h]) and g2 (∂W₂[h, :], two
    layers); returns ∂b₁[h]. Reads only column h of act (then holds δ₁ there) and row h of W₂."""
    gb1 = float32(0.0)
    if two:
        for b in range(B):
            a = act[b * H + h]
            for o in range(MAX_CLASSES):       # δ's padding is 0: no branch
                g2[o] += a * delta[b * MAX_CLASSES + o]
        for b in range(B):                     # δ₁ = (δ W₂ᵀ) ⊙ 1[act > 0], over act's column h
            d = float32(0.0)
            if act[b * H + h] > 0:
                for o in range(C):
                    d += delta[b * MAX_CLASSES + o] * head[h * C + o]
            act[b * H + h] = d
            gb1 += d
    else:
        for b in range(B):                     # no hidden layer: δ₁ is δ's column h
            d = delta[b * MAX_CLASSES + h]
            act[b * H + h] = d
            gb1 += d
    for b in range(B):
        d = act[b * H + h]
        for i in range(MAX_R):
            g1[i] += xs[b * MAX_R + i] * d
    return gb1


@cuda.jit(device=True)
def _block_sum(value, tid, nt, red):
    """Σ of ``value`` over the block's threads (float64, in a fixed tree order); every thread gets it."""
    red[tid] = value
    cuda.syncthreads()
    width = 1
    while width < nt:
        width *= 2
    width //= 2
    while width > 0:
        if tid < width and tid + width < nt:
            red[tid] += red[tid + width]
        cuda.syncthreads()
        width //= 2
    total = red[0]
    cuda.syncthreads()
    return total


# -- Algorithm 3 ----------------------------------------------------------------------------
@cuda.jit(cache=True)
def sgld_chains(xin, yin, dims, H, C, two, x, chain, total, coef, inv_tau, noise, grad_sq):
    """Block ``run``: steps k = 0..K−1 of its Langevin chain (Alg. 3), noise[run, k] driving step k.

    chain ← chain − (ε/2)(∇f − (x − chain)/τ) + s√ε·ε_j ; total += ε_next·chain, with
    coef[run, k] = (ε/2, s√ε, ε_next) as float32. ``chain`` and ``total`` are read at the
    start and written at the end (a later launch continues them); grad_sq[run] = |∇f|²
    of the chain's last step (float64). dims[run] = (B, r); H, C, two: the net's widths.
    """
    run, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    xs = cuda.shared.array(POOL_X, float32)
    act = cuda.shared.array(POOL_ACT, float32)
    head = cuda.shared.array(POOL_HEAD, float32)
    delta = cuda.shared.array(POOL_DELTA, float32)
    red = cuda.shared.array(MAX_THREADS, float64)
    w1 = cuda.local.array(MAX_R, float32)
    g1 = cuda.local.array(MAX_R, float32)
    g2 = cuda.local.array(MAX_CLASSES, float32)
    B, r = dims[run, 0], dims[run, 1]
    b1o = r * H                   # reduced layout: W₁ (r×H), b₁, W₂ (H×C), b₂
    w2o = b1o + H
    b2o = w2o + H * C
    xv, cv, tv, y = x[run], chain[run], total[run], yin[run]
    _load_batch(xin[run], B, tid, nt, xs, delta)
    own = tid < H
    h = tid
    for i in range(MAX_R):
        w1[i] = cv[i * H + h] if own and i < r else float32(0.0)
    bias = cv[b1o + h] if own else float32(0.0)
    if two:
        for k in range(tid, H * C + C, nt):
            head[k] = cv[w2o + k]
    cuda.syncthreads()
    inv = inv_tau[run]
    gsq = float64(0.0)
    steps = coef.shape[1]
    for k in range(steps):
        half, root, en = coef[run, k, 0], coef[run, k, 1], coef[run, k, 2]
        nz = noise[run, k]
        _forward(own, tid, nt, w1, bias, H, C, B, two, y, xs, act, head, delta)
        last = k == steps - 1
        if own:
            for i in range(MAX_R):
                g1[i] = float32(0.0)
            for o in range(MAX_CLASSES):
                g2[o] = float32(0.0)
            gb1 = _unit_backward(h, H, C, B, two, xs, act, head, delta, g1, g2)
            for i in range(MAX_R):
                if i < r:
                    c = i * H + h
                    v = w1[i] - half * (g1[i] - (xv[c] - w1[i]) * inv) + root * nz[c]
                    w1[i] = v
                    tv[c] += en * v
                    if last:
                        gsq += float64(g1[i]) * float64(g1[i])
            c = b1o + h
            bias = bias - half * (gb1 - (xv[c] - bias) * inv) + root * nz[c]
            tv[c] += en * bias
            if last:
                gsq += float64(gb1) * float64(gb1)
            if two:
                for o in range(MAX_CLASSES):
                    if o < C:
                        c = w2o + h * C + o
                        v = head[h * C + o]
                        v = v - half * (g2[o] - (xv[c] - v) * inv) + root * nz[c]
                        head[h * C + o] = v
                        tv[c] += en * v
                        if last:
                            gsq += float64(g2[o]) * float64(g2[o])
        if two and tid < C:                    # b₂[tid]: ∂ = Σ_b δ[b, tid]
            g = float32(0.0)
            for b in range(B):
                g += delta[b * MAX_CLASSES + tid]
            c = b2o + tid
            v = head[H * C + tid]
            v = v - half * (g - (xv[c] - v) * inv) + root * nz[c]
            head[H * C + tid] = v
            tv[c] += en * v
            if last:
                gsq += float64(g) * float64(g)
        # no barrier here: the next _forward writes only this thread's own column of act, and
        # its first barrier orders these writes of head before any thread reads them
    for i in range(MAX_R):
        if own and i < r:
            cv[i * H + h] = w1[i]
    if own:
        cv[b1o + h] = bias
    cuda.syncthreads()
    if two:
        for k in range(tid, H * C + C, nt):
            cv[w2o + k] = head[k]
    gsq = _block_sum(gsq, tid, nt, red)
    if tid == 0 and steps > 0:
        grad_sq[run] = gsq


# -- Algorithm 5 ----------------------------------------------------------------------------
@cuda.jit(cache=True)
def rm_chains(xin, yin, dims, H, C, two, x, x_k, root_tau, steps, scale, first, stop, noise_first, n_draws,
              noise, partial, res2):
    """Block (g, run): Robbins–Monro iterations j = first..stop−1 (0-based) of run ``run``.

    Group g of the G = gridDim.x groups takes draws m = g, g + G, … < M of each iteration:
    z = x + √τ·ε_{jM+m} (noise[run, (j − noise_first)·M + m]: the buffer may hold later iterations
    too), and sums ∇f(z) over them in registers
    (the owner of each coordinate, as in :func:`sgld_chains`). With G = 1 the block then takes
    the step itself, h = x − x_k + scale·Σ∇f (eq. 5.3), x ← x − a_j·h, and runs every iteration
    in one launch; res2[run] = |h|² of iteration stop−1. With G > 1 it writes its sums to
    partial[run, g] and :func:`rm_apply` takes the step (one launch of each per iteration).
    """
    g_id, run = cuda.blockIdx.x, cuda.blockIdx.y
    groups, tid, nt = cuda.gridDim.x, cuda.threadIdx.x, cuda.blockDim.x
    xs = cuda.shared.array(POOL_X, float32)
    act = cuda.shared.array(POOL_ACT, float32)
    head = cuda.shared.array(POOL_HEAD, float32)
    delta = cuda.shared.array(POOL_DELTA, float32)
    red = cuda.shared.array(MAX_THREADS, float64)
    z1 = cuda.local.array(MAX_R, float32)
    s1 = cuda.local.array(MAX_R, float32)          # Σ over this group's draws of ∂W₁[:, h]
    s2 = cuda.local.array(MAX_CLASSES, float32)    # … of ∂W₂[h, :]
    B, r = dims[run, 0], dims[run, 1]
    b1o = r * H
    w2o = b1o + H
    b2o = w2o + H * C
    xv, xk, y = x[run], x_k[run], yin[run]
    s, M = root_tau[run], n_draws
    _load_batch(xin[run], B, tid, nt, xs, delta)
    cuda.syncthreads()
    own = tid < H
    h = tid
    sq = float64(0.0)
    for j in range(first, stop):
        for i in range(MAX_R):
            s1[i] = float32(0.0)
        for o in range(MAX_CLASSES):
            s2[o] = float32(0.0)
        sb1 = float32(0.0)
        sb2 = float32(0.0)
        for m in range(g_id, M, groups):
            nz = noise[run, (j - noise_first) * M + m]
            if own:                                  # z = x + √τ·ε on this thread's coordinates
                for i in range(MAX_R):
                    z1[i] = xv[i * H + h] + s * nz[i * H + h] if i < r else float32(0.0)
                bias = xv[b1o + h] + s * nz[b1o + h]
            else:
                bias = float32(0.0)
            if two:
                if own:
                    for o in range(C):
                        head[h * C + o] = xv[w2o + h * C + o] + s * nz[w2o + h * C + o]
                if tid < C:
                    head[H * C + tid] = xv[b2o + tid] + s * nz[b2o + tid]
            # (no barrier needed before _forward: thread h reads only row h of head until its first barrier)
            _forward(own, tid, nt, z1, bias, H, C, B, two, y, xs, act, head, delta)
            if own:
                sb1 += _unit_backward(h, H, C, B, two, xs, act, head, delta, s1, s2)
            if two and tid < C:
                g = float32(0.0)
                for b in range(B):
                    g += delta[b * MAX_CLASSES + tid]
                sb2 += g
            cuda.syncthreads()   # δ is rewritten by the next draw's logits
        if groups == 1:
            a, sc = steps[run, j], scale[run]
            sq = float64(0.0)
            if own:
                for i in range(MAX_R):
                    if i < r:
                        sq += _rm_step(xv, xk, i * H + h, s1[i], a, sc)
                sq += _rm_step(xv, xk, b1o + h, sb1, a, sc)
                if two:
                    for o in range(MAX_CLASSES):
                        if o < C:
                            sq += _rm_step(xv, xk, w2o + h * C + o, s2[o], a, sc)
            if two and tid < C:
                sq += _rm_step(xv, xk, b2o + tid, sb2, a, sc)
            cuda.syncthreads()   # every thread's new x before the next iteration reads it
        else:
            out = partial[run, g_id]
            if own:
                for i in range(MAX_R):
                    if i < r:
                        out[i * H + h] = s1[i]
                out[b1o + h] = sb1
                if two:
                    for o in range(MAX_CLASSES):
                        if o < C:
                            out[w2o + h * C + o] = s2[o]
            if two and tid < C:
                out[b2o + tid] = sb2
    if groups == 1:
        sq = _block_sum(sq, tid, nt, red)
        if tid == 0 and stop > first:
            res2[run] = sq


@cuda.jit(device=True)
def _rm_step(xv, xk, c, gsum, a, scale):
    """h = x − x_k + scale·Σ∇f (eq. 5.3); x ← x − a·h. Returns h² (float64)."""
    h = xv[c] - xk[c] + scale * gsum
    xv[c] -= a * h
    return float64(h) * float64(h)


@cuda.jit(cache=True)
def rm_apply(x, x_k, partial, n_coords, steps, scale, j, res2):
    """Iteration j's Robbins–Monro step from the G groups' sums (added in group order): grid (coordinates,
    runs). At the last iteration res2[run] (zero on entry) accumulates |h|²."""
    c, run = cuda.grid(2)
    if run < x.shape[0] and c < n_coords[run]:
        gsum = float32(0.0)
        for g in range(partial.shape[1]):
            gsum += partial[run, g, c]
        sq = _rm_step(x[run], x_k[run], c, gsum, steps[run, j], scale[run])
        if j == steps.shape[1] - 1:
            cuda.atomic.add(res2, run, sq)
