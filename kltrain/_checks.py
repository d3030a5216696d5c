"""Input validation shared by the public functions.

Every check raises ``ValueError`` (bad value) or ``TypeError`` (bad kind of
object) with a message that names the offending argument and value, so that a
user sees *what* was wrong rather than a NaN three calls later.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_tau(tau) -> float:
    """Return ``tau`` as a float; it must be finite and > 0 (variance of φ_{x,τ})."""
    return check_positive(tau, "tau")


def _real_array(value, name: str, kinds: str, what: str) -> np.ndarray:
    """``value`` as float64; TypeError naming ``name`` for complex numbers, strings or objects."""
    if np.iscomplexobj(value) or (isinstance(value, np.ndarray) and value.dtype.kind not in kinds):
        raise TypeError(f"{name} must be real numbers, got dtype {np.asarray(value).dtype}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {value!r}") from None


def check_point(x, dim: int | None = None, name: str = "x") -> np.ndarray:
    """Return ``x`` as a finite float64 vector of length ``dim`` (if known)."""
    arr = _real_array(x, name, "fiub", "a vector of real numbers")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[0]}, but the loss has dimension {dim}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr!r}")
    return arr


def check_count(value, name: str, minimum: int = 0) -> int:
    """Return an integer count ``>= minimum`` (n_steps, n_samples, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value, name: str) -> float:
    """Return a finite float ``> 0`` (step constants, temperatures, scales)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


class NonFiniteLoss(FloatingPointError, ValueError):
    """A loss evaluation gave NaN or ±inf: a bad loss (ValueError) or a run that left its range
    (FloatingPointError, e.g. a diverging chain); ``except`` either one catches it."""


def check_finite_values(values: np.ndarray, what: str = "the loss") -> np.ndarray:
    """Raise NonFiniteLoss if a loss evaluation returned NaN or ±inf (names the first bad value)."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if np.any(bad):
        first = float(values[bad].flat[0])
        raise NonFiniteLoss(f"{what} returned a non-finite value ({first!r}); losses must be finite")
    return values


def check_nonnegative(value, name: str) -> float:
    """Return a finite float ``>= 0`` (scopes, noise levels, rates that may be switched off with 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_flag(value, name: str) -> bool:
    """A bool (numpy's too); ``2`` or ``"no"`` is a TypeError, not a silent truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_numbers(values, name: str, check) -> tuple:
    """A tuple of numbers, each passed through ``check(value, name)``; a string or a scalar is a TypeError."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(values))


def check_seed(seed, name: str = "seed") -> int:
    """A seed: an integer >= 0 (numpy refuses negatives with a message that names nothing)."""
    return check_count(seed, name)


def as_generator(rng) -> np.random.Generator:
    """Accept ``None``, an int seed or a Generator; never touch numpy's global RNG."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(check_seed(rng, "rng"))
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {rng!r}")


def check_finite_result(value, what: str, *, tau=None, estimator=None, step=None):
    """FloatingPointError unless every entry of ``value`` is finite; names τ, the estimator, the step.

    Overflow in an estimator (x = 1e300, a diverging chain, τ = 1e30) otherwise comes back
    as NaN or inf with only a RuntimeWarning, and poisons whatever uses it next.
    """
    arr = np.asarray(value, dtype=np.float64)
    if np.all(np.isfinite(arr)):
        return value
    where = [f"τ = {tau!r}"] if tau is not None else []
    where.append(f"estimator {'Exact' if estimator is None else type(estimator).__name__}")
    if step is not None:
        where.append(f"step {step}")
    first = float(arr[~np.isfinite(arr)].flat[0])
    raise FloatingPointError(f"{what} is not finite ({first!r}) at {', '.join(where)}")


def check_labelled(X, y, n_classes: int, name: str = "X", n_features: int | None = None):
    """(X float32 (n, features), y int64 (n,)) checked up front: non-empty, finite, integer labels in range.

    Bad data otherwise surfaces updates later, as a crash, a LinAlgError or a NaN accuracy.
    """
    X, y = np.asarray(X), np.asarray(y)
    label = "y" + name[1:]
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, features) array, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per row, but the net takes {n_features}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be real numbers, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{name} must be finite; {name}[{bad[0]}, {bad[1]}] = {X[tuple(bad)]!r}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{label} must be a vector of {X.shape[0]} labels (one per row of {name}), "
                         f"got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{label} must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise ValueError(f"{label}: class labels must be in 0..{n_classes - 1} ({n_classes} classes), got {bad}")
    return X, np.ascontiguousarray(y, dtype=np.int64)


