"""Fuzz tier (issue 11): hostile arguments to the public API end in a documented exception or a
finite result of the right shape — never NaN, a hang, or an undocumented error.

Documented: ValueError, TypeError, FloatingPointError (a result that would not be finite),
ConnectionError. Sizes are kept tiny so the default ("ci") profile runs in seconds.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kltrain
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.losses import FunctionLoss
from kltrain.nets import MLP
from kltrain.studies.training import TrainConfig
from toyproblems import Quadratic

DOCUMENTED = (ValueError, TypeError, FloatingPointError, ConnectionError)

# τ across the whole float range, plus the values that must be refused
taus = st.one_of(st.floats(1e-300, 1e300).map(lambda t: float(f"{t:.3g}")),
                 st.sampled_from([0.0, -1.0, float("nan"), float("inf"), True, "0.1", None]))
entries = st.one_of(st.floats(-3, 3), st.sampled_from([1e200, -1e300, np.nan, np.inf, -np.inf]))
points = st.one_of(st.lists(entries, min_size=2, max_size=2).map(np.array),           # right shape
                   st.lists(entries, min_size=0, max_size=4).map(np.array),           # wrong length
                   st.just(np.zeros((2, 2))), st.just("ab"), st.just(np.array([1j, 0])))
seeds = st.one_of(st.integers(0, 2 ** 64), st.integers(-5, -1), st.floats(0, 10), st.just("3"), st.none())
sizes = st.one_of(st.integers(-2, 40), st.floats(0, 5), st.just(True), st.just("10"))

QUAD = Quadratic(A=np.diag([1.0, 3.0]), center=np.array([0.5, -0.2]))
WELL = FunctionLoss(lambda x: float(np.log1p(x @ x)), lambda x: 2 * x / (1 + x @ x), dim=2, length_scale=0.5,
                    values_fn=lambda X: np.log1p(np.sum(X * X, axis=1)))


def _estimator(kind, n):
    return {"exact": lambda: None, "is": lambda: ImportanceSampling(n), "sgld": lambda: SGLD(n)}[kind]()


def _check(call, shape):
    """The contract: a documented exception, or a finite array of ``shape``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # overflow inside numpy is allowed to warn...
        try:
            out = call()
        except DOCUMENTED:
            return
    out = np.asarray(out)                                 # ...but never to come back as the answer
    assert out.shape == shape and np.all(np.isfinite(out)), out


@given(loss=st.sampled_from([QUAD, WELL]), x=points, tau=taus, kind=st.sampled_from(["exact", "is", "sgld"]),
       n=st.integers(1, 30), seed=seeds)
def test_regularized_quantities(loss, x, tau, kind, n, seed):
    est = _estimator(kind, n)
    _check(lambda: kltrain.posterior_mean(loss, x, tau, estimator=est, rng=seed), (2,))
    if kind == "exact":
        _check(lambda: kltrain.local_entropy(loss, x, tau), ())
        _check(lambda: kltrain.heat_regularization(loss, x, tau), ())


@given(loss=st.sampled_from([QUAD, WELL]), x0=points, tau=taus, steps=sizes, n=st.integers(1, 20), seed=seeds,
       heat=st.booleans())
def test_schemes(loss, x0, tau, steps, n, seed, heat):
    if heat:
        call = lambda: kltrain.minimize_heat(loss, x0, tau, steps, estimator=RobbinsMonro(n, 3), rng=seed)  # noqa: E731
    else:
        call = lambda: kltrain.minimize_local_entropy(  # noqa: E731
            loss, x0, tau, steps, estimator=ImportanceSampling(n), rng=seed)
    shape = (steps + 1, 2) if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else None
    _check(call, shape)


@given(samples=sizes, seed=seeds, tau=taus, updates=sizes, backend=st.sampled_from(["cpu", "gpu", "", "numpy"]),
       dataset=st.sampled_from(["mnist", "cifar"]))
def test_train_config(samples, seed, tau, updates, backend, dataset):
    try:
        cfg = TrainConfig("is", samples=samples, seed=seed, tau=tau, n_updates=updates, backend=backend,
                          dataset=dataset)
    except (ValueError, TypeError):
        return
    assert cfg.samples >= 1 and cfg.seed >= 0 and cfg.tau > 0 and backend in ("cpu", "numpy")


@given(a=sizes, b=sizes)
def test_mlp_sizes(a, b):
    try:
        net = MLP((a, b))
    except (ValueError, TypeError):
        return
    assert net.n_params == a * b + b and net.init(0).shape == (net.n_params,)


@pytest.mark.parametrize("tau", [1e-300, 1e300])
def test_extreme_tau_on_the_quadratic_is_finite_or_refused(tau):   # a fixed anchor beside the random draws
    _check(lambda: kltrain.posterior_mean(QUAD, [0.1, 0.2], tau), (2,))


# -- issue 26: the modules added since issue 11 -------------------------------------------------------------
from kltrain import gaussian  # noqa: E402
from kltrain.gaussian import GaussianIS, GaussianRobbinsMonro, GaussianSGLD  # noqa: E402
from kltrain.studies import flatness  # noqa: E402
from kltrain.studies.peers import SAM, EntropySGD  # noqa: E402
from kltrain.studies.readings_study import StudyConfig  # noqa: E402
from toyproblems import regularized_grid  # noqa: E402

variances = st.one_of(st.floats(1e-300, 1e300).map(lambda v: float(f"{v:.3g}")),
                      st.sampled_from([0.0, -1.0, float("nan"), float("inf")]))
