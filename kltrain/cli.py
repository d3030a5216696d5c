"""The ``kltrain`` command: ``bench``, ``train`` and ``reproduce EXPERIMENT``."""

from __future__ import annotations

import argparse
import sys


def _bench(args) -> int:
    from .bench import HEADER, run_bench
    print(HEADER)
    run_bench(nets=args.nets.split(","), backend=args.backend, repeat=args.repeat, samples=args.samples,
              m=args.m, reference=not args.no_reference, json_path=args.json)
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _train(args) -> int:
    from pathlib import Path

    from .training import TrainConfig, train
    cfg = TrainConfig(args.algo, net=args.net, n_updates=args.updates, tau=args.tau, tau_scoping=args.tau_scoping,
                      reverse_scoping=args.reverse_scoping, learning_rate=args.lr, samples=args.samples,
                      sgld_offset=args.sgld_offset, sgld_temperature=args.sgld_temperature,
                      hr_iterations=args.hr_iterations, hr_samples=args.hr_samples, sgd_first=args.sgd_first,
                      projected=not args.per_sample, antithetic=args.antithetic, eval_every=args.eval_every,
                      dataset=args.dataset, seed=args.seed, backend=args.backend, scheduler=args.scheduler,
                      workers=args.workers)
    result = train(cfg, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{cfg.algorithm}-{cfg.net}-seed{cfg.seed}"
    result.to_json(out / f"{stem}.json")
    result.to_csv(out / f"{stem}.csv")
    for u, a in zip(result.eval_updates, result.test_accuracy):
        print(f"update {u:>5}  held-out accuracy {a:.4f}")
    print(f"median {sorted(result.seconds)[len(result.seconds) // 2]:.4g} s/update; wrote {out / stem}.json/.csv")
    return 0


def _reproduce(args) -> int:
    from .bench import HEADER, run_bench
    from .experiments import run_experiment
    if args.experiment == "table-6.1-readings":
        return _readings(args)
    if args.experiment == "table-6.2":
        print(HEADER)
        out = f"{args.out}/table-6.2/bench.json"
        run_bench(nets=("hidden",), backend=args.backend, repeat=1 if args.quick else 3,
                  samples=100 if args.quick else 1000, m=5 if args.quick else 30, json_path=out)
        print(f"wrote {out}")
        return 0
    run_experiment(args.experiment, seeds=args.seeds, quick=args.quick, out=args.out, backend=args.backend,
                   progress=not args.no_progress, scheduler=args.scheduler, workers=args.workers)
    print(f"wrote {args.out}/{args.experiment}/")
    return 0


def _readings(args) -> int:
    from .readings import READINGS, StudyConfig, run_study
    names = tuple(r for r in args.readings.split(",") if r) if args.readings is not None else tuple(READINGS)
    grid = tuple(float(b) for b in args.betas.split(",")) if args.betas else ()
    seeds_for = tuple((r, int(n)) for r, n in (item.split("=") for item in args.seeds_for.split(",") if item))
    study = StudyConfig(seeds=args.seeds or (1 if args.quick else 5), beta_seeds=args.beta_seeds, readings=names,
                        beta_grid=grid, quick=args.quick, dataset=args.dataset, seeds_for=seeds_for,
                        stored_only=args.stored_only)
    run_study(study, out=args.out, progress=not args.no_progress)
    print(f"wrote {args.out}/table-6.1-readings{'' if args.dataset == 'mnist' else '-' + args.dataset}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kltrain", description="local-entropy and heat-regularized training")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="seconds per update vs the paper's Table 6.2 and a NumPy baseline")
    bench.add_argument("--nets", default="small,hidden", help="comma-separated: small (784-10), hidden (784-200-10)")
    bench.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    bench.add_argument("--repeat", type=int, default=3, help="timed runs per case (best is reported)")
    bench.add_argument("--samples", type=int, default=1000, help="IS and SGLD samples per update (paper: 1000)")
    bench.add_argument("--m", type=int, default=30, help="HR: M draws per iteration and J iterations (paper: 30)")
    bench.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy baseline")
    bench.add_argument("--json", metavar="PATH", help="write the records as JSON")
    bench.set_defaults(func=_bench)

    from .experiments import NAMES
    train = sub.add_parser("train", help="train an MLP on MNIST with SGD, IS, SGLD or HR (paper §6)")
    train.add_argument("--algo", required=True, choices=["sgd", "is", "sgld", "hr"])
    train.add_argument("--net", default="hidden", choices=["small", "hidden"])
    train.add_argument("--updates", type=int, default=500)
    train.add_argument("--tau", type=float, default=0.01, help="τ (the start τ₀ with --tau-scoping)")
    train.add_argument("--tau-scoping", type=float, default=None, metavar="TAU1", help="τ(k) = τ₀/(1+τ₁)^k")
    train.add_argument("--reverse-scoping", action="store_true", help="τ(k) = τ₀(1+τ₁)^k instead")
    train.add_argument("--lr", type=float, default=0.01, help="SGD learning rate")
    train.add_argument("--samples", type=int, default=1000, help="IS samples / SGLD chain length")
    train.add_argument("--sgld-offset", type=float, default=1000.0, help="ε_j = 1/(offset + j)")
    train.add_argument("--sgld-temperature", type=float, default=1.0,
                       help="T: Langevin noise variance T·ε_j, target ∝ q^(1/T) (1 as printed; T < 1: → prox_τf)")
    train.add_argument("--hr-iterations", type=int, default=30)
    train.add_argument("--hr-samples", type=int, default=30)
    train.add_argument("--sgd-first", type=int, default=0, help="SGD updates before switching (§6.3)")
    train.add_argument("--per-sample", action="store_true", help="full per-sample noise instead of reduced updates")
    train.add_argument("--antithetic", action="store_true")
    train.add_argument("--eval-every", type=int, default=10)
    train.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    train.add_argument("--out", default="kltrain-results/train")
    train.add_argument("--no-progress", action="store_true")
    _dask_arguments(train)
    train.set_defaults(func=_train)

    rep = sub.add_parser("reproduce", help="reproduce a table or figure of the paper's §6")
    rep.add_argument("experiment", choices=NAMES + ("table-6.1-readings",))
    rep.add_argument("--quick", action="store_true", help="tiny runs (CI): 40 updates, 100 samples, 1 seed")
    rep.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default: 5 for tables)")
    rep.add_argument("--out", default="kltrain-results")
    rep.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    rep.add_argument("--no-progress", action="store_true")
    readings = rep.add_argument_group("table-6.1-readings (issue 10's falsification study)")
    readings.add_argument("--readings", default=None, help="comma-separated readings (default: all)")
    readings.add_argument("--betas", default="1,2,5,10,20,50", help="β grid of the loss-scale control ('' to skip)")
    readings.add_argument("--beta-seeds", type=int, default=None, help="seeds for the β control (default: --seeds)")
    readings.add_argument("--seeds-for", default="", metavar="READING=N,...",
                          help="other seed counts for some readings")
    readings.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    readings.add_argument("--stored-only", action="store_true",
                          help="train nothing; summarize, per reading, the seeds stored for all four algorithms")
    _dask_arguments(rep)
    rep.set_defaults(func=_reproduce)

    dist = sub.add_parser("bench-distributed", help="IS update throughput on 1 and 2 local Dask workers")
    dist.add_argument("--samples", default="10000,100000", help="comma-separated J values")
    dist.add_argument("--workers", default="1,2", help="comma-separated worker counts (one thread each)")
    dist.add_argument("--repeat", type=int, default=2)
    dist.add_argument("--json", metavar="PATH")
    dist.set_defaults(func=_bench_distributed)
    return parser


def _dask_arguments(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786): shard IS over it")
    group.add_argument("--workers", type=int, default=0, help="start a local Dask cluster of N workers for IS")


def _bench_distributed(args) -> int:
    import json
    from pathlib import Path

    from .distributed import connect, scaling_benchmark
    records = scaling_benchmark(lambda n: connect(workers=n, threads_per_worker=1),
                                worker_counts=[int(w) for w in args.workers.split(",")],
                                samples=[int(s) for s in args.samples.split(",")], repeat=args.repeat)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records, indent=1))
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
