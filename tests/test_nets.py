"""The hand-written MLP: gradients vs central differences, layout, init, and the numba backward."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.losses import central_difference
from kltrain.nets import MLP, softmax_cross_entropy


@st.composite
def nets_and_batches(draw, sparse=False):
    """A small random MLP (2–4 layers) with a minibatch; ``sparse`` zeroes ~70% of inputs."""
    sizes = tuple(draw(st.lists(st.integers(1, 7), min_size=2, max_size=4)))
    sizes = sizes[:-1] + (max(sizes[-1], 2),)
    net = MLP(sizes)
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    B = draw(st.integers(1, 6))
    X = rng.random((B, sizes[0]))
    if sparse:
        X[rng.random(X.shape) < 0.7] = 0.0
    y = rng.integers(0, sizes[-1], size=B)
    params = net.init(rng, dtype=np.float64) + 0.1 * rng.normal(size=net.n_params)  # nonzero biases
    return net, params, X, y


@given(nets_and_batches())
def test_backward_matches_central_differences(case):
    net, params, X, y = case
    loss, grad = net.loss_and_grad(params, X, y)
    assert loss == pytest.approx(net.loss(params, X, y))
    fd = central_difference(lambda p: net.loss(p, X, y), params, h=1e-6)
    np.testing.assert_allclose(grad, fd, atol=1e-7)


@given(nets_and_batches(sparse=True))
def test_numba_backward_matches_numpy(case):
    net, params, X, y = case
    mb = Minibatch.build(net, X, y)
    loss, grad = get_backend("cpu").loss_and_grad(mb, params)
    loss0, grad0 = net.loss_and_grad(params.astype(np.float32), mb.X, y)
    assert loss == pytest.approx(loss0, abs=1e-5)
    np.testing.assert_allclose(grad, grad0, atol=1e-5)


def test_backward_negative_control_detects_a_wrong_gradient():
    """The FD comparison must fail if the backward forgets the ReLU mask."""
    net = MLP((4, 5, 3))
    rng = np.random.default_rng(1)
    params = net.init(rng, dtype=np.float64) + 0.3 * rng.normal(size=net.n_params)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    fd = central_difference(lambda p: net.loss(p, X, y), params)
    (W1, b1), (W2, b2) = net.unflatten(params)
    z = X @ W1 + b1
    _, delta = softmax_cross_entropy(np.maximum(z, 0) @ W2 + b2, y)
    wrong = (X.T @ (delta @ W2.T)).ravel()  # no ReLU mask
    assert np.abs(wrong - fd[:20]).max() > 1e-3


def test_paper_presets_and_layout():
    assert MLP.small().n_params == 7850 and MLP.hidden().n_params == 159010
    net = MLP((3, 2, 2))
    params = np.arange(net.n_params, dtype=float)
    (W1, b1), (W2, b2) = net.unflatten(params)
    assert W1.shape == (3, 2) and W1[0, 1] == 1 and b1[0] == 6 and W2[0, 0] == 8 and b2[-1] == 13
    with pytest.raises(ValueError, match="shape"):
        net.unflatten(np.zeros(5))
    with pytest.raises(ValueError, match="sizes"):
        MLP((784,))


def test_init_is_seeded_he_and_glorot():
    net = MLP.hidden()
    a, b = net.init(3), net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    (W1, b1), (W2, b2) = net.unflatten(a)
    assert abs(W1.std() / np.sqrt(2 / 784) - 1) < 0.01         # He normal: 156,800 draws
    assert np.abs(W2).max() <= np.sqrt(6 / 210) and not b1.any() and not b2.any()
    assert a.dtype == np.float32


def test_accuracy_counts_argmax_matches():
    net = MLP((2, 2))
    params = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # identity weights, zero bias
    X, y = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]), np.array([0, 1, 1])
    assert net.accuracy(params, X, y) == pytest.approx(2 / 3)
