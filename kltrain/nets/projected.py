"""Exact-in-distribution IS, SGLD and Robbins–Monro updates for MLPs, in reduced coordinates.

Write the parameters as x = (W₁, rest), W₁ the in×H first-layer weights, and let
A (B×in) be the minibatch. The network sees W₁ only through A·W₁. Take a thin
SVD A = V S Uᵀ with r nonzero singular values (r ≤ B; blank or repeated images
lower it), a QR factorisation (V_r S_r)ᵀ = Q R, and the orthonormal basis
Ũ = U_r Q (in×r). Then

    A·W₁ = Rᵀ c̃,   c̃ = Ũᵀ W₁ ∈ R^{r×H},   W₁ = Ũ c̃ + P⊥W₁,   P⊥ = I − Ũ Ũᵀ,

so f(x) = f̃(x̃) where x̃ = (c̃, rest) are the parameters of an MLP with sizes
(r, H, ..., C) on the inputs X̃ = Rᵀ (B×r, lower-trapezoidal) — the *reduced
problem*, which the ordinary kernels run on. An isotropic Gaussian on x splits
into independent isotropic Gaussians on x̃ and on P⊥W₁ (Ũ is orthonormal), and
P⊥W₁ receives no gradient. Hence, exactly in distribution:

- **IS (Alg. 4)**: Σ_j w̄_j ε_j = (Σ_j w̄_j ξ_j on x̃) + P⊥ Σ_j w̄_j E⊥_j, and given the
  weights the last term is P⊥·N(0, s² I) with s² = Σ_j w̄_j² (antithetic pairs:
  Σ_p (w̄_{2p} − w̄_{2p+1})²): one Gaussian draw P⊥Z per update.
- **Robbins–Monro (Alg. 5)**: P⊥x^j − P⊥x_k = (1 − a_j)(P⊥x^{j−1} − P⊥x_k) = 0, so the
  iteration runs on x̃ alone.
- **SGLD (Alg. 3)**: y = P⊥(chain − x) is an Ornstein–Uhlenbeck recursion
  y_{j+1} = ρ_j y_j + √ε_j P⊥ξ_j, ρ_j = 1 − ε_j/(2τ), linear in the noise, so the
  chain's end y_J and the weighted mean Σ ε_j y_j/Σ ε_j are jointly Gaussian given
  y_1 and are drawn with two normals per coordinate (:func:`ou_moments`).

Per IS sample this needs r·H + |rest| normals and O(B·r·H) work instead of in·H
normals and O(B·in·H) (≈ 1/25 for 784–200–10 at B = 20); SGLD and
Robbins–Monro shrink likewise. The *distribution* of each update is that of the
paper's algorithm — not its sample; the per-sample kernels remain the
reference. Extra draws use reserved indices of the update's noise stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from .._blas import single_blas_thread
from ..estimators.importance import ISInfo, effective_sample_size, posterior_mean_from_partial, rescaled_partial
from ..kernels.layout import Minibatch
from .basis import ORTHOGONAL_SAMPLE, SECOND_SAMPLE, row_space_basis  # noqa: F401  (the reserved draws)
from .mlp import MLP


@dataclass(frozen=True, eq=False)
class Reduction:
    """The reduced problem of a minibatch: basis Ũ (in×r), Rᵀ (B×r), and its Minibatch."""

    basis: np.ndarray
    tri: np.ndarray
    minibatch: Minibatch
    full: Minibatch

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def _split(self, params):
        """(W₁ as a float64 copy, where the rest of ``params`` starts)."""
        return np.asarray(self.first_layer(params), np.float64), self.full.net.layer_offsets[0][1]

    def first_layer(self, params) -> np.ndarray:
        """W₁ (in×H) as a view of ``params``, in its own dtype."""
        w0, b0, fan_in, H = self.full.net.layer_offsets[0]
        return np.asarray(params)[w0:b0].reshape(fan_in, H)

    def reduce(self, params, coords=None) -> np.ndarray:
        """x̃ = (Ũᵀ W₁, rest) as float32 (``coords``: Ũᵀ W₁, if already computed)."""
        if coords is None:
            coords = self.basis.T @ self._split(params)[0]
        b0 = self.full.net.layer_offsets[0][1]
        out = np.empty(coords.size + np.size(params) - b0, np.float32)
        out[:coords.size] = coords.ravel()
        out[coords.size:] = np.asarray(params)[b0:]
        return out

    def perp(self, M) -> np.ndarray:
        """P⊥ M for an in×H matrix M."""
        return M - self.basis @ (self.basis.T @ M)

    def lift(self, reduced, w1_perp) -> np.ndarray:
        """Full parameters from x̃ and the orthogonal part P⊥W₁ (in×H)."""
        H = self.full.net.layer_offsets[0][3]
        head = self.rank * H
        W1 = self.basis @ np.asarray(reduced[:head], np.float64).reshape(self.rank, H) + w1_perp
        return np.concatenate([W1.ravel(), reduced[head:]]).astype(np.float32)

    def lift_projecting(self, reduced, M) -> np.ndarray:
        """``lift(reduced, perp(M))`` for an in×H matrix M, by W₁ = M + Ũ(c̃ − ŨᵀM).

        Two in×r×H products instead of the four of ``perp`` + ``lift`` (six when the
        orthogonal part is a sum of two ``perp``): P⊥ is linear, so the caller sums
        first and projects once. Equal to the longer form up to float64 rounding.
        """
        H = self.full.net.layer_offsets[0][3]
        head = self.rank * H
        c = np.asarray(reduced[:head], np.float64).reshape(self.rank, H)
        out = np.empty(M.size + len(reduced) - head, np.float32)
        np.add(M, self.basis @ (c - self.basis.T @ M), out=out[:M.size].reshape(M.shape), casting="same_kind")
        out[M.size:] = reduced[head:]
        return out


def reduce_minibatch(mb: Minibatch) -> Reduction:
    """Basis Ũ and Rᵀ of the minibatch: ordered Gram–Schmidt of its rows (:mod:`kltrain.nets.basis`).

    Rows whose residual is within the float32 tolerance of the earlier ones are skipped (blank
    or repeated images lower the rank r); a blank minibatch keeps one inert direction so the net
    stays valid. The basis depends on A alone, not on LAPACK's signs or pivots, so the device
    (:mod:`kltrain.kernels.cuda_qr`) computes the same one; for a full-rank A, Ũ is the QR basis
    of Aᵀ with diag R ≥ 0 and Rᵀ = AŨ.
    """
    basis, tri, _ = row_space_basis(mb.X)
    reduced_net = MLP((basis.shape[1],) + mb.net.sizes[1:])
    return Reduction(basis, tri, Minibatch.build(reduced_net, tri, mb.y), mb)


def _orthogonal_scale(log_w: np.ndarray, antithetic: bool) -> float:
    """Std of the orthogonal term: √Σ w̄_j², or √Σ_p (w̄_{2p} − w̄_{2p+1})² for antithetic pairs."""
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    if antithetic:
        w = np.concatenate([w[0:-1:2] - w[1::2], w[-1:] if w.size % 2 else []])
    return float(np.sqrt(w @ w))


def basis_coordinates(basis, *mats):
    """(Ũᵀ M for M in mats) by one float32 GEMM each (M: in×H; float32 W₁ and Z need no copy).

    float32 is enough here. An error δ in ŨᵀW₁, used both for x̃ and in the lift, leaves
    P⊥W₁ exact (W₁ + Ũ(c̃ − ŨᵀW₁ − δ) with c̃ built from ŨᵀW₁ + δ: δ drops out) and moves the
    point where IS evaluates f by δ, the size of float32 rounding of x̃ itself; an error in
    ŨᵀZ adds k·Ũδ_z to the update, k·|Z|·O(float32 ε). The update changes in its last bits.
    """
    u = np.asarray(basis, np.float32).T
    return tuple(u @ np.asarray(m, np.float32) for m in mats)


@nb.njit(cache=True, nogil=True, fastmath=True)
def _sum3_f32(a, k, z, b, out):
    """out = a + k·z + b, elementwise over float32 arrays (one pass instead of three)."""
    for i in range(out.size):
        out[i] = a[i] + k * z[i] + b[i]


def lift_with_noise(red, reduced, W1, coords, z, k, basis_z=None) -> np.ndarray:
    """``red.lift_projecting(reduced, W1 + k·z)`` without forming W1 + k·z (float32 out).

    ``coords`` = ŨᵀW₁ as used for x̃ (its rounding then drops out of P⊥W₁), so Ũᵀ(W₁ + kz) =
    coords + k·Ũᵀz and W₁_new = W₁ + k·z + Ũ(c̃ − coords − k·Ũᵀz): two in×r×H float32 products
    (``basis_z`` = Ũᵀz when already computed) and one fused float32 pass (equal to the float64
    form to a few float32 roundings).
    """
    head = coords.size
    if basis_z is None:
        basis_z, = basis_coordinates(red.basis, z)
    c = np.asarray(reduced[:head], np.float64).reshape(coords.shape) - coords - k * np.asarray(basis_z, np.float64)
    out = np.empty(W1.size + len(reduced) - head, np.float32)
    shift = np.asarray(red.basis, np.float32) @ c.astype(np.float32)   # c is update-sized: float32 suffices
    _sum3_f32(np.ravel(np.asarray(W1, np.float32)), np.float32(k), np.ravel(np.asarray(z, np.float32)), shift.ravel(),
              out[:W1.size])
    out[W1.size:] = reduced[head:]
    return out


def _gaussian_rows(backend, seed, sample, shape):
    n = int(np.prod(shape))
    return np.asarray(backend.normals(seed, [sample], n), np.float64).reshape(shape)


def projected_importance_update(backend, mb, params, tau, seed, n_samples, antithetic=False, loss_scale=1.0):
    """One exact-in-distribution IS update (Alg. 4) on β·f, β = ``loss_scale``: (x + √τ·Δ, ISInfo)."""
    if n_samples >= SECOND_SAMPLE:
        raise ValueError(f"n_samples must be < {SECOND_SAMPLE}, got {n_samples}")
    on_device = getattr(backend, "reduced_importance_update", None)   # CUDA: the same update, all on the GPU
    if on_device is not None:
        result = on_device(mb, params, tau, seed, n_samples, antithetic, loss_scale)
        if result is not None:             # None: the device kernels do not cover this net or batch
            return result
    with single_blas_thread():  # the small dense products around the kernel must not leave BLAS threads spinning
        return _projected_importance_update(backend, mb, params, tau, seed, n_samples, antithetic, loss_scale)


def _projected_importance_update(backend, mb, params, tau, seed, n_samples, antithetic, loss_scale=1.0):
    red = reduce_minibatch(mb)
    W1 = red.first_layer(params)
    z = np.asarray(backend.normals(seed, [ORTHOGONAL_SAMPLE], W1.size), np.float32).reshape(W1.shape)
    coords, basis_z = basis_coordinates(red.basis, W1, z)   # Z is drawn first: both products at once
    reduced = red.reduce(params, coords)
    part, log_w = backend.importance_partial(red.minibatch, reduced, tau, seed, 0, n_samples, antithetic)
    if loss_scale != 1.0:  # log weights −β·f(x_j), same ε_j
        part, log_w = rescaled_partial(log_w, loss_scale, seed, 0, reduced.size, antithetic, backend.normals)
    mean = posterior_mean_from_partial(part, reduced.astype(np.float64), tau)
    k = float(np.sqrt(tau) * _orthogonal_scale(log_w, antithetic))
    update = lift_with_noise(red, mean, W1, coords, z, k, basis_z)
    info = ISInfo(effective_sample_size(part), float(1.0 / part.sum_w), log_w, seed)
    return update, info


def projected_robbins_monro(backend, mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Algorithm 5 on β·f (β = ``grad_scale``), reduced problem; P⊥W₁ stays at x_k's. Returns (x^J, residual)."""
    with single_blas_thread():
        red = reduce_minibatch(mb)
        W1, _ = red._split(x_k)
        x_red, residual = backend.robbins_monro(red.minibatch, red.reduce(x_k), tau, steps, n_samples, seed,
                                                 grad_scale)
        return red.lift_projecting(np.asarray(x_red), W1), residual


