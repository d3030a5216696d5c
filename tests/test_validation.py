"""The validation harness: a check passes only when its negative control fails."""

import json

import numpy as np
import pytest

from validation import theorems
from validation.report import CheckResult, Report


def test_check_needs_a_failing_negative_control():
    assert CheckResult("x", "p", "c", measured=1e-9, tolerance=1e-6, control=1e-3).passed
    assert not CheckResult("x", "p", "c", measured=1e-9, tolerance=1e-6, control=1e-8).passed
    assert not CheckResult("x", "p", "c", measured=1e-5, tolerance=1e-6, control=1e-3).passed


def test_theorem_checks_pass_on_small_runs():
    for result in (theorems.closed_forms_vs_quadrature(n=3), theorems.theorem_3_2(n=3, steps=4),
                   theorems.algorithm_1_is_gradient_descent(n=3, steps=4)):
        assert result.passed, result


def test_report_writes_markdown_and_json(tmp_path):
    report = Report(tmp_path)
    report.add(CheckResult("a|b", "Thm", "|x| small", measured=0.0, tolerance=1.0, control=2.0))
    path = report.write()
    text = path.read_text()
    assert "\\|x\\| small" in text and "1/1 checks passed" in text
    assert json.loads((tmp_path / "results.json").read_text())[0]["passed"] is True


def test_estimator_rate_checks_pass_on_small_runs(tmp_path):
    from validation import estimators
    report = Report(tmp_path)
    result = estimators.importance_sampling_rate(report, n_rep=20, Js=(100, 400, 1600, 6400))
    assert result.passed, result
    assert (tmp_path / "figures" / "is_error_vs_J.png").exists()


def test_is_sweep_section_shows_stored_data_without_a_gpu(tmp_path, monkeypatch):
    from validation import gpu_report, mnist
    monkeypatch.setattr(gpu_report, "DATA", tmp_path)  # no stored GPU sweep: the CPU one is shown
    data = tmp_path / "sweep.json"
    data.write_text(json.dumps({"SGD": {"updates": [0, 500], "mean": [0.1, 0.85], "std": [0.0, 0.01], "seeds": 3,
                                        "median_seconds_per_update": 0.0003},
                                "IS, J=100000": {"updates": [0, 500], "mean": [0.1, 0.8], "std": [0.0, 0.02],
                                                 "seeds": 3, "median_seconds_per_update": 0.004}}))
    monkeypatch.setattr(mnist, "SWEEP_DATA", data)
    report = Report(tmp_path / "r")
    mnist.is_sweep_section(report)
    title, body = report.sections[-1]
    assert "10⁵" in title and "| IS, J=100000 | 3 | 0.800 ± 0.020 |" in body
    assert (tmp_path / "r" / "figures" / "is-sweep.png").exists()
    monkeypatch.setattr(mnist, "SWEEP_DATA", tmp_path / "missing.json")
    mnist.is_sweep_section(report)
    assert "validation.gpu --sweep" in report.sections[-1][1]


def test_gpu_sections_show_the_stored_h200_runs(tmp_path):
    """The committed GPU data reach the report: the benchmark table, the §6.4 sweep and its reading."""
    from validation import gpu_report, mnist
    report = Report(tmp_path / "r")
    gpu_report.gpu_section(report)
    title, body = report.sections[-1]
    assert "H200" in title and "| IS, J = 10⁵ (reduced), ms | ≤ 10 |" in body and "peer / ours" in body
    mnist.is_sweep_section(report, stored_only=True)
    title, body = report.sections[-1]
    assert "is-sweep-gpu-h200.json" in body and "| IS, J=100000 | 5 |" in body and "SE)" in body


def test_gpu_section_without_stored_data(tmp_path, monkeypatch):
    from validation import gpu_report
    monkeypatch.setattr(gpu_report, "DATA", tmp_path)
    report = Report(tmp_path / "r")
    gpu_report.gpu_section(report)
    assert "gpu_session.sh" in report.sections[-1][1]


def test_sgld_mixing_check_passes_and_its_control_fails(tmp_path):
    from validation import estimators
    report = Report(tmp_path)
    result = estimators.sgld_mixing(report, n_chains=16, long_times=(0.7, 2.0))
    assert result.passed, result
    assert result.control > 1.0                  # the paper's ε_j at the tour's τ = 0.2: biased
    assert (tmp_path / "figures" / "sgld_bias_vs_total_time.png").exists()


