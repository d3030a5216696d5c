"""The minibatch's reduced basis on the device: a rank-revealing CholeskyQR2 in one thread block.

The reduced updates (:mod:`kltrain.nets.projected`) need an orthonormal basis Ũ (in×r) of the
minibatch's row space and Rᵀ = AŨ (B×r). :func:`kltrain.nets.projected.reduce_minibatch`
defines it without reference to any LAPACK choice: **ordered Gram–Schmidt of A's rows, skipping
a row whose residual is ≤ tol** (tol = max(B, in)·ε₃₂·max_b ‖a_b‖). Rᵀ is then lower echelon:
Rᵀ[b, q] = 0 whenever row b comes before the q-th accepted row. For a full-rank A this is the
QR of Aᵀ with a positive diagonal, so the device and the host give the same Ũ (it is unique),
and the same update to float32 rounding.

Why CholeskyQR2 in float64, one block (:func:`minibatch_qr`), and not Householder:

- Householder QR of the 784×B matrix is B *dependent* steps, each a block-wide reduction over
  784 entries followed by a rank-1 update of the trailing columns: latency-bound whatever the
  hardware. CholeskyQR needs one B×B Gram matrix (B(B+1)/2 independent dot products of length
  784: parallel), a B×B Cholesky (B ≤ 24: microseconds in shared memory) and one triangular
  solve per pixel (parallel).
- Its weakness is the squared condition number: in float32 it breaks near κ ≈ 3·10³. The Gram
  matrix here is accumulated in **float64** from the exact float32 pixels, and the Cholesky is
  the skipping one above, so a row is accepted only when its residual is > 9·10⁻⁵ of the largest
  row (B = 20, in = 784): the pivots it divides by are known to that relative accuracy (error
  ~ε₆₄/10⁻⁸). The first pass leaves ‖ŨᵀŨ − I‖ ≈ ε₆₄κ²; the second pass (CholeskyQR2,
  Yamamoto et al. 2015) takes it to ε₆₄ whenever that is < 1.
- When the second pass's Gram matrix is more than 0.1 from I (κ ≳ 3·10⁷, e.g. a Kahan-like
  minibatch whose residuals stay above tol but whose smallest singular value does not), the
  kernel sets ``STATUS_FALLBACK``; the caller then discards the device result and uses the
  host's Householder route (one extra sync, only then).

The skipping Cholesky's pivot for row k is ‖a_k‖² − Σ_q (a_k·ũ_q)², the squared residual of
row k against the accepted rows before it: the same quantity the host compares with tol², so
the two agree on the rank except within ~10⁻⁸ of the threshold. A blank minibatch keeps one
inert direction, the first pixel (e₀), as on the host.
"""

from __future__ import annotations

import math

from numba import cuda, float32, float64, int64

from ..nets.basis import rank_tolerance  # noqa: F401  (the host passes rank_tolerance(B, in) as tol_rel)

MAX_ROWS = 24        # minibatch rows (= kltrain.kernels.cuda.MAX_BATCH)
QR_THREADS = 256     # threads of the one block
STAGE = 128          # pixels per shared-memory stage of the Gram passes
STATUS_OK, STATUS_BLANK, STATUS_FALLBACK = 0, 1, 2
ORTHOGONALITY_LIMIT = 0.1   # max |G₂ − I| after the first pass beyond which CholeskyQR2 is not trusted
META_RANK, META_STATUS, META_ROWS = 0, 1, 2   # meta[2 + q]: the minibatch row of the q-th basis vector


@cuda.jit(device=True)
def _pair(p):
    """The p-th (a, b), b ≤ a, of a lower triangle in row order."""
    a = 0
    while (a + 1) * (a + 2) // 2 <= p:
        a += 1
    return a, p - a * (a + 1) // 2


@cuda.jit(device=True)
def _lower_inverse(L, n, out):
    """out = L⁻¹ for the n×n lower-triangular L (shared float64); thread q solves column q."""
    for q in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        for p in range(n):
            if p < q:
                out[p, q] = 0.0
            elif p == q:
                out[p, q] = 1.0 / L[p, p]
            else:
                s = float64(0.0)
                for m in range(q, p):
                    s += L[p, m] * out[m, q]
                out[p, q] = -s / L[p, p]
    cuda.syncthreads()


