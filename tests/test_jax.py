"""kltrain.jax: the optax transformations take the NumPy estimators' steps, exactly or in distribution.

Two oracles, both kltrain's NumPy reference (``kltrain.estimators``) on the same flat loss:

- with ``noise=counter_noise`` the transformation draws kltrain's own ε_j, and each
  update equals the NumPy update with that seed up to float32 arithmetic (JAX computes
  in float32, the reference in float64);
- with the default ``jax.random`` noise the numbers differ, so 40 updates of each are
  compared statistically: the mean of a projection of the step and the mean squared
  step length agree within 4 standard errors of their difference, and a negative
  control (τ × 3, or the Langevin temperature × 4) must miss by more than that.
"""

from __future__ import annotations

import doctest
import os

import numpy as np
import pytest

if os.environ.get("KLTRAIN_REQUIRE_ADAPTERS") == "1":   # .ci/run: these tests must run, not skip
    import jax
    import optax
else:
    jax = pytest.importorskip("jax", reason="kltrain.jax needs jax and optax: pip install 'kltrain[jax]' "
                                            "(.ci/run installs it)")
    optax = pytest.importorskip("optax", reason="kltrain.jax needs optax: pip install 'kltrain[jax]' "
                                                "(.ci/run installs it)")

import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import kltrain.jax as kj  # noqa: E402
from kltrain import noise as np_noise  # noqa: E402
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro  # noqa: E402
from kltrain.estimators.importance import importance_partial, posterior_mean_from_partial  # noqa: E402
from kltrain.estimators.robbins_monro import robbins_monro  # noqa: E402
from kltrain.estimators.sgld import sgld_chain  # noqa: E402
from kltrain.schedules import TauScoping  # noqa: E402

TAU = 0.05
N_RUNS = 40
K_SE = 4.0
SGLD_EST = SGLD(25, temperatures=np.full(25, 1e-2))   # Σε_j = 0.25: the chain moves visibly


def problem():
    """A 5–8–3 tanh network's cross-entropy on 20 fixed points, as a pytree loss and as a flat kltrain loss."""
    k1, k2 = jax.random.split(jax.random.key(1))
    params = {"W1": 0.5 * jax.random.normal(k1, (5, 8)), "b1": jnp.zeros(8), "W2": 0.5 * jax.random.normal(k2, (8, 3))}
    X = np.random.default_rng(1).standard_normal((20, 5)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 3, 20)

    def value_fn(p):
        logits = jnp.tanh(X @ p["W1"] + p["b1"]) @ p["W2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return params, value_fn, kj.FlatLoss(value_fn, params)


def one_update(opt, params, value_fn, key=None):
    state = opt.init(params)
    if key is not None:
        state = state._replace(key=key)
    updates, state = opt.update(None, state, params, value_fn=value_fn)
    return np.asarray(ravel_pytree(optax.apply_updates(params, updates))[0], np.float64), state


# --- with kltrain's noise: the same update --------------------------------------------------------------------


def test_counter_noise_is_kltrains_counter_normals():
    key = jax.random.key(7)
    seed = kj.key_seed(key)
    got = np.asarray(kj.counter_noise(key, jnp.arange(3, 9), 101))
    np.testing.assert_allclose(got, np_noise.counter_normals(seed, np.arange(3, 9), 101), rtol=0, atol=5e-7)
    assert np.abs(got - np_noise.counter_normals(seed + 1, np.arange(3, 9), 101)).max() > 1  # negative control


@pytest.mark.parametrize("antithetic", [False, True])
def test_importance_sampling_with_counter_noise_equals_numpy(antithetic):
    params, value_fn, flat = problem()
    x0, key = flat.x0(), jax.random.key(3)
    opt = kj.local_entropy(TAU, ImportanceSampling(300, antithetic=antithetic), key=key, noise=kj.counter_noise,
                           chunk_size=64)
    got, state = one_update(opt, params, value_fn)
    seed = kj.key_seed(jax.random.split(key)[1])               # update 0 uses the key's first split
    partial, _ = importance_partial(flat, x0, TAU, seed, 0, 300, antithetic)
    ref = posterior_mean_from_partial(partial, x0, TAU)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-7)
    assert float(state.info.ess) == pytest.approx(partial.sum_w ** 2 / partial.sum_w2, rel=1e-4)
    other, _ = importance_partial(flat, x0, TAU, seed + 1, 0, 300, antithetic)   # negative control: other noise
    assert np.abs(got - posterior_mean_from_partial(other, x0, TAU)).max() > 1e-4


