"""Importance sampling (Alg. 4), SGLD (Alg. 3), Robbins–Monro (Alg. 5): statistical harness.

Each estimator is compared with the closed-form answer on a toy at fixed seeds,
with tolerances from the standard error; each comparison has a negative control
(a wrong target, or the paper's misprinted step schedule) that must fail.
"""

import numpy as np
import pytest

import kltrain
from kltrain.estimators import (SGLD, ExactProx, ImportanceSampling, RobbinsMonro, combine,
                                posterior_mean_from_partial)
from kltrain.estimators.importance import proposal_noise
from kltrain.losses import FunctionLoss
from kltrain.noise import counter_normals
from toyproblems import Quadratic, random_bumps, random_mixture

from validation.statistics import K_SIGMA, loglog_slope, rmse, z_scores

MIX = random_mixture(np.random.default_rng(0), n_components=2)
X, TAU = np.array([0.3, 0.2]), 0.3
# a quadratic whose q_{x,τ} sits far from x, so that a wrong target is clearly wrong
QUAD = Quadratic(A=np.diag([1.0, 3.0]), center=[0.0, 0.0])
QX, QTAU = np.array([2.0, -2.0]), 0.5


def estimates(loss, x, tau, estimator, n_rep, seed0=0):
    return np.array([kltrain.posterior_mean(loss, x, tau, estimator=estimator, rng=seed0 + r)
                     for r in range(n_rep)])


# -- importance sampling -------------------------------------------------------------
def test_importance_sampling_is_unbiased_at_large_J_and_control_fails():
    est = estimates(MIX, X, TAU, ImportanceSampling(4096), 60)
    assert z_scores(est, MIX.posterior_mean(X, TAU)).max() < K_SIGMA
    assert z_scores(est, MIX.posterior_mean(X, 1.2 * TAU)).max() > K_SIGMA  # wrong τ


def test_importance_sampling_error_shrinks_like_inverse_sqrt_J():
    Js = [256, 1024, 4096, 16384]
    exact = MIX.posterior_mean(X, TAU)
    errs = [rmse(estimates(MIX, X, TAU, ImportanceSampling(J), 40), exact) for J in Js]
    assert -0.65 < loglog_slope(Js, errs) < -0.35
    # negative control: against a wrong target the error plateaus at the bias
    wrong = [rmse(estimates(MIX, X, TAU, ImportanceSampling(J), 40), MIX.posterior_mean(X, 1.2 * TAU))
             for J in Js]
    assert loglog_slope(Js, wrong) > -0.35


def test_antithetic_is_unbiased_and_exact_on_a_constant_loss():
    est = estimates(MIX, X, TAU, ImportanceSampling(4096, antithetic=True), 40)
    assert z_scores(est, MIX.posterior_mean(X, TAU)).max() < K_SIGMA
    flat = FunctionLoss(lambda x: 1.0, lambda x: 0 * x, values_fn=lambda X: np.ones(len(X)), dim=2)
    # pairs (ε, −ε) cancel exactly: q = φ_{x,τ} has mean x
    np.testing.assert_allclose(kltrain.posterior_mean(flat, X, TAU, estimator=ImportanceSampling(10, antithetic=True),
                                                      rng=1), X, atol=1e-15)
    eps = proposal_noise(3, 0, 6, 4, antithetic=True)
    np.testing.assert_array_equal(eps[1::2], -eps[::2])


def test_shards_combine_to_the_single_run_in_any_order():
    est, seed = ImportanceSampling(1000), 42
    whole, _ = est.partial(MIX, X, TAU, seed)
    shards = [est.partial(MIX, X, TAU, seed, a, b)[0] for a, b in [(700, 1000), (0, 3), (3, 700)]]
    merged = combine(shards)
    np.testing.assert_allclose(posterior_mean_from_partial(merged, X, TAU),
                               posterior_mean_from_partial(whole, X, TAU), rtol=0, atol=1e-13)
    assert merged.n == 1000 and abs(merged.sum_w2 / whole.sum_w2 - 1) < 1e-12
    with pytest.raises(ValueError):
        combine([])


def test_samples_regenerate_from_seed_and_index():
    """Sample j is ε[j] of the counter stream: recomputable without the others."""
    eps = proposal_noise(9, 0, 50, 2, antithetic=False)
    np.testing.assert_array_equal(eps[37], counter_normals(9, [37], 2)[0])


