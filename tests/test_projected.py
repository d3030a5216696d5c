"""Exact-in-distribution updates in reduced coordinates (kltrain.nets.projected).

Each projected update must have the distribution of the paper's per-sample
update: two-sample KS tests over many seeds on coordinates and on projections
into A's row space and its orthogonal complement. Negative controls (dropping
the orthogonal term, ignoring the weights, dropping the OU noise) must fail.
"""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from kltrain.estimators.importance import posterior_mean_from_partial, proposal_noise
from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.nets.projected import (basis_coordinates, lift_with_noise, ou_moments, projected_importance_update,
                               projected_robbins_monro, projected_sgld_chain, reduce_minibatch)

CPU = get_backend("cpu")
N_REPS, N_SAMPLES, TAU = 400, 40, 2.0  # τ = 2: ESS ≈ 11 of 40, so the weights matter
ALPHA = 1e-3  # per KS test; 8 statistics -> family-wise false alarm < 1%, at fixed seeds


def _problem(rank_deficient=False):
    net = MLP((24, 4, 3))
    rng = np.random.default_rng(0)
    X = rng.random((5, 24)) * (rng.random((5, 24)) < 0.5)
    if rank_deficient:
        X[3], X[4] = X[0], 0.0      # repeated and blank images: rank 3
    return Minibatch.build(net, X, np.array([0, 1, 2, 0, 1])), net.init(1)


def _statistics(mb, deltas):
    """Scalar views of updates: coordinates, row-space and orthogonal directions, random projections."""
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    basis = reduce_minibatch(mb).basis
    rng = np.random.default_rng(99)
    u_row = basis @ rng.normal(size=basis.shape[1])
    v = rng.normal(size=fan_in)
    v_orth = v - basis @ (basis.T @ v)
    W1 = deltas[:, w0:b0].reshape(-1, fan_in, H)
    r1, r2 = rng.normal(size=(2, deltas.shape[1]))
    return {"row space": W1[:, :, 0] @ u_row, "orthogonal": W1[:, :, 1] @ v_orth,
            "W1[0,0]": deltas[:, 0], "b1[0]": deltas[:, b0], "W2[0,0]": deltas[:, b0 + H],
            "b2[-1]": deltas[:, -1], "random 1": deltas @ r1, "random 2": deltas @ r2}


def _min_p(mb, a, b, skip=()):
    sa, sb = _statistics(mb, a), _statistics(mb, b)
    return min((ks_2samp(sa[k], sb[k]).pvalue, k) for k in sa if k not in skip)


def _runs(fn, params):
    return np.array([np.asarray(fn(seed), np.float64) - params for seed in range(N_REPS)])


def _is_per_sample(mb, params, antithetic=False, tau=TAU):
    def run(seed):
        part, _ = CPU.importance_partial(mb, params, tau, 10_000 + seed, 0, N_SAMPLES, antithetic)
        return posterior_mean_from_partial(part, params.astype(np.float64), tau)
    return _runs(run, params)


def _is_projected(mb, params, antithetic=False, tau=TAU):
    return _runs(lambda s: projected_importance_update(CPU, mb, params, tau, s, N_SAMPLES, antithetic)[0], params)


@pytest.mark.parametrize("rank_deficient,antithetic,tau", [(False, False, TAU), (True, False, TAU),
                                                           (False, True, TAU), (False, True, 0.2)])
def test_projected_importance_sampling_has_the_distribution_of_algorithm_4(rank_deficient, antithetic, tau):
    mb, params = _problem(rank_deficient)
    p, name = _min_p(mb, _is_per_sample(mb, params, antithetic, tau), _is_projected(mb, params, antithetic, tau))
    assert p > ALPHA, f"{name}: KS p = {p:.2e}"


def test_negative_control_dropping_the_orthogonal_term_is_detected():
    mb, params = _problem()
    deltas = _is_projected(mb, params)
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    basis = reduce_minibatch(mb).basis
    W1 = deltas[:, w0:b0].reshape(-1, fan_in, H)
    deltas[:, w0:b0] = np.einsum("ij,njh->nih", basis @ basis.T, W1).reshape(len(deltas), -1)  # row space only
    a, b = _statistics(mb, _is_per_sample(mb, params)), _statistics(mb, deltas)
    assert ks_2samp(a["orthogonal"], b["orthogonal"]).pvalue < ALPHA