def test_readings_section_shows_the_stored_study(tmp_path, monkeypatch):
    from validation import mnist
    cells = {"SGD": [0.8] * 5, "IS": [0.5] * 5, "SGLD": [0.6] * 5, "HR": [0.7] * 5}
    entry = {"reading": "printed", "kind": "reading", "loss_scale": 1.0, "rmse": 0.123, "ordering_matches": False,
             "cells": cells, "std": {k: [0.0] * 5 for k in cells}, "checkpoints": [100, 200, 300, 400, 500],
             "seeds": 5}
    data = tmp_path / "s.json"
    data.write_text(json.dumps([entry, dict(entry, reading="beta=2", kind="beta-fit", loss_scale=2.0, rmse=0.1)]))
    monkeypatch.setattr(mnist, "READINGS_DATA", data)
    monkeypatch.setattr(mnist, "READINGS_FASHION", tmp_path / "missing.json")
    report = Report(tmp_path / "r")
    mnist.readings_section(report)
    body = report.sections[-1][1]
    assert "lowest RMSE: **printed 0.123**" in body and "| printed | reading | 5 | 0.123 | fails |" in body
    assert "best β = 2" in body


def test_robbins_monro_check_survives_its_diverging_control(tmp_path):
    """The printed a_j = c·j^{+α} diverges; Robbins–Monro raises FloatingPointError, and the check must
    read that as a failed control, not crash the validation suite."""
    from validation import estimators
    result = estimators.robbins_monro_rate(Report(tmp_path), n_rep=2, Ns=(10, 100))
    assert result.control > result.tolerance


def _covariance_store(final_scoped: float, final_learned: float, seeds=5):
    """A synthetic issue-16 store: every row at 0.5, except τ scoping and the learned rows at the given finals."""
    from validation.gaussian_covariance import FIXED, LEARNED, NETS, SCOPED
    rng = np.random.default_rng(0)
    runs = {}
    for net in NETS:
        for row in ("SGD", FIXED, "IS τ=1.5", SCOPED) + LEARNED:
            final = final_scoped if row == SCOPED else final_learned if row in LEARNED else 0.5
            runs[f"{row} [{net}]"] = [{"seed": s, "updates": [0, 100, 300, 500],
                                       "accuracy": [0.1, 0.3, 0.4, final + 0.01 * rng.standard_normal()],
                                       "tau": [1.5, 0.5, 0.1, 0.02], "seconds_median": 0.01} for s in range(seeds)]
    return {"meta": {"machine": "test", "n_updates": 500, "samples": 1000}, "runs": runs}


@pytest.mark.parametrize("learned, answer", [(0.8, "yes, on both nets"), (0.6, "no, not on both nets")])
def test_covariance_section_answers_from_the_numbers(tmp_path, learned, answer):
    from validation.gaussian_covariance import gaussian_covariance_section
    path = tmp_path / "gc.json"
    path.write_text(json.dumps(_covariance_store(final_scoped=0.8, final_learned=learned)))
    report = Report(tmp_path / "r")
    gaussian_covariance_section(report, path)
    body = report.sections[-1][1]
    assert f"Answer from these runs: {answer}" in body
    assert "| 784–200–10 | IS τ: 1.5→0.01 | 5 |" in body and (tmp_path / "r" / "figures" / "gaussian-covariance.png").exists()


def test_covariance_collect_reads_finished_runs_only(tmp_path):
    from kltrain.studies.experiments import _slug
    from validation.gaussian_covariance import collect
    runs = tmp_path / "gaussian-covariance" / "runs"
    runs.mkdir(parents=True)
    base = {"config": {"seed": 0}, "eval_updates": [0, 2, 4], "test_accuracy": [0.1, 0.2, 0.3],
            "taus": [1.5, 1.0, 0.5, 0.25], "seconds": [0.1] * 4}
    (runs / f"{_slug('IS τ=1.5 [784–10]')}-seed0.json").write_text(json.dumps(dict(base, status="done")))
    (runs / f"{_slug('IS τ=1.5 [784–10]')}-seed1.json").write_text(json.dumps(dict(base, status="running")))
    store = collect(tmp_path, tmp_path / "out.json", measure_ess=False)
    assert list(store["runs"]) == ["IS τ=1.5 [784–10]"] and len(store["runs"]["IS τ=1.5 [784–10]"]) == 1
    assert store["runs"]["IS τ=1.5 [784–10]"][0]["tau"] == [1.5, 1.0, 0.25]   # τ used in updates 1, 2 and 4
