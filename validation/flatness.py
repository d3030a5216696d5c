"""Which method finds flatter minima? The flatness study of issue 14, and its report section.

``python -m validation.flatness train`` trains SGD, IS, SGLD, HR (the paper's settings,
§6.2) and the peers Entropy-SGD and SAM (:mod:`kltrain.studies.peers`) on the 784–200–10 net,
keeping each run's final weights in a cache folder; ``python -m validation.flatness
measure`` computes the measures of :mod:`kltrain.studies.flatness` at those weights and appends
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
# Loss-matched controls: SGD stopped early (a prefix of the SGD run: same init and minibatches), at training
# losses near those the paper's methods reach after 500 updates (HR ≈ 1.4 ~ SGD at 100; IS ≈ 0.8 ~ SGD at 300).
CONTROLS = {"SGD, 100 updates": 100, "SGD, 300 updates": 300}
METHODS.update({label: "sgd" for label in CONTROLS})


def _slug(label):
    return "".join(c for c in label.lower() if c.isalnum())


def train_runs(seeds, cache: Path, labels=tuple(METHODS), n_updates=500, printer=print):
    """Train each (method, seed) once; final weights → cache/<method>-seed<s>.params.npy beside the run JSON."""
    from kltrain.studies.training import TrainConfig, load_data, train
    cache.mkdir(parents=True, exist_ok=True)
    data = None
    for seed in seeds:
        for label in labels:
            stem = cache / f"{_slug(label)}-seed{seed}"
            if Path(f"{stem}.params.npy").exists():
                continue
            cfg = TrainConfig(METHODS[label], n_updates=CONTROLS.get(label, n_updates), eval_every=50, seed=seed,
                              backend="cpu")
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

    from kltrain.studies.flatness import FlatnessConfig, ReducedPerturbation, measure, output_layer_trace
    from kltrain.cli.flatness import summary_line
    from kltrain.nets import MLP
    from kltrain.studies.training import TrainConfig, load_data
    config = FlatnessConfig() if config is None else config
    store = _load(path)
    store["meta"] = {"flatness_config": asdict(config), "net": "784-200-10", "training": "paper settings (§6.2), "
                     "500 updates, batch 20, the embedded 4,000-image training set; peers at kltrain.studies.peers defaults",
                     "machine": f"{_cpu_name() or platform.machine()}, {__import__('os').cpu_count()} cores, "
                     "shared with other jobs; NUMBA_NUM_THREADS=1"}
    done = {(r["label"], r["seed"]) for r in store["runs"]}
    X, y, Xt, yt = load_data(TrainConfig("sgd"))
    for rec in store["runs"]:                                    # records measured before this field existed
        weights = cache / f"{_slug(rec['label'])}-seed{rec['seed']}.params.npy"
        if "output_layer_trace" not in rec and weights.exists():
            rec["output_layer_trace"] = output_layer_trace(MLP.hidden(), np.load(weights), X, y)
        if "weight_norm" not in rec and weights.exists():
            rec["weight_norm"] = float(np.linalg.norm(np.load(weights).astype(np.float64)))
    _write(store, path)
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
               "weight_norm": _stats([r.get("weight_norm", np.nan) for r in runs]),
               "sharpness": _stats([r["sharpness"]["value"] for r in runs]),
               "hessian_trace": _stats([r["hessian_trace"]["value"] for r in runs]),
               "output_layer_trace": _stats([r.get("output_layer_trace", np.nan) for r in runs])}
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
    """The markdown table of the stored flatness study: one row per training method."""
    cfg = store["meta"].get("flatness_config", {})
    taus = [k[3:] for k in next(iter(summary.values())) if k.startswith("gap")]
    sigma = "0.05" if any("acc0.05" in r for r in summary.values()) else None
    head = (["method", "seeds", "test acc.", "train loss f", "‖x‖"] + [f"F_τ − f, τ={t} (ESS)" for t in taus]
            + [f"sharpness ρ={cfg.get('rho', 0.05)}", "tr ∇²f (Hutchinson)", "tr ∇²f, last layer (exact)"]
            + ([f"acc. at σ={sigma}"] if sigma else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in summary.items():
        cells = [label, str(r["seeds"]), _pm(r["test_accuracy"]), _pm(r["train_loss"]), _pm(r["weight_norm"], ".1f")]
        cells += [f"{_pm(r[f'gap{t}'])} ({r[f'ess{t}']:.0f})" for t in taus]
        cells += [_pm(r["sharpness"], ".4f"), _pm(r["hessian_trace"], ".1f"), _pm(r["output_layer_trace"], ".2f")]
        cells += [_pm(r[f"acc{sigma}"])] if sigma else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


MEASURES = ((lambda r: r["sharpness"]["value"], "sharpness"), (lambda r: r["hessian_trace"]["value"], "tr ∇²f"),
            (lambda r: r.get("output_layer_trace", np.nan), "last-layer tr ∇²f"),
            (lambda r: r["test_accuracy"] - r["weight_noise"]["0.05"]["value"], "accuracy drop at σ=0.05"))


def _paired(store, label, get, ref="SGD"):
    """(mean, SE) over seeds of get(run of label) − get(ref run of the same seed): paired by seed and noise."""
    base = {r["seed"]: get(r) for r in store["runs"] if r["label"] == ref}
    d = np.array([get(r) - base[r["seed"]] for r in store["runs"] if r["label"] == label and r["seed"] in base])
    if d.size < 2:
        return (float(d.mean()) if d.size else float("nan")), float("nan"), int(d.size)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)), int(d.size)


def _z(diff):
    mean, se, _ = diff
    return mean / se if np.isfinite(se) and se > 0 else float("nan")


def _significant(diff) -> int:
    """−1 / +1 when the paired t statistic passes Student's two-sided 95% point with n − 1 dof, else 0."""
    from scipy.stats import t as student
    z, n = _z(diff), diff[2]
    if not np.isfinite(z) or n < 2:
        return 0
    return int(np.sign(z)) if abs(z) > student.ppf(0.975, n - 1) else 0