def test_negative_control_ignoring_the_weights_is_detected():
    """The harness is sensitive to the weighting: x + √τ·mean(ε_j) must fail it."""
    mb, params = _problem()
    unweighted = np.array([np.sqrt(TAU) * proposal_noise(10_000 + s, 0, N_SAMPLES, params.size, False).mean(0)
                           for s in range(N_REPS)])
    assert _min_p(mb, _is_per_sample(mb, params), unweighted)[0] < ALPHA


def test_negative_control_wrong_antithetic_variance_is_detected():
    """Antithetic pairs need Σ_p (w̄_2p − w̄_2p+1)² for the orthogonal term, not Σ w̄².

    At τ = 0.2 the loss is nearly linear over the noise, the pair weights are strongly
    related, and the wrong scale is ~3× the right one.
    """
    import kltrain.nets.projected as P
    mb, params = _problem()
    right = _is_per_sample(mb, params, antithetic=True, tau=0.2)
    original = P._orthogonal_scale
    try:
        P._orthogonal_scale = lambda log_w, antithetic: original(log_w, False)
        wrong = _is_projected(mb, params, antithetic=True, tau=0.2)
    finally:
        P._orthogonal_scale = original
    a, b = _statistics(mb, right), _statistics(mb, wrong)
    assert ks_2samp(a["orthogonal"], b["orthogonal"]).pvalue < ALPHA


def test_projected_robbins_monro_has_the_distribution_of_algorithm_5():
    mb, params = _problem()
    steps = 0.5 * np.arange(1, 9) ** -0.7
    per_sample = _runs(lambda s: CPU.robbins_monro(mb, params, TAU, steps, 3, 10_000 + s)[0], params)
    projected = _runs(lambda s: projected_robbins_monro(CPU, mb, params, TAU, steps, 3, s)[0], params)
    # P⊥W₁ never moves in either (its gradient is zero): only float32 rounding is left there
    for runs in (per_sample, projected):
        assert np.abs(_statistics(mb, runs)["orthogonal"]).max() < 1e-5
    p, name = _min_p(mb, per_sample, projected, skip=("orthogonal",))
    assert p > ALPHA, f"{name}: KS p = {p:.2e}"


SGLD_EPS = np.full(30, 0.05)


def _chain_start(params):
    return params + np.float32(0.3) * np.random.default_rng(5).normal(size=params.size).astype(np.float32)


@pytest.mark.parametrize("output", [0, 1], ids=["mean", "chain end"])
def test_projected_sgld_has_the_distribution_of_algorithm_3(output):
    mb, params = _problem()
    start = _chain_start(params)
    per_sample = _runs(lambda s: CPU.sgld_chain(mb, params, start, TAU, SGLD_EPS, 10_000 + s)[output], params)
    projected = _runs(lambda s: projected_sgld_chain(CPU, mb, params, start, TAU, SGLD_EPS, s)[output], params)
    p, name = _min_p(mb, per_sample, projected)
    assert p > ALPHA, f"{name}: KS p = {p:.2e}"


def test_negative_control_sgld_without_the_ou_noise_is_detected():
    mb, params = _problem()
    start = _chain_start(params)
    red = reduce_minibatch(mb)
    a, b, *_ = ou_moments(SGLD_EPS, TAU)
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    W1x, W1c = params[w0:b0].reshape(fan_in, H), start[w0:b0].reshape(fan_in, H)
    deterministic = red.perp(W1x) + a * (red.perp(W1c) - red.perp(W1x))   # the chain end's mean in P⊥

    def broken(seed):
        end = projected_sgld_chain(CPU, mb, params, start, TAU, SGLD_EPS, seed)[1].astype(np.float64)
        W1 = end[w0:b0].reshape(fan_in, H)
        end[w0:b0] = (W1 - red.perp(W1) + deterministic).ravel()
        return end
    per_sample = _runs(lambda s: CPU.sgld_chain(mb, params, start, TAU, SGLD_EPS, 10_000 + s)[1], params)
    sa, sb = _statistics(mb, per_sample), _statistics(mb, _runs(broken, params))
    assert ks_2samp(sa["orthogonal"], sb["orthogonal"]).pvalue < ALPHA


