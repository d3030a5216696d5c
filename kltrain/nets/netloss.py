"""An MLP bound to data, as a loss for the public API and the estimators (eq. 2.1).

``MinibatchLoss(net, X, y)`` is f(x) = mean cross-entropy of the network with
parameters x on one minibatch: it has ``value``/``grad``/``values`` like any
loss, so ``kltrain.posterior_mean(loss, x, tau, estimator=...)`` works on it.
It also offers every fast path of :class:`kltrain.fastpath.FastPaths` —
``importance_partial`` (Alg. 4), ``sgld_chain`` (Alg. 3), ``robbins_monro``
(Alg. 5), and their exact-in-distribution ``projected_*`` versions
(:mod:`kltrain.nets.projected`) — run by the chosen backend (:mod:`kltrain.kernels`),
and ``projected_pays``, which of the two :mod:`kltrain.nets.cost` prices lower
(the estimators' ``projected=None``).

``TrainingSet(net, X, y, batch_size)`` draws minibatch losses; a loss drawn
from it can ``resample(rng)`` (the ``fresh_minibatch`` option of SGLD and Robbins–Monro).

``scale`` β turns f into β·f (β = batch size: the *sum* of per-example losses, a
``reduce_sum``, instead of the mean). Every path sees β·f: ``value``/``grad``,
IS log weights −β·f(x_j) (:func:`~kltrain.estimators.importance.rescaled_partial`),
Robbins–Monro's τβ∇f (the kernels' ``grad_scale``) and the SGLD chain, run by the
kernels as the identical chain with τ' = βτ, ε'_j = βε_j and noise scale s/√β:
y − (ε'/2)(∇f − (x − y)/τ') + s√(ε'/β) ξ = y − (ε/2)(β∇f − (x − y)/τ) + s√ε ξ.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._checks import as_generator, check_count, check_labelled
from .._types import RngLike
from ..kernels import get_backend, resolve
from ..kernels.layout import Minibatch
from ..estimators.importance import rescaled_partial
from .cost import reduced_pays
from .mlp import MLP
from .projected import projected_importance_update, projected_robbins_monro, projected_sgld_chain


def device_reduced(algorithm: str, net: MLP, batch: int) -> bool:
    """Whether the CUDA backend runs ``algorithm``'s reduced update on the device for ``net`` and ``batch``:
    IS in the resident kernels (:mod:`kltrain.kernels.cuda_resident`), SGLD and HR in the persistent
    chains (:mod:`kltrain.kernels.cuda_chain_runs`; the reduced net has min(B, inputs) inputs)."""
    if algorithm == "IS":
        from ..kernels.cuda_resident import unsupported
        return unsupported(net, batch) is None
    from ..kernels.cuda_chain_runs import fits_sizes
    return fits_sizes((min(batch, net.sizes[0]),) + tuple(net.sizes[1:]), batch)


class MinibatchLoss:
    """f(x) on one minibatch (X, y) of an MLP; parameters x are the flat vector of :class:`~kltrain.nets.MLP`."""

    def __init__(self, net: MLP, X, y, *, backend="auto", source: "TrainingSet | None" = None, scale: float = 1.0):
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.scale = float(scale)
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
        return self.scale * self.net.loss(np.asarray(x, dtype=np.float32), self.batch.X, self.batch.y)

    def grad(self, x: ArrayLike) -> np.ndarray:
        return self.loss_and_grad(x)[1]

    def loss_and_grad(self, x: ArrayLike) -> tuple[float, np.ndarray]:
        loss, grad = self.backend.loss_and_grad(self.batch, self._params(x))
        if self.scale == 1.0:
            return loss, grad
        return self.scale * loss, np.float32(self.scale) * grad

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
        part, log_w = self.backend.importance_partial(self.batch, x, tau, seed, start, stop, antithetic)
        if self.scale == 1.0:
            return part, log_w
        return rescaled_partial(log_w, self.scale, seed, start, self.dim, antithetic, self.backend.normals)

    def diagonal_importance_moments(self, x, var, seed, n_samples):
        """GaussianIS with proposal N(x, diag var) on β·f."""
        return self._diagonal_kernel("diagonal_importance_moments")(self.batch, x, var, seed, n_samples, self.scale)

    def diagonal_sgld_moments(self, x, var, seed, n_steps, step):
        """GaussianSGLD's chain moments on β·f."""
        return self._diagonal_kernel("diagonal_sgld_moments")(self.batch, x, var, seed, n_steps, step, self.scale)

    def _diagonal_kernel(self, name):
        """The backend's learned-covariance kernel; a backend without one (CUDA, Dask) uses the CPU kernel."""
        from ..kernels import cpu_backend
        return getattr(self.backend, name, None) or getattr(cpu_backend, name)

    def projected_importance_update(self, x, tau, seed, n_samples, antithetic):
        return projected_importance_update(self.backend, self.batch, x, tau, seed, n_samples, antithetic, self.scale)

    def _scaled_chain_args(self, tau, eps, noise_scale):
        """(τ', ε', s') of the chain on f that equals the chain on β·f (see the module docstring)."""
        b = self.scale
        return tau * b, np.asarray(eps, np.float64) * b, noise_scale / np.sqrt(b)

    def sgld_chain(self, x, tau, seed, start, eps, noise_scale=1.0, rng=None):
        """Algorithm 3's chain; with ``rng`` every inner step uses a fresh minibatch."""
        if rng is None:
            tau, eps, noise_scale = self._scaled_chain_args(tau, eps, noise_scale)
            return self.backend.sgld_chain(self.batch, x, start, tau, eps, seed, noise_scale)
        return self._sgld_fresh(x, tau, start, eps, seed, rng, noise_scale)

    def _sgld_fresh(self, x, tau, start, eps, seed, rng, noise_scale):  # gradients below are already β∇f
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
        tau, eps, noise_scale = self._scaled_chain_args(tau, eps, noise_scale)
        return projected_sgld_chain(self.backend, self.batch, x, start, tau, eps, seed, noise_scale)

    def robbins_monro(self, x_k, tau, seed, steps, n_samples):
        return self.backend.robbins_monro(self.batch, x_k, tau, steps, n_samples, seed, self.scale)

    def projected_robbins_monro(self, x_k, tau, seed, steps, n_samples):
        return projected_robbins_monro(self.backend, self.batch, x_k, tau, steps, n_samples, seed, self.scale)

    def projected_pays(self, algorithm, n_samples, n_iter=1):
        """Whether :mod:`kltrain.nets.cost` prices the reduced update below the per-sample one on this minibatch.

        On the CUDA backend, where the reduced update runs on the device (:func:`device_reduced`), it is
        chosen without the model: see :mod:`kltrain.nets.cost` on why its CUDA constants do not price it.
        """
        if self.backend_name == "cuda" and device_reduced(algorithm, self.net, self.batch.batch_size):
            return True
        samples, m = (n_iter, n_samples) if algorithm == "HR" else (n_samples, 1)
        return reduced_pays(algorithm, self.net.sizes, self.batch.batch_size, int(self.batch.idx.size),
                            int(self.batch.cols.size), samples, m, self.backend_name)

    def heat_gradient_term(self, x, tau, seed, n_samples):
        """τ·(1/M) Σ_m ∇(βf)(z_m), z_m ~ φ_{x,τ}: one Robbins–Monro iteration's noisy term (reduced problem).

        One projected Algorithm 5 iteration with anchor x and a₁ = 1 returns x minus exactly this.
        """
        return np.asarray(x, np.float32) - self.projected_robbins_monro(x, tau, seed, np.ones(1), n_samples)[0]


def _backend(backend):
    """(name, module-or-object) for a backend name, or a backend object such as DaskBackend."""
    if isinstance(backend, str):
        name = resolve(backend)
        return name, get_backend(name)
    return getattr(backend, "name", type(backend).__name__), backend


class TrainingSet:
    """Training data for an MLP; ``sample(rng)`` draws a minibatch loss of ``batch_size`` rows."""

    def __init__(self, net: MLP, X, y, batch_size: int = 20, *, backend="auto", scale: float = 1.0):
        self.net = net
        self.scale = float(scale)  # β: minibatch losses are β·f
        self.X, self.y = check_labelled(X, y, net.sizes[-1], "X", n_features=net.sizes[0])
        self.batch_size = check_count(batch_size, "batch_size", 1)
        if self.batch_size > self.X.shape[0]:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.X.shape[0]} training rows")
        self.backend = resolve(backend) if isinstance(backend, str) else backend

    def sample(self, rng: RngLike) -> MinibatchLoss:
        idx = as_generator(rng).choice(self.X.shape[0], size=self.batch_size, replace=False)
        return MinibatchLoss(self.net, self.X[idx], self.y[idx], backend=self.backend, source=self, scale=self.scale)
