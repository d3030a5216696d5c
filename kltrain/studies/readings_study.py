"""The Table 6.1 falsification study: train every reading of :mod:`kltrain.studies.readings`.

:func:`run_study` trains every (reading, algorithm, seed), writing one JSON per run as
it finishes (temp file + ``os.replace``) keyed by a hash of the run's config, so a
rerun skips what is done; readings that leave an algorithm's config unchanged share
its runs. It then writes ``summary.json`` (a list of ``{"reading", "rmse",
"ordering_matches", "cells"}``), ``table.md`` and one figure panel per reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .._checks import check_count, check_flag, check_numbers, check_positive
from .._io import config_hash as config_hash_of
from .config import DATASETS
from .runfile import InvalidRunFile, expected_evaluations

from .readings import (ALGORITHMS, BETA_GRID, CHECKPOINTS, PAPER_TABLE_6_1, READINGS, Reading, beta_readings,
                       checkpoints_for, fit_beta, ordering_matches, paper_configs, rmse)
from .batch import RunBatch, run_batch
from .training import TrainConfig, load_data


def config_hash(cfg: TrainConfig) -> str:
    """A hash of everything that changes a run's numbers (not the backend or Dask settings)."""
    d = {k: v for k, v in asdict(cfg).items() if k not in ("backend", "scheduler", "workers")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def write_json_atomic(path: Path, obj) -> Path:
    """Write JSON to a temp file beside ``path``, then rename it over ``path`` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
    return path


def stored_run(cfg: TrainConfig, folder: Path) -> dict | None:
    """The stored run of ``cfg`` (same hash) or None; InvalidRunFile naming the file if it is not a
    valid record of ``cfg`` (unreadable, another hash, evaluations or accuracies that ``cfg`` does not make)."""
    key = config_hash(cfg)
    path = Path(folder) / f"{cfg.algorithm}-{key}.json"
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InvalidRunFile(f"{path} is not a valid run file: cannot read it as JSON ({type(err).__name__}); "
                             "delete it") from None
    acc = stored.get("test_accuracy") if isinstance(stored, dict) else None
    why = ("it is not a JSON object" if not isinstance(stored, dict) else
           f"its config_hash is {stored.get('config_hash')!r}, not {key!r}" if stored.get("config_hash") != key else
           "its evaluations are not those of its config"
           if stored.get("eval_updates") != expected_evaluations(cfg.n_updates, cfg.eval_every) else
           "its test_accuracy is not one number in [0, 1] per evaluation"
           if not (isinstance(acc, list) and len(acc) == len(stored["eval_updates"])
                   and all(a is None or (isinstance(a, (int, float)) and 0 <= a <= 1) for a in acc)) else
           "its results do not match their results_hash (edited by hand?)"
           if "results_hash" in stored and stored["results_hash"] != _results_hash(stored) else None)
    if why:
        raise InvalidRunFile(f"{path} is not a valid run file: {why}; delete it")
    return stored


def _results_hash(record: dict) -> str:
    return config_hash_of({k: record.get(k) for k in ("eval_updates", "test_accuracy")})


def run_once(cfg: TrainConfig, folder: Path, data, progress=False) -> dict:
    """The stored run of ``cfg`` if present (same hash), else train it and store it."""
    return run_many([cfg], folder, data, progress)[0]


def run_many(cfgs, folder: Path, data, progress=False) -> list[dict]:
    """:func:`run_once` of each config; those not stored are trained side by side (kltrain.studies.batch:
    one set of GPU launches, or one after another on the CPU), each stored as it finishes."""
    records: list = [stored_run(cfg, folder) for cfg in cfgs]
    todo = {config_hash(cfg): cfg for cfg, rec in zip(cfgs, records) if rec is None}   # shared configs train once
    if todo:
        batch = RunBatch(tuple(todo.values()))
        results = run_batch(batch, data=data, progress=progress,
                            checkpoints=[lambda r, cfg=cfg: _store_finished(cfg, folder, r) for cfg in batch.configs])
        done = {config_hash(cfg): _record(cfg, res) for cfg, res in zip(batch.configs, results)}
        records = [done[config_hash(cfg)] if rec is None else rec for cfg, rec in zip(cfgs, records)]
    return records


def _record(cfg: TrainConfig, res) -> dict:
    return {"config_hash": config_hash(cfg), "config": asdict(cfg), "eval_updates": res.eval_updates,
            "test_accuracy": res.test_accuracy, "seconds_per_update": res.seconds_per_update,
            "seconds": float(np.sum(res.seconds))}


def _store_finished(cfg: TrainConfig, folder: Path, res) -> None:
    """train's checkpoint: store the record once the run is done (unfinished runs are not stored)."""
    if res.status == "done":
        record = _record(cfg, res)
        write_json_atomic(Path(folder) / f"{cfg.algorithm}-{config_hash(cfg)}.json",
                          dict(record, results_hash=_results_hash(record)))


# -- the study ------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyConfig:
    """What ``kltrain reproduce table-6.1-readings`` runs."""

    seeds: int = 5                       # seeds per (reading, algorithm) (issue 10: ≥ 5)
    beta_seeds: int | None = None        # seeds for the β-fit control (None: as ``seeds``)
    readings: tuple = tuple(READINGS)    # reading names (see READINGS)
    beta_grid: tuple = BETA_GRID         # the control's β values; () to skip it
    quick: bool = False                  # 40-update runs, 100 samples, 300 test images (smoke test)
    dataset: str = "mnist"               # mnist (the embedded 4k/1k subset by default) | fashion-mnist (60k/10k)
    seeds_for: tuple = ()                # ((reading, n_seeds), ...): fewer (or more) seeds for some readings
    stored_only: bool = False            # train nothing: summarize seeds 0..k−1 stored for all four algorithms

    def __post_init__(self):
        check_count(self.seeds, "seeds", 1)
        if self.beta_seeds is not None:
            check_count(self.beta_seeds, "beta_seeds", 1)
        for name in ("readings", "seeds_for", "beta_grid"):
            if isinstance(getattr(self, name), (str, bytes)) or not isinstance(getattr(self, name), (tuple, list)):
                raise TypeError(f"{name} must be a tuple, got {getattr(self, name)!r}")
        for i, pair in enumerate(self.seeds_for):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"seeds_for[{i}] must be a (reading, n_seeds) pair, got {pair!r}")
            check_count(pair[1], f"seeds_for[{i}] seeds", 1)
        unknown = [r for r in tuple(self.readings) + tuple(r for r, _ in self.seeds_for) if r not in READINGS]
        if unknown:
            raise ValueError(f"unknown readings {unknown}; choose from {tuple(READINGS)}")
        check_numbers(self.beta_grid, "beta_grid", check_positive)
        check_flag(self.quick, "quick")
        check_flag(self.stored_only, "stored_only")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")

    def base(self) -> dict:
        from .experiments import quick_config
        configs = paper_configs(dataset=self.dataset)
        return {k: quick_config(c) for k, c in configs.items()} if self.quick else configs

    def plan(self) -> list:
        """[(Reading, n_seeds), ...]: readings first, then the β control."""
        override = dict(self.seeds_for)
        plan = [(READINGS[r], override.get(r, self.seeds)) for r in self.readings]
        plan += [(r, self.beta_seeds or self.seeds) for r in beta_readings(self.beta_grid).values()]
        return plan