def _measures(store):
    taus = list(store["runs"][0]["local_entropy"])
    return list(MEASURES) + [((lambda r, t=t: r["local_entropy"][t]["value"] - r["train_loss"]),
                              f"F_τ − f (τ={t})") for t in taus]


def _compare(store, label, ref):
    """(line of text, [measures where label is flatter], [... sharper]) for label − ref."""
    parts, flatter, sharper = [], [], []
    for get, name in _measures(store):
        diff = _paired(store, label, get, ref)
        z, sig = _z(diff), _significant(diff)
        (flatter if sig < 0 else sharper if sig > 0 else []).append(name)
        parts.append(f"{name} {diff[0]:+.3g} ({z:+.1f} SE)")
    loss = _paired(store, label, lambda r: r["train_loss"], ref)
    parts.append(f"train loss {loss[0]:+.3f} ({_z(loss):+.1f} SE)")
    return f"- **{label}** − {ref}: " + "; ".join(parts) + ".", flatter, sharper


def _matched_reference(summary, label):
    """The SGD run (500 updates or a CONTROLS checkpoint) whose mean training loss is closest to label's."""
    refs = [r for r in ("SGD", *CONTROLS) if r in summary]
    return min(refs, key=lambda r: abs(summary[r]["train_loss"][0] - summary[label]["train_loss"][0]))


