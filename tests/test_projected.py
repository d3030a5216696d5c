"""The exact-in-distribution projected IS update (kltrain.projected).

Its update must have the same distribution as the per-sample update of Algorithm 4
(two-sample KS tests over many seeds, on coordinates and on projections into A's
row space and its orthogonal complement), and dropping the orthogonal term must
be detected (negative control).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from kltrain.estimators.importance import posterior_mean_from_partial
from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.projected import project_minibatch, projected_importance_update

CPU, REF = get_backend("cpu"), get_backend("numpy")
N_REPS, N_SAMPLES, TAU = 400, 40, 2.0  # τ = 2: ESS ≈ 11 of 40, so the weights matter
ALPHA = 1e-3  # per KS test; 8 tests -> family-wise false alarm < 1%, at fixed seeds


def _problem(rank_deficient=False):
    net = MLP((24, 4, 3))
    rng = np.random.default_rng(0)
    X = rng.random((5, 24)) * (rng.random((5, 24)) < 0.5)
    if rank_deficient:
        X[3], X[4] = X[0], 0.0      # repeated and blank images: rank 3
    y = np.array([0, 1, 2, 0, 1])
    return Minibatch.build(net, X, y), net.init(1)


def _updates(mb, params, projected):
    out = []
    for seed in range(N_REPS):
        if projected:
            x, _ = projected_importance_update(CPU, mb, params, TAU, seed, N_SAMPLES)
        else:
            part, _ = CPU.importance_partial(mb, params, TAU, 10_000 + seed, 0, N_SAMPLES, False)
            x = posterior_mean_from_partial(part, params.astype(np.float64), TAU)
        out.append(np.asarray(x, np.float64) - params)
    return np.array(out)


def _statistics(mb, deltas):
    """Scalar views of the updates: coordinates, row-space and orthogonal directions, random projections."""
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    basis = project_minibatch(mb.X).basis
    rng = np.random.default_rng(99)
    u_row = basis @ rng.normal(size=basis.shape[1])
    v = rng.normal(size=fan_in)
    v_orth = v - basis @ (basis.T @ v)
    W1 = deltas[:, w0:b0].reshape(-1, fan_in, H)
    r1, r2 = rng.normal(size=(2, deltas.shape[1]))
    return {"row space": W1[:, :, 0] @ u_row, "orthogonal": W1[:, :, 1] @ v_orth,
            "W1[0,0]": deltas[:, 0], "b1[0]": deltas[:, b0], "W2[0,0]": deltas[:, b0 + H],
            "b2[-1]": deltas[:, -1], "random 1": deltas @ r1, "random 2": deltas @ r2}


@pytest.mark.parametrize("rank_deficient", [False, True])
def test_projected_update_has_the_distribution_of_algorithm_4(rank_deficient):
    mb, params = _problem(rank_deficient)
    per_sample = _statistics(mb, _updates(mb, params, projected=False))
    projected = _statistics(mb, _updates(mb, params, projected=True))
    for name in per_sample:
        p = ks_2samp(per_sample[name], projected[name]).pvalue
        assert p > ALPHA, f"{name}: KS p = {p:.2e}"


def test_negative_control_dropping_the_orthogonal_term_is_detected():
    mb, params = _problem()
    deltas = _updates(mb, params, projected=True)
    w0, b0, fan_in, H = mb.net.layer_offsets[0]
    basis = project_minibatch(mb.X).basis
    W1 = deltas[:, w0:b0].reshape(-1, fan_in, H)
    deltas[:, w0:b0] = np.einsum("ij,njh->nih", basis @ basis.T, W1).reshape(len(deltas), -1)  # P_row only
    per_sample = _statistics(mb, _updates(mb, params, projected=False))
    broken = _statistics(mb, deltas)
    assert ks_2samp(per_sample["orthogonal"], broken["orthogonal"]).pvalue < ALPHA


def test_negative_control_ignoring_the_weights_is_detected():
    """The harness is sensitive to the weighting: x + √τ·mean(ε_j) must fail it."""
    from kltrain.estimators.importance import proposal_noise
    mb, params = _problem()
    unweighted = np.array([np.sqrt(TAU) * proposal_noise(10_000 + s, 0, N_SAMPLES, params.size, False).mean(0)
                           for s in range(N_REPS)])
    per_sample = _statistics(mb, _updates(mb, params, projected=False))
    broken = _statistics(mb, unweighted)
    assert min(ks_2samp(per_sample[k], broken[k]).pvalue for k in per_sample) < ALPHA


def test_projection_of_minibatch():
    mb, _ = _problem(rank_deficient=True)
    pr = project_minibatch(mb.X)
    assert pr.rank == 3
    np.testing.assert_allclose(pr.basis.T @ pr.basis, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(mb.X @ pr.basis, pr.proj, atol=1e-6)
    np.testing.assert_allclose(mb.X, pr.proj @ pr.basis.T, atol=1e-6)
    np.testing.assert_allclose(pr.tri @ pr.q.T, pr.proj, atol=1e-12)
    assert np.all(np.triu(pr.tri, 1) == 0)
    assert project_minibatch(np.zeros((4, 7))).rank == 0


@given(st.integers(0, 500), st.booleans())
def test_projected_partial_parity(seed, antithetic):
    mb, params = _problem(rank_deficient=True)
    pr = project_minibatch(mb.X)
    a, la = CPU.projected_partial(mb, params, TAU, seed, 20, antithetic, pr.tri, pr.rank)
    b, lb = REF.projected_partial(mb, params, TAU, seed, 20, antithetic, pr.tri, pr.rank)
    np.testing.assert_allclose(la, lb, atol=2e-5)
    np.testing.assert_allclose(a.sum_w_eps / a.sum_w, b.sum_w_eps / b.sum_w, atol=2e-5)


def test_projected_update_is_seeded_and_reports_ess():
    mb, params = _problem()
    a, info = projected_importance_update(CPU, mb, params, TAU, 7, N_SAMPLES)
    b, _ = projected_importance_update(CPU, mb, params, TAU, 7, N_SAMPLES)
    np.testing.assert_array_equal(a, b)
    assert 1 <= info.ess <= N_SAMPLES and info.log_weights.shape == (N_SAMPLES,) and info.seed == 7
