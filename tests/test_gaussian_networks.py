"""Issue 16 on networks: the learned-covariance IS kernel and the training config that uses it."""

import numpy as np
import pytest

from kltrain.gaussian.sampling import DiagonalGaussianRule, GaussianIS
from kltrain.kernels import cpu_backend, numpy_backend
from kltrain.kernels.numpy_backend import NetLoss
from kltrain.nets.netloss import MinibatchLoss
from kltrain.nets import MLP
from kltrain.studies.training import CovarianceTrainConfig, TrainConfig, TrainResult, load_data, train


def _minibatch(sizes=(784, 6, 10), seed=0):
    rng = np.random.default_rng(seed)
    net = MLP(list(sizes))
    X = (rng.random((5, sizes[0])) * (rng.random((5, sizes[0])) < 0.3)).astype(np.float32)  # sparse, as MNIST
    return net, MinibatchLoss(net, X, rng.integers(0, sizes[-1], 5), backend="cpu"), rng


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_cpu_kernel_matches_the_numpy_reference_on_the_same_noise(scale):
    net, loss, rng = _minibatch()
    p = net.init(1).astype(np.float64)
    var = rng.uniform(0.005, 0.2, p.size)       # a genuinely diagonal covariance
    fast = cpu_backend.diagonal_importance_moments(loss.batch, p, var, 7, 300, scale)
    ref = numpy_backend.diagonal_importance_moments(loss.batch, p, var, 7, 300, scale)
    np.testing.assert_allclose(fast[0], ref[0], rtol=0, atol=2e-6)          # float32 kernel, float64 reference
    np.testing.assert_allclose(fast[1], ref[1], rtol=2e-5, atol=1e-7)
    assert fast[2] == pytest.approx(ref[2], rel=1e-4)
    # Negative control: another noise seed moves the moments far beyond that tolerance.
    other = numpy_backend.diagonal_importance_moments(loss.batch, p, var, 8, 300, scale)
    assert np.abs(other[0] - ref[0]).max() > 1e-3 and np.abs(other[1] - ref[1]).max() > 1e-3


def test_the_estimator_uses_the_fast_path_and_a_plain_loss_the_reference():
    """Same minibatch behind MinibatchLoss (numpy backend: fast path) and the bare loss protocol."""
    net, loss, rng = _minibatch()
    fast = MinibatchLoss(net, loss.batch.X, loss.batch.y, backend="numpy")
    p, var = net.init(2).astype(np.float64), rng.uniform(0.01, 0.1, net.n_params)
    a = GaussianIS(64).estimate(5, fast, p, var)
    b = GaussianIS(64).estimate(5, NetLoss(fast.batch), p, var)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-12)
    assert a[2].ess == pytest.approx(b[2].ess, rel=1e-12)
    assert np.abs(a[1] - var).max() > 1e-4   # the step changed C: the comparison can fail


def test_kernel_moments_are_those_of_the_proposal_on_a_flat_loss():
    """Weights all equal when the loss is scaled to ~0: moments → N(m, diag c)'s, within 4 SE."""
    net, loss, rng = _minibatch((784, 10))
    p, var = net.init(3).astype(np.float64), rng.uniform(0.01, 0.1, net.n_params)
    n = 4000
    mean, v, ess = cpu_backend.diagonal_importance_moments(loss.batch, p, var, 11, n, 1e-9)
    assert ess == pytest.approx(n, rel=1e-6)
    z = (mean - p) / np.sqrt(var / n)                                   # standardised sample means
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and z.std() == pytest.approx(1, abs=0.05)
    r = v / var                                                         # sample variances: mean 1, SE √(2/n)
    assert abs(r.mean() - 1) < 4 * np.sqrt(2 / n / r.size) and r.std() == pytest.approx(np.sqrt(2 / n), rel=0.1)


def test_covariance_config_validates_and_round_trips_through_json():
    cfg = CovarianceTrainConfig("is", net="small", tau=1.5, covariance="iso", covariance_rate=0.1)
    back = TrainResult.from_dict(TrainResult(cfg).to_dict()).config
    assert back == cfg and type(back) is CovarianceTrainConfig
    assert type(TrainResult.from_dict(TrainResult(TrainConfig("is")).to_dict()).config) is TrainConfig
    assert TrainResult(cfg).config_hash != TrainResult(TrainConfig("is", net="small", tau=1.5)).config_hash
    for bad, match in ((dict(covariance="full"), "covariance"), (dict(covariance_rate=0.0), "covariance_rate"),
                       (dict(tau_scoping=0.01), "scoping")):
        with pytest.raises(ValueError, match=match):
            CovarianceTrainConfig("is", **bad)
    with pytest.raises(ValueError, match="is, sgld or hr"):
        CovarianceTrainConfig("sgd")


def test_a_run_records_the_learned_covariance_as_its_tau():
    data = load_data(TrainConfig("sgd", n_test=100))
    learned = train(CovarianceTrainConfig("is", net="small", n_updates=6, samples=64, tau=1.5, n_test=100,
                                          eval_every=3), data=data, progress=False)
    fixed = train(TrainConfig("is", net="small", n_updates=6, samples=64, tau=1.5, n_test=100, eval_every=3),
                  data=data, progress=False)
    assert learned.taus[0] == 1.5 and fixed.taus == [1.5] * 6
    assert learned.taus[-1] < 0.5                    # C₀ = 1.5 I collapses when the weights degenerate
    assert isinstance(CovarianceTrainConfig("is").update_rule(), DiagonalGaussianRule)


@pytest.mark.parametrize("sizes", [(784, 6, 10), (6, 5, 3)])
def test_sgld_kernel_matches_the_numpy_reference_on_the_same_noise(sizes):
    net, loss, rng = _minibatch(sizes)
    p, var = net.init(1).astype(np.float64), rng.uniform(0.005, 0.2, net.n_params)
    for scale in (1.0, 3.0):
        fast = cpu_backend.diagonal_sgld_moments(loss.batch, p, var, 7, 200, 0.05, scale)
        ref = numpy_backend.diagonal_sgld_moments(loss.batch, p, var, 7, 200, 0.05, scale)
        np.testing.assert_allclose(fast[0], ref[0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fast[1], ref[1], rtol=0, atol=1e-6)
    other = numpy_backend.diagonal_sgld_moments(loss.batch, p, var, 8, 200, 0.05, 3.0)   # same β as ref
    assert np.abs(other[0] - ref[0]).max() > 1e-3       # negative control: another seed, another chain


def test_frozen_covariance_config_keeps_tau():
    data = load_data(TrainConfig("sgd", n_test=100))
    run = train(CovarianceTrainConfig("sgld", net="small", covariance="fixed", n_updates=3, samples=20, n_test=100),
                data=data, progress=False)
    assert run.taus == [0.01] * 3 and run.test_accuracy[-1] > 0


def test_after_sgd_first_the_learned_covariance_is_recorded():
    data = load_data(TrainConfig("sgd", n_test=100))
    run = train(CovarianceTrainConfig("is", net="small", n_updates=5, sgd_first=2, samples=64, tau=1.5, n_test=100),
                data=data, progress=False)
    assert run.taus[:3] == [1.5, 1.5, 1.5] and run.taus[3] < 1.5   # SGD updates, the first IS update, then learned
