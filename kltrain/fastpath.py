"""Optional fast paths a loss may offer the sampling estimators, and the one place they are found.

Every estimator has a plain NumPy *reference* implementation of its algorithm that needs only
the loss protocol (``value``/``grad``, optionally ``values``/``grads``; :mod:`kltrain.losses`).
A loss that can do an algorithm's inner loop faster — an MLP minibatch with numba or CUDA
kernels (:class:`kltrain.nets.netloss.MinibatchLoss`) — offers it as a method of
:class:`FastPaths`, with the same arguments and the same numbers (up to float32 rounding)
as the reference. All methods take ``(x, tau, seed, ...)``: the anchor point, τ, the
update's noise seed (:mod:`kltrain.noise`), then the algorithm's own arguments.

``projected=True`` on an estimator (``ImportanceSampling``, ``SGLD``, ``RobbinsMonro``)
means: use the loss's ``projected_*`` fast path; ``False``: the per-sample path; ``None`` (the
default): ask the loss's cost model (``projected_pays``, :func:`choose_projected`) which is
cheaper — a loss without one takes the per-sample path. The estimators' ``info`` says which
path ran (``projected``). For an MLP on a minibatch A (B×784), the
network sees its first layer W₁ only through A·W₁, so the algorithm runs in the B-dimensional
row space of A and the orthogonal complement is drawn exactly from its known Gaussian law
(:mod:`kltrain.nets.projected`): the same distribution as the per-sample algorithm, ~10–40× less
work. There is no reference for it on a general loss, so a loss without the method is a
``TypeError``.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple, Protocol, overload

import numpy as np


class ISPartial(NamedTuple):
    """Log-space sufficient statistics of importance weights over a shard of samples.

    What ``importance_partial`` returns; :mod:`kltrain.estimators.importance` combines them.
    """

    log_scale: float        # m = max_j log w_j over the shard
    sum_w: float            # Σ_j e^{log w_j − m}
    sum_w2: float           # Σ_j e^{2(log w_j − m)}
    sum_w_eps: np.ndarray   # Σ_j e^{log w_j − m} ε_j, shape (d,)
    n: int                  # number of samples


class FastPaths(Protocol):
    """The optional methods, by algorithm. A loss may have any subset of them."""

    def importance_partial(self, x: np.ndarray, tau: float, seed: int, start: int, stop: int,
                           antithetic: bool) -> tuple[ISPartial, np.ndarray]:
        """Algorithm 4 over samples [start, stop): (log-space sums, log weights −f(x + √τ ε_j))."""
        ...

    def diagonal_importance_moments(self, x: np.ndarray, var: np.ndarray, seed: int, n_samples: int
                                    ) -> tuple[np.ndarray, np.ndarray, float]:
        """:class:`~kltrain.gaussian.sampling.GaussianIS` with proposal N(x, diag var) — a variance
        vector in τ's place: (mean, diagonal variances, ESS) of q ∝ e^{−f} N(x, diag var)."""
        ...

    def diagonal_sgld_moments(self, x: np.ndarray, var: np.ndarray, seed: int, n_steps: int, step: float
                              ) -> tuple[np.ndarray, np.ndarray]:
        """:class:`~kltrain.gaussian.sampling.GaussianSGLD`'s C-preconditioned chain from x: its
        (mean, diagonal variances) as estimates of q's."""
        ...

    def projected_importance_update(self, x: np.ndarray, tau: float, seed: int, n_samples: int,
                                    antithetic: bool) -> tuple[np.ndarray, Any]:
        """Algorithm 4, whole update, reduced coordinates: (E_q[X] estimate, ISInfo)."""
        ...

    def sgld_chain(self, x: np.ndarray, tau: float, seed: int, start: np.ndarray, eps: np.ndarray,
                   noise_scale: float, rng: np.random.Generator | None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        """Algorithm 3 from chain state ``start`` with ε_j = eps[j−1]; ``rng`` given: a fresh
        minibatch per inner step. Returns (weighted mean, last chain state, last ‖∇f‖)."""
        ...

    def projected_sgld_chain(self, x: np.ndarray, tau: float, seed: int, start: np.ndarray,
                             eps: np.ndarray, noise_scale: float, rng: None
                             ) -> tuple[np.ndarray, np.ndarray, float]:
        """Algorithm 3 in reduced coordinates (one minibatch per update, so ``rng`` is None)."""
        ...

    def robbins_monro(self, x: np.ndarray, tau: float, seed: int, steps: np.ndarray, n_samples: int
                      ) -> tuple[np.ndarray, float]:
        """Algorithm 5 from x_k = ``x`` with a_j = steps[j−1]: (last iterate, last |ĥ|)."""
        ...

    def projected_robbins_monro(self, x: np.ndarray, tau: float, seed: int, steps: np.ndarray,
                                n_samples: int) -> tuple[np.ndarray, float]:
        """Algorithm 5 in reduced coordinates."""
        ...

    def projected_pays(self, algorithm: str, n_samples: int, n_iter: int = 1) -> bool:
        """Whether the reduced (``projected_*``) path is cheaper than the per-sample one for ``algorithm``
        ("IS", "SGLD", "HR") with J = ``n_samples`` (HR: M = ``n_samples`` draws, ``n_iter`` iterations)."""
        ...

    def heat_gradient_term(self, x: np.ndarray, tau: float, seed: int, n_samples: int) -> np.ndarray:
        """τ·(1/M) Σ_m ∇f(z_m), z_m ~ φ_{x,τ}: one Algorithm 5 iteration's noisy term, for
        ``RobbinsMonro(fresh_minibatch=True)``, which calls it on a new minibatch per iteration."""
        ...


def choose_projected(loss: Any, projected: bool | None, algorithm: str, n_samples: int, n_iter: int = 1) -> bool:
    """An estimator's ``projected`` setting resolved: True/False as given; None: the loss's ``projected_pays``
    (its cost model), or False for a loss without one (the per-sample path is the reference)."""
    if projected is not None:
        return bool(projected)
    pays = getattr(loss, "projected_pays", None)
    return bool(pays(algorithm, n_samples, n_iter)) if callable(pays) else False


@overload
def fast_path(loss: Any, method: str, projected: Literal[True]) -> Callable[..., Any]: ...


@overload
def fast_path(loss: Any, method: str, projected: bool = False) -> Callable[..., Any] | None: ...


def fast_path(loss: Any, method: str, projected: bool = False) -> Callable[..., Any] | None:
    """The loss's fast path for ``method`` (``projected_`` prefixed when ``projected``), or None
    to run the estimator's NumPy reference. ``projected=True`` has no reference: TypeError."""
    name = f"projected_{method}" if projected else method
    if name not in FastPaths.__dict__:
        raise AttributeError(f"{name!r} is not a fast path of kltrain.fastpath.FastPaths")
    fn = getattr(loss, name, None)
    if projected and not callable(fn):
        raise TypeError(f"projected=True needs a loss with .{name} (an MLP minibatch loss); "
                        f"got {type(loss).__name__}")
    return fn if callable(fn) else None
