"""A hand-written MLP on a flat parameter vector (paper §6.1), forward and backward in NumPy.

Layers are dense; hidden layers use ReLU, the last one feeds a softmax
cross-entropy. The parameters are one flat vector x ∈ R^d — the x of the paper
— laid out layer by layer as [W_1 (in×out, row-major), b_1, W_2, b_2, ...], so
that row i of W_1 (the weights leaving pixel i) is contiguous.

The paper's nets: ``MLP.small()`` = 784–10 (7,850 parameters) and
``MLP.hidden()`` = 784–200–10 (159,010 parameters).

``MinibatchLoss`` binds a net to a minibatch so that it is a loss for the
public API (``value``, ``grad``, ``values`` over rows of parameter vectors);
it also carries the fast numba paths the estimators look for
(:mod:`kltrain.kernels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_generator, check_count

SMALL = (784, 10)
HIDDEN = (784, 200, 10)
INIT_SCHEMES = ("he", "glorot")


@dataclass(frozen=True)
class MLP:
    """Dense ReLU network with softmax cross-entropy; ``sizes`` = (inputs, hidden..., classes)."""

    sizes: tuple[int, ...]

    def __post_init__(self):
        if isinstance(self.sizes, (str, bytes)) or not hasattr(self.sizes, "__iter__"):
            raise TypeError(f"sizes must be a sequence of layer widths, got {self.sizes!r}")
        sizes = tuple(check_count(s, "sizes entry", 1) for s in self.sizes)   # 784.5, "784", True refused
        if len(sizes) < 2:
            raise ValueError(f"sizes must list >= 2 positive layer widths, got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def small(cls) -> "MLP":
        """784–10: the paper's small dense network (7,850 parameters)."""
        return cls(SMALL)

    @classmethod
    def hidden(cls) -> "MLP":
        """784–200–10: the paper's single-hidden-layer network (159,010 parameters)."""
        return cls(HIDDEN)

    @property
    def layer_offsets(self) -> list[tuple[int, int, int, int]]:
        """(weights start, bias start, fan_in, fan_out) of each layer in the flat vector."""
        out, pos = [], 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out.append((pos, pos + fan_in * fan_out, fan_in, fan_out))
            pos += fan_in * fan_out + fan_out
        return out

    @property
    def n_params(self) -> int:
        w, _, fan_in, fan_out = self.layer_offsets[-1]
        return w + fan_in * fan_out + fan_out

    def unflatten(self, params: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views (W (in, out), b (out,)) into the flat vector, one pair per layer."""
        params = np.asarray(params)
        if params.shape != (self.n_params,):
            raise ValueError(f"params must have shape ({self.n_params},), got {params.shape}")
        return [(params[w:b].reshape(fi, fo), params[b:b + fo]) for w, b, fi, fo in self.layer_offsets]

    def init(self, rng: np.random.Generator | int | None = None, dtype: type = np.float32,
             scheme: str = "he") -> np.ndarray:
        """Initial parameters; zero biases.

        ``scheme="he"``: He-normal weights before a ReLU, Glorot-uniform into the softmax (kltrain's default).
        ``scheme="glorot"``: Glorot-uniform U(±√(6/(fan_in + fan_out))) everywhere, TensorFlow/Keras's
        ``Dense`` default (the paper does not say which it used).
        """
        if scheme not in INIT_SCHEMES:
            raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
        rng = as_generator(rng)
        params: np.ndarray = np.zeros(self.n_params, dtype=dtype)
        layers = self.unflatten(params)
        for k, (W, _) in enumerate(layers):
            fan_in, fan_out = W.shape
            if k < len(layers) - 1 and scheme == "he":
                W[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=W.shape)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W[...] = rng.uniform(-limit, limit, size=W.shape)
        return params

    # -- forward / backward ---------------------------------------------------
    def logits(self, params, X) -> np.ndarray:
        """Network outputs before the softmax, shape (B, classes)."""
        h = np.asarray(X, dtype=params.dtype)
        layers = self.unflatten(params)
        for k, (W, b) in enumerate(layers):
            h = h @ W + b
            if k < len(layers) - 1:
                h = np.maximum(h, 0)
        return h

    def loss(self, params, X, y) -> float:
        """Mean softmax cross-entropy over the minibatch: f(x) of eq. (2.1)."""
        return float(softmax_cross_entropy(self.logits(params, X), y)[0])

    def loss_and_grad(self, params, X, y) -> tuple[float, np.ndarray]:
        """f and ∇f by a hand-written backward pass (shapes: B batch, H widths)."""
        layers = self.unflatten(params)
        acts = [np.asarray(X, dtype=params.dtype)]           # (B, in)
        for k, (W, b) in enumerate(layers):
            z = acts[-1] @ W + b                              # (B, out)
            acts.append(np.maximum(z, 0) if k < len(layers) - 1 else z)
        loss, delta = softmax_cross_entropy(acts[-1], y)      # delta = ∂f/∂logits, (B, classes)
        grad = np.empty_like(params)
        for k in range(len(layers) - 1, -1, -1):
            W, _ = layers[k]
            w0, b0, fan_in, fan_out = self.layer_offsets[k]
            grad[w0:b0] = (acts[k].T @ delta).ravel()         # (in, out)
            grad[b0:b0 + fan_out] = delta.sum(axis=0)         # (out,)
            if k > 0:
                delta = (delta @ W.T) * (acts[k] > 0)         # (B, in): back through ReLU
        return loss, grad

    def accuracy(self, params, X, y) -> float:
        """Fraction of rows whose largest logit is the label."""
        return float(np.mean(np.argmax(self.logits(params, X), axis=1) == np.asarray(y)))


def softmax_cross_entropy(logits: np.ndarray, y) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against labels, and its gradient wrt logits."""
    y = np.asarray(y)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_prob = shifted - log_norm                                 # (B, classes)
    B = logits.shape[0]
    loss = -log_prob[np.arange(B), y].mean()
    delta = np.exp(log_prob)
    delta[np.arange(B), y] -= 1.0
    return float(loss), delta / B
