"""MLP forward/backward primitives in numba, on flat float32 parameter vectors.

They mirror :class:`kltrain.nets.mlp.MLP` (same layout, same ReLU/softmax) and are
checked against it. ``offsets[l] = (weights start, bias start, fan_in, fan_out)``;
the first layer reads the minibatch in CSR form (``indptr, idx, val``) and
skips zero pixels. No BLAS: OpenBLAS's own threads fought numba's on 2 cores
(the projected IS update ran 2× slower), so the small dense layers are written
as dot products against a transposed weight block (vectorised over fan_in,
which stays fast when fan_out is only 10).

Activations and deltas live in one flat ``work`` array (layer l's (B, fan_out)
block at ``2·B·Σ_{k<l} fan_out_k``, deltas after activations): passing a tuple
of arrays cost ~120 µs of Python dispatch per call.

Inner loops run over explicit row *slices* (``q[row:row + n]``): indexing the
flat vector as ``q[row + o]`` kept LLVM from vectorising them (4.6× slower),
and the first layer adds four pixel rows per pass (a further 1.3×).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .counter import _f32_from_bits

JIT = dict(cache=True, error_model="numpy", fastmath=True, nogil=True)


@nb.njit(**JIT)
def axpy(a, x, y):
    """y += a·x."""
    for o in range(y.size):
        y[o] += a * x[o]


@nb.njit(**JIT)
def sparse_affine(q, w_off, b_off, fan_out, indptr, idx, val, out):
    """out[b, :] = q_b + Σ_k val_k · q_W[idx_k, :] over row b's nonzero pixels (A·W + b)."""
    for b in range(indptr.size - 1):
        ob = out[b]
        ob[:] = q[b_off:b_off + fan_out]
        k, end = indptr[b], indptr[b + 1]
        while k + 4 <= end:
            r0, r1 = w_off + idx[k] * fan_out, w_off + idx[k + 1] * fan_out
            r2, r3 = w_off + idx[k + 2] * fan_out, w_off + idx[k + 3] * fan_out
            q0, q1, q2, q3 = q[r0:r0 + fan_out], q[r1:r1 + fan_out], q[r2:r2 + fan_out], q[r3:r3 + fan_out]
            v0, v1, v2, v3 = val[k], val[k + 1], val[k + 2], val[k + 3]
            for o in range(fan_out):
                ob[o] += v0 * q0[o] + v1 * q1[o] + v2 * q2[o] + v3 * q3[o]
            k += 4
        while k < end:
            r = w_off + idx[k] * fan_out
            axpy(val[k], q[r:r + fan_out], ob)
            k += 1


@nb.njit(**JIT)
def dense_affine_rows(q, w_off, b_off, fan_out, X, kend, base, s, out):
    """out[b, :] = base[b] + s·(q_b + Σ_{k < kend[b]} X[b, k]·q_W[k, :]) for a dense X (B, fan_in).

    X[b, k ≥ kend[b]] must be 0. For the reduced problem's lower-trapezoidal Rᵀ, where
    CSR gains nothing: two rows × four k per pass over fan_out share the loads of four
    W rows (CSR: one row). With base = A·W₁ + b₁ and s = √τ it writes the perturbed
    first-layer pre-activation directly (no separate noise term t0 to add).
    """
    B, K = X.shape
    W = q[w_off:w_off + K * fan_out].reshape(K, fan_out)
    bq = q[b_off:b_off + fan_out]
    for b in range(0, B - 1, 2):
        o0, o1, x0, x1, base0, base1 = out[b], out[b + 1], X[b], X[b + 1], base[b], base[b + 1]
        for o in range(fan_out):
            o0[o] = base0[o] + s * bq[o]
            o1[o] = base1[o] + s * bq[o]
        ke = max(kend[b], kend[b + 1])
        k = 0
        while k + 4 <= ke:
            q0, q1, q2, q3 = W[k], W[k + 1], W[k + 2], W[k + 3]
            a0, a1, a2, a3 = s * x0[k], s * x0[k + 1], s * x0[k + 2], s * x0[k + 3]
            c0, c1, c2, c3 = s * x1[k], s * x1[k + 1], s * x1[k + 2], s * x1[k + 3]
            for o in range(fan_out):
                u0, u1, u2, u3 = q0[o], q1[o], q2[o], q3[o]
                o0[o] += a0 * u0 + a1 * u1 + a2 * u2 + a3 * u3
                o1[o] += c0 * u0 + c1 * u1 + c2 * u2 + c3 * u3
            k += 4
        while k < ke:
            qk, a0, c0 = W[k], s * x0[k], s * x1[k]
            for o in range(fan_out):
                o0[o] += a0 * qk[o]
                o1[o] += c0 * qk[o]
            k += 1
    if B & 1:
        ob, xb, bb = out[B - 1], X[B - 1], base[B - 1]
        for o in range(fan_out):
            ob[o] = bb[o] + s * bq[o]
        for k in range(kend[B - 1]):
            axpy(s * xb[k], W[k], ob)


