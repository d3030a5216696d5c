"""Algorithms 1 and 2 of the paper as optax ``GradientTransformationExtraArgs``.

    local_entropy (Algorithm 1):  x_{k+1} = E_{q_{x_k,τ}}[X],  q_{x,τ}(x') ∝ exp(−f(x') − |x − x'|²/2τ)  (eq. 2.6)
        "is"   (Algorithm 4, eq. 5.2): x + √τ Σ_j w_j ε_j / Σ_j w_j,  log w_j = −f(x + √τ ε_j)
        "sgld" (Algorithm 3): Σ_j ε_j x^j / Σ_j ε_j along a Langevin chain targeting q_{x,τ}
    heat (Algorithm 2): x_{k+1} ≈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}) by Robbins–Monro (Algorithm 5, eq. 5.3)

f is the minibatch loss, passed to ``update`` as the extra argument ``value_fn``
(params ↦ scalar), the convention of optax's line searches; the incoming ``updates``
(gradients) are not used. The returned updates are x_{k+1} − x_k, so
``optax.apply_updates(params, updates)`` is the paper's step::

    opt = kltrain.jax.local_entropy(0.01, "is", 100, key=jax.random.key(0))
    state = opt.init(params)

    @jax.jit
    def train_step(params, state, batch):
        value_fn = lambda p: loss(p, batch)
        updates, state = opt.update(None, state, params, value_fn=value_fn)
        return optax.apply_updates(params, updates), state

Paper symbols → arguments: τ ``tau`` (a float, a kltrain ``TauScoping``/``ReverseTauScoping``,
or an optax schedule of the update count); J ``n_samples``; for SGLD the ε_j and T of
kltrain's ``SGLD``; for Robbins–Monro J ``n_iter``, M ``n_samples``, a_j = c·j^{−α}.
Randomness is an explicit PRNG key, split once per update (as ``optax.add_noise``);
ε_j comes from ``noise`` (:mod:`kltrain.jax.noise`). The parameters are one flat vector
x (``jax.flatten_util.ravel_pytree``); the IS weights are reduced in log space over
chunks of ``chunk_size`` samples evaluated with ``jax.vmap``.

Diagnostics are in ``state.info`` (effective sample size, chain distance, residual, and
``finite``). Called outside ``jit``, a non-finite loss or a diverging iteration raises
``FloatingPointError`` naming τ, the estimator and the step; under ``jit`` it cannot,
and the update is NaN (wrap the transformation in ``optax.apply_if_finite`` to skip it).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ..estimators import SGLD, RobbinsMonro
from ..estimators.by_name import mean_estimator, prox_estimator
from ..estimators.robbins_monro import DIVERGED
from ..estimators.sgld import sgld_stability_hint
from ..schedules import ConstantTau, ReverseTauScoping, TauScoping, as_tau_schedule
from .noise import Noise, normal_noise


class ISInfo(NamedTuple):
    """Importance sampling's diagnostics of one update (Algorithm 4)."""

    ess: jax.Array          # effective sample size (Σw)²/Σw², in [1, J]
    max_weight: jax.Array   # largest normalised weight
    finite: jax.Array       # every loss f(x + √τ ε_j) finite (no NaN, no +inf)


class SGLDInfo(NamedTuple):
    """The Langevin chain's diagnostics of one update (Algorithm 3)."""

    distance: jax.Array     # ‖x − x^J‖
    grad_norm: jax.Array    # ‖∇f(x^{J−1})‖
    finite: jax.Array       # the chain stayed finite


class RMInfo(NamedTuple):
    """The Robbins–Monro iteration's diagnostics of one update (Algorithm 5)."""

    residual: jax.Array     # |ĥ(x^{J−1})|
    finite: jax.Array       # the iteration neither overflowed nor grew DIVERGED-fold


class KLState(NamedTuple):
    """The optax state of :func:`local_entropy` and :func:`heat`: updates done, key, SGLD's chain, last info."""

    n_updates: jax.Array    # k, updates done (not "count": it would shadow tuple.count, which mypy flags)
    key: jax.Array          # split once per update
    chain: jax.Array        # SGLD's last chain state (warm start, §5.1.1); shape (0,) otherwise
    info: Any               # the last update's ISInfo / SGLDInfo / RMInfo


