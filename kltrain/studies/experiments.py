"""The paper's MNIST experiments (§6): Tables 6.1, 6.2 and Figures 6.1–6.5.

``run_experiment(name)`` trains every configuration of an experiment over
several seeds and writes, under ``out/name/``: one JSON per run, ``results.csv``
(label, seed, update, accuracy), ``summary.json``, the figure (PNG) and, for
tables, ``table.md`` with the paper's numbers beside ours.

Settings are the paper's: τ = 0.01, SGD learning rate 0.01, minibatch 20, 500
updates, SGLD ε_j = 1/(1000 + j) with 10³ samples, IS with 10³ samples, HR with
M = J = 30, c = 0.1, α = 0.7. Choices the paper leaves open are stated where
they are made (Fig 6.2's switch point, Fig 6.4's τ grid). SGLD is Algorithm 3 as
printed (Langevin noise N(0, ε_j), temperature T = 1); the rows "SGLD, T=1e-4" are a
different algorithm kept for comparison: at temperature 10⁻⁴ the chain concentrates on
the mode of q_{x,τ}, so Algorithm 1 becomes a proximal-point step on f (see
:class:`kltrain.estimators.SGLD`). The paper never uses a temperature. How Table 6.1's
gaps do or do not close under readings of the paper's code is :mod:`kltrain.studies.readings`.
Entropy-SGD and SAM (:mod:`kltrain.studies.peers`) are peers, not the paper's algorithms.
``quick=True`` shrinks every run for CI (40 updates, 1/30 of the samples) and writes
under ``out/name-quick/``, never over a full run.

Runs resume: each run file stores its config hash; a rerun skips a run whose file
holds the same config and status "done", and refuses (unless ``overwrite``) to
replace one that holds a different config.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes, atomic_write_csv, atomic_write_json, atomic_write_text, prepare_dir
from .batch import RunBatch, run_batch
from .runfile import InvalidRunFile, read_run_file, same_config
from .training import CovarianceTrainConfig, TrainConfig, TrainResult, load_data

CHECKPOINTS = (100, 200, 300, 400, 500)
PAPER_TABLE_6_1 = {"SGD": (0.75, 0.80, 0.85, 0.87, 0.87), "IS": (0.27, 0.45, 0.54, 0.57, 0.65),
                   "SGLD": (0.72, 0.81, 0.84, 0.86, 0.88), "HR": (0.52, 0.64, 0.70, 0.73, 0.76)}
LOW_T = 1e-4  # SGLD temperature of the comparison rows "T=1e-4": not in the paper, tends to prox_{τf}


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments: its runs by label, default seeds and the panels of its figure."""

    name: str
    title: str
    default_seeds: int
    configs: dict  # label -> TrainConfig (seed set per run)
    panels: tuple = ()  # ((panel title, (labels...)), ...) for the figure; one panel of all if empty


def _paper_four(**common):
    return {"SGD": TrainConfig("sgd", **common), "IS": TrainConfig("is", **common),
            "SGLD": TrainConfig("sgld", **common), "HR": TrainConfig("hr", **common),
            "SGLD, T=1e-4": TrainConfig("sgld", sgld_temperature=LOW_T, **common),
            "Entropy-SGD": TrainConfig("entropy-sgd", **common), "SAM": TrainConfig("sam", **common)}  # peers


def _fig_6_2():
    # The paper does not say how long SGD runs first; we take 500 SGD updates, then 500 of each.
    common = dict(n_updates=1000, sgd_first=500)
    return {"SGD": TrainConfig("sgd", n_updates=1000),
            "SGD→IS": TrainConfig("is", **common),
            "SGD→SGLD": TrainConfig("sgld", sgld_offset=2000.0, **common),
            "SGD→SGLD, T=1e-4": TrainConfig("sgld", sgld_offset=2000.0, sgld_temperature=LOW_T, **common),
            "SGD→HR": TrainConfig("hr", **common)}


def _fig_6_3():
    configs = {}
    for s in (10, 100, 1000):
        m = int(np.floor(np.sqrt(s)))  # M = J = ⌊√S⌋ for HR
        configs[f"IS, S={s}"] = TrainConfig("is", samples=s)
        configs[f"SGLD, S={s}"] = TrainConfig("sgld", samples=s)
        configs[f"HR, S={s}"] = TrainConfig("hr", hr_iterations=m, hr_samples=m)
    return configs


