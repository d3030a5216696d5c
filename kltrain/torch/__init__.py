"""Local entropy and heat regularization for your own PyTorch model (``pip install "kltrain[torch]"``).

    LocalEntropy(params, tau, "is" | "sgld", n_samples, model=model)   Algorithm 1 (Alg. 4 or 3 inside)
    Heat(params, tau, n_iter, n_samples, model=model)                  Algorithm 2 (Alg. 5 inside)
    FlatLoss(model, closure)        the model's loss as a kltrain loss of the flat parameters
                                    (kltrain's NumPy estimators and flatness measures run on it)
    counter_normals(seed, samples, d)   kltrain's counter-based noise, on the parameters' device

Both optimizers are ``torch.optim.Optimizer`` subclasses whose ``step(closure)`` takes a closure
returning the minibatch loss (no ``backward()`` inside); see :mod:`kltrain.torch.optim`.
"""

from .flat import FlatLoss, FlatParameters, frozen_running_stats
from .noise import counter_normals
from .optim import Heat, LocalEntropy, update_seed

__all__ = ["FlatLoss", "FlatParameters", "Heat", "LocalEntropy", "counter_normals", "frozen_running_stats",
           "update_seed"]