@nb.njit(**JIT)
def sparse_transpose_product(cols, colptr, col_row, col_val, delta, w_off, fan_out, grad):
    """grad_W₁[i, :] = Σ_b A[b, i]·delta[b, :] for each active pixel i (CSC: one write per row)."""
    for c in range(cols.size):
        r = w_off + cols[c] * fan_out
        g = grad[r:r + fan_out]
        g[:] = 0.0
        k, end = colptr[c], colptr[c + 1]
        while k + 4 <= end:
            d0, d1, d2, d3 = delta[col_row[k]], delta[col_row[k + 1]], delta[col_row[k + 2]], delta[col_row[k + 3]]
            v0, v1, v2, v3 = col_val[k], col_val[k + 1], col_val[k + 2], col_val[k + 3]
            for o in range(fan_out):
                g[o] += v0 * d0[o] + v1 * d1[o] + v2 * d2[o] + v3 * d3[o]
            k += 4
        while k < end:
            axpy(col_val[k], delta[col_row[k]], g)
            k += 1


@nb.njit(**JIT)
def transpose_into(q, w_off, fan_in, fan_out, wt):
    """wt[:fan_out·fan_in] ← W (fan_in × fan_out, row-major in q) transposed; returns the (fan_out, fan_in) view."""
    v = wt[:fan_out * fan_in].reshape(fan_out, fan_in)
    for h in range(fan_in):
        r = w_off + h * fan_out
        for o in range(fan_out):
            v[o, h] = q[r + o]
    return v


@nb.njit(**JIT)
def dense_t(act, wt, bias, out):
    """out = act @ W + bias given wt = Wᵀ (fan_out, fan_in): dot products over fan_in (vectorised).

    Blocks of 2 rows × 5 outputs: each pass over fan_in loads 7 vectors for 10 FMAs
    (one row × one output: 2 loads per FMA), 1.6× faster for 784–200–10's second layer.
    """
    B, fi = act.shape
    fo = wt.shape[0]
    for b in range(0, B, 2):
        two = b + 1 < B
        a0 = act[b]
        a1 = act[b + 1] if two else act[b]
        o = 0
        while o + 5 <= fo:
            w0, w1, w2, w3, w4 = wt[o], wt[o + 1], wt[o + 2], wt[o + 3], wt[o + 4]
            c00 = c01 = c02 = c03 = c04 = c10 = c11 = c12 = c13 = c14 = np.float32(0.0)
            for h in range(fi):
                x, z = a0[h], a1[h]
                c00 += x * w0[h]
                c01 += x * w1[h]
                c02 += x * w2[h]
                c03 += x * w3[h]
                c04 += x * w4[h]
                c10 += z * w0[h]
                c11 += z * w1[h]
                c12 += z * w2[h]
                c13 += z * w3[h]
                c14 += z * w4[h]
            out[b, o], out[b, o + 1], out[b, o + 2] = c00 + bias[o], c01 + bias[o + 1], c02 + bias[o + 2]
            out[b, o + 3], out[b, o + 4] = c03 + bias[o + 3], c04 + bias[o + 4]
            if two:
                out[b + 1, o], out[b + 1, o + 1] = c10 + bias[o], c11 + bias[o + 1]
                out[b + 1, o + 2], out[b + 1, o + 3], out[b + 1, o + 4] = c12 + bias[o + 2], c13 + bias[o + 3], \
                    c14 + bias[o + 4]
            o += 5
        while o < fo:
            w0 = wt[o]
            c00 = c10 = np.float32(0.0)
            for h in range(fi):
                c00 += a0[h] * w0[h]
                c10 += a1[h] * w0[h]
            out[b, o] = c00 + bias[o]
            if two:
                out[b + 1, o] = c10 + bias[o]
            o += 1


