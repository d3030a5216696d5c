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


def check_point(x, dim: int | None = None, name: str = "x") -> np.ndarray:
    """Return ``x`` as a finite float64 vector of length ``dim`` (if known)."""
    arr = np.asarray(x, dtype=np.float64)
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


def check_finite_values(values: np.ndarray, what: str = "the loss") -> np.ndarray:
    """Raise if a loss evaluation returned NaN or ±inf (names the first bad value)."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if np.any(bad):
        first = values[bad].flat[0]
        raise ValueError(f"{what} returned a non-finite value ({first!r}); losses must be finite")
    return values


def as_generator(rng) -> np.random.Generator:
    """Accept ``None``, an int seed or a Generator; never touch numpy's global RNG."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {rng!r}")