@cuda.jit(cache=True)
def minibatch_qr(X, idx, B, tol_rel, basis, tri, u64, meta):
    """One block: the rows X[idx[0..B)] → basis Ũ (in×r, float32), Rᵀ (B×r) and meta (rank, status, rows).

    Columns q ≥ r of ``basis`` and ``tri`` are zeroed (the reduced kernels read r from meta).
    ``u64`` (in×MAX_ROWS float64) is scratch for the first pass's basis.
    """
    G = cuda.shared.array((MAX_ROWS, MAX_ROWS), float64)    # Gram matrix, then its Schur complements
    L = cuda.shared.array((MAX_ROWS, MAX_ROWS), float64)    # L[b, q] = a_b·ũ_q (first pass)
    C = cuda.shared.array((MAX_ROWS, MAX_ROWS), float64)    # a compact lower-triangular factor
    Ci = cuda.shared.array((MAX_ROWS, MAX_ROWS), float64)   # its inverse
    stage = cuda.shared.array((MAX_ROWS, STAGE), float64)   # STAGE pixels of every row (or basis column)
    rows = cuda.shared.array(MAX_ROWS, int64)
    state = cuda.shared.array(2, float64)
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    n_in = X.shape[1]
    npairs = B * (B + 1) // 2
    for g0 in range(0, npairs, nt):                      # G = A Aᵀ, float64 (float32 products are exact)
        p = g0 + tid
        a, b = _pair(p) if p < npairs else (0, 0)
        s = float64(0.0)
        for i0 in range(0, n_in, STAGE):                  # the rows' pixels staged, coalesced, STAGE at a time
            for q in range(tid, B * STAGE, nt):
                i = i0 + q % STAGE
                stage[q // STAGE, q % STAGE] = float64(X[idx[q // STAGE], i]) if i < n_in else 0.0
            cuda.syncthreads()
            if p < npairs:
                for ii in range(min(STAGE, n_in - i0)):
                    s += stage[a, ii] * stage[b, ii]
            cuda.syncthreads()
        if p < npairs:
            G[a, b] = s
            G[b, a] = s
    cuda.syncthreads()
    top = float64(0.0)
    for b in range(B):
        top = max(top, G[b, b])
    tol2 = tol_rel * tol_rel * top
    r = 0
    for k in range(B):                                   # Cholesky that skips dependent rows
        if tid == 0:
            d = G[k, k]
            state[0] = math.sqrt(d) if d > tol2 else 0.0
        cuda.syncthreads()
        piv = state[0]
        if piv > 0:
            for b in range(tid, B, nt):
                L[b, r] = G[b, k] / piv if b > k else (piv if b == k else 0.0)
            if tid == 0:
                rows[r] = k
            cuda.syncthreads()
            for p in range(tid, B * B, nt):
                a, b = p // B, p % B
                if a > k and b > k:
                    G[a, b] -= L[a, r] * L[b, r]
            r += 1
        cuda.syncthreads()
    for p in range(tid, basis.shape[0] * basis.shape[1], nt):
        basis[p // basis.shape[1], p % basis.shape[1]] = float32(0.0)
    for p in range(tid, B * tri.shape[1], nt):
        tri[p // tri.shape[1], p % tri.shape[1]] = float32(0.0)
    if r == 0:                                           # a blank minibatch: one inert direction, e₀
        if tid == 0:
            basis[0, 0] = float32(1.0)
            meta[META_RANK], meta[META_STATUS], meta[META_ROWS] = 1, STATUS_BLANK, 0
        return
    for p in range(tid, r * r, nt):                      # C = L on the accepted rows (r×r, lower)
        C[p // r, p % r] = L[rows[p // r], p % r]
    cuda.syncthreads()
    _lower_inverse(C, r, Ci)
    for i in range(tid, n_in, nt):                       # first pass: Ũ₁ᵀ = C⁻¹ A_S
        for q in range(r):
            s = float64(0.0)
            for p in range(q + 1):
                s += Ci[q, p] * float64(X[idx[rows[p]], i])
            u64[i, q] = s
    cuda.syncthreads()
    npairs = r * (r + 1) // 2
    for g0 in range(0, npairs, nt):                      # second pass: G₂ = Ũ₁ᵀŨ₁, staged likewise
        p = g0 + tid
        a, b = _pair(p) if p < npairs else (0, 0)
        s = float64(0.0)
        for i0 in range(0, n_in, STAGE):
            for q in range(tid, r * STAGE, nt):
                i = i0 + q // r
                stage[q % r, q // r] = u64[i, q % r] if i < n_in else 0.0
            cuda.syncthreads()
            if p < npairs:
                for ii in range(min(STAGE, n_in - i0)):
                    s += stage[a, ii] * stage[b, ii]
            cuda.syncthreads()
        if p < npairs:
            G[a, b] = s
            G[b, a] = s
    cuda.syncthreads()
    if tid == 0:
        worst = float64(0.0)
        for p in range(r * r):
            a, b = p // r, p % r
            dev = abs(G[a, b] - (1.0 if a == b else 0.0))
            if not dev <= worst:                         # NaN counts as the worst
                worst = dev
        state[1] = worst
        for k in range(r):                               # G₂ = C Cᵀ (pivots ≈ 1 when the first pass held)
            d = G[k, k]
            for m in range(k):
                d -= C[k, m] * C[k, m]
            piv = math.sqrt(d) if d > 0 else 1.0
            if not d > 0:
                state[1] = math.inf
            C[k, k] = piv
            for b in range(k + 1, r):
                s = G[b, k]
                for m in range(k):
                    s -= C[b, m] * C[k, m]
                C[b, k] = s / piv
            for b in range(k):
                C[b, k] = 0.0
    cuda.syncthreads()
    _lower_inverse(C, r, Ci)                             # Ũ = Ũ₁ C⁻ᵀ (upper-triangular change: spans nest)
    for i in range(tid, n_in, nt):
        for q in range(r):
            s = float64(0.0)
            for p in range(q + 1):
                s += u64[i, p] * Ci[q, p]
            basis[i, q] = float32(s)
    for p in range(tid, B * r, nt):                      # Rᵀ = A Ũ = L C⁻ᵀ, exact zeros above the echelon
        b, q = p // r, p % r
        s = float64(0.0)
        if b >= rows[q]:
            for m in range(q + 1):
                s += L[b, m] * Ci[q, m]
        tri[b, q] = float32(s)
    if tid == 0:
        meta[META_RANK] = r
        meta[META_STATUS] = STATUS_OK if state[1] <= ORTHOGONALITY_LIMIT else STATUS_FALLBACK
        for q in range(r):
            meta[META_ROWS + q] = rows[q]