@nb.njit(**JIT)
def dense_affine(act, q, w_off, b_off, fan_in, fan_out, out, wt):
    """out = act @ W + b with W, b read from the flat vector q; ``wt`` is scratch (≥ fan_in·fan_out)."""
    dense_t(act, transpose_into(q, w_off, fan_in, fan_out, wt), q[b_off:b_off + fan_out], out)


@nb.njit(**JIT)
def scratch_size_of(offsets):
    """Floats of scratch for the largest transposed weight matrix past layer 0 (fan_in·fan_out, at least 1)."""
    best = 1
    for k in range(1, offsets.shape[0]):
        best = max(best, offsets[k, 2] * offsets[k, 3])
    return best


@nb.njit(**JIT)
def relu(z):
    """ReLU in place on a (batch, width) block."""
    for b in range(z.shape[0]):
        for o in range(z.shape[1]):
            z[b, o] = max(z[b, o], np.float32(0.0))


@nb.njit(inline="always")
def exp_f32(x):
    """e^x for float32 x ≤ 0 (Cephes expf polynomial, ~1 ulp; below −87 it returns ~1e-38), branch-free.

    libm's exp does not vectorise without SVML (see kernels.counter); this does.
    """
    x = max(x, np.float32(-87.0))
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    z = r * r
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * z + r + np.float32(1.0)
    return p * _f32_from_bits(np.uint32((np.int32(n) + np.int32(127)) << np.int32(23)))


@nb.njit(**JIT)
def cross_entropy(z, y, tmp):
    """Mean softmax cross-entropy of logits z (B, C) against labels y; ``tmp`` is scratch (≥ B·C floats).

    The B·C exponentials of z − max run as one vectorised float32 loop (exp_f32) and
    Σ_b log Σ_c is one log of a float64 product (each factor in [1, C]; flushed before
    it could overflow): libm exp/log per logit cost 5× more. The rest is float64.
    """
    B, C = z.shape
    total = 0.0
    for b in range(B):
        zb = z[b]
        top = zb[0]
        for c in range(1, C):
            top = max(top, zb[c])
        tb = tmp[b * C:(b + 1) * C]
        for c in range(C):
            tb[c] = zb[c] - top
        total += np.float64(top) - np.float64(zb[y[b]])
    for k in range(B * C):
        tmp[k] = exp_f32(tmp[k])
    prod = 1.0
    for b in range(B):
        s = np.float32(0.0)
        for c in range(C):
            s += tmp[b * C + c]
        prod *= np.float64(s)
        if prod > 1e250:
            total += np.log(prod)
            prod = 1.0
    return (total + np.log(prod)) / B


@nb.njit(**JIT)
def cross_entropy_delta(z, y, delta):
    """Loss as above, and delta = ∂f/∂z = (softmax(z) − onehot(y)) / B written into ``delta``."""
    B, C = z.shape
    total = 0.0
    for b in range(B):
        top = z[b, 0]
        for c in range(1, C):
            top = max(top, z[b, c])
        s = 0.0
        for c in range(C):
            delta[b, c] = np.exp(z[b, c] - top)
            s += delta[b, c]
        total += np.log(s) + top - z[b, y[b]]
        for c in range(C):
            delta[b, c] = delta[b, c] / np.float32(s * B)
        delta[b, y[b]] -= np.float32(1.0 / B)
    return total / B


