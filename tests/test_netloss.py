"""An MLP bound to a minibatch is a loss for the public API; backends agree through it."""

import numpy as np
import pytest

import kltrain
from kltrain.nets.data import load_mnist
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.nets.netloss import MinibatchLoss, TrainingSet
from kltrain.nets import MLP

X_TRAIN, Y_TRAIN, _, _ = load_mnist(quiet=True)
NET = MLP((784, 8, 10))


def _losses():
    X, y = X_TRAIN[:20], Y_TRAIN[:20]
    return MinibatchLoss(NET, X, y, backend="cpu"), MinibatchLoss(NET, X, y, backend="numpy")


@pytest.mark.parametrize("estimator", [ImportanceSampling(30, projected=False),
                                       ImportanceSampling(30, antithetic=True, projected=False),
                                       SGLD(15, projected=False)])
def test_backends_agree_through_the_public_api(estimator):
    fast, slow = _losses()
    x = NET.init(0)
    a = kltrain.posterior_mean(fast, x, 0.05, estimator=estimator, rng=3)
    b = kltrain.posterior_mean(slow, x, 0.05, estimator=estimator, rng=3)
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_robbins_monro_backends_agree():
    fast, slow = _losses()
    x = NET.init(0)
    a = kltrain.minimize_heat(fast, x, 0.05, 2, estimator=RobbinsMonro(3, 4, projected=False), rng=1)
    b = kltrain.minimize_heat(slow, x, 0.05, 2, estimator=RobbinsMonro(3, 4, projected=False), rng=1)
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_value_and_grad_follow_the_net():
    fast, _ = _losses()
    x = NET.init(2)
    assert fast.value(x) == pytest.approx(NET.loss(x, fast.batch.X, fast.batch.y))
    np.testing.assert_allclose(fast.grad(x), NET.loss_and_grad(x, fast.batch.X, fast.batch.y)[1], atol=1e-6)
    np.testing.assert_allclose(fast.values(np.stack([x, x])), [fast.value(x)] * 2)
    assert fast.dim == NET.n_params


def test_projected_estimator_runs_through_the_public_api():
    fast, _ = _losses()
    x = NET.init(0)
    mean = kltrain.posterior_mean(fast, x, 0.05, estimator=ImportanceSampling(50, projected=True), rng=0)
    assert mean.shape == x.shape and np.all(np.isfinite(mean)) and not np.array_equal(mean, x)
    with pytest.raises(TypeError, match="MLP minibatch loss"):
        from toyproblems import Quadratic
        kltrain.posterior_mean(Quadratic(np.eye(2), [0, 0]), [0.0, 0.0], 0.1,
                               estimator=ImportanceSampling(5, projected=True))


def test_training_set_draws_minibatches_and_resamples():
    ts = TrainingSet(NET, X_TRAIN, Y_TRAIN, 20, backend="cpu")
    a, b = ts.sample(np.random.default_rng(0)), ts.sample(np.random.default_rng(0))
    np.testing.assert_array_equal(a.batch.X, b.batch.X)
    assert a.batch.X.shape == (20, 784) and not np.array_equal(a.resample(np.random.default_rng(1)).batch.X, a.batch.X)
    x = NET.init(0)
    mean = kltrain.posterior_mean(a, x, 0.05, estimator=SGLD(5, fresh_minibatch=True), rng=0)
    assert np.all(np.isfinite(mean))
    with pytest.raises(TypeError, match="resample"):
        _losses()[0].resample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        TrainingSet(NET, X_TRAIN[:5], Y_TRAIN[:5], 20)


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="labels"):
        MinibatchLoss(NET, X_TRAIN[:3], [0, 1, 10])
