"""Local entropy (eq. 2.2), heat regularization (§2.2) and the mean of q_{x,τ} (eq. 5.1).

Paper symbols → arguments:

    f          ``loss``      (an object with value/grad, see kltrain.losses)
    x          ``x``         (the point, shape (d,))
    τ          ``tau``       (variance of φ_{x,τ}, > 0)
    q_{x,τ}    eq. (2.6): q ∝ exp(−f(x') − |x − x'|²/(2τ))

``local_entropy`` returns F_τ exactly as printed in eq. (2.2), with φ_{x,τ} the
*normalised* Gaussian. The proof of Theorem 3.1 writes F_τ = −log Z_{x,τ} with
Z_{x,τ} the normaliser of eq. (2.6); the two differ by a constant:

    −log Z_{x,τ} = F_τ(x) − (d/2) log(2πτ).

``estimator=None`` means exact (:class:`kltrain.estimators.Exact`): a closed
form when the loss offers one, grid quadrature in log space when d ≤ 2,
otherwise a ValueError naming the estimator to pass.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_finite_result, check_point, check_tau
from .estimators import Exact, require_kind
from ._types import Estimator, Point, RngLike
from .losses import Loss, check_loss, loss_dim


def _prepare(loss, x, tau):
    check_loss(loss)
    return check_point(x, loss_dim(loss)), check_tau(tau)


def _method(estimator, name: str):
    estimator = Exact() if estimator is None else estimator
    fn = getattr(estimator, name, None)
    if not callable(fn):
        raise TypeError(f"{type(estimator).__name__} cannot compute {name}")
    return fn


def local_entropy(loss: Loss, x: Point, tau: float, *, estimator: Estimator = None) -> float:
    r"""F_τ(x) = −log ∫ e^{−f(x')} φ_{x,τ}(x') dx', eq. (2.2) as printed.

    .. math:: F_\tau(x) = -\log \int_{\mathbb{R}^d} e^{-f(x')}\,\varphi_{x,\tau}(x')\,dx',
              \qquad \varphi_{x,\tau} = \mathcal{N}(x, \tau I).
    """
    x, tau = _prepare(loss, x, tau)
    value = float(_method(estimator, "local_entropy")(loss, x, tau))
    return check_finite_result(value, "local_entropy", tau=tau, estimator=estimator)


def heat_regularization(loss: Loss, x: Point, tau: float, *, estimator: Estimator = None) -> float:
    r"""F^H_τ(x) = ∫ f(x') φ_{x,τ}(x') dx' = (f * φ_{0,τ})(x), §2.2.

    .. math:: F^H_\tau(x) = \int_{\mathbb{R}^d} f(x')\,\varphi_{x,\tau}(x')\,dx' = (f * \varphi_{0,\tau})(x).
    """
    x, tau = _prepare(loss, x, tau)
    value = float(_method(estimator, "heat_regularization")(loss, x, tau))
    return check_finite_result(value, "heat_regularization", tau=tau, estimator=estimator)


def heat_regularization_grad(loss: Loss, x: Point, tau: float, *, estimator: Estimator = None) -> np.ndarray:
    """∇F^H_τ(x) = E_{φ_{x,τ}}[∇f] (closed form or quadrature)."""
    x, tau = _prepare(loss, x, tau)
    grad = np.asarray(_method(estimator, "heat_regularization_grad")(loss, x, tau))
    return check_finite_result(grad, "heat_regularization_grad", tau=tau, estimator=estimator)


def posterior_mean(loss: Loss, x: Point, tau: float, *, estimator: Estimator = None,
                   rng: RngLike = None) -> np.ndarray:
    r"""E_{X∼q_{x,τ}}[X], eq. (5.1): the minimiser of x' ↦ KL(q_{x,τ} ‖ φ_{x',τ}).

    .. math:: \mathbb{E}_{X\sim q_{x,\tau}}[X], \qquad
              q_{x,\tau}(x') \propto \exp\Big(-f(x') - \frac{|x - x'|^2}{2\tau}\Big) \quad \text{(eq. 2.6)}.

    ``estimator`` is any E_q[X] estimator (kind "mean"); ``rng`` (int seed or
    Generator) feeds the sampling ones.
    """
    x, tau = _prepare(loss, x, tau)
    estimator = Exact() if estimator is None else estimator
    require_kind(estimator, "mean", "posterior_mean")
    state = estimator.init(loss, x, tau)
    mean, _, _ = estimator.step(as_generator(rng), state, loss, x, tau)
    return check_finite_result(np.asarray(mean), "posterior_mean", tau=tau, estimator=estimator)


def log_partition_offset(dim: int, tau: float) -> float:
    """(d/2)·log(2πτ): the constant by which F_τ (eq. 2.2) exceeds −log Z_{x,τ} (eq. 2.6)."""
    return 0.5 * dim * np.log(2 * np.pi * check_tau(tau))
