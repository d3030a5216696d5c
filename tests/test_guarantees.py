"""Issue 26: the guarantees hold in the modules added since issue 11 — one test (or a few) per class
of the issue, each beside a negative control that must pass untouched.

Classes: silent divergence; errors that blame the wrong thing; unchecked inputs; a divergence handler
that crashed; data lost; resume that trusts and crashes; CLI sizes; importance sampling's diagnostics
(ESS collapse, Pareto k̂).
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import kltrain
from kltrain import gaussian
from kltrain.estimators import SGLD, ImportanceSampling
from kltrain.estimators import importance as imp
from kltrain.gaussian import GaussianIS, GaussianRobbinsMonro, GaussianSGLD
from kltrain.losses import FunctionLoss
from kltrain.studies import flatness
from kltrain.studies.peers import EntropySGD
from kltrain.studies.readings_study import StudyConfig
from toyproblems import Quadratic, plot_landscape, regularized_grid

STIFF = Quadratic(A=100 * np.eye(2), center=np.zeros(2))      # ε·c·f'' = 5·10·100: a chain that must blow up
STEEP = FunctionLoss(lambda z: 1e6 * float(z @ z), lambda z: 2e6 * z,
                     values_fn=lambda Z: 1e6 * np.sum(Z * Z, axis=1), dim=2)
BOWL = Quadratic(A=np.eye(2), center=np.zeros(2))
ONE = np.ones(2)


# -- 1. silent divergence -----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_gaussian_sgld_chain_raises_naming_itself_and_the_inner_step():
    # main returned a mean of ~1e185 here (50 steps of a factor ~5000), with no error
    with pytest.raises(FloatingPointError, match=r"GaussianSGLD .*diverged at inner step \d+"):
        GaussianSGLD(50, step=5.0).tilted_moments(0, STIFF, ONE, 10 * np.ones(2))
    m, c = GaussianSGLD(50, step=0.01).tilted_moments(0, STIFF, ONE, 0.01 * np.ones(2))   # control: in range
    assert np.all(np.isfinite(m)) and np.all(np.isfinite(c))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sgld_on_a_steep_loss_raises_instead_of_returning_1e120():
    with pytest.raises(FloatingPointError, match=r"SGLD chain \(τ = 0.1\) diverged at inner step \d"):
        kltrain.posterior_mean(STEEP, ONE, 0.1, estimator=SGLD(40), rng=0)
    assert np.all(np.abs(kltrain.posterior_mean(BOWL, ONE, 0.1, estimator=SGLD(40), rng=0)) < 2)   # control


def test_gaussian_robbins_monro_with_a_huge_step_raises():
    with pytest.raises(FloatingPointError, match="GaussianRobbinsMonro .*diverged at inner step 1"):
        GaussianRobbinsMonro(50, c=100.0).heat_moments(0, STIFF, ONE, np.ones(2))
    m, c = GaussianRobbinsMonro(50, c=0.1).heat_moments(0, BOWL, ONE, np.ones(2))         # control
    assert np.all(np.isfinite(m)) and np.all(c > 0)


def test_importance_sampling_at_an_absurd_tau_warns_or_raises_on_ess_collapse():
    est = ImportanceSampling(1000)
    with pytest.warns(imp.ESSCollapseWarning, match="collapsed to about 1 of J = 1000"):
        kltrain.posterior_mean(BOWL, ONE, 1e30, estimator=est, rng=0)       # main: 1e13, no word of it
    with pytest.raises(imp.ESSCollapse, match=r"ESS|effective sample size collapsed to 1.* τ = 1e\+30"):
        kltrain.posterior_mean(BOWL, ONE, 1e30, estimator=ImportanceSampling(1000, on_collapse="raise"), rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", imp.ESSCollapseWarning)             # controls: never a false alarm
        kltrain.posterior_mean(BOWL, ONE, 1e30, estimator=ImportanceSampling(1000, on_collapse="ignore"), rng=0)
        kltrain.posterior_mean(BOWL, ONE, 1e30, estimator=ImportanceSampling(50), rng=0)      # J < 100
        kltrain.posterior_mean(BOWL, ONE, 0.01, estimator=est, rng=0)                         # healthy ESS
    with pytest.raises(ValueError, match="on_collapse"):
        ImportanceSampling(10, on_collapse="shout")


# -- 2. errors that blame the wrong thing -------------------------------------------------------------------
@pytest.mark.parametrize("cov,match", [(-np.ones(2), "variances must be > 0"), (np.full(2, np.nan), "finite"),
                                       (np.zeros(2), "variances must be > 0"), (-np.eye(2), "positive definite"),
                                       (np.ones(3), "shape")])
@pytest.mark.parametrize("estimator", [GaussianSGLD(20), GaussianIS(20), GaussianRobbinsMonro(5)],
                         ids=["sgld", "is", "rm"])
def test_a_bad_covariance_is_named_not_blamed_on_the_loss(cov, match, estimator):
    hook = estimator.heat_moments if isinstance(estimator, GaussianRobbinsMonro) else estimator.tilted_moments
    with pytest.raises(ValueError, match=f"cov.*{match}|{match}.*cov|cov must"):
        hook(0, BOWL, ONE, cov)
    assert np.all(np.isfinite(hook(0, BOWL, ONE, np.ones(2))[0]))          # control


def test_a_full_matrix_is_never_reduced_to_its_diagonal():
    with pytest.raises(ValueError, match="must be diagonal here"):
        GaussianIS(100).tilted_moments(0, BOWL, ONE, np.array([[1.0, 0.5], [0.5, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):                # and never a non-SPD one either
        gaussian.local_entropy_step(BOWL, ONE, np.array([[1.0, 2.0], [2.0, 1.0]]))
    m, C = GaussianIS(100).tilted_moments(0, BOWL, ONE, np.diag([1.0, 2.0]))  # control: a diagonal matrix is fine
    assert C.shape == (2, 2) and C[0, 1] == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_overflow_at_tiny_tau_is_the_chain_not_the_loss_gradient():
    with pytest.raises(FloatingPointError, match="SGLD chain .*1e-300.* diverged") as info:
        kltrain.posterior_mean(BOWL, ONE, 1e-300, estimator=SGLD(100), rng=0)
    assert "loss gradient" not in str(info.value)


class NaNMoments:
    """An estimator whose first step returns NaN (as a broken chain would)."""

    def tilted_moments(self, rng, loss, mean, cov):
        return np.full(2, np.nan), cov


def test_gaussian_minimize_names_the_step_that_produced_nan():
    with pytest.raises(FloatingPointError, match=r"the mean is not finite .*estimator NaNMoments.*"
                                                 r"gaussian.minimize \(local_entropy, full\), step 1"):
        gaussian.minimize(BOWL, ONE, np.eye(2), 3, estimator=NaNMoments(), rng=0)
    with pytest.raises(FloatingPointError, match=r"GaussianSGLD.*diverged.*gaussian.minimize.*step 1"):
        gaussian.minimize(STIFF, ONE, 10 * np.eye(2), 3, family="diag", estimator=GaussianSGLD(50, step=5.0), rng=0)
    assert np.all(np.isfinite(gaussian.minimize(BOWL, ONE, np.eye(2), 3).means))   # control


# -- 3. unchecked inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,match", [
    (lambda: flatness.local_entropy_is(BOWL, [np.nan, 0.0], 0.1, n_samples=8, rng=0), ValueError, "x must be finite"),
    (lambda: flatness.hessian_trace(BOWL, [np.nan, 0.0], n_probes=3, rng=0), ValueError, "x must be finite"),
    (lambda: flatness.sharpness(BOWL, [1.0, 0.0, 0.0], rng=0), ValueError, "x has dimension 3"),
    (lambda: flatness.sharpness(BOWL, [1.0, 0.0], step=float("nan"), rng=0), ValueError, "step"),
    (lambda: flatness.FlatnessConfig(sigmas=(float("inf"),)), ValueError, r"sigmas\[0\]"),
    (lambda: flatness.FlatnessConfig(seed=2.5), TypeError, "seed"),
    (lambda: EntropySGD(gamma=float("inf")), ValueError, "gamma"),
    (lambda: EntropySGD(noise=float("inf")), ValueError, "noise"),
    (lambda: EntropySGD(nesterov=2), TypeError, "nesterov"),
    (lambda: StudyConfig(seeds=2.5), TypeError, "seeds"),
    (lambda: StudyConfig(readings="printed"), TypeError, "readings"),
    (lambda: StudyConfig(beta_grid=(-1.0,)), ValueError, r"beta_grid\[0\]"),
    (lambda: StudyConfig(dataset="cifar"), ValueError, "dataset"),
    (lambda: regularized_grid(BOWL, 0.1, n=2.5), TypeError, "n must be an integer"),
    (lambda: regularized_grid(BOWL, 0.1, box=(0, 1)), ValueError, "box"),
    (lambda: regularized_grid(BOWL, 1e6, n=8), ValueError, "GiB"),
    (lambda: plot_landscape(BOWL, [-1.0]), ValueError, "tau"),
    (lambda: plot_landscape(Quadratic(np.eye(3), np.zeros(3)), [0.1], n=8), ValueError, "2D loss"),
], ids=["le-nan-x", "hessian-nan-x", "sharpness-dim", "sharpness-step", "sigmas-inf", "seed-float", "gamma-inf",
        "noise-inf", "nesterov-2", "study-seeds", "study-readings-str", "study-beta", "study-dataset", "grid-n",
        "grid-box", "grid-huge", "landscape-tau", "landscape-3d"])
def test_hostile_inputs_are_refused_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_nan_loss_at_one_grid_point_is_named_not_a_nan_grid():
    nan_at_origin = FunctionLoss(lambda z: float(z @ z), lambda z: 2 * z, dim=2,
                                 values_fn=lambda Z: np.where(np.all(Z == 0, axis=1), np.nan, np.sum(Z * Z, axis=1)))
    with pytest.raises(ValueError, match=r"the loss is nan at \(0, 0\)"):
        regularized_grid(nan_at_origin, 0.1, n=5, box=(-1, 1, -1, 1))
    assert np.all(np.isfinite(regularized_grid(BOWL, 0.1, n=5, box=(-1, 1, -1, 1))[2]))   # control


# -- 4. the divergence handler ------------------------------------------------------------------------------
def _tiny_data():
    X = np.random.default_rng(0).random((60, 784)).astype(np.float32)
    y = np.arange(60) % 10
    return X, y, X[:20], y[:20]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_covariance_run_is_a_floating_point_error_and_kept():
    from kltrain.schemes import step_context
    from kltrain.studies.config import CovarianceTrainConfig
    from kltrain.studies.training import train
    from kltrain.gaussian import DiagonalGaussianRule
    assert step_context(DiagonalGaussianRule(0.5, GaussianIS(10)), 0).startswith("τ = 0.5")  # was: float not callable
    seen = []
    with pytest.raises(FloatingPointError, match="step 1"):
        train(CovarianceTrainConfig("is", net="small", tau=1e300, samples=20, n_updates=2, n_test=20),
              data=_tiny_data(), progress=False, checkpoint=lambda r: seen.append(r.status))
    assert seen[-1] == "diverged"


# -- 5. data lost -------------------------------------------------------------------------------------------
def test_params_npy_is_written_atomically(tmp_path, monkeypatch):
    from kltrain.cli.main import main

    def half_then_full_disk(file, arr, *args, **kwargs):
        fh = open(file, "wb") if isinstance(file, (str, os.PathLike)) else file
        fh.write(b"\x93NUMPY")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "save", half_then_full_disk)
    code = main(["train", "--algo", "sgd", "--net", "small", "--updates", "2", "--no-progress", "--backend", "numpy",
                 "--out", str(tmp_path)])
    assert code == 2
    assert not list(tmp_path.glob("*.params.npy")) and not list(tmp_path.glob(".*tmp"))   # nothing truncated left
    assert [json.loads(p.read_text())["status"] for p in tmp_path.glob("*.json")] == ["done"]   # the run is kept


def _run_file(tmp_path, **overrides):
    from kltrain.studies.config import TrainConfig
    from kltrain.studies.training import TrainResult
    cfg = TrainConfig("sgd", net="small", n_updates=2, eval_every=1, n_test=20, backend="cpu")
    res = TrainResult(cfg, [0, 1, 2], [0.1, 0.2, 0.3], [2.3, 2.2], [0.01, 0.01], [0.01, 0.01], "done")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(dict(res.to_dict(), **overrides)))
    return cfg, path


def test_flatness_probes_json_and_run_files_before_measuring(tmp_path, monkeypatch):
    import kltrain.studies.flatness as fl
    from kltrain.cli.main import main
    monkeypatch.setattr(fl, "measure", lambda *a, **k: pytest.fail("measured before probing the output"))
    _, run = _run_file(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["flatness", str(run), "--json", str(blocker / "out.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["flatness", str(run), str(bad), "--json", str(tmp_path / "out.json")]) == 2


@pytest.mark.timeout(120)
def test_sigterm_keeps_the_evaluations_with_status_interrupted(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "kltrain", "train", "--algo", "sgd", "--net", "small",
                             "--updates", "1000000", "--eval-every", "1", "--no-progress", "--backend", "numpy",
                             "--out", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 90
        while not any(len(json.loads(p.read_text() or "{}").get("eval_updates", [])) > 3
                      for p in tmp_path.glob("*.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
    finally:
        proc.kill()
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert stored["status"] == "interrupted" and len(stored["eval_updates"]) > 3
    assert "kltrain: terminated" in proc.stderr.read().decode()


# -- 6. resume ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["[]", "null", "{not json", '{"status": "done"}', '"a string"'],
                         ids=["list", "null", "garbage", "no-config", "string"])
def test_a_run_file_that_is_not_a_run_is_refused_naming_it(tmp_path, content):
    from kltrain.studies.experiments import finished_run
    cfg, path = _run_file(tmp_path)
    path.write_text(content)
    with pytest.raises(ValueError, match=f"{path}.* not a valid run file"):
        finished_run(path, cfg, overwrite=False)
    assert finished_run(path, cfg, overwrite=True) is None          # --overwrite: rerun it


def test_hand_edited_results_are_refused_and_intact_ones_read_back(tmp_path):
    from kltrain.studies.experiments import finished_run
    cfg, path = _run_file(tmp_path)
    assert finished_run(path, cfg, overwrite=False).test_accuracy == [0.1, 0.2, 0.3]   # control
    stored = json.loads(path.read_text())
    stored["test_accuracy"][2] = 0.99
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="results do not match their results_hash"):
        finished_run(path, cfg, overwrite=False)
    del stored["results_hash"]                                      # an older file: its checkpoints still checked
    stored["eval_updates"] = [0, 2]
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="evaluations are at"):
        finished_run(path, cfg, overwrite=False)


def test_a_cpu_run_resumes_under_the_default_auto_backend(tmp_path):
    from dataclasses import replace

    from kltrain.studies.experiments import finished_run
    cfg, path = _run_file(tmp_path)                                  # stored with backend "cpu"
    assert finished_run(path, replace(cfg, backend="auto"), overwrite=False) is not None
    with pytest.raises(ValueError, match="different config"):        # control: another setting is another run
        finished_run(path, replace(cfg, backend="auto", learning_rate=0.5), overwrite=False)


# -- 7. the CLI: sizes the machine cannot hold ---------------------------------------------------------------
def test_absurd_sizes_are_refused_up_front_in_one_line(capsys):
    from kltrain.cli.args import report_error
    from kltrain.cli.main import main
    start = time.perf_counter()
    assert main(["train", "--algo", "is", "--samples", str(10 ** 12), "--no-progress", "--out", "/tmp/kltrain-x"]) == 2
    assert main(["bench", "--samples", str(10 ** 12), "--no-reference"]) == 2
    err = capsys.readouterr().err
    assert err.count("kltrain: error:") == 2 and "GiB" in err and "Traceback" not in err
    assert time.perf_counter() - start < 10                          # refused before any data or kernel
    assert report_error(MemoryError("Unable to allocate 7.45 GiB"), debug=False) == 1   # one line, exit 1
    assert "not enough memory: Unable to allocate 7.45 GiB" in capsys.readouterr().err


# -- 8. Pareto k̂ of the importance weights (PSIS) ------------------------------------------------------------
def pareto_log_weights(xi, n, seed):
    """log w with w = U^{−ξ}, U uniform: a Pareto law whose tail has generalized-Pareto shape exactly ξ."""
    return -xi * np.log(np.random.default_rng(seed).uniform(size=n))


@pytest.mark.parametrize("xi", [0.3, 0.6, 0.9])
def test_pareto_k_recovers_a_known_tail_shape(xi):
    pytest.importorskip("arviz_stats")
    # M = 3√J = 424 tail draws: the shape's standard error is about (1 + ξ)/√M ≤ 0.09; tolerance 0.2
    estimates = [imp.pareto_k(pareto_log_weights(xi, 20_000, seed)) for seed in range(3)]
    assert abs(np.mean(estimates) - xi) < 0.2, estimates
    assert abs(np.mean(estimates) - (xi + 0.6 if xi < 0.6 else xi - 0.6)) > 0.2      # negative control: another ξ


# f = −|x|²/2 at x = 0: w = e^{|x'|²/2} with |x'|² ~ τχ²₂, so P(w > t) = t^{−1/τ}: the weights' tail shape is τ
HILL = FunctionLoss(lambda z: -0.5 * float(z @ z), lambda z: -z, values_fn=lambda Z: -0.5 * np.sum(Z * Z, axis=1), dim=2)


def test_pareto_k_in_the_info_follows_the_weights_tail_and_warns_above_0_7():
    pytest.importorskip("arviz_stats")
    light = np.random.default_rng(0).normal(0, 0.1, 20_000)          # log-normal weights, σ = 0.1: no heavy tail
    assert imp.pareto_k(light) < 0.3
    _, _, info = ImportanceSampling(1000).step(np.random.default_rng(0), None, BOWL, ONE, 0.01)
    assert info.pareto_k is not None and info.pareto_k < 0.7          # bounded weights e^{−f} ≤ 1: k̂ < 0
    est = ImportanceSampling(20_000, on_collapse="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error", imp.ParetoKWarning)            # control: τ = 0.3 must not warn
        _, _, info = est.step(np.random.default_rng(0), None, HILL, np.zeros(2), 0.3)
    assert abs(info.pareto_k - 0.3) < 0.2
    with pytest.warns(imp.ParetoKWarning, match="k̂ exceeds 0.7"):
        _, _, info = est.step(np.random.default_rng(0), None, HILL, np.zeros(2), 0.95)
    assert abs(info.pareto_k - 0.95) < 0.2
    assert np.isnan(imp.pareto_k(np.zeros(1000)))                    # equal weights: no tail to fit
    assert np.isnan(imp.pareto_k(np.zeros(10)))                      # too few samples


def test_pareto_k_is_none_without_arviz_stats(monkeypatch):
    for name in {"arviz_stats", "arviz_stats.base"} | {m for m in sys.modules if m.startswith("arviz_stats.")}:
        monkeypatch.setitem(sys.modules, name, None)                  # import arviz_stats now fails
    imp._pareto_khat_fn.cache_clear()
    try:
        assert imp.pareto_k(pareto_log_weights(0.9, 2000, 0)) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error", imp.ParetoKWarning)
            _, _, info = ImportanceSampling(20_000, on_collapse="ignore").step(
                np.random.default_rng(0), None, HILL, np.zeros(2), 0.95)
        assert info.pareto_k is None
    finally:
        imp._pareto_khat_fn.cache_clear()
