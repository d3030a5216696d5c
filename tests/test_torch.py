"""kltrain.torch: the optimizers take the NumPy estimators' steps on a torch model, with the same noise.

The oracle is kltrain's NumPy reference (``ImportanceSampling``, ``SGLD``, ``RobbinsMonro``
from kltrain.estimators) run on the model's flat parameter vector through ``FlatLoss``,
given ``np.random.default_rng([seed, k])``, the stream the optimizer uses for update k.
Because the ε_j are the same numbers, the comparison is not statistical: the torch step
must equal the NumPy step to the rounding of the float32 parameters it is written into.
Each comparison has a negative control (another update's noise, or τ off by 10 %) that
must miss by far more than that.
"""

from __future__ import annotations

import copy
import doctest
import os

import numpy as np
import pytest

if os.environ.get("KLTRAIN_REQUIRE_ADAPTERS") == "1":   # .ci/run: these tests must run, not skip
    import torch
else:
    torch = pytest.importorskip("torch", reason="kltrain.torch needs PyTorch: pip install 'kltrain[torch]' "
                                                 "(.ci/run installs the CPU wheel torch==2.13.0)")

import kltrain.torch as kt  # noqa: E402
from kltrain import noise as np_noise  # noqa: E402
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro  # noqa: E402
from kltrain.estimators.sgld import SGLDState  # noqa: E402
from kltrain.schedules import TauScoping  # noqa: E402

TAU = 0.05


def small_model(batch_norm=False, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(5, 8)] + ([torch.nn.BatchNorm1d(8)] if batch_norm else []) + [
        torch.nn.Tanh(), torch.nn.Linear(8, 3)]
    model = torch.nn.Sequential(*layers).to(dtype)
    X = torch.randn(20, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2))
    return model, (lambda: torch.nn.functional.cross_entropy(model(X), y))


def numpy_step(estimator, flat, x, tau, seed, k, state=None):
    """The NumPy reference's update k on the flat loss, with the optimizer's noise stream."""
    state = estimator.init(flat, x, tau) if state is None else state
    return estimator.step(np.random.default_rng([seed, k]), state, flat, x, tau)


def assert_float32_rounding(x_torch, x_ref):
    """x_torch is x_ref rounded to float32, give or take one float32 spacing."""
    gap = np.abs(np.asarray(x_torch, np.float64) - x_ref)
    allowed = 1.5 * np.spacing(np.abs(x_ref).astype(np.float32)).astype(np.float64)
    assert np.all(gap <= allowed), f"worst gap {gap.max():.3g} where float32 spacing is {allowed[np.argmax(gap)]:.3g}"


# --- noise ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2 ** 63 - 1, 2 ** 64 - 1])
def test_hash_is_bit_exact_and_normals_equal_the_numpy_reference(seed):
    from kltrain.torch.noise import pair_hashes
    j = np.array([0, 1, 5, 2 ** 32 - 1, 123456], dtype=np.uint64)
    p = np.arange(4, 505, dtype=np.uint64)
    ref = np_noise.mix64(np_noise.stream_key(seed) + ((j[:, None] << np.uint64(32)) | p[None, :]) * np_noise.GOLDEN)
    got = pair_hashes(seed, torch.as_tensor(j.astype(np.int64)), 4, 501).numpy().view(np.uint64)
    np.testing.assert_array_equal(got, ref)
    for offset, n in [(0, 1001), (3, 1000), (1, 1), (8, 0)]:
        np.testing.assert_allclose(kt.counter_normals(seed, j.astype(np.int64), n, offset).numpy(),
                                   np_noise.counter_normals(seed, j, n, offset), rtol=0, atol=1e-12)
    other = kt.counter_normals(seed ^ 1, j.astype(np.int64), 100).numpy()     # negative control
    assert np.abs(other - np_noise.counter_normals(seed, j, 100)).max() > 1


# --- Algorithm 1 with importance sampling ------------------------------------------------------------