def study_folder_name(study: StudyConfig) -> str:
    """table-6.1-readings[-DATASET][-quick]: a quick study never writes over a full one."""
    return ("table-6.1-readings" + ("" if study.dataset == "mnist" else f"-{study.dataset}")
            + ("-quick" if study.quick else ""))


def run_study(study: StudyConfig, out="kltrain-results", printer=print, progress=False) -> list:
    """Train the plan (skipping stored runs), then write summary.json, table.md and the figure."""
    folder = Path(out) / study_folder_name(study)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    base = study.base()
    data = None if study.stored_only else load_data(next(iter(base.values())))
    summary = []
    for reading, n_seeds in study.plan():
        if study.stored_only:
            records = _stored_records(reading, base, folder / "runs", n_seeds)
            if records is None:
                printer(f"  {reading.name:<22} no seed stored for all four algorithms: skipped")
                continue
        else:
            cfgs = [(label, replace(reading.apply(cfg), seed=s)) for label, cfg in base.items() for s in range(n_seeds)]
            flat = run_many([c for _, c in cfgs], folder / "runs", data, progress)
            records = {label: [rec for (lab, _), rec in zip(cfgs, flat) if lab == label] for label in base}
        entry = summarize(reading, records)
        summary.append(entry)
        holds = "yes" if entry["ordering_matches"] else "no "
        printer(f"  {reading.name:<22} RMSE {entry['rmse']:.3f}  ordering {holds}"
                f"  final " + " ".join(f"{a} {entry['cells'][a][-1]:.3f}" for a in ALGORITHMS))
        write_outputs(summary, folder, study)
    return summary


def _stored_records(reading, base, folder, max_seeds):
    """{label: [stored runs of seeds 0..k−1]} with k the most seeds (≤ max_seeds) stored for every algorithm."""
    records = {label: [] for label in base}
    for s in range(max_seeds):
        runs = {label: stored_run(replace(reading.apply(cfg), seed=s), folder) for label, cfg in base.items()}
        if any(r is None for r in runs.values()):
            break
        for label, r in runs.items():
            records[label].append(r)
    return records if records["SGD"] else None


