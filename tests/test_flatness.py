"""The flatness measures (kltrain.studies.flatness) against closed forms on quadratics, with negative controls.

Quadratic f(x) = ½(x − m)ᵀA(x − m): tr ∇²f = tr A; F_τ(x) = ½ log|I + τA| + ½(x−m)ᵀA(I+τA)⁻¹(x−m)
(toyproblems.losses.Quadratic.local_entropy); max_{‖δ‖≤ρ} f(x+δ) − f(x) solves a trust-region
problem, computed here by bisection on its secular equation. Statistical checks allow
K_SIGMA standard errors; each control must lie outside that band.
"""

import numpy as np
import pytest

from kltrain.studies.flatness import (ReducedPerturbation, hessian_trace, local_entropy_is, output_layer_trace,
                              sharpness, weight_noise_accuracy)
from kltrain.nets.netloss import MinibatchLoss
from kltrain.nets import MLP
from toyproblems.losses import Quadratic
from validation.statistics import K_SIGMA


def _quadratic(d=6, seed=0, center=True):
    r = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(r.normal(size=(d, d)))
    eig = np.linspace(0.5, 3.0, d)
    eig[-1] = 6.0                                          # a clear top eigenvalue (gap 2×)
    return Quadratic(Q @ np.diag(eig) @ Q.T, r.normal(size=d) if center else np.zeros(d))


def test_hessian_trace_of_a_quadratic_is_trace_A():
    q = _quadratic()
    est, se = hessian_trace(q, np.ones(6), n_probes=400, rng=1)
    assert se > 0
    assert abs(est - np.trace(q.A)) <= K_SIGMA * se
    assert abs(est - 1.1 * np.trace(q.A)) > K_SIGMA * se   # control: a 10% error is detected


def test_hessian_trace_of_a_tiny_net_matches_the_coordinate_sum():
    """tr H by Hutchinson vs Σ_i ∂_i(∇f)_i by central differences along each coordinate (d = 39)."""
    r = np.random.default_rng(0)
    net = MLP((5, 4, 3))
    loss = MinibatchLoss(net, np.abs(r.normal(size=(10, 5))), r.integers(0, 3, 10), backend="cpu")
    x = net.init(r).astype(np.float64) + 0.1
    h = 1e-3
    exact = sum((loss.grad(x + h * e)[i] - loss.grad(x - h * e)[i]) / (2 * h)
                for i, e in enumerate(np.eye(x.size)))
    est, se = hessian_trace(loss, x, n_probes=1000, rng=2)
    assert abs(est - exact) <= K_SIGMA * se + 1e-3 * abs(exact)
    assert abs(est - 1.5 * exact) > K_SIGMA * se + 1e-3 * abs(exact)   # control: a 50% error


def test_output_layer_trace_is_the_last_layers_diagonal_by_central_differences():
    r = np.random.default_rng(0)
    net = MLP((5, 4, 3))
    X, y = np.abs(r.normal(size=(10, 5))), r.integers(0, 3, 10)
    x = net.init(r).astype(np.float64) + 0.1
    f = lambda p: net.loss(p, X, y)                            # noqa: E731  (float64 forward)
    h, last = 1e-4, range(net.layer_offsets[-1][0], net.n_params)
    diag = [(f(x + h * e) - 2 * f(x) + f(x - h * e)) / h ** 2 for e in np.eye(x.size)[list(last)]]
    assert output_layer_trace(net, x, X, y) == pytest.approx(sum(diag), rel=1e-5)
    all_diag = sum((f(x + h * e) - 2 * f(x) + f(x - h * e)) / h ** 2 for e in np.eye(x.size))
    assert output_layer_trace(net, x, X, y) != pytest.approx(all_diag, rel=1e-3)   # control: not the full trace


def test_local_entropy_is_matches_the_closed_form():
    q = _quadratic(d=4)
    x, tau = np.full(4, 0.3), 0.1
    est = local_entropy_is(q, x, tau, n_samples=20_000, rng=3)
    exact = q.local_entropy(x, tau)
    assert 0 < est.ess <= 20_000 and est.n_samples == 20_000
    assert abs(est.value - exact) <= K_SIGMA * est.standard_error
    assert abs(est.value - q.local_entropy(x, 1.5 * tau)) > K_SIGMA * est.standard_error   # control: wrong τ


def test_local_entropy_standard_error_is_honest():
    """Over 40 seeds the spread of F̂ matches the reported SE (ratio within 30%)."""
    q = _quadratic(d=3)
    runs = [local_entropy_is(q, np.zeros(3), 0.3, n_samples=300, rng=s) for s in range(40)]
    ratio = np.std([r.value for r in runs], ddof=1) / np.mean([r.standard_error for r in runs])
    assert 0.7 < ratio < 1.3


def _trust_region_max(q, x, rho):
    """max_{‖δ‖≤ρ} f(x+δ) for convex quadratic f: δ = (μI − A)⁻¹A(x − m), ‖δ‖ = ρ, μ > λ_max (bisection)."""
    g = q.A @ (x - q.center)
    lam, Q = np.linalg.eigh(q.A)
    c = Q.T @ g
    lo, hi = lam[-1] + 1e-12, lam[-1] + np.linalg.norm(g) / rho + 1.0
    for _ in range(200):
        mu = 0.5 * (lo + hi)
        lo, hi = (mu, hi) if np.linalg.norm(c / (mu - lam)) > rho else (lo, mu)
    delta = Q @ (c / (0.5 * (lo + hi) - lam))
    return q.value(x + delta) - q.value(x)