def reading(summary, store) -> str:
    """What the numbers say about the paper's motivating claim (§1): against SGD and loss-matched SGD, in SEs."""
    if "SGD" not in summary:
        return "No SGD runs stored: no comparison."
    vs_sgd, vs_matched, unmatched, found = [], [], [], {"flat": [], "sharp": [], "mflat": [], "msharp": [], "peer": []}
    for label in summary:
        if label == "SGD":
            continue
        line, flat, sharp = _compare(store, label, "SGD")
        vs_sgd.append(line)
        if label in PAPER_METHODS:
            found["flat"] += [f"{label} on {m}" for m in flat]
            found["sharp"] += [f"{label} on {m}" for m in sharp]
        elif label not in CONTROLS:
            found["peer"] += [f"{label} on {m}" for m in flat]
        if label in PAPER_METHODS or label not in CONTROLS:
            ref = _matched_reference(summary, label)
            gap = summary[label]["train_loss"][0] - summary[ref]["train_loss"][0]
            if abs(gap) > 0.25 * summary[ref]["train_loss"][0]:     # no SGD checkpoint near this loss
                unmatched.append(f"{label} (train loss {summary[label]['train_loss'][0]:.2f}; nearest SGD "
                                 f"checkpoint {ref} at {summary[ref]['train_loss'][0]:.2f})")
                continue
            if ref != "SGD":
                line, flat, sharp = _compare(store, label, ref)
                vs_matched.append(line)
            if label in PAPER_METHODS:
                found["mflat"] += [f"{label} on {m} (vs {ref})" for m in flat]
                found["msharp"] += [f"{label} on {m} (vs {ref})" for m in sharp]

    def listing(items):
        return ", ".join(items) if items else "no measure"
    text = ("**What the data says about the paper's motivating claim** (local entropy and heat regularization "
            "steer training toward wide minima). Differences are paired by seed (same initial weights, minibatches "
            "and measurement noise) and given in standard errors over seeds; a difference counts when |t| exceeds "
            "Student's two-sided 95% point with (seeds − 1) degrees of freedom (2.78 for 5 seeds). Against SGD after "
            f"500 updates, the paper's methods are flatter on: {listing(found['flat'])}; sharper on: "
            f"{listing(found['sharp'])}. The peers are flatter on: {listing(found['peer'])}. ")
    text += ("But the methods stop at different training losses, and the measures change along one SGD run as its "
             "loss falls (rows 'SGD, 100/300 updates'), so each method is also compared with the SGD run (a prefix "
             "of the same run: "
             + ", ".join(["500 updates"] + [f"{n} updates" for n in CONTROLS.values()])
             + ") whose training loss is closest to its own. Against that loss-matched SGD the paper's methods are "
             f"flatter on: {listing(found['mflat'])}; sharper on: {listing(found['msharp'])}. ")
    if unmatched:
        text += f"No loss-matched comparison for: {'; '.join(unmatched)}. "
    if found["mflat"]:
        text += ("Where a method is flatter than loss-matched SGD the data is consistent with the claim — with the "
                 "caveats that curvature and weight-noise robustness are not invariant to rescaling the weights "
                 "(Dinh et al. 2017; compare the ‖x‖ column), and that SAM's own measure (sharpness in a ρ-ball) "
                 "is the one that does not separate them.") if not any("sharpness" in f for f in found["mflat"]) \
            else "Where a method is flatter than loss-matched SGD the data is consistent with the claim."
    elif found["flat"]:
        text += ("Every flatter reading against SGD at 500 updates disappears against SGD at a matched training "
                 "loss: in this data the paper's methods do not find flatter minima; they stop higher on the "
                 "loss surface, where SGD's weights were as flat.")
    else:
        text += "On these measures the data shows no flatter minima for the paper's methods."
    text += "\n\nAgainst SGD after 500 updates:\n\n" + "\n".join(vs_sgd)
    if vs_matched:
        text += "\n\nAgainst the loss-matched SGD run:\n\n" + "\n".join(vs_matched)
    return text


def plot_noise(summary, path) -> Path:
    """Held-out accuracy against the weight-noise σ, one curve per method."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
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
             "the 784–200–10 net after 500 updates (paper settings; Entropy-SGD and SAM from `kltrain.studies.peers`), "
             "mean ± SE over seeds. F_τ (eq. 2.2) by importance sampling over the full 4,000-image training set in "
             f"reduced coordinates with J = {cfg.get('le_samples')} samples per τ (median ESS in brackets; shown "
             f"as F_τ − f(x), the rise of the loss in a τ-neighbourhood); sharpness = max loss rise in a "
             f"ρ-ball by {cfg.get('ascent_steps')} projected-ascent steps; tr ∇²f by Hutchinson with "
             f"{cfg.get('hessian_probes')} probes and central differences of the gradient at distance "
             f"{cfg.get('hessian_step')} — for a ReLU net the trace of the Hessian averaged over that segment, "
             "kinks included (terms of either sign: it can fall below the exact, a.e. trace of the last layer "
             "alone, shown beside it, which is a lower bound for the a.e. Hessian's trace); accuracy on the 1,000 test images under weight noise, "
             f"{cfg.get('noise_draws')} draws per σ. All runs share the measures' noise (common random numbers).")
    J = cfg.get("le_samples") or 1
    low = sorted({t for r in summary.values() for t in [k[3:] for k in r if k.startswith("ess")]
                  if r[f"ess{t}"] < J / 4})
    if low:
        intro += (f" At τ = {', '.join(low)} some methods' median ESS is below J/4: there F̂_τ rests on a few "
                  "samples and, as −log of a sample mean, is biased upward by an amount its SE does not show; read "
                  "that column as a rough comparison only.")
    report.add_section(TITLE, intro + "\n\n" + flatness_table(summary, store) + "\n\n" + reading(summary, store)
                       + f"\n\n![accuracy under weight noise](figures/{figure.name})")


def main(argv=None) -> int:
    """``python -m validation.flatness train|measure|show``: the flatness study in three resumable phases."""
    parser = argparse.ArgumentParser(prog="python -m validation.flatness", description=__doc__)
    parser.add_argument("phase", choices=["train", "measure", "show"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cache", default="kltrain-results/flatness", help="folder of the trained weights")
    parser.add_argument("--methods", default=";".join(METHODS), help="labels separated by ';'")
    args = parser.parse_args(argv)
    labels = tuple(args.methods.split(";"))
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
