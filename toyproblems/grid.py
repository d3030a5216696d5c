"""F_τ and F^H_τ of any 2D loss on a whole grid at once, by Gaussian convolution.

- local entropy, eq. (2.2) as printed:  F_τ = −log (e^{−f} * φ_{0,τ}),  computed in log space;
- heat regularization, §2.2:           F^H_τ = f * φ_{0,τ}.

φ_{0,τ} = N(0, τI) is separable, so each 2D convolution is two 1D ones (rows, then
columns), each a quadrature sum over a grid with the output's spacing h, padded by
``PAD_SDS``·√τ on every side so that points at the box edges see their whole
neighbourhood. The rectangle rule converges spectrally for smooth integrands, so at
n = 256 on a box of width ~5 the error is set by round-off (≈1e-12) for τ ≥ 0.01
whenever f varies on scales ≳ 2h.

Only ``loss.values(X)`` (or ``loss.value(x)``) is used: no closed form is needed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from kltrain._checks import check_count, check_numbers, check_tau

PAD_SDS = 10.0      # φ_{0,τ} at 10 standard deviations is e^{−50}: beyond any tolerance we test
UNDERFLOW = 1e-280  # below this a BLAS sum of exponentials is redone exactly in log space
MAX_BYTES = 2 * 2 ** 30  # refuse a grid whose arrays would need more (a large τ pads the box by 10√τ)

Kind = Literal["local_entropy", "heat"]
Box = tuple[float, float, float, float]


def loss_values(loss, P: np.ndarray) -> np.ndarray:
    """f at each row of P (n, 2), through ``values`` if the loss has it, else ``value`` row by row.

    A NaN or −∞ anywhere is refused naming the point (one NaN would turn the whole convolved grid
    into NaN); +∞ is allowed (e^{−f} = 0 there) unless every point is +∞.
    """
    if hasattr(loss, "values"):
        f = np.asarray(loss.values(P), dtype=np.float64).reshape(len(P))
    elif callable(getattr(loss, "value", None)):
        f = np.array([float(loss.value(p)) for p in P])
    else:
        raise TypeError(f"loss must have .values(X) or .value(x); got {type(loss).__name__}")
    bad = np.isnan(f) | (f == -np.inf)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"the loss is {float(f[i])!r} at ({P[i, 0]:.6g}, {P[i, 1]:.6g}); it must be a number or +inf "
                         "at every grid point")
    if f.size and np.all(f == np.inf):
        raise ValueError("the loss is +inf at every grid point")
    return f


def _axis(lo: float, hi: float, n: int, tau: float):
    """Output nodes (n,) and input nodes with the same spacing h, padded by PAD_SDS·√τ each side."""
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo and n >= 2):
        raise ValueError(f"box: need finite sides lo < hi and n >= 2, got ({lo}, {hi}), n = {n}")
    h = (hi - lo) / (n - 1)
    pad = int(np.ceil(PAD_SDS * np.sqrt(tau) / h))
    return np.linspace(lo, hi, n), lo + h * np.arange(-pad, n + pad)


def _log_kernel(x_out: np.ndarray, x_in: np.ndarray, tau: float) -> np.ndarray:
    """log of the quadrature weights h·φ_{0,τ}(x_out − x_in), rows normalised to sum to 1."""
    lk = -0.5 * (x_out[:, None] - x_in[None, :]) ** 2 / tau                  # (n_out, n_in)
    return lk - np.logaddexp.reduce(lk, axis=1, keepdims=True)


def _log_convolve_rows(logA: np.ndarray, logK: np.ndarray) -> np.ndarray:
    """out[r, i] = log Σ_k exp(logA[r, k] + logK[i, k]) without overflow or underflow.

    Fast path: shift each row by its maximum and let BLAS sum the (positive, so
    cancellation-free) terms. Where that sum underflows, the output is far below
    the row's maximum and is recomputed exactly with a log-sum-exp.
    """
    m = logA.max(axis=1, keepdims=True)                                      # (R, 1)
    S = np.exp(logA - m) @ np.exp(logK).T                                    # (R, n_out)
    bad = S < UNDERFLOW
    with np.errstate(divide="ignore"):
        out = np.log(S) + m
    for r in np.flatnonzero(bad.any(axis=1)):
        i = np.flatnonzero(bad[r])
        out[r, i] = np.logaddexp.reduce(logA[r][None, :] + logK[i], axis=1)
    return out


def _convolve_rows(A: np.ndarray, logK: np.ndarray) -> np.ndarray:
    """out[r, i] = Σ_k A[r, k]·K[i, k]: plain quadrature for the heat equation."""
    return A @ np.exp(logK).T


def regularized_grid(loss, tau: float, *, kind: Kind = "local_entropy",
                     box: Box = (-2.5, 2.5, -2.0, 2.0), n: int = 256
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, Z)`` with Z[i, j] = F_τ (or F^H_τ) at (xs[j], ys[i]); xs, ys have n points.

    ``kind="local_entropy"``: F_τ(x) = −log ∫ e^{−f(x')} φ_{x,τ}(x') dx', eq. (2.2) as printed
    (φ normalised; −log Z_{x,τ} of Thm 3.1 is this minus (d/2)·log(2πτ)).
    ``kind="heat"``: F^H_τ(x) = ∫ f(x') φ_{x,τ}(x') dx', §2.2.
    """
    if kind not in ("local_entropy", "heat"):
        raise ValueError(f"kind must be 'local_entropy' or 'heat', got {kind!r}")
    tau, n, box = check_tau(tau), check_count(n, "n", 2), check_box(box)
    if getattr(loss, "dim", 2) != 2:
        raise ValueError(f"regularized_grid needs a 2D loss, got dim = {loss.dim}")
    _check_size(_padded(box[0], box[1], n, tau), _padded(box[2], box[3], n, tau), n, tau)   # before allocating
    xs, xin = _axis(box[0], box[1], n, tau)
    ys, yin = _axis(box[2], box[3], n, tau)
    Xin, Yin = np.meshgrid(xin, yin)                                          # (ny_in, nx_in)
    f = loss_values(loss, np.column_stack([Xin.ravel(), Yin.ravel()])).reshape(Xin.shape)
    Kx, Ky = _log_kernel(xs, xin, tau), _log_kernel(ys, yin, tau)
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "heat":                                                    # F^H_τ = f * φ
            Z = _convolve_rows(_convolve_rows(f, Kx).T, Ky).T
        else:
            Z = -_log_convolve_rows(_log_convolve_rows(-f, Kx).T, Ky).T      # eq. (2.2): −log(e^{−f} * φ)
    if not np.all(np.isfinite(Z)):
        i, j = np.argwhere(~np.isfinite(Z))[0]
        raise FloatingPointError(f"regularized_grid: {kind} is {float(Z[i, j])!r} at ({xs[j]:.6g}, {ys[i]:.6g}) "
                                 f"(τ = {tau!r}): f is +inf or overflows over that point's neighbourhood")
    return xs, ys, Z