FIG_6_4_TAUS = ((0.001, 0.00316, 0.01), (0.01, 0.0316, 0.1), (0.1, 0.316, 1.0))  # 3 τ per panel


def _fig_6_4():
    return {f"{algo.upper()}, τ={tau:g}": TrainConfig(algo, net="small", tau=tau)
            for algo in ("sgld", "is") for row in FIG_6_4_TAUS for tau in row}


def _fig_6_5():
    configs = {"SGD": TrainConfig("sgd")}
    for s, tag in ((1.0, ""), (LOW_T, ", T=1e-4")):
        configs.update({
            f"SGLD τ=0.01{tag}": TrainConfig("sgld", tau=0.01, sgld_temperature=s),
            f"SGLD τ=1.5{tag}": TrainConfig("sgld", tau=1.5, sgld_temperature=s),
            f"SGLD τ: 0.01→1.5{tag}": TrainConfig("sgld", tau=0.01, tau_scoping=0.01, reverse_scoping=True,
                                                   sgld_temperature=s),
            f"SGLD τ: 1.5→0.01{tag}": TrainConfig("sgld", tau=1.5, tau_scoping=0.01, sgld_temperature=s)})
    return configs


def _fig_6_4_panels():
    panels = []
    for algo in ("SGLD", "IS"):
        for row in FIG_6_4_TAUS:
            panels.append((f"{algo}, τ ∈ [{row[0]:g}, {row[-1]:g}]", tuple(f"{algo}, τ={t:g}" for t in row)))
    return tuple(panels)


def _fig_6_5_panels():
    out = []
    for tag, name in (("", "T = 1, as printed"), (", T=1e-4", "temperature T = 1e-4, not the paper's")):
        out.append((f"constant τ ({name})", ("SGD", f"SGLD τ=0.01{tag}", f"SGLD τ=1.5{tag}")))
        out.append((f"scoped τ ({name})", ("SGD", f"SGLD τ: 0.01→1.5{tag}", f"SGLD τ: 1.5→0.01{tag}")))
    return tuple(out)


SWEEP_SAMPLES = (10, 100, 1000, 10_000, 100_000)


def _is_sweep():
    """The paper's open question (§6.4): does IS keep improving with many more samples?"""
    configs = {"SGD": TrainConfig("sgd")}
    configs.update({f"IS, J={J}": TrainConfig("is", samples=J) for J in SWEEP_SAMPLES})
    return configs


def _gaussian_covariance():
    """Issue 16: IS with a learned diagonal (or isotropic) covariance beside fixed τ and τ scoping.

    Both nets, IS with J = 10³, 500 updates. Fixed-τ and scoped rows are the paper's Algorithm 1
    (reduced updates); learned-C rows are :class:`kltrain.studies.training.CovarianceTrainConfig` from
    C₀ = τI (per-sample noise). Fig 6.5's own schedule (SGLD, τ: 1.5→0.01) is a reference row.
    """
    configs = {}
    for net, name in (("small", "784–10"), ("hidden", "784–200–10")):
        configs.update({
            f"SGD [{name}]": TrainConfig("sgd", net=net),
            f"IS τ=0.01 [{name}]": TrainConfig("is", net=net),
            f"IS τ=1.5 [{name}]": TrainConfig("is", net=net, tau=1.5),
            f"IS τ: 1.5→0.01 [{name}]": TrainConfig("is", net=net, tau=1.5, tau_scoping=0.01),
            f"IS diag C, C₀=0.01I [{name}]": CovarianceTrainConfig("is", net=net),
            f"IS diag C, C₀=1.5I [{name}]": CovarianceTrainConfig("is", net=net, tau=1.5),
            f"IS diag C, C₀=1.5I, rate 0.1 [{name}]": CovarianceTrainConfig("is", net=net, tau=1.5,
                                                                              covariance_rate=0.1),
            f"IS iso σ²I, C₀=1.5I [{name}]": CovarianceTrainConfig("is", net=net, tau=1.5, covariance="iso"),
            f"SGLD τ: 1.5→0.01 (Fig 6.5) [{name}]": TrainConfig("sgld", net=net, tau=1.5, tau_scoping=0.01)})
    # The C-preconditioned chain (GaussianSGLD, constant ε = 0.05) on the small net only: on 784–200–10
    # it has no reduced form and took 1.6 s per update here (13 min per run).
    configs.update({
        "C-SGLD τ=0.01, C frozen [784–10]": CovarianceTrainConfig("sgld", net="small", covariance="fixed"),
        "C-SGLD diag C, C₀=0.01I [784–10]": CovarianceTrainConfig("sgld", net="small"),
        "C-SGLD diag C, C₀=1.5I [784–10]": CovarianceTrainConfig("sgld", net="small", tau=1.5)})
    return configs


