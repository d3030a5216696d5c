"""A JAX-on-CPU peer of our kernels, timed beside them in the same run (``kltrain bench --peer jax``).

:class:`JaxKernels` offers the kernel interface the updates call (``loss_and_grad``,
``importance_partial``, ``sgld_chain``, ``robbins_monro``, ``normals``; see
:mod:`kltrain.kernels`), written as a researcher would write it in JAX: the MLP
loss of :class:`kltrain.nets.mlp.MLP` on the same flat parameter vector,
``jax.jit``, ``jax.vmap`` over perturbed parameter vectors, ``jax.lax.scan``
over chain steps, noise from ``jax.random``. Because it is a backend, the bench
runs the *same* update code on it as on ours:

- per-sample rows: the kernel on the full minibatch (every noise vector in full);
- reduced rows: :mod:`kltrain.nets.projected`'s update with ``JaxKernels`` as its
  backend — the same SVD/QR, reduced minibatch, basis products and lift in NumPy,
  only the inner algorithm (and the orthogonal draw) in JAX.

So a ratio of two rows of one problem compares implementations, never the reduced
algorithm with the per-sample one. IS runs as a scan over blocks of samples with a
running log-sum-exp (bounded memory: no J×d matrix for the wide net); its block of
``jax_block`` samples is vmapped.

JAX is optional (``pip install kltrain[peers]``); :func:`jax_available` says whether it imports.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..fastpath import ISPartial

PEER_ALGORITHMS = ("SGD", "IS", "SGLD", "HR")
BLOCK_FLOATS = 1 << 24   # IS: samples per vmapped block so that a block's noise holds at most this many floats


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


@lru_cache(maxsize=64)
def _jitted(sizes: tuple, kind: str, n: int, m: int = 0):
    """The jitted JAX function of ``kind`` for an MLP of ``sizes`` (n: samples/steps; m: HR draws)."""
    import jax
    import jax.numpy as jnp

    from ..nets.mlp import MLP

    net = MLP(sizes)
    loss = _loss_fn(net)
    grad = jax.grad(loss)
    d = net.n_params

    if kind == "loss_and_grad":
        return jax.jit(jax.value_and_grad(loss))

    if kind == "importance":
        block = max(1, min(n, BLOCK_FLOATS // d))
        n_blocks = -(-n // block)
        batch_loss = jax.vmap(loss, in_axes=(0, None, None))

        def importance(p, X, y, s, key):
            def body(carry, b):
                m_, sw, sw2, acc = carry
                noise = jax.random.normal(jax.random.fold_in(key, b), (block, d), jnp.float32)
                lw = -batch_loss(p + s * noise, X, y)
                lw = jnp.where(b * block + jnp.arange(block) < n, lw, -jnp.inf)   # the last block's padding
                new = jnp.maximum(m_, jnp.max(lw))
                a, w = jnp.exp(m_ - new), jnp.exp(lw - new)
                return (new, a * sw + jnp.sum(w), a * a * sw2 + jnp.sum(w * w), a * acc + w @ noise), lw
            init = (jnp.float32(-jnp.inf), jnp.float32(0), jnp.float32(0), jnp.zeros(d, jnp.float32))
            (m_, sw, sw2, acc), lws = jax.lax.scan(body, init, jnp.arange(n_blocks))
            return m_, sw, sw2, acc, lws.reshape(-1)[:n]
        return jax.jit(importance)

    if kind == "sgld":
        def sgld(x, chain, X, y, tau, eps, scale, key):
            def step(carry, inp):
                c, total, _ = carry
                e, e_next, k = inp
                g = grad(c, X, y)
                c = c - 0.5 * e * (g - (x - c) / tau) + scale * jnp.sqrt(e) * jax.random.normal(k, c.shape, c.dtype)
                return (c, total + e_next * c, g), None
            keys = jax.random.split(key, n - 1)
            (c, total, g), _ = jax.lax.scan(step, (chain, eps[0] * chain, jnp.zeros_like(chain)),
                                            (eps[:-1], eps[1:], keys))
            return total / jnp.sum(eps), c, jnp.sqrt(jnp.sum(g * g))
        return jax.jit(sgld)

    if kind == "robbins_monro":
        batch_grad = jax.vmap(grad, in_axes=(0, None, None))

        def robbins_monro(x_k, X, y, tau, steps, scale, key):
            def step(carry, inp):
                x, _ = carry
                a, k = inp
                z = x + jnp.sqrt(tau) * jax.random.normal(k, (m, d), jnp.float32)
                h = x - x_k + scale * tau * jnp.mean(batch_grad(z, X, y), axis=0)    # eq. (5.3)
                return (x - a * h, jnp.sqrt(jnp.sum(h * h))), None
            (x, res), _ = jax.lax.scan(step, (x_k, jnp.float32(0)), (steps, jax.random.split(key, n)))
            return x, res
        return jax.jit(robbins_monro)

    raise ValueError(f"unknown kind {kind!r}")


@lru_cache(maxsize=16)
def _normals_fn(n: int):
    import jax
    import jax.numpy as jnp
    return jax.jit(lambda key: jax.random.normal(key, (n,), jnp.float32))


def _key(seed: int, salt: int = 0):
    import jax
    return jax.random.fold_in(jax.random.key(int(seed) % 2 ** 32), salt)


class JaxKernels:
    """The kernel interface of :mod:`kltrain.kernels` in JAX (jit + vmap; ``jax.random`` noise).

    Results follow the same algorithms and laws as ours but not the same samples (the noise is
    ``jax.random``'s). Every call blocks until its result is on the host, as ours does.
    """

    name = "jax"

    @staticmethod
    def _data(mb):
        import jax.numpy as jnp
        return jnp.asarray(mb.X, jnp.float32), jnp.asarray(mb.y, jnp.int32)

    def loss_and_grad(self, mb, params):
        X, y = self._data(mb)
        loss, g = _jitted(mb.net.sizes, "loss_and_grad", 0)(np.asarray(params, np.float32), X, y)
        return float(loss), np.asarray(g)

    def importance_partial(self, mb, params, tau, seed, start, stop, antithetic):
        if antithetic:
            raise ValueError("the JAX peer has no antithetic importance sampling")
        X, y = self._data(mb)
        n = stop - start
        m_, sw, sw2, acc, lw = _jitted(mb.net.sizes, "importance", n)(
            np.asarray(params, np.float32), X, y, np.float32(np.sqrt(tau)), _key(seed, start))
        return ISPartial(float(m_), float(sw), float(sw2), np.asarray(acc, np.float64), n), np.asarray(lw, np.float64)

    def sgld_chain(self, mb, x, chain, tau, eps, seed, noise_scale=1.0):
        X, y = self._data(mb)
        eps = np.asarray(eps, np.float32)
        mean, end, g = _jitted(mb.net.sizes, "sgld", eps.size)(
            np.asarray(x, np.float32), np.asarray(chain, np.float32), X, y, np.float32(tau), eps,
            np.float32(noise_scale), _key(seed))
        return np.asarray(mean), np.asarray(end), float(g)

    def robbins_monro(self, mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
        X, y = self._data(mb)
        steps = np.asarray(steps, np.float32)
        x, res = _jitted(mb.net.sizes, "robbins_monro", steps.size, n_samples)(
            np.asarray(x_k, np.float32), X, y, np.float32(tau), steps, np.float32(grad_scale), _key(seed))
        return np.asarray(x), float(res)

    def normals(self, seed, samples, n_coords):
        fn = _normals_fn(int(n_coords))
        return np.stack([np.asarray(fn(_key(seed, int(j) % 2 ** 32))) for j in samples])


__all__ = ["PEER_ALGORITHMS", "JaxKernels", "jax_available"]