def check_box(box) -> Box:
    """(x_lo, x_hi, y_lo, y_hi): four finite numbers with lo < hi on each axis."""
    sides = check_numbers(box, "box", lambda v, name: _real(v, name))
    if len(sides) != 4:
        raise ValueError(f"box must be (x_lo, x_hi, y_lo, y_hi), got {box!r}")
    if not (sides[0] < sides[1] and sides[2] < sides[3]):
        raise ValueError(f"box needs x_lo < x_hi and y_lo < y_hi, got {box!r}")
    return sides  # type: ignore[return-value]


def _real(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _padded(lo: float, hi: float, n: int, tau: float) -> float:
    """The number of input nodes _axis will make on one side (as a float: it may be astronomically large)."""
    return n + 2 * np.ceil(PAD_SDS * np.sqrt(tau) * (n - 1) / (hi - lo))


def _check_size(nx_in: float, ny_in: float, n: int, tau: float) -> None:
    """MemoryError up front (not mid-way) when the padded grid and kernels would exceed MAX_BYTES."""
    need = 8.0 * (10 * nx_in * ny_in + 3 * n * (nx_in + ny_in))   # meshes, f, its shifted exponentials; kernels
    if need > MAX_BYTES:
        raise ValueError(f"regularized_grid would need about {need / 2 ** 30:.3g} GiB (n = {n}, τ = {tau:g}: the box "
                         f"is padded by {PAD_SDS:g}√τ to {nx_in:.0f}×{ny_in:.0f} nodes); use a smaller n or τ")
