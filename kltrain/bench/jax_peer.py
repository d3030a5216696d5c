"""JAX-on-CPU peers of the bench updates, timed in the same run as ours (``kltrain bench --peer jax``).

Each peer is what a researcher would write in JAX: the MLP loss of
:class:`kltrain.nets.mlp.MLP` on the same flat parameter vector, ``jax.jit``,
``jax.vmap`` over the J perturbed parameter vectors, noise from ``jax.random``.
The timed quantity is the wall time of one jitted update, blocked until ready
(best of ``repeat`` after a warm-up call that compiles it). JAX is optional
(``pip install kltrain[peers]``); :func:`jax_available` says whether it imports.
"""

from __future__ import annotations

import time

import numpy as np

PEER_ALGORITHMS = ("SGD", "IS", "SGLD", "HR")


def jax_available() -> bool:
    """Whether ``jax`` imports (the peer is optional)."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _loss_fn(net):
    """JAX mean softmax cross-entropy of ``net`` at flat params (same layout as :class:`MLP`)."""
    import jax
    import jax.numpy as jnp

    layers = net.layer_offsets

    def loss(params, X, y):
        h = X
        for k, (w, b, fi, fo) in enumerate(layers):
            h = h @ params[w:b].reshape(fi, fo) + params[b:b + fo]
            if k < len(layers) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    return loss


def jax_updates(net, X, y, tau, lr, samples, eps, steps, m):
    """Jitted JAX updates {algorithm: fn(params, key)} for the paper's four algorithms."""
    import jax
    import jax.numpy as jnp

    X, y = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.int32)
    loss = _loss_fn(net)
    grad = jax.grad(loss)
    batch_loss = jax.vmap(loss, in_axes=(0, None, None))
    batch_grad = jax.vmap(grad, in_axes=(0, None, None))
    s = float(np.sqrt(tau))
    eps_j, steps_j = jnp.asarray(eps, jnp.float32), jnp.asarray(steps, jnp.float32)

    def sgd(p, key):
        return p - lr * grad(p, X, y)

    def importance(p, key):
        noise = jax.random.normal(key, (samples, p.size), jnp.float32)
        w = jax.nn.softmax(-batch_loss(p + s * noise, X, y))
        return p + s * (w @ noise)

    def sgld(p, key):
        def step(carry, inp):
            chain, total = carry
            e, e_next, k = inp
            g = grad(chain, X, y) - (p - chain) / tau
            chain = chain - 0.5 * e * g + jnp.sqrt(e) * jax.random.normal(k, p.shape, jnp.float32)
            return (chain, total + e_next * chain), None
        keys = jax.random.split(key, samples - 1)
        (chain, total), _ = jax.lax.scan(step, (p, eps_j[0] * p), (eps_j[:-1], eps_j[1:], keys))
        return total / jnp.sum(eps_j)

    def robbins_monro(p, key):
        def step(x, inp):
            a, k = inp
            z = x + s * jax.random.normal(k, (m, p.size), jnp.float32)
            return x - a * (x - p + tau * jnp.mean(batch_grad(z, X, y), axis=0)), None
        x, _ = jax.lax.scan(step, p, (steps_j, jax.random.split(key, steps_j.size)))
        return x

    return {"SGD": jax.jit(sgd), "IS": jax.jit(importance), "SGLD": jax.jit(sgld), "HR": jax.jit(robbins_monro)}


def time_jax(fn, params, repeat: int, seed: int = 0) -> float:
    """Best wall time of ``repeat`` blocked calls of a jitted update, after one compiling call."""
    import jax

    p, key = jax.numpy.asarray(params, jax.numpy.float32), jax.random.key(seed)
    fn(p, key).block_until_ready()
    times = []
    for i in range(repeat):
        k = jax.random.fold_in(key, i + 1)
        t = time.perf_counter()
        fn(p, k).block_until_ready()
        times.append(time.perf_counter() - t)
    return min(times)


def time_jax_peers(net, X, y, params, tau, lr, samples, eps, steps, m, repeat) -> dict[str, float]:
    """Seconds per update of each JAX peer (SGD, IS, SGLD, HR) on this net and minibatch."""
    fns = jax_updates(net, X, y, tau, lr, samples, eps, steps, m)
    return {name: time_jax(fn, params, repeat) for name, fn in fns.items()}


__all__ = ["PEER_ALGORITHMS", "jax_available", "jax_updates", "time_jax", "time_jax_peers"]
