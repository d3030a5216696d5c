"""The naive baselines that ``kltrain bench`` times beside our kernels.

Each is the straightforward implementation a user would write first — NumPy's
Generator for the noise, batched matmuls or one backward per network, float32.
(The float64 NumPy reference of each algorithm lives in its estimator's module;
the "numpy" backend, :mod:`kltrain.kernels.numpy_backend`, runs those.)
"""

from __future__ import annotations

import numpy as np

from .._logspace import logsumexp
from ..estimators.importance import combine, partial_from_log_weights


def naive_importance_update(net, params, X, y, tau, n_samples, rng, chunk=100):
    """The straightforward IS update (Alg. 4): NumPy Generator noise, J networks by batched matmul."""
    params = np.asarray(params, dtype=np.float32)
    X = np.asarray(X, dtype=np.float32)
    s, parts = np.float32(np.sqrt(tau)), []
    for lo in range(0, n_samples, chunk):
        eps = rng.standard_normal((min(chunk, n_samples - lo), params.size), dtype=np.float32)
        P = params + s * eps                                        # (c, d): c perturbed networks
        h = np.broadcast_to(X, (P.shape[0],) + X.shape)             # (c, B, in)
        layers = net.layer_offsets
        for k, (w, b, fi, fo) in enumerate(layers):
            h = np.matmul(h, P[:, w:b].reshape(-1, fi, fo)) + P[:, None, b:b + fo]
            if k < len(layers) - 1:
                h = np.maximum(h, 0)
        log_norm = logsumexp(h, axis=2)                              # (c, B)
        losses = np.mean(log_norm - np.take_along_axis(h, y[None, :, None], axis=2)[..., 0], axis=1)
        parts.append(partial_from_log_weights(-losses.astype(np.float64), eps))
    total = combine(parts)
    return params + s * (total.sum_w_eps / total.sum_w).astype(np.float32)


def naive_sgld_update(net, x, chain, X, y, tau, eps, rng):
    """Straightforward Algorithm 3: NumPy backward per step, Generator noise (the bench baseline)."""
    x, chain = np.asarray(x, np.float32), np.array(chain, np.float32)
    total = eps[0] * chain
    for j in range(1, eps.size):
        _, grad = net.loss_and_grad(chain, X, y)
        noise = rng.standard_normal(chain.size, dtype=np.float32)
        chain += np.float32(-0.5 * eps[j - 1]) * (grad - (x - chain) / np.float32(tau)) \
            + np.float32(np.sqrt(eps[j - 1])) * noise
        total += np.float32(eps[j]) * chain
    return total / np.float32(eps.sum()), chain


def naive_robbins_monro(net, x_k, X, y, tau, steps, n_samples, rng):
    """Straightforward Algorithm 5: M NumPy backwards per iteration, Generator noise (bench baseline)."""
    x_k = np.asarray(x_k, np.float32)
    x = x_k.copy()
    for a in steps:
        z = x + np.float32(np.sqrt(tau)) * rng.standard_normal((n_samples, x.size), dtype=np.float32)
        g = np.mean([net.loss_and_grad(zm, X, y)[1] for zm in z], axis=0)
        x = x - np.float32(a) * (x - x_k + np.float32(tau) * g)
    return x


__all__ = ["naive_importance_update", "naive_robbins_monro", "naive_sgld_update"]