def test_ou_moments_match_simulation():
    """The scalar recursion y_{j+1} = ρ_j y_j + √ε_j ξ_j simulated directly, 40,000 times."""
    eps, tau, y1 = 1.0 / (20.0 + np.arange(1, 41)), 0.05, 0.7
    rng = np.random.default_rng(3)
    y = np.full(40_000, y1)
    total = eps[0] * y
    for j in range(1, eps.size):
        y = (1 - eps[j - 1] / (2 * tau)) * y + np.sqrt(eps[j - 1]) * rng.normal(size=y.size)
        total += eps[j] * y
    mean = total / eps.sum()
    a, b, var_end, var_mean, cov = ou_moments(eps, tau)
    se = lambda x: x.std() / np.sqrt(x.size)  # noqa: E731
    assert abs(y.mean() - a * y1) < 4 * se(y) and abs(mean.mean() - b * y1) < 4 * se(mean)
    assert abs(y.var() / var_end - 1) < 0.03 and abs(mean.var() / var_mean - 1) < 0.03
    assert abs(np.cov(y, mean)[0, 1] / cov - 1) < 0.04
    wrong = ou_moments(eps, 2 * tau)           # negative control: the moments at 2τ are off
    assert abs(y.var() / wrong[2] - 1) > 0.1