def _gaussian_covariance_panels():
    rows = ("SGD", "IS τ=0.01", "IS τ=1.5", "IS τ: 1.5→0.01", "IS diag C, C₀=0.01I", "IS diag C, C₀=1.5I",
            "IS diag C, C₀=1.5I, rate 0.1", "IS iso σ²I, C₀=1.5I", "SGLD τ: 1.5→0.01 (Fig 6.5)")
    chains = ("SGD", "SGLD τ: 1.5→0.01 (Fig 6.5)", "C-SGLD τ=0.01, C frozen", "C-SGLD diag C, C₀=0.01I",
              "C-SGLD diag C, C₀=1.5I")
    return tuple((name, tuple(f"{r} [{name}]" for r in rows)) for name in ("784–10", "784–200–10")) + (
        ("784–10, Langevin chains", tuple(f"{r} [784–10]" for r in chains)),)


EXPERIMENTS = {
    "table-6.1": Experiment("table-6.1", "Table 6.1 / Fig 6.1: held-out accuracy, 784–200–10 from random init",
                            5, _paper_four()),
    "fig-6.1": Experiment("fig-6.1", "Fig 6.1: held-out accuracy during training", 5, _paper_four()),
    "fig-6.2": Experiment("fig-6.2", "Fig 6.2: regularized training after 500 SGD updates", 3, _fig_6_2()),
    "fig-6.3": Experiment("fig-6.3", "Fig 6.3: S = 10, 100, 1000 samples per update", 3, _fig_6_3(),
                          tuple((a, tuple(f"{a}, S={s}" for s in (10, 100, 1000))) for a in ("IS", "SGLD", "HR"))),
    "fig-6.4": Experiment("fig-6.4", "Fig 6.4: choice of τ, 784–10 net (top SGLD, bottom IS)", 2, _fig_6_4(),
                          _fig_6_4_panels()),
    "fig-6.5": Experiment("fig-6.5", "Fig 6.5: scoping τ (SGLD) beside SGD", 2, _fig_6_5(), _fig_6_5_panels()),
    "is-sweep": Experiment("is-sweep", "Fig 6.3 extended: IS with J = 10 … 10⁵ samples beside SGD (784–200–10)",
                           3, _is_sweep()),
    "gaussian-covariance": Experiment(
        "gaussian-covariance", "Issue 16: learned covariance vs fixed τ vs τ scoping (IS, J = 10³)", 5,
        _gaussian_covariance(), _gaussian_covariance_panels()),
}
NAMES = tuple(EXPERIMENTS) + ("table-6.2",)


QUICK_SAMPLES = 30  # quick runs draw 1/30 of the samples (HR: M and J each 1/√30), so S=100 ≠ S=1000


