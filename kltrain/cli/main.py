"""The ``kltrain`` command: ``bench``, ``train`` and ``reproduce EXPERIMENT``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Callable

from .args import (Terminated, add_debug, at_least, check_run_fits, comma_counts, comma_nets, nonnegative_float,
                   positive_float, report_error)


def _bench(args) -> int:
    from .._io import prepare_file
    from ..bench.timing import check_peer, header, run_bench, write_json
    check_peer(args.peer)   # a missing JAX is found before the timings, not after
    check_run_fits(max(args.samples, args.m * args.m), what=f"--samples {args.samples}")
    if args.json:
        prepare_file(args.json)  # a bad path is found before the timings, not after
    print(header(args.peer))
    extra: dict = {}
    lines: list[str] = []   # the profile's and the sweeps' tables, printed after the bench table

    def after_ours():
        from ..kernels import resolve
        if args.profile or args.sweep:
            from ..bench.profile import run_profile_and_sweep
            extra.update(run_profile_and_sweep(resolve(args.backend), args.samples, args.repeat, args.profile,
                                               args.sweep, printer=lines.append))
        if args.threads:
            from ..bench.threads import run_thread_comparison, thread_table
            extra["threads"] = run_thread_comparison(resolve(args.backend), args.samples, args.m, args.repeat)
            lines.extend(thread_table(extra["threads"]))
        if args.sweep_batch:
            extra["batch_sweep"] = _batch_sweep(args, lines)

    import os
    load = os.getloadavg()
    records = run_bench(nets=args.nets, backend=args.backend, repeat=args.repeat, samples=args.samples,
                        m=args.m, reference=not args.no_reference, peer=args.peer, after_ours=after_ours)
    print("\n".join(lines))
    if args.json:
        write_json(records, args.json, extra, load_before=load)
        print(f"wrote {args.json}")
    return 0


def _batch_sweep(args, lines) -> dict:
    import os
    import time

    from ..bench.batch_sweep import run_batch_sweep, sweep_json
    from ..bench.timing import header
    started, load = time.perf_counter(), os.getloadavg()
    lines += ["", f"--sweep-batch: B = {','.join(map(str, args.batches))}, nets {','.join(args.sweep_nets)}",
              header(args.peer)]
    def printer(line):   # kept for the table at the end, and shown now: the sweep takes a while
        lines.append(line)
        print(line, file=sys.stderr, flush=True)

    def keep(records):   # the sweep so far, in --json's file (the bench rows are written at the end)
        if args.json:
            from .._io import atomic_write_json
            atomic_write_json(args.json, {"status": "running", "batch_sweep": sweep_json(records, started, load)},
                              indent=1)

    records = run_batch_sweep(args.backend, args.batches, args.sweep_nets, args.samples, args.m, args.repeat,
                              args.peer, printer=printer, on_record=keep)
    out = sweep_json(records, started, load)
    lines.append(f"sweep took {out['wall_seconds']:.0f} s")
    return out


def _train(args) -> int:
    import numpy as np

    from dataclasses import replace

    from .._io import atomic_write_bytes, prepare_dir
    from ..kernels import resolve
    from ..studies.training import TrainConfig, train
    out = prepare_dir(args.out)  # created and probed before any work
    check_run_fits(max(args.samples, args.hr_iterations * args.hr_samples), args.updates)   # before any data is loaded
    make_config: Callable[..., TrainConfig] = TrainConfig
    if args.covariance != "fixed":  # a learned diagonal or isotropic covariance (kltrain.gaussian.schemes)
        from functools import partial

        from ..studies.config import train_config
        make_config = partial(train_config, args.covariance)
    cfg = make_config(args.algo, net=args.net, n_updates=args.updates, tau=args.tau, tau_scoping=args.tau_scoping,
                      reverse_scoping=args.reverse_scoping, learning_rate=args.lr, samples=args.samples,
                      sgld_offset=args.sgld_offset, sgld_temperature=args.sgld_temperature,
                      hr_iterations=args.hr_iterations, hr_samples=args.hr_samples, sgd_first=args.sgd_first,
                      projected=args.projected, antithetic=args.antithetic, eval_every=args.eval_every,
                      dataset=args.dataset, seed=args.seed, backend=args.backend, scheduler=args.scheduler,
                      workers=args.workers)
    if not (cfg.scheduler or cfg.workers):  # "auto" resolved before hashing: the same run under --backend cpu
        cfg = replace(cfg, backend=resolve(cfg.backend))
    # The config hash in the name: another --tau into the same --out never overwrites this run.
    stem = out / f"{cfg.algorithm}-{cfg.net}-seed{cfg.seed}-{_hash(cfg)}"

    def save(result):  # after every evaluation, and on interrupt or divergence
        result.to_json(stem.with_suffix(".json"))
        result.to_csv(stem.with_suffix(".csv"))

    try:
        result = train(cfg, progress=not args.no_progress, checkpoint=save)
    except (KeyboardInterrupt, FloatingPointError):
        print(f"kept the evaluations so far in {stem}.json/.csv", file=sys.stderr)
        raise
    if result.final_params is not None:  # final weights, for `kltrain flatness`; atomic: never a truncated file
        import io
        buf = io.BytesIO()
        np.save(buf, result.final_params)
        atomic_write_bytes(f"{stem}.params.npy", buf.getvalue())
    for u, a in zip(result.eval_updates, result.test_accuracy):
        print(f"update {u:>5}  held-out accuracy {a:.4f}")
    median = f"median {sorted(result.seconds)[len(result.seconds) // 2]:.4g} s/update; " if result.seconds else ""
    print(f"{median}wrote {stem}.json/.csv")
    return 0


def _hash(cfg) -> str:
    from dataclasses import asdict

    from .._io import config_hash
    return config_hash(asdict(cfg))


def _reproduce(args) -> int:
    from .._io import prepare_dir, prepare_file
    from ..bench.timing import HEADER, run_bench
    from ..studies.experiments import experiment_folder, run_experiment
    if args.experiment == "table-6.1-readings":
        return _readings(args)
    folder = prepare_dir(experiment_folder(args.out, args.experiment, args.quick))
    if args.experiment == "table-6.2":
        out = prepare_file(folder / "bench.json")
        print(HEADER)
        run_bench(nets=("hidden",), backend=args.backend, repeat=1 if args.quick else 3,
                  samples=100 if args.quick else 1000, m=5 if args.quick else 30, json_path=out)
        print(f"wrote {out}")
        return 0
    run_experiment(args.experiment, seeds=args.seeds, quick=args.quick, out=args.out, backend=args.backend,
                   progress=not args.no_progress, scheduler=args.scheduler, workers=args.workers,
                   overwrite=args.overwrite)
    print(f"wrote {folder}/")
    return 0


def _flatness(args) -> int:
    from .flatness import run_flatness
    return run_flatness(args)


def _readings(args) -> int:
    from .._io import prepare_dir
    from ..studies.readings import READINGS
    from ..studies.readings_study import StudyConfig, run_study, study_folder_name
    names = tuple(r for r in args.readings.split(",") if r) if args.readings is not None else tuple(READINGS)
    grid = tuple(float(b) for b in args.betas.split(",")) if args.betas else ()
    seeds_for = tuple((r, int(n)) for r, n in (item.split("=") for item in args.seeds_for.split(",") if item))
    study = StudyConfig(seeds=args.seeds or (1 if args.quick else 5), beta_seeds=args.beta_seeds, readings=names,
                        beta_grid=grid, quick=args.quick, dataset=args.dataset, seeds_for=seeds_for,
                        stored_only=args.stored_only)
    folder = prepare_dir(f"{args.out}/{study_folder_name(study)}")  # created and probed before any work
    run_study(study, out=args.out, progress=not args.no_progress)
    print(f"wrote {folder}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``kltrain`` command's argument parser (every subcommand; the tests parse the README's commands with it)."""
    parser = argparse.ArgumentParser(prog="kltrain", description="local-entropy and heat-regularized training")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="seconds per update vs the paper's Table 6.2 and a NumPy baseline")
    bench.add_argument("--nets", default="small,hidden", type=comma_nets,
                       help="comma-separated: small (784-10), hidden (784-200-10), wide (784-1000-10)")
    bench.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    bench.add_argument("--repeat", type=at_least(1), default=3, help="timed runs per case and side (medians are reported)")
    bench.add_argument("--samples", type=at_least(1), default=1000, help="IS and SGLD samples per update (paper: 1000)")
    bench.add_argument("--m", type=at_least(1), default=30,
                       help="HR: M draws per iteration and J iterations (paper: 30)")
    bench.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy baseline")
    bench.add_argument("--json", metavar="PATH",
                       help="write {records, machine, loadavg_before, [profile, sweep, threads, batch_sweep]} as JSON")
    bench.add_argument("--peer", choices=["jax"], help="also time a JAX-on-CPU peer in the same run (needs [peers])")
    bench.add_argument("--profile", action="store_true", help="where the reduced IS update's time goes, with floors")
    bench.add_argument("--sweep", action="store_true", help="reduced IS seconds per update for J = 1e2..1e5")
    bench.add_argument("--sweep-batch", action="store_true",
                       help="every row (and the peer's) for B in --batches on the --sweep-nets (tens of minutes)")
    bench.add_argument("--batches", default="20,100,300,500", type=comma_counts, help="--sweep-batch's B values")
    bench.add_argument("--sweep-nets", default="hidden,wide", type=comma_nets,
                       help="--sweep-batch's nets: small, hidden (784-200-10), wide (784-1000-10)")
    bench.add_argument("--threads", action="store_true",
                       help="the chains (SGLD, HR) on 1 and on 2 numba threads, interleaved")
    bench.set_defaults(func=_bench)

    from ..studies.experiments import NAMES
    from ..studies.training import ALGORITHMS
    train = sub.add_parser("train", help="train an MLP on MNIST with SGD, IS, SGLD or HR (paper §6)")
    train.add_argument("--algo", required=True, choices=list(ALGORITHMS))
    train.add_argument("--net", default="hidden", choices=["small", "hidden"])
    train.add_argument("--updates", type=at_least(0), default=500)
    train.add_argument("--tau", type=positive_float, default=0.01, help="τ (the start τ₀ with --tau-scoping)")
    train.add_argument("--tau-scoping", type=positive_float, default=None, metavar="TAU1", help="τ(k) = τ₀/(1+τ₁)^k")
    train.add_argument("--reverse-scoping", action="store_true", help="τ(k) = τ₀(1+τ₁)^k instead")
    train.add_argument("--lr", type=positive_float, default=0.01, help="SGD learning rate")
    train.add_argument("--samples", type=at_least(1), default=1000, help="IS samples / SGLD chain length")
    train.add_argument("--sgld-offset", type=nonnegative_float, default=1000.0, help="ε_j = 1/(offset + j)")
    train.add_argument("--sgld-temperature", type=positive_float, default=1.0,
                       help="T: Langevin noise variance T·ε_j, target ∝ q^(1/T) (1 as printed; T < 1: → prox_τf)")
    train.add_argument("--hr-iterations", type=at_least(1), default=30)
    train.add_argument("--hr-samples", type=at_least(1), default=30)
    train.add_argument("--covariance", default="fixed", choices=["fixed", "diag", "iso"],
                       help="fixed: the paper's τI; diag/iso: learn C (kltrain.gaussian.sampling)")
    train.add_argument("--sgd-first", type=at_least(0), default=0, help="SGD updates before switching (§6.3)")
    path = train.add_mutually_exclusive_group()   # neither: chosen per update by the cost model (kltrain.nets.cost)
    path.add_argument("--per-sample", dest="projected", action="store_const", const=False, default=None,
                      help="force the per-sample updates (full noise vectors)")
    path.add_argument("--reduced", dest="projected", action="store_const", const=True,
                      help="force the exact-in-distribution reduced updates")
    train.add_argument("--antithetic", action="store_true")
    train.add_argument("--eval-every", type=at_least(1), default=10)
    train.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    train.add_argument("--seed", type=at_least(0), default=0)
    train.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    train.add_argument("--out", default="kltrain-results/train")
    train.add_argument("--no-progress", action="store_true")
    _dask_arguments(train)
    train.set_defaults(func=_train)

    rep = sub.add_parser("reproduce", help="reproduce a table or figure of the paper's §6")
    rep.add_argument("experiment", choices=NAMES + ("table-6.1-readings",))
    rep.add_argument("--quick", action="store_true",
                     help="tiny runs (CI): 40 updates, 1/30 of the samples, 1 seed, in OUT/NAME-quick")
    rep.add_argument("--seeds", type=at_least(1), default=None, help="seeds per configuration (default: 5 for tables)")
    rep.add_argument("--out", default="kltrain-results")
    rep.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda", "numpy"])
    rep.add_argument("--no-progress", action="store_true")
    rep.add_argument("--overwrite", action="store_true", help="replace run files that hold a different config")
    readings = rep.add_argument_group("table-6.1-readings (issue 10's falsification study)")
    readings.add_argument("--readings", default=None, help="comma-separated readings (default: all)")
    readings.add_argument("--betas", default="1,2,5,10,20,50", help="β grid of the loss-scale control ('' to skip)")
    readings.add_argument("--beta-seeds", type=at_least(1), default=None,
                          help="seeds for the β control (default: --seeds)")
    readings.add_argument("--seeds-for", default="", metavar="READING=N,...",
                          help="other seed counts for some readings")
    readings.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    readings.add_argument("--stored-only", action="store_true",
                          help="train nothing; summarize, per reading, the seeds stored for all four algorithms")
    _dask_arguments(rep)
    rep.set_defaults(func=_reproduce)

    from .flatness import add_arguments
    flat = sub.add_parser("flatness", help="flatness of trained weights: F_τ, sharpness, Hessian trace, weight noise")
    add_arguments(flat)
    flat.set_defaults(func=_flatness)

    dist = sub.add_parser("bench-distributed", help="IS update throughput on 1 and 2 local Dask workers")
    dist.add_argument("--samples", default="10000,100000", type=comma_counts, help="comma-separated J values")
    dist.add_argument("--workers", default="1,2", type=comma_counts,
                      help="comma-separated worker counts (one thread each)")
    dist.add_argument("--repeat", type=at_least(1), default=2)
    dist.add_argument("--json", metavar="PATH")
    dist.set_defaults(func=_bench_distributed)
    add_debug(parser, (bench, train, rep, flat, dist))
    return parser