covs = st.one_of(variances,                                                           # τ: τI
                 st.lists(variances, min_size=2, max_size=2).map(np.array),           # variances
                 st.lists(variances, min_size=1, max_size=3).map(np.array),           # wrong length
                 st.tuples(variances, st.floats(-3, 3), variances).map(               # a 2×2 matrix, SPD or not
                     lambda t: np.array([[t[0], t[1]], [t[1], t[2]]])),
                 st.just(np.ones((3, 3))), st.just("ab"), st.just(np.array([1j, 1.0])))
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
                    st.sampled_from([True, "1", None, 1e300, -0.0]))
counts = st.one_of(st.integers(-2, 12), st.floats(0, 5), st.just(True), st.just("4"))


@given(x=points, cov=covs, est=st.sampled_from(["exact", "is", "sgld", "rm"]), n=st.integers(1, 30),
       family=st.sampled_from(["full", "diag", "iso", "fixed", "bogus"]), seed=seeds, steps=counts)
def test_gaussian_schemes(x, cov, est, n, family, seed, steps):
    estimator = {"exact": None, "is": GaussianIS(max(n, 2)), "sgld": GaussianSGLD(n, step=0.1),
                 "rm": GaussianRobbinsMonro(n, 3)}[est]
    form = "heat" if est == "rm" else "local_entropy"
    fine_steps = isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0
    _check(lambda: gaussian.minimize(QUAD, x, cov, steps, form=form, family=family, estimator=estimator,
                                     rng=seed).means, (steps + 1, 2) if fine_steps else None)
    step = gaussian.heat_step if form == "heat" else gaussian.local_entropy_step
    _check(lambda: step(QUAD, x, cov, family=family, estimator=estimator, rng=seed)[0], (2,))


@given(x=points, cov=covs, est=st.sampled_from(["is", "sgld", "rm"]), n=st.integers(1, 30), seed=seeds)
def test_gaussian_sampling_hooks(x, cov, est, n, seed):
    if est == "rm":
        call = lambda: GaussianRobbinsMonro(n, 3).heat_moments(seed, WELL, x, cov)  # noqa: E731
    else:
        e = GaussianIS(max(n, 2)) if est == "is" else GaussianSGLD(n, step=0.1)
        call = lambda: e.tilted_moments(seed, WELL, x, cov)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            m, c = call()
        except DOCUMENTED:
            return
    assert m.shape == (2,) and np.all(np.isfinite(m)) and np.all(np.isfinite(c)) and np.all(np.diag(np.atleast_2d(c)) >= 0)


@given(x=points, tau=taus, n=counts, rho=numbers, step=numbers, seed=seeds)
def test_flatness_measures(x, tau, n, rho, step, seed):
    _check(lambda: flatness.local_entropy_is(WELL, x, tau, n_samples=n, rng=seed).value, ())
    _check(lambda: flatness.sharpness(WELL, x, rho=rho, n_steps=n, step=step, rng=seed).value, ())
    _check(lambda: flatness.hessian_trace(WELL, x, n_probes=n, step=step, rng=seed).value, ())


@given(gamma=numbers, scoping=numbers, noise=numbers, alpha=numbers, lr=numbers, inner=counts, rho=numbers,
       x=points, seed=seeds)
def test_peer_rules(gamma, scoping, noise, alpha, lr, inner, rho, x, seed):
    from kltrain.schemes import run
    for make in (lambda: EntropySGD(learning_rate=lr, inner_steps=inner, gamma=gamma, scoping=scoping, noise=noise,
                                    alpha=alpha, fresh_minibatch=False),
                 lambda: SAM(learning_rate=lr, rho=rho)):
        try:
            rule = make()
        except (ValueError, TypeError):
            continue
        _check(lambda: run(rule, QUAD, x, 3, rng=seed)[0], (4, 2))


@given(seeds_=counts, beta_seeds=st.one_of(st.none(), counts), readings=st.sampled_from(
       [("printed",), (), "printed", ("nope",), ["printed", "batch-sum"]]), grid=st.one_of(
       st.tuples(numbers), st.just(()), st.just("1,2")), quick=st.sampled_from([True, False, 1, "no"]),
       dataset=st.sampled_from(["mnist", "fashion-mnist", "cifar"]))
def test_study_config(seeds_, beta_seeds, readings, grid, quick, dataset):
    try:
        study = StudyConfig(seeds=seeds_, beta_seeds=beta_seeds, readings=readings, beta_grid=grid, quick=quick,
                            dataset=dataset)
    except (ValueError, TypeError):
        return
    assert study.seeds >= 1 and all(b > 0 and np.isfinite(b) for b in study.beta_grid)
    assert all(n >= 1 for _, n in study.plan())


@given(tau=taus, n=st.one_of(st.integers(-1, 12), st.just(2.5), st.just(10 ** 7)),
       box=st.one_of(st.just((-1.0, 1.0, -1.0, 1.0)), st.tuples(numbers, numbers, numbers, numbers),
                     st.just((0.0, 1.0))), kind=st.sampled_from(["local_entropy", "heat", "other"]))
def test_regularized_grid(tau, n, box, kind):
    from unittest import mock

    import toyproblems.grid
    with mock.patch.object(toyproblems.grid, "MAX_BYTES", 2 ** 26):   # 64 MiB: the refusal, not the machine, is tested
        _check(lambda: regularized_grid(WELL, tau, kind=kind, box=box, n=n)[2],
               (n, n) if isinstance(n, int) and n >= 2 else None)
