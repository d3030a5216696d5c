"""The counter-based normal generator of :mod:`kltrain.noise`, compiled for numba CPU kernels.

Same hash and bit mapping as the NumPy reference, computed in float32 with
branch-free polynomial log and sin/cos (Cephes ``logf``/``sinf``/``cosf``
coefficients, ~1 ulp) instead of libm calls: without Intel SVML, LLVM cannot
vectorise ``math.log``/``math.cos``, and those calls were 4.5× slower here.
``frexp`` is a bit cast (an LLVM intrinsic) so that it vectorises too.
One hash gives a Box–Muller pair (ε[j, 2p], ε[j, 2p+1]) = r·(cos θ, sin θ).

Against the float64 reference the values agree to ~5e-6 absolute.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..noise import GOLDEN, MIX1, MIX2

_S30, _S27, _S31, _S32, _S33, _S9 = (np.uint64(k) for k in (30, 27, 31, 32, 33, 9))
_M23 = np.uint64(0x7FFFFF)
_F_M31 = np.float32(2.0 ** -31)
_F_M23 = np.float32(2.0 ** -23)
_HALF = np.float32(0.5)


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret a uint32 as float32 (an LLVM bitcast: free, vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def _bits_from_f32(typingctx, value):
    """Reinterpret a float32 as uint32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@nb.njit(inline="always")
