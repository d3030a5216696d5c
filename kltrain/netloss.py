"""An MLP bound to data, as a loss for the public API and the estimators (eq. 2.1).

``MinibatchLoss(net, X, y)`` is f(x) = mean cross-entropy of the network with
parameters x on one minibatch: it has ``value``/``grad``/``values`` like any
loss, so ``kltrain.posterior_mean(loss, x, tau, estimator=...)`` works on it.
It also offers every fast path of :class:`kltrain.fastpath.FastPaths` —
``importance_partial`` (Alg. 4), ``sgld_chain`` (Alg. 3), ``robbins_monro``
(Alg. 5), and their exact-in-distribution ``projected_*`` versions
(:mod:`kltrain.projected`) — run by the chosen backend (:mod:`kltrain.kernels`).

``TrainingSet(net, X, y, batch_size)`` draws minibatch losses; a loss drawn
from it can ``resample(rng)`` (SGLD's ``fresh_minibatch`` option).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._checks import as_generator, check_count, check_labelled
from ._types import RngLike
from .kernels import get_backend, resolve
from .kernels.layout import Minibatch
from .nets import MLP
from .projected import projected_importance_update, projected_robbins_monro, projected_sgld_chain


class MinibatchLoss:
    """f(x) on one minibatch (X, y) of an MLP; parameters x are the flat vector of :class:`MLP`."""

    def __init__(self, net: MLP, X, y, *, backend="auto", source: "TrainingSet | None" = None):
        self.net = net
        X, y = check_labelled(X, y, net.sizes[-1], "X", n_features=net.sizes[0])  # an empty batch, NaN pixels
        self.batch = Minibatch.build(net, X, y)
        self.backend_name, self.backend = _backend(backend)
        self.source = source

    @property
    def dim(self) -> int:
        return self.net.n_params

    # -- the loss protocol -----------------------------------------------------
    def value(self, x: ArrayLike) -> float:
        return self.net.loss(np.asarray(x, dtype=np.float32), self.batch.X, self.batch.y)

    def grad(self, x: ArrayLike) -> np.ndarray:
        return self.backend.loss_and_grad(self.batch, self._params(x))[1]

    def loss_and_grad(self, x: ArrayLike) -> tuple[float, np.ndarray]:
        return self.backend.loss_and_grad(self.batch, self._params(x))

    def _params(self, x: ArrayLike) -> np.ndarray:
        """The shape check ``value`` makes (via MLP.unflatten), before the kernels index out of range."""
        x = np.asarray(x)
        if x.shape != (self.dim,):
            raise ValueError(f"params must have shape ({self.dim},), got {x.shape}")
        return x

    def values(self, P: ArrayLike) -> np.ndarray:
        """The population loss over the rows of P (one network per row)."""
        return np.array([self.value(p) for p in np.atleast_2d(P)])

    def resample(self, rng: RngLike) -> "MinibatchLoss":
        """A fresh minibatch from the same training set."""
        if self.source is None:
            raise TypeError("this MinibatchLoss was not drawn from a TrainingSet; it cannot resample")
        return self.source.sample(rng)

    # -- fast paths (kltrain.fastpath.FastPaths: arguments x, tau, seed, then the algorithm's) --
    def importance_partial(self, x, tau, seed, start, stop, antithetic):
        return self.backend.importance_partial(self.batch, x, tau, seed, start, stop, antithetic)

    def projected_importance_update(self, x, tau, seed, n_samples, antithetic):
        return projected_importance_update(self.backend, self.batch, x, tau, seed, n_samples, antithetic)

    def sgld_chain(self, x, tau, seed, start, eps, noise_scale=1.0, rng=None):
        """Algorithm 3's chain; with ``rng`` every inner step uses a fresh minibatch."""
        if rng is None:
            return self.backend.sgld_chain(self.batch, x, start, tau, eps, seed, noise_scale)
        return self._sgld_fresh(x, tau, start, eps, seed, rng, noise_scale)

    def _sgld_fresh(self, x, tau, start, eps, seed, rng, noise_scale):
        x = np.asarray(x, dtype=np.float32)
        chain = np.array(start, dtype=np.float32)
        total, grad_norm = (eps[0] * chain).astype(np.float32), 0.0
        for j in range(1, eps.size):
            _, g = self.resample(rng).loss_and_grad(chain)
            self.backend.langevin_step(x, chain, np.asarray(g, np.float32), total, eps[j - 1], eps[j], tau, seed, j,
                                       noise_scale)
            grad_norm = float(np.linalg.norm(g))
        return total / np.float32(eps.sum()), chain, grad_norm

    def projected_sgld_chain(self, x, tau, seed, start, eps, noise_scale=1.0, rng=None):
        return projected_sgld_chain(self.backend, self.batch, x, start, tau, eps, seed, noise_scale)

    def robbins_monro(self, x_k, tau, seed, steps, n_samples):
        return self.backend.robbins_monro(self.batch, x_k, tau, steps, n_samples, seed)

    def projected_robbins_monro(self, x_k, tau, seed, steps, n_samples):
        return projected_robbins_monro(self.backend, self.batch, x_k, tau, steps, n_samples, seed)


def _backend(backend):
    """(name, module-or-object) for a backend name, or a backend object such as DaskBackend."""
    if isinstance(backend, str):
        name = resolve(backend)
        return name, get_backend(name)
    return getattr(backend, "name", type(backend).__name__), backend


class TrainingSet:
    """Training data for an MLP; ``sample(rng)`` draws a minibatch loss of ``batch_size`` rows."""

    def __init__(self, net: MLP, X, y, batch_size: int = 20, *, backend="auto"):
        self.net = net
        self.X, self.y = check_labelled(X, y, net.sizes[-1], "X", n_features=net.sizes[0])
        self.batch_size = check_count(batch_size, "batch_size", 1)
        if self.batch_size > self.X.shape[0]:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.X.shape[0]} training rows")
        self.backend = resolve(backend) if isinstance(backend, str) else backend

    def sample(self, rng: RngLike) -> MinibatchLoss:
        idx = as_generator(rng).choice(self.X.shape[0], size=self.batch_size, replace=False)
        return MinibatchLoss(self.net, self.X[idx], self.y[idx], backend=self.backend, source=self)
