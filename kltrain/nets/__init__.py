"""A neural network as a loss: the hand-written MLP, its data, and the reduced-coordinate updates (§6).

Read in this order:

    mlp        the MLP's forward and backward pass in NumPy (the readable reference)
    data       MNIST / Fashion-MNIST loaders (the 5,000 embedded digits by default)
    cost       which path an update should take, per-sample or reduced: a cost model (projected=None)
    netloss    a minibatch of the MLP as a loss of the paper's protocol, with the kernels' fast paths
    projected  the reduced-coordinate IS, SGLD and Robbins–Monro updates (exact in distribution)

``mlp``, ``data`` and ``cost`` sit below :mod:`kltrain.kernels` (the kernels compile the MLP's layout);
``netloss`` and ``projected`` sit above it (they call the kernels). So this package's
``__init__`` names only the lower two, and importing ``kltrain.nets`` loads no kernels.
"""

from .data import Dataset, load, load_fashion_mnist, load_mnist
from .mlp import HIDDEN, SMALL, MLP, softmax_cross_entropy

__all__ = ["Dataset", "HIDDEN", "MLP", "SMALL", "load", "load_fashion_mnist", "load_mnist", "softmax_cross_entropy"]