def ou_moments(eps: np.ndarray, tau: float):
    """Moments of y_{j+1} = ρ_j y_j + √ε_j ξ_j (ρ_j = 1 − ε_j/2τ), j = 1..J−1, started at y_1.

    Returns (a, b, var_end, var_mean, cov): y_J = a·y_1 + U and Σ_j ε_j y_j/Σ ε_j = b·y_1 + V
    with (V, U) centred Gaussian, Var U = var_end, Var V = var_mean, Cov = cov. Computed
    by backward recursions (no products that underflow for small τ).
    """
    J, E = eps.size, eps.sum()
    rho = 1.0 - eps / (2.0 * tau)
    c = np.ones(max(J - 1, 0))      # c_k = Π_{i=k+1}^{J−1} ρ_i          (ξ_k's weight in y_J)
    s = np.empty(max(J - 1, 0))     # s_k = Σ_{j=k+1}^{J} ε_j Π_{i=k+1}^{j−1} ρ_i   (in Σ ε_j y_j)
    if J > 1:
        s[-1] = eps[-1]
        for k in range(J - 3, -1, -1):          # index k holds ξ_{k+1}
            c[k] = rho[k + 1] * c[k + 1]
            s[k] = eps[k + 1] + rho[k + 1] * s[k + 1]
    root = np.sqrt(eps[:-1])
    u, v = root * c, root * s / E
    a = rho[0] * c[0] if J > 1 else 1.0
    b = (eps[0] + rho[0] * s[0]) / E if J > 1 else 1.0
    return a, b, float(u @ u), float(v @ v), float(u @ v)


