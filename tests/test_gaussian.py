"""Two-step schemes with a learned covariance (kltrain.gaussian): every claim of its docstring.

Each property has a negative control that must fail it. Oracles are independent of the code:
grid quadrature with scipy's multivariate normal, Gauss–Hermite nodes, Bayes' rule for
quadratics, and the paper's Algorithms 1 and 2 as kltrain implements them.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import kltrain
from kltrain import gaussian as G
from kltrain.estimators import GridQuadrature
from tests.strategies import bumps, mixtures, points, quadratics, spd
from toyproblems import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic, random_mixture
from toyproblems.landscapes import wide_and_sharp_bumps, wide_and_sharp_mixture

FAMILIES = ["full", "diag", "iso", "fixed"]


@st.composite
def gaussians(draw, dim, low=0.2 ** 2, high=1.0):
    return draw(points(dim)), draw(spd(dim, low, high))


def _project(cov, family):
    return {"full": cov, "diag": np.diag(np.diag(cov)),
            "iso": np.trace(cov) / len(cov) * np.eye(len(cov))}[family]


# -- moments against closed forms the code did not produce ----------------------------------
def _independent_tilted(weights, means, covs, m, C, half=7.0, h=0.025):
    """(F, mean, cov) of q ∝ Σ w_j N(μ_j, Σ_j) × N(m, C) by brute-force grid sums (scipy pdfs)."""
    axis = np.arange(-half, half + h / 2, h)
    X = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    dens = sum(w * multivariate_normal(mu, S).pdf(X) for w, mu, S in zip(weights, means, covs))
    integrand = dens * multivariate_normal(m, C).pdf(X) * h * h
    z = integrand.sum()
    mean = integrand @ X / z
    dev = X - mean
    return -np.log(z), mean, (integrand[:, None] * dev).T @ dev / z


def test_moments_of_a_fresh_mixture_times_a_gaussian_match_brute_force_quadrature():
    rng = np.random.default_rng(20261126)
    w = rng.uniform(0.2, 1, 3)
    w = w / w.sum()
    mus = rng.uniform(-2, 2, (3, 2))
    covs = [q @ np.diag(rng.uniform(0.2 ** 2, 0.8, 2)) @ q.T
            for q in (np.linalg.qr(rng.normal(size=(2, 2)))[0] for _ in range(3))]
    m, C = np.array([0.3, -0.4]), np.array([[0.6, 0.25], [0.25, 0.4]])
    loss = GaussianMixtureLoss(weights=w, means=mus, covs=covs)
    F, mean, cov = _independent_tilted(w, mus, covs, m, C)
    m1, C1 = G.local_entropy_step(loss, m, C)
    assert abs(G.local_entropy(loss, m, C) - F) < 1e-9
    np.testing.assert_allclose(m1, mean, atol=1e-9)
    np.testing.assert_allclose(C1, cov, atol=1e-9)
    # negative control: the paper's isotropic τI with τ = tr(C)/2 is a different q
    _, mean_iso, cov_iso = _independent_tilted(w, mus, covs, m, np.trace(C) / 2 * np.eye(2))
    assert np.abs(m1 - mean_iso).max() > 1e-3 or np.abs(C1 - cov_iso).max() > 1e-3


@given(mixtures(dim=2), gaussians(2, 0.3 ** 2, 1.0))
@settings(max_examples=8)
def test_grid_quadrature_path_agrees_with_the_closed_form(loss, gauss):
    m, C = gauss
    F, mean, cov = G.tilted_moments(loss, m, C)
    Fg, mean_g, cov_g = G.tilted_moments(loss, m, C, estimator=GridQuadrature(points_per_scale=3))
    assert abs(F - Fg) < 1e-7
    np.testing.assert_allclose(mean_g, mean, atol=1e-7)
    np.testing.assert_allclose(cov_g, cov, atol=1e-7)


@given(bumps(), st.data())
@settings(max_examples=10)
def test_heat_regularization_closed_form_matches_whitened_trapezoid(loss, data):
    m, C = data.draw(gaussians(loss.dim))
    # E_{N(m,C)} f = ∫ f(m + Lz) N(z; 0, I) dz on a uniform z-grid (spectrally accurate),
    # spacing resolving the narrowest bump seen through L
    h = min(0.5, loss.length_scale / np.sqrt(np.linalg.eigvalsh(C).max())) / 3
    axis = np.arange(-9.0, 9.0 + h / 2, h)
    Z = np.stack(np.meshgrid(*([axis] * loss.dim), indexing="ij"), -1).reshape(-1, loss.dim)
    W = np.exp(-0.5 * np.sum(Z ** 2, 1)) * (h / np.sqrt(2 * np.pi)) ** loss.dim
    H = W @ loss.values(m + Z @ np.linalg.cholesky(C).T)
    assert abs(G.heat_regularization(loss, m, C) - H) < 1e-8
    # negative control: with C → C/2 the closed form must not agree (bumps make f non-flat)
    if abs(G.heat_regularization(loss, m, C / 2) - G.heat_regularization(loss, m, C)) > 1e-6:
        assert abs(G.heat_regularization(loss, m, C / 2) - H) > 1e-8


# -- majorize–minimize: F non-increasing along the local-entropy form -----------------------
@given(mixtures(dim=2), gaussians(2), st.sampled_from(FAMILIES))
def test_F_never_increases_along_the_local_entropy_form(loss, gauss, family):
    path = G.minimize(loss, *gauss, 6, family=family)
    F = [G.local_entropy(loss, m, C) for m, C in zip(path.means, path.covs)]
    assert np.all(np.diff(F) <= 1e-10 * (1 + np.abs(F[:-1])))


@given(mixtures(dim=2), gaussians(2), gaussians(2))
@settings(max_examples=15)
def test_majorizer_lies_above_F_and_the_moments_minimise_it(loss, gauss_k, gauss):
    (m_k, C_k), (m, C) = gauss_k, gauss
    F_k, mq, Cq = G.tilted_moments(loss, m_k, C_k)

    def expected_log_normal(mean, cov):          # E_{q_k}[log N(X; mean, cov)], exactly
        P = np.linalg.inv(cov)
        d = mq - mean
        return -0.5 * (np.trace(P @ Cq) + d @ P @ d + np.linalg.slogdet(2 * np.pi * cov)[1])

    A = F_k - expected_log_normal(m, C) + expected_log_normal(m_k, C_k)
    assert A >= G.local_entropy(loss, m, C) - 1e-10
    # A_k is minimised by the moments: no other (m, C) gets below it
    assert A >= F_k - expected_log_normal(mq, Cq) + expected_log_normal(m_k, C_k) - 1e-10


@given(mixtures(dim=2), gaussians(2))
@settings(max_examples=10)
def test_F_gradients_are_the_preconditioned_moment_residuals(loss, gauss):
    # ∇_m F = C⁻¹(m − E_q X) (so m_{k+1} = m_k − C_k∇_m F: eq. (3.5) with τ → C_k) and
    # ∇_C F = −½C⁻¹(Cov_q + δδᵀ − C)C⁻¹, δ = E_q X − m; checked by central differences of F
    m, C = gauss
    _, mq, Cq = G.tilted_moments(loss, m, C)
    h, P, dlt = 1e-5, np.linalg.inv(C), mq - m
    fd_m = [(G.local_entropy(loss, m + h * e, C) - G.local_entropy(loss, m - h * e, C)) / (2 * h)
            for e in np.eye(2)]
    np.testing.assert_allclose(fd_m, P @ (m - mq), rtol=1e-5, atol=1e-6)
    E = np.array([[0.0, 1.0], [1.0, 0.0]])                              # symmetric direction
    fd_c = (G.local_entropy(loss, m, C + h * E) - G.local_entropy(loss, m, C - h * E)) / (2 * h)
    grad_C = -0.5 * P @ (Cq + np.outer(dlt, dlt) - C) @ P
    assert abs(fd_c - np.sum(grad_C * E)) < 1e-5 * (1 + abs(fd_c))
    # negative control: the paper's isotropic form (m − E_q X)/τ with τ = tr(C)/2 is not ∇_m F
    iso = (m - mq) / (np.trace(C) / 2)
    if np.linalg.norm(P @ (m - mq) - iso) > 1e-3:
        assert not np.allclose(fd_m, iso, rtol=1e-5, atol=1e-6)


def test_negative_control_moment_steps_that_overshoot_increase_F():
    loss = wide_and_sharp_mixture()
    m, C = np.array([0.5, 0.5]), 0.3 * np.eye(2)
    F0, mq, Cq = G.tilted_moments(loss, m, C)
    assert G.local_entropy(loss, m - 0.2 * (mq - m), C) > F0          # reversed mean step
    assert G.local_entropy(loss, mq, 25 * Cq) > F0                     # inflated covariance


# -- automatic annealing on quadratics: C_k⁻¹ = C_0⁻¹ + kA, both forms ----------------------
@given(quadratics(dim=2), gaussians(2), st.sampled_from(["local_entropy", "heat"]))
@settings(max_examples=10)
def test_quadratic_precision_grows_by_A_each_step_and_mean_follows_bayes(loss, gauss, form):
    m0, C0 = gauss
    path = G.minimize(loss, m0, C0, 4, form=form)
    S0 = np.linalg.inv(C0)
    for k, (m, C) in enumerate(zip(path.means, path.covs)):
        S = S0 + k * loss.A                      # k Bayes updates with likelihood e^{−f}
        np.testing.assert_allclose(np.linalg.inv(C), S, rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(m, np.linalg.solve(S, S0 @ m0 + k * loss.A @ loss.center),
                                   atol=1e-7)
    # negative control: one step more of precision is a different law
    assert not np.allclose(np.linalg.inv(path.covs[2]), S0 + 3 * loss.A, rtol=1e-3)


# -- frozen covariance τI: Algorithms 1 and 2 exactly -----------------------------------------
@given(st.one_of(mixtures(), quadratics()), st.floats(0.05, 1.0), st.data())
def test_fixed_tau_family_is_algorithm_1_to_rounding(loss, tau, data):
    x0 = data.draw(points(loss.dim))
    alg1 = kltrain.minimize_local_entropy(loss, x0, tau, 8)
    ours = G.minimize(loss, x0, tau * np.eye(loss.dim), 8, family="fixed")
    assert np.abs(ours.means - alg1).max() < 1e-12 * (1 + np.abs(alg1).max())
    assert np.all(ours.covs == tau * np.eye(loss.dim))
    # negative control: τ off by 0.1 % is visibly another scheme (unless q ignores f)
    other = G.minimize(loss, x0, 1.001 * tau * np.eye(loss.dim), 8, family="fixed").means
    moved = np.abs(alg1[-1] - x0).max() > 1e-3
    assert not moved or np.abs(other - alg1).max() > 1e-9


@pytest.mark.parametrize("loss", [wide_and_sharp_bumps(),
                                  Quadratic(A=[[2.0, 0.5], [0.5, 1.0]], center=[1.0, -1.0])])
def test_fixed_tau_family_is_algorithm_2(loss):
    x0, tau = np.array([0.5, 0.5]), 0.3
    alg2 = kltrain.minimize_heat(loss, x0, tau, 6)
    ours = G.minimize(loss, x0, tau * np.eye(2), 6, form="heat", family="fixed").means
    # Euler–Lagrange residual of §5.2, h = x − x_k + τ∇F^H_τ(x), from the loss's own closed form
    resid = [np.linalg.norm(ours[k + 1] - ours[k] + tau * loss.heat_regularization_grad(ours[k + 1], tau))
             for k in range(6)]
    assert max(resid) < 1e-13
    # ExactProx (L-BFGS-B, gtol 1e-11) reaches the same points to its own tolerance
    assert np.abs(ours - alg2).max() < 1e-7
    other = G.minimize(loss, x0, 1.01 * tau * np.eye(2), 6, form="heat", family="fixed").means
    assert np.abs(other - alg2).max() > 1e-5                           # negative control


# -- heat form: the Opper–Archambeau fixed-point equations, Hessian-free ---------------------
@given(bumps(dim=2), gaussians(2, 0.2 ** 2, 0.6))
@settings(max_examples=6)
def test_heat_step_satisfies_the_fixed_point_equations_via_stein(loss, gauss):
    m_k, C_k = gauss
    m, C = G.heat_step(loss, m_k, C_k)
    g, hess = G.stein_moments(loss, m, C)        # grid quadrature of ∇f only
    assert np.abs(m - m_k + C_k @ g).max() < 1e-6
    scale = 1 + np.abs(np.linalg.inv(C)).max()
    assert np.abs(np.linalg.inv(C) - np.linalg.inv(C_k) - hess).max() < 1e-6 * scale
    # negative control: the local-entropy step is a different Gaussian (unless f is ~quadratic)
    m_le, C_le = G.local_entropy_step(loss, m_k, C_k, estimator=GridQuadrature(points_per_scale=3))
    g_le, hess_le = G.stein_moments(loss, m_le, C_le)
    bad = max(np.abs(m_le - m_k + C_k @ g_le).max(),
              np.abs(np.linalg.inv(C_le) - np.linalg.inv(C_k) - hess_le).max() / scale)
    if np.abs(m_le - m).max() + np.abs(C_le - C).max() > 1e-3:
        assert bad > 1e-6


@pytest.mark.parametrize("family", ["diag", "iso"])
def test_constrained_heat_steps_satisfy_their_own_fixed_point_equations(family):
    # diag: 1/c_{k+1,i} = 1/c_{k,i} + E[∂²_i f];  iso: d/σ²_{k+1} = d/σ²_k + E[Δf]
    loss = GaussianBumpsLoss(amplitudes=[-1.0, 0.5], centers=[[-0.5, 0.0], [0.5, 0.5]],
                             covs=[0.3, 0.2], bowl=0.2)
    m_k, c_k = np.array([0.5, 0.5]), np.array([0.3, 0.2]) if family == "diag" else np.array([0.25, 0.25])
    m, C = G.heat_step(loss, m_k, np.diag(c_k), family=family)
    g, hess = G.stein_moments(loss, m, C)
    assert np.abs(m - m_k + c_k * g).max() < 1e-7
    if family == "diag":
        np.testing.assert_allclose(1 / np.diag(C), 1 / c_k + np.diag(hess), atol=1e-6)
        assert np.abs(np.linalg.inv(C) - np.diag(1 / c_k) - hess).max() > 1e-3   # off-diagonal ≠ 0
    else:
        assert abs(2 / C[0, 0] - 2 / c_k[0] - np.trace(hess)) < 1e-6
        assert np.abs(1 / np.diag(C) - 1 / c_k - np.diag(hess)).max() > 1e-3   # per-axis law fails


def test_negative_control_the_local_entropy_step_violates_the_heat_equations():
    loss = GaussianBumpsLoss(amplitudes=[-1.0, 0.5], centers=[[-0.5, 0.0], [0.5, 0.5]],
                             covs=[0.3, 0.2], bowl=0.2)
    m_k, C_k = np.array([0.5, 0.5]), 0.3 * np.eye(2)
    m, C = G.local_entropy_step(loss, m_k, C_k)
    g, hess = G.stein_moments(loss, m, C)
    assert np.abs(m - m_k + C_k @ g).max() > 1e-3
    m, C = G.heat_step(loss, m_k, C_k)
    g, hess = G.stein_moments(loss, m, C)
    assert np.abs(m - m_k + C_k @ g).max() < 1e-8


@given(bumps(dim=2), gaussians(2), st.sampled_from(FAMILIES))
@settings(max_examples=10)
def test_H_never_increases_along_the_heat_form(loss, gauss, family):
    path = G.minimize(loss, *gauss, 3, form="heat", family=family)
    H = [G.heat_regularization(loss, m, C) for m, C in zip(path.means, path.covs)]
    assert np.all(np.diff(H) <= 1e-10 * (1 + np.abs(H[:-1])))


def test_negative_control_heat_ascent_increases_H():
    loss = wide_and_sharp_bumps()
    m, C = np.array([0.5, 0.5]), 0.3 * np.eye(2)
    m1, C1 = G.heat_step(loss, m, C)
    assert G.heat_regularization(loss, m1, C1) < G.heat_regularization(loss, m, C)
    assert G.heat_regularization(loss, 2 * m - m1, C) > G.heat_regularization(loss, m, C)


# -- fixed points -----------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["local_entropy", "heat"])
def test_flat_loss_leaves_every_gaussian_fixed_and_a_bump_moves_it(form):
    flat = GaussianBumpsLoss(amplitudes=[0.0], centers=[[0.0, 0.0]], covs=[0.5], bowl=0.0)
    m, C = np.array([0.3, -0.2]), np.array([[0.5, 0.1], [0.1, 0.3]])
    step = G.local_entropy_step if form == "local_entropy" else G.heat_step
    m1, C1 = step(flat, m, C)
    np.testing.assert_allclose(m1, m, atol=1e-10)
    np.testing.assert_allclose(C1, C, atol=1e-10)
    bump = GaussianBumpsLoss(amplitudes=[-0.05], centers=[[0.0, 0.0]], covs=[0.5], bowl=0.0)
    m2, C2 = step(bump, m, C)                    # negative control
    assert np.abs(m2 - m).max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_symmetric_stationary_mean_stays_fixed(family):
    # e^{−f} symmetric under x ↦ −x: m = 0 is stationary, C changes (except "fixed")
    loss = GaussianMixtureLoss(weights=[1, 1], means=[[1.0, 0.5], [-1.0, -0.5]], covs=[0.3, 0.3])
    C0 = np.array([[0.5, 0.2], [0.2, 0.4]])
    path = G.minimize(loss, np.zeros(2), C0, 4, family=family)
    assert np.abs(path.means).max() < 1e-14
    shifted = G.minimize(loss, np.array([0.1, 0.0]), C0, 1, family=family)
    assert np.abs(shifted.means[1] - [0.1, 0.0]).max() > 1e-3          # negative control


# -- families, API, validation ----------------------------------------------------------------
@given(mixtures(dim=2), gaussians(2), st.sampled_from(["full", "diag", "iso"]))
@settings(max_examples=10)
def test_families_are_the_projections_of_the_tilted_covariance(loss, gauss, family):
    _, mean, cov = G.tilted_moments(loss, *gauss)
    m1, C1 = G.local_entropy_step(loss, *gauss, family=family)
    np.testing.assert_allclose(m1, mean, atol=1e-14)
    np.testing.assert_allclose(C1, _project(cov, family), atol=1e-14)


def test_heat_families_keep_their_shape_and_order_by_flexibility():
    loss = wide_and_sharp_bumps()
    m, C = np.array([0.5, 0.5]), 0.3 * np.eye(2)
    J = {}
    for family in FAMILIES:
        m1, C1, info = G.heat_step(loss, m, C, family=family, return_info=True)
        J[family] = info.objective
        if family == "diag":
            assert C1[0, 1] == 0
        if family == "iso":
            assert C1[0, 0] == C1[1, 1] and C1[0, 1] == 0
    # a larger family reaches a lower KL(N ‖ q_k) (nested minimisation)
    assert J["full"] <= J["diag"] + 1e-12 <= J["iso"] + 2e-12 and J["iso"] <= J["fixed"] + 1e-12


def test_annealing_on_the_wide_and_sharp_mixture_shrinks_the_covariance():
    path = G.minimize(wide_and_sharp_mixture(), np.array([0.5, 0.5]), 0.3 * np.eye(2), 10)
    tr = np.trace(path.covs, axis1=1, axis2=2)
    assert np.all(np.diff(tr) < 0) and tr[-1] < 2e-3 * tr[0]
    # inside the sharp well (Σ = 0.05²I) the precision grows by Σ⁻¹ per step: harmonic annealing
    prec = np.trace(np.linalg.inv(path.covs[4:]), axis1=1, axis2=2) / 2
    np.testing.assert_allclose(np.diff(prec), 1 / 0.05 ** 2, rtol=0.02)
    # ... and a learned covariance can forget local entropy's wide-minimum preference (Fig 2.1):
    # inf F = min f (the sharp well); from (0.2, 0.3) the full family ends there, Algorithm 1
    # with τ = 0.3 (negative control: same start, frozen C) in the wide well at (−1, 0)
    x0 = np.array([0.2, 0.3])
    full = G.minimize(wide_and_sharp_mixture(), x0, 0.3 * np.eye(2), 30).means[-1]
    fixed = G.minimize(wide_and_sharp_mixture(), x0, 0.3 * np.eye(2), 30, family="fixed").means[-1]
    assert np.linalg.norm(full - [1.2, 0.5]) < 1e-2 and np.linalg.norm(fixed - [-1.0, 0.0]) < 0.05


def test_validation_errors():
    loss = random_mixture(np.random.default_rng(0))
    with pytest.raises(ValueError, match="family"):
        G.local_entropy_step(loss, np.zeros(2), np.eye(2), family="banded")
    with pytest.raises(ValueError, match="positive definite"):
        G.heat_step(loss, np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match="form"):
        G.GaussianScheme(form="newton")
    with pytest.raises(ValueError, match="dimension"):
        G.local_entropy_step(loss, np.zeros(3), np.eye(3))
    with pytest.raises(TypeError, match="not an exact estimator"):
        from kltrain.estimators import ImportanceSampling
        G.local_entropy_step(loss, np.zeros(2), np.eye(2), estimator=ImportanceSampling(10))
    m, C = G.local_entropy_step(loss, np.zeros(2), 0.3, family="fixed")   # a variance τ means τI
    assert np.array_equal(C, 0.3 * np.eye(2))
    with pytest.raises(ValueError, match="d = 3"):
        G.heat_step(GaussianMixtureLoss([1.0], [np.zeros(3)], [1.0]), np.zeros(3), np.eye(3))


# -- sampled versions (diagonal covariance, counter-based noise) --------------------------------
from kltrain.gaussian.sampling import (DiagonalGaussianRule, GaussianIS,  # noqa: E402
                                       GaussianRobbinsMonro, GaussianSGLD)
from kltrain.noise import counter_normals  # noqa: E402
from kltrain.schemes import run  # noqa: E402

UNIMODAL = GaussianMixtureLoss([0.5, 0.5], [[0.5, 0.0], [-0.2, 0.4]],
                               [[[0.4, 0.1], [0.1, 0.3]], 0.5 * np.eye(2)])
M0, V0 = np.array([0.2, 0.3]), np.array([0.6, 0.4])


def test_is_moments_within_four_standard_errors_of_the_exact_ones():
    m_ex, C_ex = G.local_entropy_step(UNIMODAL, M0, np.diag(V0), family="diag")
    m_far, _ = G.local_entropy_step(UNIMODAL, M0 + 0.2, np.diag(V0), family="diag")
    for seed in range(3):
        m, v, info = GaussianIS(3000).estimate(seed, UNIMODAL, M0, V0)
        se = np.sqrt(v / info.ess)
        assert np.all(np.abs(m - m_ex) < 4 * se)
        assert np.all(np.abs(v - np.diag(C_ex)) < 0.1 * np.diag(C_ex))
        assert np.any(np.abs(m - m_far) > 4 * se)                     # negative control


def test_is_noise_is_regenerated_from_seed_and_sample_index():
    m, v, info = GaussianIS(50).estimate(7, UNIMODAL, M0, V0)
    X = M0 + counter_normals(7, np.arange(50), 2) * np.sqrt(V0)
    lw = -UNIMODAL.values(X)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    np.testing.assert_allclose(m, w @ X, rtol=1e-13)
    np.testing.assert_allclose(v, w @ (X - w @ X) ** 2, rtol=1e-12)
    assert not np.allclose(GaussianIS(50).estimate(8, UNIMODAL, M0, V0)[0], m)   # another seed
    chunked = GaussianIS(50, chunk=7).estimate(7, UNIMODAL, M0, V0)        # noise regenerated
    np.testing.assert_allclose(chunked[0], m, rtol=1e-14)
    np.testing.assert_allclose(chunked[1], v, rtol=1e-12)


def test_sgld_chain_moments_approach_the_exact_ones():
    m_ex, C_ex = G.local_entropy_step(UNIMODAL, M0, np.diag(V0), family="diag")
    m, v, _ = GaussianSGLD(4000, 0.1).estimate(3, UNIMODAL, M0, V0)
    assert np.abs(m - m_ex).max() < 0.08 and np.all(np.abs(v / np.diag(C_ex) - 1) < 0.3)
    m_far, _ = G.local_entropy_step(UNIMODAL, M0 + 0.5, np.diag(V0), family="diag")
    assert np.abs(m - m_far).max() > 0.08                             # negative control


def test_robbins_monro_heat_step_approaches_the_exact_diagonal_step():
    loss, C = wide_and_sharp_bumps(), np.diag(V0)
    m_ex, C_ex = G.heat_step(loss, M0, C, family="diag")
    m, C_rm = G.heat_step(loss, M0, C, family="diag", estimator=GaussianRobbinsMonro(300, 10), rng=1)
    assert np.abs(m - m_ex).max() < 0.02 and np.all(np.abs(np.diag(C_rm) / np.diag(C_ex) - 1) < 0.05)
    # negative control: a too-short chain (J = 5) has not reached the step
    m5, C5 = G.heat_step(loss, M0, C, family="diag", estimator=GaussianRobbinsMonro(5, 10), rng=1)
    assert np.abs(m5 - m_ex).max() > 0.02 or np.abs(np.diag(C5) / np.diag(C_ex) - 1).max() > 0.05
    with pytest.raises(ValueError, match="heat"):
        G.local_entropy_step(loss, M0, C, estimator=GaussianRobbinsMonro())


@pytest.mark.parametrize("family", ["diag", "iso", "fixed"])
def test_diagonal_rule_runs_in_the_scheme_driver_and_keeps_its_family(family):
    rule = DiagonalGaussianRule(0.3, GaussianIS(500), family=family, min_var=1e-4)
    points, infos = run(rule, UNIMODAL, M0, 5, rng=0)
    again, _ = run(rule, UNIMODAL, M0, 5, rng=0)
    np.testing.assert_array_equal(points, again)                      # same seed, same path
    state = rule.init(UNIMODAL, M0)
    for k in range(3):
        _, state, _ = rule.step(np.random.default_rng(k), state, UNIMODAL, M0, k)
    if family == "fixed":
        assert np.all(state == 0.3)
    elif family == "iso":
        assert state[0] == state[1] and state[0] != 0.3
    assert np.all(state >= 1e-4) and all(i.ess > 1 for i in infos)


def test_covariance_figure_draws_one_ellipse_per_iterate():
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    from toyproblems.covariance import covariance_ellipse, wide_and_sharp_figure
    fig = wide_and_sharp_figure(n_steps=4)
    assert isinstance(fig, Figure)
    assert sum(isinstance(p, Ellipse) for p in fig.axes[0].patches) == 3 * 5
    e = covariance_ellipse([0, 0], [[4.0, 0.0], [0.0, 1.0]], 2.0)
    assert (e.width, e.height) == (8.0, 4.0) and abs(e.angle) < 1e-12    # major axis along x


def test_damped_covariance_rate_and_train_config():
    from kltrain.studies.config import train_config
    from kltrain.studies.training import TrainConfig

    full = DiagonalGaussianRule(0.3, GaussianIS(200), cov_rate=1.0)
    half = DiagonalGaussianRule(0.3, GaussianIS(200), cov_rate=0.5)
    state = full.init(UNIMODAL, M0)
    _, v1, _ = full.step(np.random.default_rng(1), state, UNIMODAL, M0, 0)
    _, v2, _ = half.step(np.random.default_rng(1), state, UNIMODAL, M0, 0)
    np.testing.assert_allclose(v2, 0.5 * (0.3 + v1), rtol=1e-14)
    with pytest.raises(ValueError, match="cov_rate"):
        DiagonalGaussianRule(0.3, GaussianIS(10), cov_rate=0.0)
    cfg = train_config("diag", "is", net="small", samples=10)
    assert isinstance(cfg, TrainConfig) and isinstance(cfg.update_rule(), DiagonalGaussianRule)
    assert type(train_config("fixed", "is")) is TrainConfig
    with pytest.raises(ValueError, match="is, sgld or hr"):
        train_config("diag", "sgd").update_rule()


def test_animation_frames_reveal_one_iterate_per_path_per_frame(tmp_path):
    from matplotlib.animation import FuncAnimation

    from toyproblems.covariance import animate_covariance_paths, plot_covariance_paths, reveal_frames
    loss = wide_and_sharp_mixture()
    paths = {f: G.minimize(loss, np.array([0.2, 0.3]), 0.3 * np.eye(2), 3, family=f)
             for f in ("full", "fixed")}
    fig = plot_covariance_paths(loss, paths)
    draw, n_frames = reveal_frames(fig, paths)
    draw(1)
    assert n_frames == 4 and sum(p.get_visible() for p in fig.axes[0].patches) == 2 * 2
    anim = animate_covariance_paths(loss, paths, resolution=40)
    assert isinstance(anim, FuncAnimation)
    anim.save(tmp_path / "paths.gif", writer="pillow", dpi=30)
    assert (tmp_path / "paths.gif").stat().st_size > 0