def quick_config(cfg: TrainConfig) -> TrainConfig:
    """A tiny version of a run for CI: 40 updates (after ≤ 20 SGD ones), 300 test images, and every
    sample count scaled by the same factor, so runs that differ in S still differ (and in the same ratio)."""
    sgd_first = min(cfg.sgd_first, 20)
    shrink = lambda m: max(1, round(m / np.sqrt(QUICK_SAMPLES)))  # noqa: E731 (M·J shrinks by QUICK_SAMPLES)
    return replace(cfg, n_updates=40 + sgd_first, sgd_first=sgd_first,
                   samples=max(1, cfg.samples // QUICK_SAMPLES), hr_iterations=shrink(cfg.hr_iterations),
                   hr_samples=shrink(cfg.hr_samples), eval_every=8, n_test=300)


def ran_label(label: str, cfg: TrainConfig, quick: bool) -> str:
    """The label with what a quick run actually drew, so a plot never claims S=1000 for 100 samples."""
    if not quick or cfg.algorithm == "sgd":
        return label
    what = f"M=J={cfg.hr_samples}" if cfg.hr_samples == cfg.hr_iterations else \
        f"M={cfg.hr_samples}, J={cfg.hr_iterations}"
    return f"{label} [quick: {what if cfg.algorithm == 'hr' else f'{cfg.samples} samples'}]"


def experiment_folder(out, name: str, quick: bool) -> Path:
    """Where an experiment writes: quick runs get their own folder."""
    return Path(out) / (f"{name}-quick" if quick else name)


@dataclass
class ExperimentResult:
    """The runs of an experiment by label (one :class:`~kltrain.studies.training.TrainResult` per seed)."""

    experiment: Experiment
    runs: dict  # label -> [TrainResult per seed]
    quick: bool = False

    def ran(self, label) -> str:
        return ran_label(label, self.runs[label][0].config, self.quick)

    def curve(self, label):
        """(updates, mean accuracy, std accuracy) over seeds."""
        res = self.runs[label]
        acc = np.array([r.test_accuracy for r in res])
        return np.array(res[0].eval_updates), acc.mean(0), acc.std(0)


def run_experiment(name, seeds=None, quick=False, out="kltrain-results", backend="auto", progress=True,
                   printer=print, scheduler=None, workers=0, overwrite=False) -> ExperimentResult:
    """Train every configuration of ``name`` over ``seeds`` seeds; write results, figure and table.

    ``scheduler`` (a Dask address) or ``workers`` (> 0: a local cluster) shard importance
    sampling over Dask workers, one client for the whole experiment. A run whose file already
    holds the same config (and status "done") is read back, not rerun; one holding a different
    config is a ValueError unless ``overwrite``.
    """
    from .training import backend_context
    with backend_context(TrainConfig("sgd", backend=backend, scheduler=scheduler, workers=workers)) as chosen:
        return _run_experiment(name, seeds, quick, out, chosen, backend, progress, printer, overwrite)


def _run_experiment(name, seeds, quick, out, chosen, backend, progress, printer, overwrite):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {NAMES}")
    exp = EXPERIMENTS[name]
    n_seeds = (1 if quick else exp.default_seeds) if seeds is None else seeds
    folder = experiment_folder(out, name, quick)
    prepare_dir(folder / "runs", "the runs folder")   # created and probed before any training
    runs, pending = {}, {}
    for label, cfg in exp.configs.items():
        cfg = replace(quick_config(cfg) if quick else cfg, backend=backend)
        runs[label] = []
        for seed in range(n_seeds):
            path = folder / "runs" / f"{_slug(label)}-seed{seed}.json"
            run_cfg = replace(cfg, seed=seed)
            runs[label].append(finished_run(path, run_cfg, overwrite))
            if runs[label][-1] is None:   # to train: grouped by the data they share
                pending.setdefault((cfg.dataset, cfg.n_test), []).append((label, seed, run_cfg, path))
    for todo in pending.values():   # loaded lazily: a fully resumed experiment loads nothing
        # the runs side by side (kltrain.studies.batch: one set of GPU launches; on the CPU one after another)
        done = run_batch(RunBatch(tuple(c for _, _, c, _ in todo)), data=load_data(todo[0][2]), backend=chosen,
                         checkpoints=[lambda r, path=path: r.to_json(path) for *_, path in todo],  # kept at every evaluation
                         progress=progress)
        for (label, seed, _, _), res in zip(todo, done):
            runs[label][seed] = res
    for label in exp.configs:
        printer(f"  {label:<28} final accuracy {np.mean([r.test_accuracy[-1] for r in runs[label]]):.3f} "
                f"(median {np.median(np.concatenate([r.seconds for r in runs[label]])):.4f} s/update)")
    result = ExperimentResult(exp, runs, quick)
    write_outputs(result, folder)
    return result


def finished_run(path: Path, cfg: TrainConfig, overwrite: bool) -> TrainResult | None:
    """The stored result of ``cfg`` at ``path`` if it finished; ValueError if the file holds another config
    or is not a valid run (checked against its config, hashes and checkpoints: :mod:`.runfile`)."""
    if not path.exists():
        return None
    try:
        stored = read_run_file(path)
    except InvalidRunFile:
        if overwrite:
            return None
        raise
    if not same_config(stored["config"], cfg):
        if overwrite:
            return None
        old_default = stored["config"].get("projected") is True and cfg.projected is None   # before projected=None
        raise ValueError(f"{path} holds a run of a different config (hash {stored.get('config_hash')}, "
                         f"this one {TrainResult(cfg).config_hash})"
                         + ("; it was written with projected=True, the default before the estimators chose the path "
                            "by cost" if old_default else "")
                         + "; pass --overwrite (overwrite=True) or another --out")
    return TrainResult.from_dict(stored) if stored["status"] == "done" else None


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in label)