def test_reduction_maps():
    mb, params = _problem(rank_deficient=True)
    red = reduce_minibatch(mb)
    assert red.rank == 3
    np.testing.assert_allclose(red.basis.T @ red.basis, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(mb.X @ red.basis, red.tri, atol=1e-6)
    assert np.all(np.triu(red.tri, 1) == 0)
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    W1 = params[w0:b0].reshape(fan_in, H).astype(np.float64)
    np.testing.assert_allclose(red.lift(red.reduce(params), red.perp(W1)), params, atol=1e-6)
    full, _ = CPU.loss_and_grad(mb, params)
    reduced, _ = CPU.loss_and_grad(red.minibatch, red.reduce(params))
    assert reduced == pytest.approx(full, abs=1e-6)
    blank = Minibatch.build(mb.net, np.zeros((4, 24)), [0, 1, 2, 0])
    assert reduce_minibatch(blank).rank == 1  # one inert direction keeps the reduced net valid


def test_projected_update_is_seeded_and_reports_ess():
    mb, params = _problem()
    a, info = projected_importance_update(CPU, mb, params, TAU, 7, N_SAMPLES)
    b, _ = projected_importance_update(CPU, mb, params, TAU, 7, N_SAMPLES)
    np.testing.assert_array_equal(a, b)
    assert 1 <= info.ess <= N_SAMPLES and info.log_weights.shape == (N_SAMPLES,) and info.seed == 7


def _old_reduction(X):
    """The earlier route (thin SVD of A, then QR), signs fixed to diag R ≥ 0 as reduce_minibatch does."""
    V, S, Ut = np.linalg.svd(np.asarray(X, np.float64), full_matrices=False)
    r = max(int(np.sum(S > S.max(initial=0.0) * max(X.shape) * np.finfo(np.float32).eps)), 1)
    q, R = np.linalg.qr((V[:, :r] * S[:r]).T)
    sign = np.where(np.diag(R) < 0, -1.0, 1.0)
    return Ut[:r].T @ q * sign, (R * sign[:, None]).T


def _minibatches():
    rng = np.random.default_rng(12)
    net = MLP((30, 4, 3))
    y = np.arange(6) % 3
    dense = rng.random((6, 30))
    sparse = dense * (rng.random((6, 30)) < 0.3)
    repeated = dense.copy()
    repeated[[4, 5]] = repeated[[0, 1]]                   # rank 4 (the first 4 images independent: Ũ unique)
    ill = dense.copy()
    ill[3] = ill[1] + 1e-4 * rng.random(30)               # nearly repeated: condition ~1e5, still rank 6
    wide = rng.random((40, 30))                           # more images than pixels: rank 30
    return [Minibatch.build(net, X, np.resize(y, len(X))) for X in (dense, sparse, repeated, ill, wide)]


@pytest.mark.parametrize("case", range(5), ids=["dense", "sparse", "repeated", "ill-conditioned", "wide"])
def test_reduction_equals_the_svd_route_and_is_orthonormal(case):
    mb = _minibatches()[case]
    red = reduce_minibatch(mb)
    basis, tri = _old_reduction(mb.X)
    assert red.rank == basis.shape[1] == [6, 6, 4, 6, 30][case]
    np.testing.assert_allclose(red.basis.T @ red.basis, np.eye(red.rank), atol=1e-12)
    np.testing.assert_allclose(red.basis @ red.basis.T, basis @ basis.T, atol=1e-8)   # same row space
    np.testing.assert_allclose(red.basis, basis, atol=1e-8)
    np.testing.assert_allclose(red.tri, tri, atol=1e-8)
    np.testing.assert_allclose(mb.X @ red.basis, red.tri, atol=1e-6)
    assert np.all(np.triu(red.tri, 1) == 0) and np.all(np.diag(red.tri) >= 0)


def _reduced_case(case):
    """(minibatch, its reduction, a generator, fan-in, H) of one of the _minibatches()."""
    mb = _minibatches()[case]
    fan_in, H = mb.net.layer_offsets[0][2:]
    return mb, reduce_minibatch(mb), np.random.default_rng(case), fan_in, H


@pytest.mark.parametrize("case", range(5))
def test_lift_projecting_equals_perp_then_lift(case):
    mb, red, rng, fan_in, H = _reduced_case(case)
    reduced = rng.normal(size=red.minibatch.net.n_params).astype(np.float32)
    M = rng.normal(size=(fan_in, H))
    np.testing.assert_allclose(red.lift_projecting(reduced, M), red.lift(reduced, red.perp(M)), atol=1e-6)
    wrong = red.lift(reduced, M)                          # negative control: M not projected
    assert np.abs(red.lift_projecting(reduced, M) - wrong).max() > 1e-2
    z, k = rng.normal(size=(fan_in, H)).astype(np.float32), 0.3   # the IS update's form: M = W₁ + k·z
    got = lift_with_noise(red, reduced, M, red.basis.T @ M, z, k)
    np.testing.assert_allclose(got, red.lift(reduced, red.perp(M) + k * red.perp(z.astype(np.float64))), atol=1e-6)
    if red.rank < fan_in:                                 # (rank = in: P⊥ = 0, no orthogonal noise at all)
        assert np.abs(lift_with_noise(red, reduced, M, red.basis.T @ M, z, -k) - got).max() > 1e-2


@pytest.mark.parametrize("case", range(5))
def test_basis_coordinates_and_their_rounding_cancels_in_the_lift(case):
    """ŨᵀW₁, ŨᵀZ by float32 GEMMs; an error δ in ŨᵀW₁ (in x̃ and in the lift) leaves P⊥W₁ alone."""
    mb, red, rng, fan_in, H = _reduced_case(case)
    W1, z = rng.normal(size=(fan_in, H)).astype(np.float32), rng.normal(size=(fan_in, H)).astype(np.float32)
    cw, cz = basis_coordinates(red.basis, W1, z)
    np.testing.assert_allclose(cw, red.basis.T @ W1.astype(np.float64), atol=1e-5)
    np.testing.assert_allclose(cz, red.basis.T @ z.astype(np.float64), atol=1e-5)
    params = np.concatenate([W1.ravel(), rng.normal(size=mb.net.n_params - W1.size).astype(np.float32)])
    step = rng.normal(size=red.minibatch.net.n_params) * 0.01          # the IS update in reduced coordinates
    delta = 1e-3 * rng.normal(size=cw.shape)                           # a (large) error in ŨᵀW₁
    exact = lift_with_noise(red, red.reduce(params, cw) + step, W1, cw, z, 0.3, cz)
    off = lift_with_noise(red, red.reduce(params, cw + delta) + step, W1, cw + delta, z, 0.3, cz)
    np.testing.assert_allclose(off, exact, atol=2e-6)
    # negative control: x̃ formed with the error but the lift told the exact ŨᵀW₁ keeps δ
    wrong = lift_with_noise(red, red.reduce(params, cw + delta) + step, W1, cw, z, 0.3, cz)
    assert np.abs(wrong - exact).max() > 1e-4
