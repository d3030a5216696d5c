"""Issue 11, class 2: no silent wrong answers — a result is finite and right, or an error says why."""

import numpy as np
import pytest

import kltrain
from kltrain.nets.data import DataError, load_idx_folder, load_mnist
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.estimators.importance import check_log_weights
from kltrain.studies.experiments import EXPERIMENTS, quick_config, ran_label
from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.losses import FunctionLoss
from kltrain.nets.netloss import TrainingSet
from kltrain.nets import MLP
from kltrain.regularized import heat_regularization_grad
from kltrain.studies.training import TrainConfig, train
from toyproblems import GaussianMixtureLoss

BOWL = GaussianMixtureLoss(weights=[1.0], means=[np.zeros(2)], covs=[0.1 * np.eye(2)])
STEEP = FunctionLoss(lambda z: 1e6 * float(z @ z), lambda z: 2e6 * z,
                     values_fn=lambda Z: 1e6 * np.sum(Z * Z, axis=1), dim=2)


def test_one_nan_log_weight_raises_and_names_the_loss():
    log_w = np.array([-1.0, -2.0, np.nan, -0.5])
    with pytest.raises(FloatingPointError, match=r"loss f\(x \+ √τ ε_j\) is nan at sample j = 7"):
        check_log_weights(log_w, 0.01, start=5)
    check_log_weights(log_w[[0, 1, 3]], 0.01)                     # negative control: finite weights pass


@pytest.mark.parametrize("backend", ["cpu", "numpy", "cuda"])   # cuda: the simulator (tests/conftest.py)
def test_kernels_with_nan_parameters_raise_instead_of_dropping_samples(backend):
    net = MLP((4, 3, 2))
    X, y = np.random.default_rng(0).random((5, 4)), np.array([0, 1, 0, 1, 1])
    p = net.init(0)
    p[-1] = np.nan                                                  # one bias: every sample's loss is NaN
    with pytest.raises(FloatingPointError, match="loss"):
        get_backend(backend).importance_partial(Minibatch.build(net, X, y), p, 0.01, 1, 0, 8, False)
    with pytest.raises(ValueError, match="at least one sample"):   # an empty range (bench --samples 0)
        get_backend(backend).importance_partial(Minibatch.build(net, X, y), net.init(0), 0.01, 1, 0, 0, False)


@pytest.mark.parametrize("tau", [1e-33, 1e-40, 1e-300])
def test_heat_regularization_at_tiny_tau_is_f_or_refused(tau):
    x = np.array([0.3, 0.4])
    assert kltrain.heat_regularization(BOWL, x, tau) == pytest.approx(BOWL.value(x), rel=1e-12)
    with pytest.raises(ValueError, match="too small"):
        heat_regularization_grad(BOWL, x, tau)
    np.testing.assert_allclose(heat_regularization_grad(BOWL, x, 1e-6), BOWL.grad(x), rtol=1e-4)   # control


@pytest.mark.parametrize("call", [
    lambda: kltrain.posterior_mean(BOWL, [1e300, 0.0], 0.1),
    lambda: kltrain.local_entropy(BOWL, [1e300, 0.0], 0.1),
    lambda: kltrain.minimize_local_entropy(BOWL, [1e200, 0.0], 0.1, 3),
    lambda: kltrain.minimize_local_entropy(STEEP, [1.0, 1.0], 0.1, 5, estimator=SGLD(100), rng=0),
    lambda: kltrain.minimize_heat(STEEP, [1.0, 1.0], 0.1, 5, estimator=RobbinsMonro(10, 5), rng=0),
    lambda: kltrain.minimize_heat(STEEP, [1.0, 1.0], 1e30, 3, estimator=RobbinsMonro(10, 5), rng=0),
], ids=["mean-x1e300", "entropy-x1e300", "alg1-x1e200", "sgld-steep", "rm-steep", "rm-tau1e30"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_results_raise_naming_tau_and_estimator(call):
    with pytest.raises(FloatingPointError, match=r"τ = .*estimator \w+"):
        call()


def test_the_same_calls_in_range_are_finite():
    assert np.all(np.isfinite(kltrain.minimize_local_entropy(BOWL, [1.0, 0.0], 0.1, 3)))
    assert np.isfinite(kltrain.local_entropy(BOWL, [1.0, 0.0], 0.1))


def test_network_sgld_at_tiny_tau_raises_naming_the_update():
    X, y = np.random.default_rng(0).random((60, 784)).astype(np.float32), np.arange(60) % 10
    with pytest.raises(FloatingPointError, match=r"SGLD.*τ = 1e-30.*step 1"), np.errstate(all="ignore"):
        train(TrainConfig("sgld", net="small", tau=1e-30, samples=20, n_updates=2, n_test=20),
              data=(X, y, X[:20], y[:20]), progress=False)


def _data(**bad):
    X, y = np.random.default_rng(0).random((40, 784)).astype(np.float32), np.arange(40) % 10
    data = {"X_train": X, "y_train": y, "X_test": X[:10].copy(), "y_test": y[:10].copy()}
    data.update(bad)
    return data


NAN_X = np.where(np.arange(784) == 5, np.nan, 0.5).astype(np.float32)[None].repeat(10, 0)


@pytest.mark.parametrize("bad,match", [
    ({"X_test": NAN_X}, r"X_test must be finite; X_test\[0, 5\]"),
    ({"y_train": np.arange(40) % 10 + 0.0}, "integer class labels"),
    ({"y_train": np.arange(40) % 11}, "got 10"),
    ({"X_test": np.zeros((0, 784), np.float32), "y_test": np.zeros(0, int)}, "non-empty"),
])
def test_bad_data_is_refused_before_training(bad, match):
    d = _data(**bad)
    with pytest.raises((ValueError, TypeError), match=match):
        train(TrainConfig("sgd", net="small", n_updates=1), data=tuple(d.values()), progress=False)
    if "X_train" in bad or "y_train" in bad:
        with pytest.raises((ValueError, TypeError), match=match):
            TrainingSet(MLP.small(), d["X_train"], d["y_train"])


def test_load_mnist_with_an_empty_path_is_refused():
    with pytest.raises(DataError, match="empty path"):
        load_mnist(path="")


def test_idx_folder_with_a_label_out_of_range_is_refused(tmp_path):
    import gzip

    def idx(name, magic, shape, payload):
        header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(header + bytes(payload)))

    for split, n in (("train", 3), ("t10k", 2)):
        idx(f"{split}-images-idx3-ubyte", 0x803, (n, 28, 28), [0] * n * 784)
        idx(f"{split}-labels-idx1-ubyte", 0x801, (n,), [1, 12, 3][:n])
    with pytest.raises(DataError, match="got 12"):
        load_idx_folder(tmp_path)


def test_quick_fig_6_3_runs_what_its_labels_say():
    runs = {label: quick_config(cfg) for label, cfg in EXPERIMENTS["fig-6.3"].configs.items()}
    for algo in ("IS", "SGLD", "HR"):
        drawn = [(c.samples, c.hr_iterations, c.hr_samples) for label, c in runs.items() if label.startswith(algo)]
        assert len(set(drawn)) == 3                                    # S = 10, 100, 1000 stay three runs
    assert ran_label("IS, S=1000", runs["IS, S=1000"], quick=True) == "IS, S=1000 [quick: 33 samples]"
    assert ran_label("HR, S=1000", runs["HR, S=1000"], quick=True) == "HR, S=1000 [quick: M=J=6]"
    assert ImportanceSampling(5).n_samples == 5