def test_importance_sampling_finite_with_huge_losses():
    shifted = FunctionLoss(lambda x: MIX.value(x) + 1e6, values_fn=lambda X: MIX.values(X) + 1e6, dim=2)
    a = kltrain.posterior_mean(MIX, X, TAU, estimator=ImportanceSampling(500), rng=3)
    b = kltrain.posterior_mean(shifted, X, TAU, estimator=ImportanceSampling(500), rng=3)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_importance_sampling_with_losses_spread_by_1e4_picks_the_best_sample():
    steep = FunctionLoss(lambda x: 1e4 * x[0], values_fn=lambda X: 1e4 * X[:, 0], dim=2)
    _, infos = kltrain.schemes.run_local_entropy(steep, X, TAU, 1, estimator=ImportanceSampling(200), rng=5)
    info = infos[0]
    assert np.all(np.isfinite(info.log_weights)) and np.ptp(info.log_weights) > 1e4
    mean = kltrain.posterior_mean(steep, X, TAU, estimator=ImportanceSampling(200), rng=5)
    samples = X + np.sqrt(TAU) * proposal_noise(info.seed, 0, 200, 2, False)
    np.testing.assert_allclose(mean, samples[np.argmin(samples[:, 0])], atol=1e-12)
    assert info.ess == pytest.approx(1.0) and info.max_weight == pytest.approx(1.0)


def test_ess_is_J_for_a_constant_loss():
    flat = FunctionLoss(lambda x: 0.0, values_fn=lambda X: np.zeros(len(X)), dim=2)
    _, infos = kltrain.schemes.run_local_entropy(flat, X, TAU, 1, estimator=ImportanceSampling(64), rng=0)
    assert infos[0].ess == pytest.approx(64) and infos[0].max_weight == pytest.approx(1 / 64)


# -- SGLD --------------------------------------------------------------------------
CONST_T = 0.02  # constant temperature: the chain mixes in ~1/(ε λ) ≈ 25 steps


def _sgld_bias_bound(n_steps):
    """Transient of the time average: ≤ 2|x − μ| / (J ε λ_min), λ_min = a_min + 1/τ."""
    lam = 1.0 + 1.0 / QTAU
    return 2 * np.abs(QX - QUAD.posterior_mean(QX, QTAU)) / (n_steps * CONST_T * lam)


def test_sgld_converges_on_a_gaussian_q_and_control_fails():
    J = 4000
    sgld = SGLD(J, temperatures=np.full(J, CONST_T), warm_start=False)
    est = estimates(QUAD, QX, QTAU, sgld, 20)
    bias = _sgld_bias_bound(J)
    assert z_scores(est, QUAD.posterior_mean(QX, QTAU), bias).max() < K_SIGMA
    assert z_scores(est, QUAD.posterior_mean(QX, 2 * QTAU), bias).max() > K_SIGMA  # wrong τ


def test_sgld_error_shrinks_with_chain_length():
    Js, exact = [250, 1000, 4000], QUAD.posterior_mean(QX, QTAU)
    errs = [rmse(estimates(QUAD, QX, QTAU, SGLD(J, temperatures=np.full(J, CONST_T), warm_start=False), 12),
                 exact) for J in Js]
    assert loglog_slope(Js, errs) < -0.4


def test_sgld_warm_start_carries_the_chain():
    sgld, rng = SGLD(50), np.random.default_rng(0)
    state = sgld.init(QUAD, QX, QTAU)
    _, state1, _ = sgld.step(rng, state, QUAD, QX, QTAU)
    assert not np.array_equal(state1.chain, QX)
    cold = SGLD(50, warm_start=False)
    a, _, _ = sgld.step(np.random.default_rng(1), state1, QUAD, QX, QTAU)
    b, _, _ = cold.step(np.random.default_rng(1), state1, QUAD, QX, QTAU)
    assert not np.allclose(a, b)


def test_sgld_fresh_minibatch_resamples_each_inner_step():
    class Resampling(Quadratic):
        calls = []

        def resample(self, rng):
            Resampling.calls.append(1)
            return self

    loss = Resampling(A=np.eye(2), center=[0.0, 0.0])
    kltrain.posterior_mean(loss, QX, QTAU, estimator=SGLD(10, fresh_minibatch=True), rng=0)
    assert len(Resampling.calls) == 9
    with pytest.raises(TypeError, match="resample"):
        kltrain.posterior_mean(QUAD, QX, QTAU, estimator=SGLD(10, fresh_minibatch=True), rng=0)


