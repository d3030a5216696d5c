"""The ``kltrain`` command: ``kltrain bench`` (and, below, training and the paper's experiments)."""

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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