def projected_sgld_chain(backend, mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """Algorithm 3 in reduced coordinates + the exact OU draw for P⊥W₁. Returns (mean, chain, |∇f|)."""
    with single_blas_thread():
        return _projected_sgld_chain(backend, mb, x, chain, tau, eps, seed, noise_scale)


def _projected_sgld_chain(backend, mb, x, chain, tau, eps, seed, noise_scale):
    red = reduce_minibatch(mb)
    W1_x, _ = red._split(x)
    W1_c, _ = red._split(chain)
    mean_red, chain_red, grad_norm = backend.sgld_chain(red.minibatch, red.reduce(x), red.reduce(chain), tau,
                                                        np.asarray(eps, np.float64), seed, noise_scale)
    a, b, var_end, var_mean, cov = ou_moments(np.asarray(eps, np.float64), tau)
    z1 = _gaussian_rows(backend, seed, ORTHOGONAL_SAMPLE, W1_x.shape)
    z2 = _gaussian_rows(backend, seed, SECOND_SAMPLE, W1_x.shape)
    var_end, var_mean, cov = (noise_scale ** 2 * v for v in (var_end, var_mean, cov))
    sd_mean = np.sqrt(var_mean)
    v = sd_mean * z1                                           # Σ_k v_k ξ_k
    u = (cov / sd_mean if sd_mean > 0 else 0.0) * z1 + np.sqrt(max(var_end - (cov ** 2 / var_mean if var_mean > 0
                                                                               else 0.0), 0.0)) * z2
    y1 = W1_c - W1_x                                           # P⊥ is linear: project once, in the lift
    mean = red.lift_projecting(np.asarray(mean_red), W1_x + b * y1 + v)
    end = red.lift_projecting(np.asarray(chain_red), W1_x + a * y1 + u)
    return mean, end, grad_norm