def _dask_arguments(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786): shard IS over it")
    group.add_argument("--workers", type=at_least(0), default=0, help="start a local Dask cluster of N workers for IS")


def _bench_distributed(args) -> int:
    from .._io import atomic_write_json, prepare_file
    from ..bench.distributed import scaling_benchmark
    from ..kernels.distributed import connect
    if args.json:
        prepare_file(args.json)
    check_run_fits(max(args.samples), what=f"--samples {max(args.samples)}")
    records = scaling_benchmark(lambda n: connect(workers=n, threads_per_worker=1),
                                worker_counts=args.workers, samples=args.samples, repeat=args.repeat)
    if args.json:
        atomic_write_json(args.json, records, indent=1)
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    """Run the command; a user error is one ``kltrain: error: …`` line and exit 2 (``--debug``: traceback).

    SIGTERM is handled as Ctrl-C (a run file gets status "interrupted" with its evaluations kept), then
    exit 143; MemoryError is one line and exit 1.
    """
    args = build_parser().parse_args(argv)
    previous = _on_sigterm()
    try:
        return args.func(args)
    except BaseException as err:  # noqa: B036 (report_error re-raises what it does not handle)
        return report_error(err, debug=args.debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm():
    """Raise Terminated (a KeyboardInterrupt) on SIGTERM; returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated("terminated (SIGTERM)")
    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
