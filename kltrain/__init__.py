"""kltrain: local-entropy and heat-regularized training, after García Trillos, Kaplan
and Sanz-Alonso, "Variational characterizations of local entropy and heat
regularization in deep learning".

Public API (stable):

    local_entropy(loss, x, tau, *, estimator=None)          F_τ(x), eq. (2.2)
    heat_regularization(loss, x, tau, *, estimator=None)    F^H_τ(x), §2.2
    posterior_mean(loss, x, tau, *, estimator=None, rng=None)   E_{q_{x,τ}}[X], eq. (5.1)
    minimize_local_entropy(loss, x0, tau, n_steps, ...)      Algorithm 1
    minimize_heat(loss, x0, tau, n_steps, ...)               Algorithm 2
"""

from .regularized import heat_regularization, local_entropy, posterior_mean
from .schemes import minimize_heat, minimize_local_entropy
from . import gaussian  # noqa: E402  mean-and-covariance schemes (issue 16)

__version__ = "0.1.0"

__all__ = [
    "heat_regularization", "local_entropy", "minimize_heat", "minimize_local_entropy",
    "posterior_mean",
]
