"""Where the JAX transformations' ε_j come from: a function ``noise(key, samples, d) -> (len(samples), d)``.

- :func:`normal_noise` (the default): ε_j = ``jax.random.normal(fold_in(key, j), (d,))``.
  Like kltrain's counter-based generator, sample j is a pure function of (key, j): the
  chunking of importance sampling never changes which ε_j a sample gets, and any
  sample can be regenerated. The numbers differ from kltrain's, so the JAX and NumPy
  updates agree in distribution, not sample by sample (tests/test_jax.py compares
  them statistically).
- :func:`counter_noise`: kltrain's own counter-based normals (:mod:`kltrain.noise`),
  computed on the host by ``jax.pure_callback`` with the stream seed
  :func:`key_seed` (key). Slow (a host round trip per call) and CPU-bound, but each
  update then equals the NumPy estimator's update with that seed to float32 rounding:
  the check that the transformations implement Algorithms 1–5 and nothing else.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..noise import counter_normals

Noise = Callable[[jax.Array, jax.Array, int], jax.Array]


def normal_noise(key: jax.Array, samples: jax.Array, dim: int) -> jax.Array:
    """ε_j = N(0, I_d) drawn from ``fold_in(key, j)`` for each j in ``samples``: shape (n, d), float32."""
    return jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), (dim,)))(samples)


def key_seed(key: jax.Array) -> int:
    """The 63-bit counter-stream seed of a (concrete) PRNG key: its two 32-bit words, top bit dropped."""
    hi, lo = (int(w) for w in np.asarray(jax.random.key_data(key)).reshape(-1)[-2:])
    return ((hi << 32) | lo) & (2 ** 63 - 1)


def counter_noise(key: jax.Array, samples: jax.Array, dim: int) -> jax.Array:
    """kltrain's counter normals ε[j, :] with seed :func:`key_seed` (key), through a host callback; float32."""
    def host(key_words, samples):
        hi, lo = (int(w) for w in np.asarray(key_words).reshape(-1)[-2:])
        seed = ((hi << 32) | lo) & (2 ** 63 - 1)
        return counter_normals(seed, np.asarray(samples), dim).astype(np.float32)

    shape = jax.ShapeDtypeStruct((samples.shape[0], dim), jnp.float32)
    return jax.pure_callback(host, shape, jax.random.key_data(key), samples, vmap_method="sequential")
