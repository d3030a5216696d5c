"""The NumPy reference backend: readable, float64, noise materialised.

Same interface and same counter-based samples as the numba backends (which are
tested against it); too slow for training, right for checking and teaching.
``naive_importance_update`` is the straightforward implementation a user would
write first — NumPy's Generator for the noise, batched matmuls for the J
networks — and is the baseline that ``kltrain bench`` measures in the same run.
"""

from __future__ import annotations

import numpy as np

from .._logspace import logsumexp
from ..estimators.importance import ISPartial, combine, partial_from_log_weights, proposal_noise
from ..noise import counter_normals

CHUNK = 32  # samples per materialised block (32 × 159,010 float64 = 41 MB)


def loss_and_grad(mb, params):
    loss, grad = mb.net.loss_and_grad(np.asarray(params, dtype=np.float64), mb.X, mb.y)
    return loss, grad


def population_losses(mb, params, tau, seed, samples):
    """f(x + √τ ε_j) for j in ``samples``: the population loss, one network at a time."""
    params = np.asarray(params, dtype=np.float64)
    eps = counter_normals(seed, samples, params.size)
    return np.array([mb.net.loss(params + np.sqrt(tau) * e, mb.X, mb.y) for e in eps])


def importance_partial(mb, params, tau, seed, start, stop, antithetic):
    """(ISPartial, log weights) of samples [start, stop) of Algorithm 4."""
    params = np.asarray(params, dtype=np.float64)
    parts, log_ws = [], []
    for lo in range(start, stop, CHUNK):
        eps = proposal_noise(seed, lo, min(lo + CHUNK, stop), params.size, antithetic)
        log_w = -np.array([mb.net.loss(params + np.sqrt(tau) * e, mb.X, mb.y) for e in eps])
        parts.append(partial_from_log_weights(log_w, eps))
        log_ws.append(log_w)
    return combine(parts), np.concatenate(log_ws)


def langevin_step(x, chain, grad, total, e, e_next, tau, seed, j, noise_scale=1.0):
    """One Algorithm 3 transition in place: chain ← chain − (e/2)(∇f − (x − chain)/τ) + s√e ε_j."""
    noise = counter_normals(seed, [j], chain.size)[0]
    chain += -0.5 * e * (grad - (x - chain) / tau) + noise_scale * np.sqrt(e) * noise
    total += e_next * chain


def sgld_chain(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """Algorithm 3 on a fixed minibatch, step by step (noise sample j drives the step from x^j)."""
    x, chain = np.asarray(x, np.float64), np.array(chain, np.float64)
    total, grad = eps[0] * chain, np.zeros_like(chain)
    for j in range(1, eps.size):
        _, grad = loss_and_grad(mb, chain)
        langevin_step(x, chain, grad, total, eps[j - 1], eps[j], tau, seed, j, noise_scale)
    return total / eps.sum(), chain, float(np.linalg.norm(grad))


def robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Algorithm 5 with batched draws (sample m of iteration j is noise sample (j−1)·M + m) on β·f, β = grad_scale."""
    x_k = np.asarray(x_k, np.float64)
    x, M, residual = x_k.copy(), n_samples, 0.0
    for j, a in enumerate(steps, start=1):
        z = x + np.sqrt(tau) * counter_normals(seed, np.arange((j - 1) * M, j * M), x.size)
        g = np.mean([loss_and_grad(mb, zm)[1] for zm in z], axis=0)
        h = x - x_k + grad_scale * tau * g          # eq. (5.3) on β·f
        x = x - a * h
        residual = float(np.linalg.norm(h))
    return x, residual


def normals(seed, samples, n_coords):
    return counter_normals(seed, samples, n_coords)


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


__all__ = ["ISPartial", "importance_partial", "langevin_step", "loss_and_grad", "naive_importance_update",
           "naive_robbins_monro", "naive_sgld_update", "normals", "population_losses",
           "robbins_monro", "sgld_chain"]