@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("chunk_size", [7, 500])
def test_importance_sampling_step_equals_numpy_to_float32_rounding(antithetic, chunk_size):
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    est = ImportanceSampling(300, antithetic=antithetic)
    opt = kt.LocalEntropy(model.parameters(), TAU, est, model=model, seed=11, chunk_size=chunk_size)
    opt.step(closure)
    ref, _, info = numpy_step(est, flat, x0, TAU, 11, 0)
    assert_float32_rounding(flat.x0(), ref)
    assert opt.last_info.seed == info.seed and opt.last_info.ess == pytest.approx(info.ess, rel=1e-9)
    other, _, _ = numpy_step(est, flat, x0, TAU, 11, 1)                   # negative control: update 1's noise
    assert np.abs(flat.x0() - other).max() > 1e3 * np.abs(flat.x0() - ref).max()


def test_importance_sampling_in_float64_matches_to_1e12():
    model, closure = small_model(dtype=torch.float64)
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    opt = kt.LocalEntropy(model.parameters(), TAU, "is", 400, model=model, seed=5)
    opt.step(closure)
    ref, _, _ = numpy_step(ImportanceSampling(400), flat, x0, TAU, 5, 0)
    np.testing.assert_allclose(flat.x0(), ref, rtol=0, atol=1e-12)
    assert np.abs(ref - x0).max() > 1e-3                                   # the step moved: the check has teeth


def test_tau_schedule_is_followed_step_by_step():
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    schedule = TauScoping(0.1, 0.5)
    opt = kt.LocalEntropy(model.parameters(), schedule, "is", 200, model=model, seed=2)
    x = flat.x0()
    for k in range(2):
        opt.step(closure)
        x, _, _ = numpy_step(ImportanceSampling(200), flat, x, schedule(k), 2, k)
        assert_float32_rounding(flat.x0(), x)
        x = flat.x0()
    wrong, _, _ = numpy_step(ImportanceSampling(200), flat, x, 1.1 * schedule(2), 2, 2)  # negative control: τ + 10 %
    opt.step(closure)
    assert np.abs(flat.x0() - wrong).max() > 1e-5


# --- Algorithm 1 with SGLD, Algorithm 2 with Robbins–Monro ---------------------------------------------


def test_sgld_chain_equals_numpy_over_two_warm_started_updates():
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    est = SGLD(25, temperatures=np.full(25, 1e-2))            # Σε_j = 0.25: the chain moves visibly
    opt = kt.LocalEntropy(model.parameters(), TAU, est, model=model, seed=4)
    x, state = flat.x0(), None
    for k in range(2):                                         # update 1 starts from update 0's last chain state
        start = x
        opt.step(closure)
        ref, state, info = numpy_step(est, flat, start, TAU, 4, k, state)
        assert_float32_rounding(flat.x0(), ref)
        assert opt.last_info.distance == pytest.approx(info.distance, rel=1e-5)
        x = flat.x0()
        state = SGLDState(state.chain.astype(np.float32).astype(np.float64))   # the optimizer keeps it in float32
    cold, _, _ = numpy_step(est, flat, start, TAU, 4, 1)        # negative control: update 1 without the warm start
    assert np.abs(x - cold).max() > 1e2 * np.abs(x - ref).max()


def test_robbins_monro_step_equals_numpy_to_float32_rounding():
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    opt = kt.Heat(model.parameters(), TAU, 6, 4, c=0.5, model=model, seed=9)
    opt.step(closure)
    ref, _, info = numpy_step(RobbinsMonro(6, 4, c=0.5), flat, x0, TAU, 9, 0)
    assert_float32_rounding(flat.x0(), ref)
    assert opt.last_info.residual == pytest.approx(info.residual, rel=1e-5)
    wrong, _, _ = numpy_step(RobbinsMonro(6, 4, c=0.5), flat, x0, 1.1 * TAU, 9, 0)   # negative control
    assert np.abs(flat.x0() - wrong).max() > 1e2 * np.abs(flat.x0() - ref).max()