@nb.njit(**JIT)
def layer_block(work, offsets, batch, layer, which):
    """View of layer ``layer``'s (B, fan_out) activations (which=0) or deltas (which=1)."""
    start = 0
    for k in range(layer):
        start += batch * offsets[k, 3]
    total = 0
    for k in range(offsets.shape[0]):
        total += batch * offsets[k, 3]
    start += which * total
    return work[start:start + batch * offsets[layer, 3]].reshape(batch, offsets[layer, 3])


def work_size(net, batch: int) -> int:
    """Length of the flat work array: activations and deltas of every layer."""
    return 2 * batch * sum(net.sizes[1:])


@nb.njit(**JIT)
def forward(q, indptr, idx, val, offsets, work, wt):
    """Forward pass at parameters q; returns the (B, classes) logits block of ``work``."""
    B = indptr.size - 1
    act = layer_block(work, offsets, B, 0, 0)
    sparse_affine(q, offsets[0, 0], offsets[0, 1], offsets[0, 3], indptr, idx, val, act)
    for layer in range(1, offsets.shape[0]):
        relu(act)
        nxt = layer_block(work, offsets, B, layer, 0)
        dense_affine(act, q, offsets[layer, 0], offsets[layer, 1], offsets[layer, 2], offsets[layer, 3], nxt, wt)
        act = nxt
    return act


@nb.njit(**JIT)
def loss_and_grad(q, y, indptr, idx, val, cols, colptr, col_row, col_val, offsets, work, grad):
    """f(q) and ∇f(q) into ``grad`` by a hand-written backward pass.

    Only the W₁ rows of pixels that are nonzero somewhere in the minibatch are
    written; the others must be zero in ``grad`` on entry and stay zero.
    """
    B, last = indptr.size - 1, offsets.shape[0] - 1
    scratch = np.empty(2 * scratch_size_of(offsets), dtype=np.float32)
    wt_buf, gwt_buf = scratch[:scratch.size // 2], scratch[scratch.size // 2:]
    logits = forward(q, indptr, idx, val, offsets, work, wt_buf)
    delta = layer_block(work, offsets, B, last, 1)
    loss = cross_entropy_delta(logits, y, delta)
    for layer in range(last, 0, -1):
        w, bb, fi, fo = offsets[layer, 0], offsets[layer, 1], offsets[layer, 2], offsets[layer, 3]
        act = layer_block(work, offsets, B, layer - 1, 0)                    # (B, fi), post-ReLU
        prev = layer_block(work, offsets, B, layer - 1, 1)                   # (B, fi)
        wt = transpose_into(q, w, fi, fo, wt_buf)                            # (fo, fi)
        gwt = gwt_buf[:fo * fi].reshape(fo, fi)                              # ∂f/∂Wᵀ
        gwt[:, :] = 0.0
        gb = grad[bb:bb + fo]
        gb[:] = 0.0
        for b in range(B):
            pb = prev[b]
            pb[:] = 0.0
            for o in range(fo):
                d = delta[b, o]
                gb[o] += d
                axpy(d, act[b], gwt[o])       # ∂f/∂W[:, o] += delta[b, o] · act[b, :]
                axpy(d, wt[o], pb)            # back-prop: delta @ Wᵀ
            for h in range(fi):
                if act[b, h] <= 0.0:          # back through the ReLU
                    pb[h] = 0.0
        for h in range(fi):
            r = w + h * fo
            for o in range(fo):
                grad[r + o] = gwt[o, h]
        delta = prev
    w, bb, fo = offsets[0, 0], offsets[0, 1], offsets[0, 3]
    sparse_transpose_product(cols, colptr, col_row, col_val, delta, w, fo, grad)
    gb = grad[bb:bb + fo]
    gb[:] = 0.0
    for b in range(B):
        axpy(np.float32(1.0), delta[b], gb)
    return loss
