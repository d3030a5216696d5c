"""The "numpy" backend: the estimators' own NumPy references, on an MLP minibatch, in float64.

It holds no algorithm of its own: each function binds a :class:`~kltrain.kernels.layout.Minibatch` to a plain
float64 loss and calls the reference in :mod:`kltrain.estimators` (Algorithm 4:
``importance.importance_partial``; 3: ``sgld.sgld_chain``; 5: ``robbins_monro.robbins_monro``).
The numba and CUDA kernels are tested against it on the same counter-based noise.
"""

from __future__ import annotations

import numpy as np

from ..estimators import importance, robbins_monro as rm, sgld
from ..noise import counter_normals
from .layout import Minibatch

name = "numpy"   # the backend's name (kltrain.kernels.resolve): a wrapper such as GatheringBackend reports it


class NetLoss:
    """f(x) of one minibatch in float64 (the loss protocol, with ``values``/``grads`` over rows)."""

    def __init__(self, mb: Minibatch, scale: float = 1.0):
        self.mb, self.dim, self.scale = mb, mb.net.n_params, scale   # scale β: the loss is β·f

    def value(self, x) -> float:
        return self.scale * float(self.mb.net.loss(np.asarray(x, np.float64), self.mb.X, self.mb.y))

    def values(self, P) -> np.ndarray:
        return np.array([self.value(p) for p in np.atleast_2d(P)])

    def grad(self, x) -> np.ndarray:
        return self.scale * self.mb.net.loss_and_grad(np.asarray(x, np.float64), self.mb.X, self.mb.y)[1]

    def grads(self, P) -> np.ndarray:
        return np.stack([self.grad(p) for p in np.atleast_2d(P)])


def loss_and_grad(mb, params):
    """The minibatch loss and its gradient at ``params`` (the float64 NumPy reference)."""
    return mb.net.loss_and_grad(np.asarray(params, dtype=np.float64), mb.X, mb.y)


def population_losses(mb, params, tau, seed, samples):
    """f(x + √τ ε_j) for j in ``samples``, one network at a time."""
    params = np.asarray(params, dtype=np.float64)
    return NetLoss(mb).values(params + np.sqrt(tau) * counter_normals(seed, samples, params.size))


def importance_partial(mb, params, tau, seed, start, stop, antithetic):
    """The importance-sampling partial sums over samples ``[start, stop)`` (the NumPy reference)."""
    return importance.importance_partial(NetLoss(mb), np.asarray(params, np.float64), tau, seed, start, stop,
                                         antithetic)


def sgld_chain(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """One SGLD chain of ``len(eps)`` steps from ``chain`` (the NumPy reference)."""
    return sgld.sgld_chain(NetLoss(mb), np.asarray(x, np.float64), tau, seed, chain, np.asarray(eps), noise_scale)


def langevin_step(x, chain, grad, total, e, e_next, tau, seed, j, noise_scale=1.0):
    """One Algorithm 3 transition in place (the kernels' calling convention), noise sample j."""
    chain[:] = sgld.langevin_step(x, chain, grad, e, tau, counter_normals(seed, [j], chain.size)[0], noise_scale)
    total += e_next * chain


def robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Algorithm 5 on β·f, β = ``grad_scale`` (1 as printed)."""
    return rm.robbins_monro(NetLoss(mb, grad_scale), np.asarray(x_k, np.float64), tau, seed, steps, n_samples)


def diagonal_importance_moments(mb, params, var, seed, n_samples, scale=1.0):
    """GaussianIS's NumPy reference on β·f: (mean, diagonal variances, ESS)."""
    from ..gaussian.sampling import GaussianIS
    mean, var, info = GaussianIS(n_samples).reference_estimate(seed, NetLoss(mb, scale), np.asarray(params, np.float64),
                                                                np.asarray(var, np.float64))
    return mean, var, info.ess


def diagonal_sgld_moments(mb, params, var, seed, n_steps, step, scale=1.0):
    """GaussianSGLD's NumPy reference on β·f: the chain's (mean, diagonal variances)."""
    from ..gaussian.sampling import GaussianSGLD
    mean, var, _ = GaussianSGLD(n_steps, step).reference_estimate(seed, NetLoss(mb, scale),
                                                                  np.asarray(params, np.float64),
                                                                  np.asarray(var, np.float64))
    return mean, var


def normals(seed, samples, n_coords):
    """The counter-based normals ε[j, i] of ``seed`` for the sample indices ``samples`` (float64)."""
    return counter_normals(seed, samples, n_coords)