def write_outputs(result: ExperimentResult, folder: Path) -> None:
    """Write ``results.csv``, ``summary.json``, the figure and (Table 6.1) ``table.md`` into ``folder``."""
    atomic_write_csv(folder / "results.csv", ["label", "seed", "update", "test_accuracy"],
                     [(label, r.config.seed, u, a) for label, res in result.runs.items() for r in res
                      for u, a in zip(r.eval_updates, r.test_accuracy)])
    summary = {label: {"updates": result.curve(label)[0].tolist(), "mean": result.curve(label)[1].tolist(),
                       "std": result.curve(label)[2].tolist(), "seeds": len(res),
                       "median_seconds_per_update": float(np.median(np.concatenate([r.seconds for r in res]))),
                       "ran": result.ran(label)}
               for label, res in result.runs.items()}
    atomic_write_json(folder / "summary.json", summary, indent=1)
    plot_experiment(result, folder / f"{result.experiment.name}.png")
    if result.experiment.name in ("table-6.1", "fig-6.1"):
        atomic_write_text(folder / "table.md", table_6_1(result))


def table_6_1(result: ExperimentResult) -> str:
    """Our accuracy (mean ± std over seeds) at 100..500 updates beside the paper's row, and the difference.

    Shorter (quick) runs are read at the same fractions of their length instead.
    """
    n = result.experiment.configs["SGD"].n_updates
    n = min(n, max(r.config.n_updates for res in result.runs.values() for r in res))
    checkpoints = CHECKPOINTS if n >= CHECKPOINTS[-1] else tuple(n * (i + 1) // 5 for i in range(5))
    lines = ["| algorithm | " + " | ".join(f"{c} updates" for c in checkpoints) + " |",
             "|---|" + "---|" * len(checkpoints)]
    for label, res in result.runs.items():
        updates, mean, std = result.curve(label)
        ours = [(mean[list(updates).index(c)], std[list(updates).index(c)]) if c in updates else None
                for c in checkpoints]
        lines.append(f"| {label} (ours, {len(res)} seeds) | " + " | ".join(
            "—" if o is None else f"{o[0]:.3f} ± {o[1]:.3f}" for o in ours) + " |")
        paper = PAPER_TABLE_6_1.get(label)
        if paper and checkpoints == CHECKPOINTS:
            lines.append(f"| {label} (paper) | " + " | ".join(f"{p:.2f}" for p in paper) + " |")
            lines.append(f"| {label} (ours − paper) | " + " | ".join(
                "—" if o is None else f"{o[0] - p:+.3f}" for o, p in zip(ours, paper)) + " |")
        elif paper:  # quick runs: the paper's row is at 100..500 updates, not comparable
            lines.append(f"| {label} (paper, at 100–500 updates) | " + " | ".join(f"{p:.2f}" for p in paper) + " |")
    return "\n".join(lines)


def plot_experiment(result: ExperimentResult, path: Path) -> Path:
    """The experiment's figure: held-out accuracy against updates, mean ± std over seeds, one panel per group."""
    from matplotlib.figure import Figure

    panels = result.experiment.panels or ((result.experiment.title, tuple(result.runs)),)
    cols = 2 if len(panels) == 4 else min(len(panels), 3)
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (title, labels) in zip(axes.ravel(), panels):
        for label in labels:
            updates, mean, std = result.curve(label)
            ax.plot(updates, mean, label=f"{result.ran(label)} (n={len(result.runs[label])})")
            ax.fill_between(updates, mean - std, mean + std, alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("parameter updates")
        ax.set_ylabel("held-out accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path
