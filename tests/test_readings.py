"""Each reading of Table 6.1 (kltrain.studies.readings) changes what it says, and only that, on a tiny net."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

import kltrain.studies.readings as R
import kltrain.studies.batch as batch
import kltrain.studies.readings_study as S
from kltrain.estimators import ImportanceSampling, RobbinsMonro
from kltrain.estimators.sgld import sgld_chain
from kltrain.kernels import numpy_backend as REF
from kltrain.kernels.layout import Minibatch
from kltrain.nets.netloss import MinibatchLoss, TrainingSet
from kltrain.nets import MLP
from kltrain.studies.readings import READINGS, Reading
from kltrain.studies.training import TrainConfig, load_data, train

NET = MLP((30, 8, 4))
RNG = np.random.default_rng(0)
X = (RNG.random((40, 30)) * (RNG.random((40, 30)) > 0.5)).astype(np.float32)
Y = RNG.integers(0, 4, 40)
P = NET.init(np.random.default_rng(1))
TAU = 0.05


def _loss(reading, rows=slice(0, 6)):
    scale = reading.apply(TrainConfig("is")).loss_scale
    return MinibatchLoss(NET, X[rows], Y[rows], backend="cpu", scale=scale)


class NumpyLoss:
    """β·f by the NumPy MLP: the generic (no-kernel) path of every estimator."""

    def __init__(self, beta, rows=slice(0, 6)):
        self.beta, self.X, self.y, self.dim = beta, X[rows], Y[rows], P.size

    def value(self, x):
        return self.beta * NET.loss(np.asarray(x, np.float32), self.X, self.y)

    def grad(self, x):
        return self.beta * NET.loss_and_grad(np.asarray(x, np.float64), self.X, self.y)[1]


# -- batch-sum: f → 20·f everywhere ---------------------------------------------------------------

@pytest.mark.parametrize("projected", [False, True])
def test_batch_sum_is_log_weights_are_exactly_20_times_printed(projected):
    est = ImportanceSampling(64, projected=projected)
    _, _, a = est.step(np.random.default_rng(3), None, _loss(READINGS["printed"]), P, TAU)
    _, _, b = est.step(np.random.default_rng(3), None, _loss(READINGS["batch-sum"]), P, TAU)
    assert READINGS["batch-sum"].loss_scale == 20.0
    np.testing.assert_array_equal(b.log_weights, 20.0 * a.log_weights)


def test_batch_sum_is_estimate_is_importance_sampling_on_20f():
    est = ImportanceSampling(64, projected=False)
    fast, _, _ = est.step(np.random.default_rng(3), None, _loss(READINGS["batch-sum"]), P, TAU)
    slow, _, _ = est.step(np.random.default_rng(3), None, NumpyLoss(20.0), P.astype(np.float64), TAU)
    mean1, _, _ = est.step(np.random.default_rng(3), None, _loss(READINGS["printed"]), P, TAU)
    np.testing.assert_allclose(fast, slow, atol=2e-5)
    assert np.abs(fast - mean1).max() > 1e-3          # β changed the estimate


def test_batch_sum_sgld_chain_is_the_chain_on_20f_not_a_temperature():
    eps = 1.0 / (1000.0 + np.arange(1, 9))
    fast, _, _ = _loss(READINGS["batch-sum"]).sgld_chain(P, TAU, 7, P, eps)
    slow, _, _ = sgld_chain(NumpyLoss(20.0), P.astype(np.float64), TAU, 7, P.astype(np.float64), eps)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    cold, _, _ = _loss(READINGS["printed"]).sgld_chain(P, TAU, 7, P, eps, noise_scale=np.sqrt(1 / 20))
    assert np.abs(fast - cold).max() > 1e-4           # temperature 1/20 (same τ) is a different chain


def test_batch_sum_robbins_monro_uses_20_grad_f():
    steps = RobbinsMonro(4, 3).steps()
    x, _ = _loss(READINGS["batch-sum"]).robbins_monro(P, TAU, 9, steps, 3)
    ref, _ = REF.robbins_monro(Minibatch.build(NET, X[:6], Y[:6]), P, TAU, steps, 3, 9, grad_scale=20.0)
    np.testing.assert_allclose(x, ref, atol=1e-5)
    # one iteration from x_k: x¹ − x_k = −a₁·τβ·ḡ(x_k), the same draws for both β
    one = np.array([0.3])
    d20 = _loss(READINGS["batch-sum"]).projected_robbins_monro(P, TAU, 4, one, 5)[0] - P
    d1 = _loss(READINGS["printed"]).projected_robbins_monro(P, TAU, 4, one, 5)[0] - P
    np.testing.assert_allclose(d20, 20 * d1, atol=1e-5)


def test_batch_sum_sgd_gradient_is_20_times():
    g20, g1 = _loss(READINGS["batch-sum"]).grad(P), _loss(READINGS["printed"]).grad(P)
    np.testing.assert_allclose(g20, 20 * g1, rtol=1e-6)


# -- tf-init ---------------------------------------------------------------------------------------

def test_tf_init_draws_glorot_uniform_weights_and_zero_biases():
    cfg = READINGS["tf-init"].apply(TrainConfig("sgd", n_updates=0, n_test=50))
    params = train(cfg, data=load_data(cfg), progress=False).final_params
    net = MLP.hidden()
    big = net.init(np.random.default_rng(5), scheme="glorot")
    for (W, b), (fan_in, fan_out) in zip(net.unflatten(big), zip(net.sizes[:-1], net.sizes[1:])):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
        assert stats.kstest(W.ravel()[:5000], stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3
        assert not b.any()
    assert cfg.init == "glorot"
    init_stream = np.random.SeedSequence(cfg.seed).spawn(3)[0]     # training's init stream
    np.testing.assert_array_equal(params, net.init(np.random.default_rng(init_stream), scheme="glorot"))
    he = MLP.hidden().init(np.random.default_rng(5))      # the printed reading: He-normal hidden layer
    assert np.abs(net.unflatten(he)[0][0]).max() > np.sqrt(6.0 / (784 + 200))


# -- cold-chain ------------------------------------------------------------------------------------

class SpyLoss(NumpyLoss):
    def __init__(self):
        super().__init__(1.0)
        self.calls = []

    def grad(self, x):
        self.calls.append(np.array(x))
        return super().grad(x)


@pytest.mark.parametrize("name, cold", [("printed", False), ("cold-chain", True)])
def test_cold_chain_starts_every_chain_at_x(name, cold):
    est = READINGS[name].apply(TrainConfig("sgld", samples=3, projected=False)).update_rule().estimator
    loss, x = SpyLoss(), P.astype(np.float64)
    state = est.init(loss, x, TAU)
    _, state, _ = est.step(np.random.default_rng(0), state, loss, x, TAU)
    x2 = x + 0.01
    loss.calls.clear()
    est.step(np.random.default_rng(1), state, loss, x2, TAU)
    assert np.array_equal(loss.calls[0], x2) == cold       # first gradient of update 2 is at its x^1
    assert est.warm_start is not cold


# -- fresh-batches ---------------------------------------------------------------------------------

class CountingSet(TrainingSet):
    n = 0

    def sample(self, rng):
        CountingSet.n += 1
        return super().sample(rng)


@pytest.mark.parametrize("algo, inner", [("sgld", 5), ("hr", 4)])
@pytest.mark.parametrize("name", ["printed", "fresh-batches"])
def test_fresh_batches_draw_a_minibatch_per_inner_step(algo, inner, name):
    cfg = READINGS[name].apply(TrainConfig(algo, samples=inner, hr_iterations=inner, hr_samples=3, batch_size=6))
    rule, trainset = cfg.update_rule(), CountingSet(NET, X, Y, 6, backend="cpu")
    rng = np.random.default_rng(0)
    batch = trainset.sample(rng)
    CountingSet.n = 0
    state = rule.init(batch, P)
    new, _, _ = rule.step(rng, state, batch, P, 0)
    expected = {"sgld": inner - 1, "hr": inner}[algo] if name == "fresh-batches" else 0
    assert CountingSet.n == expected
    assert np.all(np.isfinite(new)) and np.abs(new - P).max() > 0


# -- the β control and scoring ------------------------------------------------------------------------

def test_beta_fit_recovers_the_true_beta_on_synthetic_data():
    true = 5.0
    paper = {a: np.array(v) for a, v in R.PAPER_TABLE_6_1.items()}
    # synthetic "ours": the paper's cells moved away in proportion to |log β/β*|
    scores = {b: R.rmse({a: paper[a] - 0.1 * abs(np.log(b / true)) for a in paper}) for b in R.BETA_GRID}
    assert R.fit_beta(scores) == true
    scores[20.0] = scores[true] + 1e-9                     # a near tie still picks the better one
    assert R.fit_beta(scores) == true


def test_rmse_and_ordering_against_the_paper():
    assert R.rmse(R.PAPER_TABLE_6_1) == 0.0
    assert R.ordering_matches(R.PAPER_TABLE_6_1)
    swapped = dict(R.PAPER_TABLE_6_1, SGLD=(0.6,) * 5)
    assert not R.ordering_matches(swapped)
    assert R.rmse(swapped) == pytest.approx(np.sqrt(np.mean(np.square(np.array(R.PAPER_TABLE_6_1["SGLD"]) - 0.6))
                                                    / 4 * 1))


def test_readings_are_validated_and_change_only_their_fields():
    with pytest.raises(ValueError):
        Reading("bad", loss_scale=0.0)
    with pytest.raises(ValueError):
        Reading("bad", init="lecun")
    base = TrainConfig("sgld")
    assert READINGS["printed"].apply(base) == base
    assert READINGS["cold-chain"].apply(base) == replace(base, sgld_warm_start=False)


def test_quick_study_writes_per_run_json_and_resumes(tmp_path, monkeypatch):
    study = S.StudyConfig(seeds=1, readings=("printed", "cold-chain"), beta_grid=(), quick=True)
    summary = S.run_study(study, out=tmp_path, printer=lambda *_: None)
    folder = tmp_path / "table-6.1-readings-quick"        # a quick study never writes over a full one
    runs = sorted((folder / "runs").glob("*.json"))
    assert len(runs) == 5                                   # cold-chain shares SGD, IS, HR with printed
    on_disk = json.loads((folder / "summary.json").read_text())
    assert [e["reading"] for e in on_disk] == ["printed", "cold-chain"]
    assert set(on_disk[0]) >= {"reading", "rmse", "ordering_matches", "cells"}
    assert all(len(c) == 5 for c in on_disk[0]["cells"].values())
    monkeypatch.setattr(batch, "train", lambda *a, **k: pytest.fail("a stored run was trained again"))
    assert S.run_study(study, out=tmp_path, printer=lambda *_: None)[0]["cells"] == summary[0]["cells"]
    assert (folder / "table-6.1-readings.png").stat().st_size > 0


class SameBatch(MinibatchLoss):
    """A minibatch loss whose 'fresh' minibatch is itself (and consumes no randomness)."""

    def resample(self, rng):
        return self


def test_fresh_robbins_monro_iteration_is_the_projected_iteration_on_its_minibatch():
    loss = SameBatch(NET, X[:6], Y[:6], backend="cpu", scale=20.0)
    fresh = RobbinsMonro(1, 4, projected=True, fresh_minibatch=True)
    plain = RobbinsMonro(1, 4, projected=True)
    a, _, _ = fresh.step(np.random.default_rng(2), None, loss, P, TAU)
    b, _, _ = plain.step(np.random.default_rng(2), None, loss, P, TAU)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a - P).max() > 1e-4


def test_fresh_robbins_monro_honours_projected_false():
    """projected=False with fresh minibatches runs the per-sample gradients (same law, other draws), and says so."""
    loss = SameBatch(NET, X[:6], Y[:6], backend="cpu", scale=20.0)
    reduced, _, info_r = RobbinsMonro(1, 4, fresh_minibatch=True).step(np.random.default_rng(2), None, loss, P, TAU)
    full, _, info_f = RobbinsMonro(1, 4, projected=False, fresh_minibatch=True).step(
        np.random.default_rng(2), None, loss, P, TAU)
    assert info_r.projected is True and info_f.projected is False
    assert not np.allclose(reduced, full)        # another path: other noise draws


def test_fresh_robbins_monro_generic_path_reaches_the_exact_prox():
    from kltrain.estimators import ExactProx
    from toyproblems import Quadratic

    class Fixed(Quadratic):
        def resample(self, rng):
            return self

    quad = Fixed(A=np.diag([1.0, 3.0]), center=[0.0, 0.0])
    x = np.array([2.0, -2.0])
    exact, _, _ = ExactProx().step(None, None, quad, x, 0.5)
    got, _, _ = RobbinsMonro(400, 10, c=0.5, fresh_minibatch=True).step(np.random.default_rng(0), None, quad, x, 0.5)
    assert np.linalg.norm(got - exact) < 0.05 < np.linalg.norm(x - exact)


def test_stored_only_summarizes_the_seeds_stored_for_every_algorithm(tmp_path, monkeypatch):
    study = S.StudyConfig(seeds=1, readings=("printed",), beta_grid=(), quick=True)
    S.run_study(study, out=tmp_path, printer=lambda *_: None)
    monkeypatch.setattr(batch, "train", lambda *a, **k: pytest.fail("stored_only trained a run"))
    lines = []
    summary = S.run_study(replace(study, seeds=3, readings=("printed", "tf-init"), stored_only=True), out=tmp_path,
                          printer=lines.append)
    assert [e["reading"] for e in summary] == ["printed"] and summary[0]["seeds"] == 1
    assert any("tf-init" in line and "skipped" in line for line in lines)
