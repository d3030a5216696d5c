"""kltrain: local-entropy and heat-regularized training, after García Trillos, Kaplan
and Sanz-Alonso, "Variational characterizations of local entropy and heat
regularization in deep learning".

The packages, in reading order (each imports only those above it; ``tests/test_layers.py``
checks it):

    losses, noise, schedules, fastpath   the loss protocol, the counter-based noise, τ schedules,
                                         and the protocol of the optional fast paths
    estimators/    Algorithms 3–5 (SGLD, importance sampling, Robbins–Monro) and the exact estimators
    regularized, variational, schemes    F_τ and F^H_τ (§2), their variational forms (§3),
                                         Algorithms 1 and 2 (§4)
    gaussian/      the same schemes with the Gaussian's covariance free (§1's future work)
    torch/, jax/   the schemes as a torch.optim.Optimizer and as optax transformations, for your own
                   model (optional extras; they import only the lines above)
    nets/          the hand-written MLP and its data; then (above kernels/) the MLP as a loss and
                   the reduced-coordinate updates
    kernels/       numba CPU and numba.cuda backends behind one dispatch, and Dask sharding
    studies/       the training loop, the paper's §6 experiments, readings, peers, flatness
    bench/         benchmarks beside a peer or the machine's floor
    cli/           the ``kltrain`` command

Public API (stable):

    local_entropy(loss, x, tau, *, estimator=None)          F_τ(x), eq. (2.2)
    heat_regularization(loss, x, tau, *, estimator=None)    F^H_τ(x), §2.2
    posterior_mean(loss, x, tau, *, estimator=None, rng=None)   E_{q_{x,τ}}[X], eq. (5.1)
    minimize_local_entropy(loss, x0, tau, n_steps, ...)      Algorithm 1
    minimize_heat(loss, x0, tau, n_steps, ...)               Algorithm 2
    kltrain.gaussian                                         the mean-and-covariance schemes
"""

from . import gaussian
from .regularized import heat_regularization, local_entropy, posterior_mean
from .schemes import minimize_heat, minimize_local_entropy

__version__ = "0.1.0"

__all__ = [
    "gaussian", "heat_regularization", "local_entropy", "minimize_heat", "minimize_local_entropy",
    "posterior_mean",
]