# -- Robbins–Monro -----------------------------------------------------------------
class MisprintedRM(RobbinsMonro):
    """The schedule as printed in the paper, a_j = c·j^{+α}: must not converge."""

    def steps(self):
        return self.c * np.arange(1, self.n_iter + 1, dtype=float) ** self.alpha


def _prox_runs(estimator, loss, x_k, tau, n_rep):
    return np.array([kltrain.minimize_heat(loss, x_k, tau, 1, estimator=estimator, rng=r)[1]
                     for r in range(n_rep)])


def test_robbins_monro_reaches_the_proximal_oracle():
    prox = QUAD.heat_prox(QX, QTAU)
    est = _prox_runs(RobbinsMonro(1000, 5, c=0.5, alpha=0.7), QUAD, QX, QTAU, 20)
    assert z_scores(est, prox, bias_bound=1e-6).max() < K_SIGMA
    assert z_scores(est, QUAD.heat_prox(QX, 1.2 * QTAU)).max() > K_SIGMA  # wrong τ
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="diverged"):  # never a finite answer
        _prox_runs(MisprintedRM(200, 5, c=0.5, alpha=0.7), QUAD, QX, QTAU, 3)


def test_robbins_monro_error_shrinks_with_iterations():
    prox, Ns = QUAD.heat_prox(QX, QTAU), [20, 200, 2000]
    errs = [rmse(_prox_runs(RobbinsMonro(n, 5, c=0.5, alpha=0.7), QUAD, QX, QTAU, 12), prox) for n in Ns]
    assert loglog_slope(Ns, errs) < -0.3


def test_robbins_monro_matches_exact_prox_on_bumps():
    loss, x_k, tau = random_bumps(np.random.default_rng(2)), np.array([0.3, 0.2]), 0.1
    exact = kltrain.minimize_heat(loss, x_k, tau, 1, estimator=ExactProx())[1]
    est = _prox_runs(RobbinsMonro(1500, 10, c=0.5, alpha=0.7), loss, x_k, tau, 8)
    assert z_scores(est, exact, bias_bound=1e-5).max() < K_SIGMA
    assert rmse(est, exact) < 5e-3


def test_robbins_monro_leaves_x_fixed_for_a_constant_loss():
    flat = FunctionLoss(lambda x: 0.0, lambda x: 0 * x, dim=2)
    np.testing.assert_array_equal(kltrain.minimize_heat(flat, X, TAU, 2, estimator=RobbinsMonro(5, 3), rng=0),
                                  np.tile(X, (3, 1)))


# -- reproducibility and bad input ---------------------------------------------------
@pytest.mark.parametrize("scheme,estimator", [
    (kltrain.minimize_local_entropy, ImportanceSampling(100)),
    (kltrain.minimize_local_entropy, ImportanceSampling(100, antithetic=True)),
    (kltrain.minimize_local_entropy, SGLD(100)),
    (kltrain.minimize_heat, RobbinsMonro(20, 4)),
])
def test_same_seed_same_bits_and_other_seed_differs(scheme, estimator):
    a = scheme(MIX, X, TAU, 3, estimator=estimator, rng=11)
    b = scheme(MIX, X, TAU, 3, estimator=estimator, rng=np.random.default_rng(11))
    c = scheme(MIX, X, TAU, 3, estimator=estimator, rng=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("make,match", [
    (lambda: ImportanceSampling(0), "n_samples"),
    (lambda: SGLD(0), "n_steps"),
    (lambda: RobbinsMonro(0, 5), "n_iter"),
    (lambda: RobbinsMonro(5, 0), "n_samples"),
    (lambda: RobbinsMonro(5, 5, alpha=0.5), "alpha"),
    (lambda: RobbinsMonro(5, 5, alpha=1.2), "alpha"),
    (lambda: RobbinsMonro(5, 5, c=0.0), "c"),
    (lambda: RobbinsMonro(5, 5, c=-1.0), "c"),
    (lambda: SGLD(3, temperatures=[0.1, 0.0, 0.1]), "temperatures"),
    (lambda: SGLD(3, temperatures=[0.1, -1.0, 0.1]), "temperatures"),
    (lambda: SGLD(3, temperatures=[0.1, 0.1]), "length"),
])
def test_bad_estimator_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_prox_estimator_refused_by_algorithm_1():
    with pytest.raises(TypeError, match="kind 'mean'"):
        kltrain.posterior_mean(MIX, X, TAU, estimator=RobbinsMonro(5, 5))