# --- BatchNorm: what is perturbed ------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["is", "sgld", "hr"])
def test_batch_norm_running_statistics_see_only_the_unperturbed_network(estimator):
    """Parameters (BatchNorm's affine weight and bias included) are perturbed; the running statistics are
    updated once per step, by the evaluation at x, exactly as one forward pass of a copy of the model."""
    model, closure = small_model(batch_norm=True)
    bn = model[1]
    oracle, _ = small_model(batch_norm=True)
    X = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        oracle(X)                                              # one forward at the pre-step parameters
    opt = (kt.Heat(model.parameters(), TAU, 2, 2, model=model) if estimator == "hr" else
           kt.LocalEntropy(model.parameters(), TAU, estimator, 20, model=model))
    weight_before = bn.weight.detach().clone()
    opt.step(closure)
    torch.testing.assert_close(bn.running_mean, oracle[1].running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, oracle[1].running_var, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 1
    assert not torch.equal(bn.weight.detach(), weight_before)  # BatchNorm's weight is a parameter: it moved
    assert model.training and bn.track_running_stats           # the freeze is undone


def test_batch_norm_model_step_equals_numpy_and_freezing_has_teeth():
    model, closure = small_model(batch_norm=True)
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    ref, _, _ = numpy_step(ImportanceSampling(100), flat, x0, TAU, 0, 0)
    assert int(model[1].num_batches_tracked) == 0              # FlatLoss's 100 evaluations left the statistics alone
    kt.LocalEntropy(model.parameters(), TAU, "is", 100, model=model).step(closure)
    assert_float32_rounding(flat.x0(), ref)
    with torch.no_grad():                                      # negative control: an unfrozen forward does update them
        closure()
    assert int(model[1].num_batches_tracked) == 2


# --- errors, state, the docstring ------------------------------------------------------------------------


def test_a_closure_that_calls_backward_is_explained():
    model, _ = small_model()
    X, y = torch.randn(20, 5), torch.randint(0, 3, (20,))

    def closure():
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss

    for opt in (kt.LocalEntropy(model.parameters(), TAU, "is", 8, model=model),
                kt.LocalEntropy(model.parameters(), TAU, "sgld", 3, model=model)):
        with pytest.raises(RuntimeError, match="without calling .backward"):
            opt.step(closure)


def test_bad_arguments_name_themselves():
    model, closure = small_model()
    with pytest.raises(ValueError, match="estimator must be 'is', 'sgld'"):
        kt.LocalEntropy(model.parameters(), TAU, "mala", 10, model=model)
    with pytest.raises(TypeError, match="needs n_samples"):
        kt.LocalEntropy(model.parameters(), TAU, "is", model=model)
    with pytest.raises(ValueError, match="tau"):
        kt.LocalEntropy(model.parameters(), -1.0, "is", 10, model=model)
    with pytest.raises(ValueError, match="projected=True or fresh_minibatch=True"):
        kt.LocalEntropy(model.parameters(), TAU, ImportanceSampling(10, projected=True), model=model)
    with pytest.raises(ValueError, match=r"params\[0\].*not a parameter of model"):
        kt.LocalEntropy([torch.nn.Parameter(torch.zeros(3))], TAU, "is", 10, model=model)
    with pytest.raises(TypeError, match="needs n_iter"):
        kt.Heat(model.parameters(), TAU, model=model)
    with pytest.raises(TypeError, match="needs a closure"):
        kt.LocalEntropy(model.parameters(), TAU, "is", 10, model=model).step()


def test_a_non_finite_loss_names_tau_and_the_step():
    model, closure = small_model()
    count = {"n": 0}

    def sometimes_nan():
        count["n"] += 1
        return closure() * (float("nan") if count["n"] > 1 else 1.0)

    before = kt.FlatLoss(model, closure).x0()
    opt = kt.LocalEntropy(model.parameters(), TAU, "is", 10, model=model)
    with pytest.raises(FloatingPointError, match=r"LocalEntropy \(ImportanceSampling\).*nan.*τ = 0.05, step 1"):
        opt.step(sometimes_nan)
    count["n"] = 0
    with pytest.raises(FloatingPointError, match=r"Heat \(RobbinsMonro\).*not finite.*step 1"):
        kt.Heat(model.parameters(), TAU, 3, 2, model=model).step(sometimes_nan)
    np.testing.assert_array_equal(kt.FlatLoss(model, closure).x0(), before)   # failed steps leave x as it was


def test_a_chunk_whose_losses_are_all_infinite_only_drops_its_samples():
    """f = +inf gives weight 0 (not an error, not NaN): a first chunk of such samples leaves IS over the rest."""
    from kltrain.estimators.importance import importance_partial, posterior_mean_from_partial
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    calls = {"n": 0}

    def first_chunk_infinite():
        calls["n"] += 1                                         # call 1: the loss at x; call 2: samples 0..4
        return closure() + (float("inf") if calls["n"] == 2 else 0.0)

    opt = kt.LocalEntropy(model.parameters(), TAU, "is", 20, model=model, seed=6, chunk_size=5)
    opt.step(first_chunk_infinite)
    partial, _ = importance_partial(flat, x0, TAU, kt.update_seed(6, 0), 5, 20)
    assert_float32_rounding(flat.x0(), posterior_mean_from_partial(partial, x0, TAU))


def test_state_dict_resumes_the_same_noise():
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    opt = kt.LocalEntropy(model.parameters(), TAU, "sgld", 10, model=model, seed=1)
    opt.step(closure)
    saved, x1 = copy.deepcopy(opt.state_dict()), flat.x0()
    opt.step(closure)
    straight = flat.x0()
    kt.FlatParameters(model.parameters(), model).write(torch.as_tensor(x1))
    resumed = kt.LocalEntropy(model.parameters(), TAU, "sgld", 10, model=model, seed=1)
    resumed.load_state_dict(saved)
    assert resumed.k == 1
    resumed.step(closure)
    np.testing.assert_array_equal(flat.x0(), straight)


def test_docstring_examples_run():
    import kltrain.torch.optim as optim
    result = doctest.testmod(optim, raise_on_error=False)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (the code is device-agnostic)")
def test_runs_on_cuda_and_matches_the_cpu_step():
    model, closure = small_model()
    flat = kt.FlatLoss(model, closure)
    x0 = flat.x0()
    ref, _, _ = numpy_step(ImportanceSampling(100), flat, x0, TAU, 0, 0)
    model.cuda()
    X = torch.randn(20, 5, generator=torch.Generator().manual_seed(1)).cuda()
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2)).cuda()
    kt.LocalEntropy(model.parameters(), TAU, "is", 100, model=model).step(
        lambda: torch.nn.functional.cross_entropy(model(X), y))
    np.testing.assert_allclose(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy(), ref,
                               atol=1e-5)


def test_an_unstable_langevin_step_says_why():
    """ε_j ≥ 4τ: the pull toward x stops contracting; the error names the bound (τ = 1e-4, paper ε_j ≈ 1e-3)."""
    model, closure = small_model()
    opt = kt.LocalEntropy(model.parameters(), 1e-4, SGLD(100, temperatures=np.full(100, 1e-3)), model=model)
    with pytest.raises(FloatingPointError, match=r"not finite.*ε_j reaches 0.001 ≥ 4τ = 0.0004"):
        opt.step(closure)
    before = kt.FlatLoss(model, closure).x0()
    stable = kt.LocalEntropy(model.parameters(), 1e-3, SGLD(30, temperatures=np.full(30, 1e-3)), model=model)
    stable.step(closure)                                       # negative control: ε_j < 4τ runs ...
    assert np.all(np.isfinite(before))                         # ... from the parameters the failed step left alone
