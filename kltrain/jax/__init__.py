"""Local entropy and heat regularization as optax transformations (``pip install "kltrain[jax]"``).

    local_entropy(tau, "is" | "sgld", n_samples, key=key)   Algorithm 1 (Alg. 4 or 3 inside)
    heat(tau, n_iter, n_samples, key=key)                   Algorithm 2 (Alg. 5 inside)
    FlatLoss(value_fn, params)    the loss as a kltrain loss of the flat parameters
    normal_noise, counter_noise   where ε_j comes from (jax.random, or kltrain's counter normals)

Both are ``optax.GradientTransformationExtraArgs`` whose ``update`` takes the minibatch
loss as ``value_fn``; see :mod:`kltrain.jax.transforms`.
"""

from .flat import FlatLoss
from .noise import counter_noise, key_seed, normal_noise
from .transforms import ISInfo, KLState, RMInfo, SGLDInfo, heat, local_entropy, tau_function

__all__ = ["FlatLoss", "ISInfo", "KLState", "RMInfo", "SGLDInfo", "counter_noise", "heat", "key_seed",
           "local_entropy", "normal_noise", "tau_function"]
