"""The reduced problem's basis: ordered Gram–Schmidt of the minibatch's rows, skipping dependent ones.

:mod:`kltrain.nets.projected` runs the network's first layer in an orthonormal basis Ũ (in×r)
of the minibatch's row space. Any such basis gives an update with the right distribution, but
the *sample* depends on it (the noise is drawn coordinate by coordinate in that basis), so the
basis is defined here once, without reference to any library's choice of signs or pivots, and
the host (this module) and the device (:mod:`kltrain.kernels.cuda_qr`) compute the same one:

    for b = 0, 1, …, B−1:   v = a_b − Σ_q (a_b·ũ_q) ũ_q   (the accepted ũ_q so far)
                            accept ũ = v/‖v‖ if ‖v‖ > tol,  tol = max(B, in)·ε₃₂·max_b ‖a_b‖

Rᵀ = AŨ (B×r) is lower echelon: Rᵀ[b, q] = 0 when row b precedes the q-th accepted row. For a
full-rank minibatch this is the QR factorisation of Aᵀ with a positive diagonal. A blank
minibatch keeps one inert direction, the first pixel e₀, so the reduced net stays valid.

Here it is computed stably in float64: a Householder QR Aᵀ = Q₁R₁ (R₁'s column b holds row b's
coordinates), then, unless every |R₁[k, k]| > tol (the full-rank case: nothing to skip), the
ordered Gram–Schmidt above on R₁'s columns with reorthogonalisation (CGS2).
"""

from __future__ import annotations

import numpy as np

ORTHOGONAL_SAMPLE = 2 ** 32 - 1  # stream index of Z (IS) and of the first OU draw (SGLD)
SECOND_SAMPLE = 2 ** 32 - 2      # stream index of the second OU draw (SGLD)


def rank_tolerance(batch: int, n_in: int) -> float:
    """The residual, relative to the longest row, at or below which a row counts as dependent."""
    return max(batch, n_in) * float(np.finfo(np.float32).eps)


def row_space_basis(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Ũ in×r, Rᵀ B×r, the accepted rows) of the B×in minibatch X, in float64 (see the module doc)."""
    X = np.asarray(X, dtype=np.float64)
    B, n_in = X.shape
    tol = rank_tolerance(B, n_in) * float(np.sqrt(np.max(np.einsum("bi,bi->b", X, X), initial=0.0)))
    Q1, R1 = np.linalg.qr(X.T)
    diag = np.abs(np.diag(R1))
    if B <= n_in and diag.size and np.all(diag > tol):   # full rank: ordered Gram–Schmidt = QR, signs fixed
        sign = np.where(np.diag(R1) < 0, -1.0, 1.0)
        return Q1 * sign, (R1 * sign[:, None]).T.copy(), np.arange(B)
    coords, rows = _ordered_gram_schmidt(R1, tol)
    if not rows:
        basis = np.zeros((n_in, 1))
        basis[0, 0] = 1.0
        return basis, np.zeros((B, 1)), np.zeros(1, dtype=np.int64)
    rows = np.asarray(rows)
    tri = R1.T @ coords
    tri[np.arange(B)[:, None] < rows[None, :]] = 0.0     # exact zeros above the echelon
    return Q1 @ coords, tri, rows


def _ordered_gram_schmidt(V, tol):
    """Orthonormal columns from V's columns in order, skipping those with residual ≤ tol (CGS2)."""
    n, B = V.shape
    Q = np.zeros((n, min(n, B)))
    rows = []
    for b in range(B):
        v = V[:, b].copy()
        k = len(rows)
        for _ in range(2):                                # twice is enough (Giraud et al. 2005)
            v -= Q[:, :k] @ (Q[:, :k].T @ v)
        norm = float(np.linalg.norm(v))
        if norm > tol and k < Q.shape[1]:
            Q[:, k] = v / norm
            rows.append(b)
    return Q[:, :len(rows)], rows