def test_sharpness_at_the_minimum_is_half_rho_squared_lambda_max():
    q = _quadratic(center=False)
    res = sharpness(q, np.zeros(6), rho=0.05, n_steps=60, rng=0)
    assert res.value == pytest.approx(0.5 * 0.05 ** 2 * 6.0, rel=1e-3)
    assert res.delta_norm == pytest.approx(0.05)


def test_sharpness_away_from_the_minimum_solves_the_trust_region_problem():
    q = _quadratic()
    x = q.center + np.random.default_rng(5).normal(size=6) * 0.02
    exact = _trust_region_max(q, x, 0.05)
    assert sharpness(q, x, rho=0.05, n_steps=60).value == pytest.approx(exact, rel=1e-4)
    first_order = sharpness(q, x, rho=0.05, n_steps=0).value     # control: SAM's one-step δ̂ alone
    assert first_order < exact * (1 - 1e-3)


def _tiny_data(n=8, seed=0):
    r = np.random.default_rng(seed)
    X = np.abs(r.normal(size=(n, 12)))
    X[:, :3] = 0.0                                         # blank "pixels": rank ≤ 8 < 12
    return X.astype(np.float32), r.integers(0, 3, n)


def test_reduced_perturbation_equals_the_explicitly_perturbed_net():
    net = MLP((12, 5, 3))
    X, y = _tiny_data()
    red = ReducedPerturbation(net, X, y)
    _, _, Ut = np.linalg.svd(X.astype(np.float64), full_matrices=False)
    assert red.rank == 8
    x, tau = net.init(np.random.default_rng(1)), 0.04
    z, rest = red.noise(np.random.default_rng(2))
    xi = np.concatenate([(Ut[:8].T @ z).ravel(), rest])    # the full noise whose image X·Ξ₁ is (V S) z
    explicit = net.loss((x + np.sqrt(tau) * xi).astype(np.float32), X, y)
    assert red.perturbed_loss(x, tau, z, rest) == pytest.approx(explicit, rel=1e-5)
    other = net.loss((x + np.sqrt(tau) * np.concatenate([np.zeros(60), rest])).astype(np.float32), X, y)
    assert abs(red.perturbed_loss(x, tau, z, rest) - other) > 1e-4   # control: the first layer's noise counts


def test_reduced_local_entropy_agrees_with_plain_is_on_a_tiny_net():
    net = MLP((12, 5, 3))
    X, y = _tiny_data()
    x, tau = net.init(np.random.default_rng(1)), 0.3
    reduced = ReducedPerturbation(net, X, y).local_entropy(x, tau, n_samples=3000, rng=4)
    plain = local_entropy_is(MinibatchLoss(net, X, y, backend="numpy"), x, tau, n_samples=3000, rng=5)
    se = np.hypot(reduced.standard_error, plain.standard_error)
    assert abs(reduced.value - plain.value) <= K_SIGMA * se
    wrong = ReducedPerturbation(net, X, y).local_entropy(x, 2 * tau, n_samples=3000, rng=4)
    assert abs(wrong.value - plain.value) > K_SIGMA * np.hypot(wrong.standard_error, plain.standard_error)


def test_weight_noise_accuracy():
    net = MLP((12, 5, 3))
    X, y = _tiny_data(n=50)
    x = net.init(np.random.default_rng(1))
    out = weight_noise_accuracy(net, x, X, y, [0.0, 0.5], n_draws=5, rng=0)
    assert out[0.0] == (net.accuracy(x, X, y), 0.0)        # σ = 0: the accuracy itself, no spread
    assert out[0.5].standard_error > 0
    assert out == weight_noise_accuracy(net, x, X, y, [0.0, 0.5], n_draws=5, rng=0)   # same seed, same result


@pytest.mark.parametrize("call", [lambda q: hessian_trace(q, np.zeros(6), n_probes=1),
                                  lambda q: local_entropy_is(q, np.zeros(6), 0.0, n_samples=5),
                                  lambda q: sharpness(q, np.zeros(6), rho=0.0)])
def test_refuses_bad_arguments(call):
    with pytest.raises(ValueError):
        call(_quadratic())


def _synthetic_store(shift):
    """SGD and IS over 4 seeds; IS's sharpness lower by ``shift`` (with seed-to-seed noise 0.001)."""
    runs = []
    for seed in range(4):
        for label, d in (("SGD", 0.0), ("IS", -shift)):
            runs.append(dict(label=label, seed=seed, test_accuracy=0.8, train_loss=0.5 + 0.001 * seed,
                             sharpness={"value": 0.02 + d + 0.001 * ((seed * 7 + len(label)) % 3)},
                             hessian_trace={"value": 100.0 + seed}, local_entropy={"0.01": {"value": 1.0, "ess": 60}},
                             weight_noise={"0.05": {"value": 0.7}}))
    return {"meta": {}, "runs": runs}


def test_the_report_reading_follows_the_data():
    from validation.flatness import reading, summarize
    store = _synthetic_store(0.01)
    assert "IS on sharpness" in reading(summarize(store), store)
    null = _synthetic_store(0.0)
    assert "the paper's methods are flatter on: no measure" in reading(summarize(null), null)   # control


def test_flatness_section_renders_the_table_and_figure(tmp_path):
    import json

    from validation.flatness import TITLE, flatness_section
    from validation.report import Report
    store = _synthetic_store(0.01)
    store["meta"] = {"flatness_config": {"le_samples": 64, "rho": 0.05}}
    (tmp_path / "f.json").write_text(json.dumps(store))
    report = Report(tmp_path / "out")
    flatness_section(report, tmp_path / "f.json")
    title, body = report.sections[-1]
    assert title == TITLE and "| IS | 4 |" in body and (tmp_path / "out" / "figures" / "flatness-weight-noise.png").exists()