def test_sgld_and_robbins_monro_with_counter_noise_equal_numpy():
    params, value_fn, flat = problem()
    x0, key = flat.x0(), jax.random.key(4)
    seed = kj.key_seed(jax.random.split(key)[1])
    got, _ = one_update(kj.local_entropy(TAU, SGLD_EST, key=key, noise=kj.counter_noise), params, value_fn)
    ref, _, _ = sgld_chain(flat, x0, TAU, seed, x0, SGLD_EST.eps())
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6)    # 24 Langevin steps in float32
    assert np.abs(ref - x0).max() > 0.1
    rm = RobbinsMonro(6, 4, c=0.5)
    got, _ = one_update(kj.heat(TAU, estimator=rm, key=key, noise=kj.counter_noise), params, value_fn)
    ref, _ = robbins_monro(flat, x0, TAU, seed, rm.steps(), 4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-7)
    wrong, _ = robbins_monro(flat, x0, 1.1 * TAU, seed, rm.steps(), 4)   # negative control: τ + 10 %
    assert np.abs(got - wrong).max() > 1e-5


def test_sgld_warm_starts_from_the_last_chain_and_first_from_x():
    params, value_fn, flat = problem()
    key = jax.random.key(5)
    opt = kj.local_entropy(TAU, SGLD_EST, key=key, noise=kj.counter_noise)
    state = opt.init(jax.tree_util.tree_map(lambda a: a + 1.0, params))   # init elsewhere: the chain must not start there
    updates, state = opt.update(None, state, params, value_fn=value_fn)
    x1 = optax.apply_updates(params, updates)
    updates, state = opt.update(None, state, x1, value_fn=value_fn)
    got = np.asarray(ravel_pytree(optax.apply_updates(x1, updates))[0], np.float64)
    keys = jax.random.split(key)
    seeds = [kj.key_seed(keys[1]), kj.key_seed(jax.random.split(keys[0])[1])]
    x0 = flat.x0()
    ref1, chain, _ = sgld_chain(flat, x0, TAU, seeds[0], x0, SGLD_EST.eps())
    x1_flat = np.asarray(ravel_pytree(x1)[0], np.float64)
    ref2, _, _ = sgld_chain(flat, x1_flat, TAU, seeds[1], chain, SGLD_EST.eps())
    np.testing.assert_allclose(got, ref2, rtol=0, atol=5e-6)
    cold, _, _ = sgld_chain(flat, x1_flat, TAU, seeds[1], x1_flat, SGLD_EST.eps())   # negative control: no warm start
    assert np.abs(got - cold).max() > 1e2 * np.abs(got - ref2).max()


def test_chunking_never_changes_which_noise_a_sample_gets():
    params, value_fn, _ = problem()
    a, _ = one_update(kj.local_entropy(TAU, "is", 100, key=0, chunk_size=7), params, value_fn)
    b, _ = one_update(kj.local_entropy(TAU, "is", 100, key=0, chunk_size=100), params, value_fn)
    c, _ = one_update(kj.local_entropy(TAU, "is", 100, key=1, chunk_size=100), params, value_fn)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert np.abs(a - c).max() > 1e-4


# --- with jax.random noise: the same update in distribution -----------------------------------------------


def jax_updates(opt, params, value_fn):
    """N_RUNS updates from keys 0..N_RUNS−1, vmapped under one jit."""
    keys = jax.random.split(jax.random.key(2024), N_RUNS)
    run = jax.jit(jax.vmap(lambda k: ravel_pytree(optax.apply_updates(
        params, opt.update(None, opt.init(params)._replace(key=k), params, value_fn=value_fn)[0]))[0]))
    return np.asarray(run(keys), np.float64)


def numpy_updates(estimator, flat, x0, tau):
    return np.stack([estimator.step(np.random.default_rng(s), estimator.init(flat, x0, tau), flat, x0, tau)[0]
                     for s in range(N_RUNS)])


def discrepancy(a, b, x0, u):
    """max over two statistics of |mean_a − mean_b| / SE: the step projected on u, and its squared length per coordinate."""
    worst = 0.0
    for stat in (lambda s: (s - x0) @ u, lambda s: np.mean((s - x0) ** 2, axis=1)):
        sa, sb = stat(a), stat(b)
        se = np.sqrt(sa.var(ddof=1) / len(sa) + sb.var(ddof=1) / len(sb))
        worst = max(worst, abs(sa.mean() - sb.mean()) / se)
    return worst