def mix64(z):
    """SplitMix64 finaliser (uint64 in, uint64 out)."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@nb.njit(inline="always")
def log_f32(x):
    """Natural log of a positive float32 (Cephes logf): x = m·2^e, m ∈ [√½, √2)."""
    bits = _bits_from_f32(x)
    e = np.int32((bits >> np.uint32(23)) & np.uint32(0xFF)) - np.int32(126)
    m = _f32_from_bits((bits & np.uint32(0x807FFFFF)) | np.uint32(0x3F000000))  # in [0.5, 1)
    small = m < np.float32(0.70710678)
    e = e - np.int32(small)
    m = m + m * np.float32(small) - np.float32(1.0)
    z = m * m
    y = np.float32(7.0376836292e-2)
    y = y * m - np.float32(1.1514610310e-1)
    y = y * m + np.float32(1.1676998740e-1)
    y = y * m - np.float32(1.2420140846e-1)
    y = y * m + np.float32(1.4249322787e-1)
    y = y * m - np.float32(1.6668057665e-1)
    y = y * m + np.float32(2.0000714765e-1)
    y = y * m - np.float32(2.4999993993e-1)
    y = y * m + np.float32(3.3333331174e-1)
    ef = np.float32(e)
    y = y * m * z + ef * np.float32(-2.12194440e-4) - np.float32(0.5) * z
    return m + y + ef * np.float32(0.693359375)


@nb.njit(inline="always")
def sincos_2pi_f32(w):
    """(cos 2πw, sin 2πw) for w ∈ [0, 1): reduce to ±π/4, then rotate by quarter turns."""
    q = np.float32(np.floor(np.float32(4.0) * w + _HALF))
    a = (w - q * np.float32(0.25)) * np.float32(6.283185307179586)
    qi = np.int32(q)
    z = a * a
    s = a + a * z * (np.float32(-1.6666654611e-1) + z * (np.float32(8.3321608736e-3)
                                                          + z * np.float32(-1.9515295891e-4)))
    c = np.float32(1.0) - _HALF * z + z * z * (np.float32(4.166664568298827e-2) + z * (
        np.float32(-1.388731625493765e-3) + z * np.float32(2.443315711809948e-5)))
    odd = np.float32(qi & 1)
    cq = c + odd * (-s - c)   # odd quarter turns: (c, s) -> (−s, c)
    sq = s + odd * (c - s)
    sign = np.float32(1.0) - np.float32(2.0) * np.float32((qi >> 1) & 1)  # half turn: negate
    return sign * cq, sign * sq


@nb.njit(inline="always")
def sample_key(key, j):
    """Stream position of sample j: the pair p of sample j is SplitMix64 output j·2³² + p."""
    return key + (np.uint64(j) << _S32) * GOLDEN


@nb.njit(inline="always")
def normal_pair(skey, p):
    """(ε[j, 2p], ε[j, 2p+1]) for the sample whose ``sample_key`` is skey."""
    u1, u2 = uniforms(mix64(skey + np.uint64(p) * GOLDEN))
    return box_muller(u1, u2)


@nb.njit(inline="always")
def uniforms(h):
    """Two uniforms in (0, 1) from one 64-bit hash h: 31 bits for the radius, 23 for the angle."""
    u1 = (np.float32(np.int32(h >> _S33)) + _HALF) * _F_M31
    u2 = (np.float32(np.int32((h >> _S9) & _M23)) + _HALF) * _F_M23
    return u1, u2


@nb.njit(inline="always")
def box_muller(u1, u2):
    """The pair r·(cos θ, sin θ), r = √(−2 log u1), θ = 2π·u2."""
    r = np.sqrt(max(np.float32(-2.0) * log_f32(u1), np.float32(0.0)))
    c, s = sincos_2pi_f32(u2)
    return r * c, r * s


# fill_normals runs in two passes over chunks of FILL_CHUNK pairs: hashes to uniforms, then
# uniforms to normals. The 64-bit hash vectorises on 512-bit registers, and while any
# 512-bit instruction is in flight an Intel server core (this machine's) shuts one of its
# three vector ports: the float pass alone runs on all three (fill 24% faster, same bits).
# Rows shorter than SPLIT_FROM pairs keep one loop (no scratch to allocate).
FILL_CHUNK = 1024
SPLIT_FROM = 256


@nb.njit(inline="always")
def fill_normals(skey, start, out):
    """out[k] = ε[j, start + k] for k < len(out), pair by pair (start may be odd)."""
    n, k = out.size, 0
    if n == 0:
        return
    if start & 1:
        _, s = normal_pair(skey, start >> 1)
        out[0] = s
        k = 1
    first = (start + k) >> 1
    n_pairs = (n - k) // 2
    # x = skey + (first + q)·GOLDEN stepped by an add (the same uint64 bits): LLVM kept
    # the multiply in the vector loop, one of three 64-bit multiplies (13% of the fill)
    x = skey + np.uint64(first) * GOLDEN
    if n_pairs < SPLIT_FROM:
        for q in range(n_pairs):
            u1, u2 = uniforms(mix64(x))
            x += GOLDEN
            c, s = box_muller(u1, u2)
            out[k + 2 * q] = c
            out[k + 2 * q + 1] = s
    else:
        u = np.empty((2, FILL_CHUNK), dtype=np.float32)
        a, b = u[0], u[1]
        for lo in range(0, n_pairs, FILL_CHUNK):
            m = min(FILL_CHUNK, n_pairs - lo)
            for q in range(m):
                a[q], b[q] = uniforms(mix64(x))
                x += GOLDEN
            o = out[k + 2 * lo:k + 2 * (lo + m)]
            for q in range(m):
                c, s = box_muller(a[q], b[q])
                o[2 * q] = c
                o[2 * q + 1] = s
    if (n - k) & 1:
        c, _ = normal_pair(skey, first + n_pairs)
        out[n - 1] = c


@nb.njit(inline="always")
def fill_normals_transposed(skey, start, out):
    """out[o, h] = ε[j, start + h·F + o] for out of shape (F, K): the K×F row-major block at ``start``, transposed.

    F and ``start`` must be even: then columns 2m and 2m+1 are the cosine and sine of pairs
    start/2 + m + h·F/2 (h = 0..K−1), hashed with an add-stepped counter and written as two
    contiguous rows. Same values as ``fill_normals`` of the block (a value computed outside
    a vector loop in one and inside it in the other may differ in the last bit).
    """
    F, K = out.shape
    step = np.uint64(F // 2) * GOLDEN
    u = np.empty((2, K), dtype=np.float32)
    a, b = u[0], u[1]
    for m in range(F // 2):
        x = skey + np.uint64(start // 2 + m) * GOLDEN
        for h in range(K):
            a[h], b[h] = uniforms(mix64(x))
            x += step
        co, so = out[2 * m], out[2 * m + 1]
        for h in range(K):
            c, s = box_muller(a[h], b[h])
            co[h] = c
            so[h] = s


NORMALS_CHUNK = 1 << 15  # coordinates per parallel task (even: pairs never straddle two tasks)


@nb.njit(cache=True, error_model="numpy", fastmath=True, parallel=True)
def counter_normals_f32(key, samples, start, n_coords):
    """ε[j, start:start+n_coords] for each j in ``samples``, float32 (parity tests, bench, projected Z).

    Rows are split into chunks of NORMALS_CHUNK coordinates so that one long row (the
    projected update's orthogonal draw, 784×200) uses every thread. The chunks after the
    first start at even coordinates (a pair's first) and hold whole vector widths of
    pairs, so every value takes the same code path, and the same bits, as in one fill.
    """
    out = np.empty((samples.size, n_coords), dtype=np.float32)
    odd = start & 1
    n_chunks = max((n_coords - odd + NORMALS_CHUNK - 1) // NORMALS_CHUNK, 1)
    for task in nb.prange(samples.size * n_chunks):
        r, c = task // n_chunks, task % n_chunks
        lo = 0 if c == 0 else c * NORMALS_CHUNK + odd
        hi = min((c + 1) * NORMALS_CHUNK + odd, n_coords)
        fill_normals(sample_key(key, samples[r]), start + lo, out[r, lo:hi])
    return out