def tau_function(tau: Any) -> Callable[[Any], Any]:
    """τ as a traceable function of the update count: a float, a kltrain schedule, or an optax schedule."""
    schedule = as_tau_schedule(tau)            # validates a float (ValueError naming τ)
    if isinstance(schedule, ConstantTau):
        return lambda k: jnp.asarray(schedule.tau, jnp.float32)
    if isinstance(schedule, TauScoping):        # τ₀ / (1 + τ₁)^k, §6.5.1
        return lambda k: schedule.tau0 / (1.0 + schedule.tau1) ** k.astype(jnp.float32)
    if isinstance(schedule, ReverseTauScoping):
        return lambda k: schedule.tau0 * (1.0 + schedule.tau1) ** k.astype(jnp.float32)
    return schedule                              # any other callable must be traceable (an optax schedule)


def _as_key(key: Any) -> jax.Array:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax PRNG key or an int seed, got {type(key).__name__}")
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def _check_eagerly(finite: jax.Array, what: str, estimator: Any, tau: jax.Array, k: jax.Array) -> None:
    """FloatingPointError when the values are concrete (outside jit) and not finite; under jit nothing to do."""
    if isinstance(finite, jax.core.Tracer) or bool(finite):
        return
    raise FloatingPointError(f"{type(estimator).__name__} (kltrain.jax): {what} (τ = {float(tau)!r}, "
                             f"step {int(k) + 1})")


# --- Algorithm 4 -------------------------------------------------------------------------------------------