@pytest.mark.parametrize("name", ["is", "sgld", "hr"])
def test_updates_agree_with_numpy_in_distribution(name):
    params, value_fn, flat = problem()
    x0 = flat.x0()
    u = -flat.grad(x0) / np.linalg.norm(flat.grad(x0))          # the direction every scheme moves along
    if name == "is":
        est, make = ImportanceSampling(300), lambda tau: kj.local_entropy(tau, "is", 300, key=0)
        control = make(3 * TAU)                                              # negative control: τ × 3
    elif name == "sgld":
        est, make = SGLD_EST, lambda tau: kj.local_entropy(tau, SGLD_EST, key=0)
        control = kj.local_entropy(TAU, SGLD(25, temperatures=np.full(25, 1e-2), temperature=4.0), key=0)  # T × 4
    else:
        est = RobbinsMonro(6, 4, c=0.5)
        make = lambda tau: kj.heat(tau, estimator=RobbinsMonro(6, 4, c=0.5), key=0)   # noqa: E731
        control = make(3 * TAU)
    reference = numpy_updates(est, flat, x0, TAU)
    assert discrepancy(jax_updates(make(TAU), params, value_fn), reference, x0, u) < K_SE
    assert discrepancy(jax_updates(control, params, value_fn), reference, x0, u) > K_SE


# --- schedules, errors, the docstring ---------------------------------------------------------------------


def test_tau_scoping_is_traced_with_the_update_count():
    f = kj.tau_function(TauScoping(1.5, 0.01))
    assert [float(f(jnp.asarray(k))) for k in (0, 500)] == pytest.approx([1.5, 1.5 / 1.01 ** 500], rel=1e-5)
    assert float(kj.tau_function(0.2)(jnp.asarray(7))) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="tau"):
        kj.tau_function(-1.0)


def test_a_nan_loss_raises_outside_jit_and_gives_nan_inside():
    params, value_fn, _ = problem()
    bad = lambda p: value_fn(p) * jnp.nan                                 # noqa: E731
    opt = kj.local_entropy(TAU, "is", 10, key=0)
    with pytest.raises(FloatingPointError, match=r"ImportanceSampling \(kltrain.jax\).*τ = 0.05.*step 1"):
        opt.update(None, opt.init(params), params, value_fn=bad)
    step = jax.jit(lambda p, s: opt.update(None, s, p, value_fn=bad))
    updates, state = step(params, opt.init(params))
    assert not bool(state.info.finite) and np.isnan(np.asarray(ravel_pytree(updates)[0])).all()


def test_a_chunk_whose_losses_are_all_infinite_only_drops_its_samples():
    """f = +inf gives weight 0: with the first chunk's ε_j made huge, IS is the estimate over the other samples."""
    from kltrain.jax.transforms import importance_sampling_update
    f = lambda v: 0.5 * jnp.sum(v ** 2)                                    # noqa: E731  f(10³⁰) = +inf in float32
    x, key = jnp.array([1.0, -2.0, 0.5]), jax.random.key(0)
    blown = lambda k, j, d: jnp.where((j < 4)[:, None], 1e30, 1.0) * kj.normal_noise(k, j, d)   # noqa: E731
    got, info = importance_sampling_update(f, x, 0.1, key, 12, 4, False, blown)
    rest, _ = importance_sampling_update(f, x, 0.1, key, 8, 8, False, lambda k, j, d: kj.normal_noise(k, j + 4, d))
    assert bool(info.finite)
    np.testing.assert_allclose(np.asarray(got), np.asarray(rest), rtol=1e-6)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="estimator must be 'is', 'sgld'"):
        kj.local_entropy(TAU, "mala", 10, key=0)
    with pytest.raises(TypeError, match="needs n_samples"):
        kj.local_entropy(TAU, "is", key=0)
    with pytest.raises(TypeError, match="needs n_iter"):
        kj.heat(TAU, key=0)
    with pytest.raises(TypeError, match="key must be a jax PRNG key"):
        kj.local_entropy(TAU, "is", 10, key="zero")
    with pytest.raises(ValueError, match="chunk_size"):
        kj.local_entropy(TAU, "is", 10, key=0, chunk_size=0)


def test_docstring_examples_run():
    import kltrain.jax.transforms as transforms
    result = doctest.testmod(transforms, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0