def summarize(reading: Reading, records: dict) -> dict:
    """Mean/std over seeds at the checkpoints, RMSE and ordering against the paper."""
    n = records["SGD"][0]["eval_updates"][-1]
    marks = checkpoints_for(n)
    cells, std, curves = {}, {}, {}
    for label, runs in records.items():
        ups = runs[0]["eval_updates"]
        acc = np.array([r["test_accuracy"] for r in runs])
        at = acc[:, [ups.index(m) for m in marks]]
        cells[label], std[label] = at.mean(0).round(4).tolist(), at.std(0).round(4).tolist()
        curves[label] = {"updates": ups, "mean": acc.mean(0).round(4).tolist()}
    return {"reading": reading.name, "kind": reading.kind, "loss_scale": reading.loss_scale,
            "rmse": rmse(cells), "ordering_matches": ordering_matches(cells), "cells": cells, "std": std,
            "checkpoints": list(marks), "seeds": len(records["SGD"]),
            "seconds": {k: round(float(np.sum([r["seconds"] for r in v])), 1) for k, v in records.items()},
            "curves": curves}


def write_outputs(summary: list, folder: Path, study: StudyConfig) -> None:
    """Write the study's ``summary.json``, ``table.md`` and figure into ``folder``."""
    compact = [{k: v for k, v in e.items() if k != "curves"} for e in summary]
    write_json_atomic(folder / "summary.json", compact)
    (folder / "table.md").write_text(table_markdown(summary, study))
    plot_readings(summary, folder / "table-6.1-readings.png")


def table_markdown(summary: list, study: StudyConfig | None = None) -> str:
    """The RMSE table (readings, then the β control) and each reading's Table 6.1."""
    lines = ["| reading | kind | seeds | RMSE vs paper (20 cells) | final-column ordering SGLD > SGD > HR > IS |"
             " SGD | IS | SGLD | HR (final) |", "|---|---|---|---|---|---|---|---|---|"]
    for e in sorted(summary, key=lambda e: (e["kind"] != "reading", e["rmse"])):
        lines.append(f"| {e['reading']} | {e['kind']} | {e['seeds']} | {e['rmse']:.3f} | "
                     f"{'holds' if e['ordering_matches'] else 'fails'} | "
                     + " | ".join(f"{e['cells'][a][-1]:.3f}" for a in ALGORITHMS) + " |")
    if any(e["checkpoints"] != list(CHECKPOINTS) for e in summary):
        lines += ["", "Quick runs: checkpoints at fractions of a short run, compared with the paper's 100–500-update "
                      "cells only as a smoke test; these RMSEs test nothing."]
    betas = {e["loss_scale"]: e["rmse"] for e in summary if e["kind"] == "beta-fit"}
    if betas:
        lines += ["", f"β fit (control, one free parameter): best β = {fit_beta(betas):g} "
                      f"(RMSE {betas[fit_beta(betas)]:.3f})."]
    for e in summary:
        marks = e["checkpoints"]
        at = ", ".join(map(str, marks))
        lines += ["", f"**{e['reading']}** ({e['seeds']} seeds; mean ± std at {at} updates)", "",
                  "| algorithm | " + " | ".join(map(str, marks)) + " |", "|---|" + "---|" * len(marks)]
        for a in ALGORITHMS:
            lines.append(f"| {a} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(e["cells"][a], e["std"][a]))
                         + " |")
            lines.append(f"| {a} (paper) | " + " | ".join(f"{p:.2f}" for p in PAPER_TABLE_6_1[a]) + " |")
    return "\n".join(lines) + "\n"


def plot_readings(summary: list, path: Path) -> Path:
    """One panel per reading: mean held-out accuracy of the four algorithms, paper's cells as markers."""
    from matplotlib.figure import Figure  # the object-oriented API: no global backend is touched

    cols = min(4, len(summary))
    rows = int(np.ceil(len(summary) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.7 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors = dict(zip(ALGORITHMS, ("C0", "C1", "C2", "C3")))
    for ax, e in zip(axes.ravel(), summary):
        for a, c in colors.items():
            cur = e["curves"][a]
            ax.plot(cur["updates"], cur["mean"], color=c, lw=1.2, label=a)
            if e["checkpoints"] == list(CHECKPOINTS):
                ax.plot(CHECKPOINTS, PAPER_TABLE_6_1[a], "o", color=c, ms=3)
        ax.set_title(f"{e['reading']} (RMSE {e['rmse']:.3f}, n={e['seeds']})", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6, title="lines: ours; dots: paper", title_fontsize=6)
    for ax in axes.ravel()[len(summary):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)