def importance_sampling_update(f: Callable, x: jax.Array, tau: jax.Array, key: jax.Array, n_samples: int,
                               chunk_size: int, antithetic: bool, noise: Noise) -> tuple[jax.Array, ISInfo]:
    """eq. (5.2) over J samples in chunks: running log-space sums (m, Σw, Σw², Σwε), one vmap per chunk."""
    n_chunks = -(-n_samples // chunk_size)
    offsets = jnp.arange(chunk_size)

    def chunk(carry, c):
        m, sum_w, sum_w2, sum_w_eps, finite = carry
        j = c * chunk_size + offsets                                  # sample indices; the last chunk is masked
        valid = j < n_samples
        if antithetic:                                                 # samples 2p, 2p+1 use ±ε_p
            eps = jnp.where((j % 2 == 0)[:, None], 1.0, -1.0) * noise(key, j // 2, x.size)
        else:
            eps = noise(key, j, x.size)
        log_w = -jax.vmap(f)(x + jnp.sqrt(tau) * eps)                   # log w_j = −f(x + √τ ε_j)
        finite = finite & jnp.all(~valid | (jnp.isfinite(log_w) | (log_w == -jnp.inf)))
        log_w = jnp.where(valid, log_w, -jnp.inf)
        m_new = jnp.maximum(m, jnp.max(log_w))
        shift = jnp.where(jnp.isfinite(m_new), m_new, 0.0)              # all weights zero so far: no NaN from −inf − −inf
        old = jnp.where(jnp.isfinite(m), jnp.exp(m - shift), 0.0)       # rescale the sums to the new max
        w = jnp.exp(log_w - shift)
        return (m_new, old * sum_w + w.sum(), old ** 2 * sum_w2 + (w * w).sum(), old * sum_w_eps + w @ eps,
                finite), None

    zero = jnp.zeros((), x.dtype)
    init = (jnp.asarray(-jnp.inf, x.dtype), zero, zero, jnp.zeros_like(x), jnp.asarray(True))
    (m, sum_w, sum_w2, sum_w_eps, finite), _ = jax.lax.scan(chunk, init, jnp.arange(n_chunks))
    finite = finite & jnp.isfinite(m)
    mean = x + jnp.sqrt(tau) * sum_w_eps / sum_w                        # eq. (5.2)
    return mean, ISInfo(sum_w ** 2 / sum_w2, 1.0 / sum_w, finite)


# --- Algorithm 3 -------------------------------------------------------------------------------------------


def sgld_update(f: Callable, x: jax.Array, tau: jax.Array, key: jax.Array, start: jax.Array, eps: np.ndarray,
                noise_scale: float, noise: Noise) -> tuple[jax.Array, jax.Array, SGLDInfo]:
    """Algorithm 3: x^{j+1} = x^j − (ε_j/2)(∇f(x^j) − (x − x^j)/τ) + √(T ε_j) η_j; returns (mean, x^J, info)."""
    eps_j = jnp.asarray(eps, x.dtype)
    grad = jax.grad(f)

    def transition(carry, j):                                          # j = 1..J−1; chain is x^j
        chain, total, _ = carry
        g = grad(chain)
        eta = noise(key, j[None], x.size)[0]                            # η_j: noise sample j, as kltrain's SGLD
        chain = chain - 0.5 * eps_j[j - 1] * (g - (x - chain) / tau) + noise_scale * jnp.sqrt(eps_j[j - 1]) * eta
        return (chain, total + eps_j[j] * chain, jnp.linalg.norm(g)), None   # Σ ε_j x^j

    init = (start, eps_j[0] * start, jnp.zeros((), x.dtype))
    (chain, total, grad_norm), _ = jax.lax.scan(transition, init, jnp.arange(1, eps.size))
    finite = jnp.all(jnp.isfinite(chain))
    return total / eps_j.sum(), chain, SGLDInfo(jnp.linalg.norm(x - chain), grad_norm, finite)


# --- Algorithm 5 -------------------------------------------------------------------------------------------


def robbins_monro_update(f: Callable, x_k: jax.Array, tau: jax.Array, key: jax.Array, steps: np.ndarray,
                         n_samples: int, noise: Noise) -> tuple[jax.Array, RMInfo]:
    """eq. (5.3): x^j = x^{j−1} − a_j (x^{j−1} − x_k + (τ/M) Σ_m ∇f(z^(m))), z^(m) ~ φ_{x^{j−1},τ}."""
    grads = jax.vmap(jax.grad(f))
    offsets = jnp.arange(n_samples)

    def iteration(carry, inputs):
        x, first, _, ok = carry
        j, a = inputs                                                  # j = 1..J
        z = x + jnp.sqrt(tau) * noise(key, (j - 1) * n_samples + offsets, x.size)   # draws (j−1)M .. jM−1
        h = x - x_k + tau * grads(z).mean(axis=0)                        # eq. (5.3)
        residual = jnp.linalg.norm(h)
        first = jnp.where(j == 1, residual, first)
        ok = ok & jnp.isfinite(residual) & (residual <= DIVERGED * jnp.maximum(first, 1.0))
        return (x - a * h, first, residual, ok), None

    zero = jnp.zeros((), x_k.dtype)
    inputs = (jnp.arange(1, steps.size + 1), jnp.asarray(steps, x_k.dtype))
    (x, _, residual, ok), _ = jax.lax.scan(iteration, (x_k, zero, zero, jnp.asarray(True)), inputs)
    return x, RMInfo(residual, ok)


# --- the transformations -----------------------------------------------------------------------------------


def _check_chunk(chunk_size: Any) -> int:
    if not (isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    return chunk_size


def local_entropy(tau: Any, estimator: Any = "is", n_samples: int | None = None, *, key: Any,
                  chunk_size: int = 128, noise: Noise = normal_noise) -> optax.GradientTransformationExtraArgs:
    """Algorithm 1: updates that move the parameters to an estimate of E_{q_{x,τ(k)}}[X].

    ``estimator`` is ``"is"`` or ``"sgld"`` with ``n_samples`` = J, or a configured
    ``kltrain.estimators.ImportanceSampling`` / ``SGLD``. ``update`` needs ``value_fn``.

    >>> import jax, jax.numpy as jnp, optax
    >>> opt = local_entropy(0.1, "is", 256, key=jax.random.key(0))
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> value_fn = lambda p: 0.5 * jnp.sum(p["w"] ** 2)        # f(x) = |x|²/2: E_q[X] = x / (1 + τ)
    >>> state = opt.init(params)
    >>> updates, state = opt.update(None, state, params, value_fn=value_fn)
    >>> new = optax.apply_updates(params, updates)
    >>> bool(jnp.allclose(new["w"], params["w"] / 1.1, atol=0.05))
    True
    """
    estimator = mean_estimator(estimator, n_samples, "kltrain.jax.local_entropy")
    tau_of, key0, chunk_size = tau_function(tau), _as_key(key), _check_chunk(chunk_size)
    is_sgld = isinstance(estimator, SGLD)
    eps = estimator.eps() if is_sgld else None

    def init_fn(params):
        x, _ = ravel_pytree(params)
        zero = jnp.zeros((), x.dtype)
        info = (SGLDInfo(zero, zero, jnp.asarray(True)) if is_sgld
                else ISInfo(zero, zero, jnp.asarray(True)))
        return KLState(jnp.zeros((), jnp.int32), key0, x if is_sgld else jnp.zeros((0,), x.dtype), info)

    def update_fn(updates, state, params=None, *, value_fn, **extra_args):
        del updates, extra_args
        if params is None:
            raise TypeError("kltrain.jax.local_entropy needs params (optax passes them as update's third argument)")
        x, unravel = ravel_pytree(params)
        f = lambda v: value_fn(unravel(v))                             # noqa: E731  f on the flat parameters
        key, sub = jax.random.split(state.key)
        tau = tau_of(state.n_updates)
        chain = state.chain
        if is_sgld:
            # warm start (§5.1.1) from the previous update's chain; the first update starts at x, wherever
            # the parameters went between init and it
            start = jnp.where(state.n_updates > 0, chain, x) if estimator.warm_start else x
            mean, chain, info = sgld_update(f, x, tau, sub, start, eps, estimator.noise_scale, noise)
            if not isinstance(info.finite, jax.core.Tracer) and not bool(info.finite):
                hint = sgld_stability_hint(eps, float(tau))
                _check_eagerly(info.finite, f"the Langevin chain is not finite{hint}", estimator, tau, state.n_updates)
        else:
            mean, info = importance_sampling_update(f, x, tau, sub, estimator.n_samples, chunk_size,
                                                    estimator.antithetic, noise)
            _check_eagerly(info.finite, "a loss f(x + √τ ε_j) is NaN or +inf", estimator, tau, state.n_updates)
        return unravel(mean - x), KLState(state.n_updates + 1, key, chain, info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def heat(tau: Any, n_iter: int | None = None, n_samples: int | None = None, *, key: Any, c: float = 0.1,
         alpha: float = 0.7, estimator: RobbinsMonro | None = None,
         noise: Noise = normal_noise) -> optax.GradientTransformationExtraArgs:
    """Algorithm 2: updates that take a Robbins–Monro step towards argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}).

    J ``n_iter`` iterations of M ``n_samples`` gradient draws each, steps a_j = c·j^{−α}
    (or ``estimator=RobbinsMonro(...)``). ``update`` needs ``value_fn``.
    """
    estimator = prox_estimator(estimator, n_iter, n_samples, c, alpha, "kltrain.jax.heat")
    tau_of, key0, steps = tau_function(tau), _as_key(key), estimator.steps()

    def init_fn(params):
        x, _ = ravel_pytree(params)
        zero = jnp.zeros((), x.dtype)
        return KLState(jnp.zeros((), jnp.int32), key0, jnp.zeros((0,), x.dtype), RMInfo(zero, jnp.asarray(True)))

    def update_fn(updates, state, params=None, *, value_fn, **extra_args):
        del updates, extra_args
        if params is None:
            raise TypeError("kltrain.jax.heat needs params (optax passes them as update's third argument)")
        x, unravel = ravel_pytree(params)
        key, sub = jax.random.split(state.key)
        tau = tau_of(state.n_updates)
        x_next, info = robbins_monro_update(lambda v: value_fn(unravel(v)), x, tau, sub, steps,
                                            estimator.n_samples, noise)
        _check_eagerly(info.finite, f"Robbins–Monro diverged (the residual grew {DIVERGED:.0e}-fold or overflowed); "
                       "reduce the step constant c or τ", estimator, tau, state.n_updates)
        return unravel(x_next - x), KLState(state.n_updates + 1, key, state.chain, info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

