"""``kltrain flatness RUN.json [...]``: the measures of :mod:`kltrain.studies.flatness` at a run's final weights.

A run is the JSON that ``kltrain train`` writes; its weights are read from
``<stem>.params.npy`` beside it (written by ``kltrain train``) or, when absent,
recomputed by training its config again (runs are deterministic given the seed).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np


def add_arguments(parser) -> None:
    """The options of ``kltrain flatness RUN.json ...``; defaults from
    :class:`~kltrain.studies.flatness.FlatnessConfig`."""
    from ..studies.flatness import FlatnessConfig
    d = FlatnessConfig()
    parser.add_argument("runs", nargs="+", metavar="RUN.json", help="run files written by `kltrain train`")
    parser.add_argument("--taus", default=",".join(map(repr, d.taus)), help="τ values of F_τ")
    parser.add_argument("--samples", type=int, default=d.le_samples, help="IS samples J per τ")
    parser.add_argument("--rho", type=float, default=d.rho, help="sharpness radius ρ")
    parser.add_argument("--ascent-steps", type=int, default=d.ascent_steps)
    parser.add_argument("--probes", type=int, default=d.hessian_probes, help="Hutchinson probes")
    parser.add_argument("--sigmas", default=",".join(map(repr, d.sigmas)), help="weight-noise σ values")
    parser.add_argument("--draws", type=int, default=d.noise_draws, help="weight-noise draws per σ")
    parser.add_argument("--seed", type=int, default=d.seed, help="noise seed (shared by all runs)")
    parser.add_argument("--json", metavar="PATH", help="write one record per run as JSON")


def load_run(path):
    """(TrainConfig, final weights) of a run file; retrains when no weights file lies beside it."""
    from ..studies.runfile import read_run_file
    from ..studies.training import TrainConfig, train
    path = Path(path)
    raw = read_run_file(path)["config"]     # not a valid run: one line naming the file
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in raw.items() if k in known})
    weights = path.with_name(path.name[:-len(".json")] + ".params.npy") if path.name.endswith(".json") else None
    if weights is not None and weights.exists():
        return config, np.load(weights)
    print(f"{path}: no {weights and weights.name} beside it; retraining its config", flush=True)
    return config, train(config, progress=False).final_params


def run_flatness(args) -> int:
    """``kltrain flatness``: measure every flatness quantity at the final weights of each run file."""
    from .._io import atomic_write_json, prepare_file
    from ..studies.flatness import FlatnessConfig, ReducedPerturbation, measure
    from ..studies.runfile import read_run_file
    from ..studies.training import NETS, load_data
    cfg = FlatnessConfig(taus=_floats(args.taus), le_samples=args.samples, rho=args.rho,
                         ascent_steps=args.ascent_steps, hessian_probes=args.probes, sigmas=_floats(args.sigmas),
                         noise_draws=args.draws, seed=args.seed)
    if args.json:
        prepare_file(args.json)          # a bad path is found before the measurements, not after
    from .args import check_run_fits
    check_run_fits(cfg.le_samples, what=f"--samples {cfg.le_samples}")
    for path in args.runs:               # every run file checked before the first measurement
        read_run_file(path)
    records, reduced, data = [], {}, {}
    for path in args.runs:
        config, x = load_run(path)
        net = NETS[config.net]()
        key = (config.dataset, config.n_test, config.net)
        if key not in data:
            X, y, Xt, yt = load_data(config)
            data[key] = ((X, y), (Xt, yt))
            reduced[key] = ReducedPerturbation(net, X, y)
        rec = dict(run=str(path), label=config.label, seed=config.seed,
                   **measure(net, x, *data[key], cfg, reduced=reduced[key]))
        records.append(rec)
        print(summary_line(rec), flush=True)
        if args.json:                    # after every run: an interruption keeps what was measured
            atomic_write_json(args.json, dict(config=cfg.__dict__, runs=records), indent=1)
    if args.json:
        print(f"wrote {args.json}")
    return 0


def summary_line(rec) -> str:
    """One printed line per run: F_τ − f with its standard error and ESS, sharpness, Hessian trace, noise accuracy."""
    le = "  ".join(f"F_{t}={v['value']:.3f}±{v['standard_error']:.3f} (ESS {v['ess']:.0f})"
                   for t, v in rec["local_entropy"].items())
    noise = "  ".join(f"acc@σ={s}: {v['value']:.3f}" for s, v in rec["weight_noise"].items())
    return (f"{rec['label']} seed {rec['seed']}: f={rec['train_loss']:.4f}  {le}  "
            f"sharpness={rec['sharpness']['value']:.4f}  tr H={rec['hessian_trace']['value']:.1f}"
            f"±{rec['hessian_trace']['standard_error']:.1f}  {noise}")


def _floats(text) -> tuple:
    try:
        return tuple(float(t) for t in str(text).split(",") if t)
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