def check_covariance(cov, dim: int, name: str = "cov", *, diagonal: bool = False,
                     allow_zero: bool = False) -> np.ndarray:
    """A covariance for N(m, C) in R^dim, checked up front, naming ``name``.

    Accepted: a variance τ > 0 (τI), a vector of dim variances > 0 (diag), or a dim×dim
    symmetric positive definite matrix. Returns the dim×dim matrix, or with ``diagonal=True``
    the vector of variances — and then a matrix with off-diagonal entries is refused: where a
    diagonal covariance is meant, reducing a full matrix to its diagonal would be a silent
    change of the Gaussian. ``allow_zero`` admits zero variances (a collapsed, point-mass
    direction: the end state of a learned covariance, not a user's input).
    """
    arr = _real_array(cov, name, "fiu", "a variance, a vector of variances or a matrix")
    if arr.ndim > 2 or (arr.ndim == 1 and arr.shape != (dim,)) or (arr.ndim == 2 and arr.shape != (dim, dim)):
        raise ValueError(f"{name} must be a variance, {dim} variances or a {dim}x{dim} matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_show(arr)}")
    if arr.ndim < 2:
        if np.any(arr < 0) or (not allow_zero and np.any(arr == 0)):
            raise ValueError(f"{name}: variances must be {'>=' if allow_zero else '>'} 0, got {_show(arr)}")
        var = np.broadcast_to(arr, (dim,)).astype(np.float64)
        return var if diagonal else np.diag(var)
    if not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-14 * max(1.0, float(np.abs(arr).max()))):
        raise ValueError(f"{name} must be symmetric, got {_show(arr)}")
    off = arr - np.diag(np.diag(arr))
    if diagonal and np.any(off != 0):
        raise ValueError(f"{name} must be diagonal here (this estimator learns variances only), but has "
                         f"off-diagonal entries up to {float(np.abs(off).max()):.3g}; pass the variances")
    sym = 0.5 * (arr + arr.T)
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite; its smallest eigenvalue is "
                         f"{float(np.linalg.eigvalsh(sym).min()):.3g} ({_show(arr)})") from None
    return np.diag(sym).copy() if diagonal else sym


def _show(arr: np.ndarray) -> str:
    """A short repr for messages (a 159,010-vector must not fill the screen)."""
    return np.array2string(np.asarray(arr), threshold=8, edgeitems=2, precision=4)


# A chain that has moved this many times its natural scale from its anchor has diverged: for a
# loss bounded below, q ∝ e^{−f} N(x, τI) puts its mass within √(2τ(f(x) − min f)) of x, so a
# legitimate chain would need f(x) − min f ≳ 1e16·d/2, beyond what float64 losses resolve.
CHAIN_DIVERGED = 1e8


def check_chain(chain: np.ndarray, anchor: np.ndarray, scale: float, what: str, step: int,
                hint: str = "ε_j is too large for the loss's curvature and 1/τ") -> None:
    """FloatingPointError if an iterative estimator's state left its range (naming it and the step).

    ``scale`` is the chain's natural distance (max of 1, √(τd), the start's distance); a state
    not finite or farther than CHAIN_DIVERGED·scale from ``anchor`` is the estimator's own
    divergence, reported as such before it reaches the loss as an overflowed point.
    """
    if not np.all(np.isfinite(chain)):
        raise FloatingPointError(f"{what} diverged at inner step {step}: its state is not finite ({hint})")
    distance = float(np.linalg.norm(chain - anchor))
    if not distance <= CHAIN_DIVERGED * scale:
        raise FloatingPointError(f"{what} diverged at inner step {step}: its state is {distance:.3g} from the "
                                 f"anchor (more than {CHAIN_DIVERGED:.0e} × its scale {scale:.3g}): {hint}")
