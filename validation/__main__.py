"""``python -m validation``: check the paper's theorems and write the report."""

from __future__ import annotations

import argparse
import sys

from toyproblems.plots import make_all

from . import estimators, mnist, theorems
from .report import Report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation", description=__doc__)
    parser.add_argument("--out", default="validation-report", help="report folder (default: validation-report)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true",
                      help="every MNIST table and figure at full settings (Tables 6.1, 6.2, Figs 6.1-6.5; ~1 h)")
    mode.add_argument("--quick", action="store_true", help="tiny MNIST runs (a smoke test, ~2 min)")
    parser.add_argument("--progress", action="store_true", help="show training progress bars")
    args = parser.parse_args(argv)

    report = Report(args.out)
    print("== Theorems and identities (toy problems, exact schemes) ==", flush=True)
    for check in theorems.ALL:
        report.add(check())
    figures = make_all(report.out / "figures")
    report.add_section("Toy landscapes (Figs 2.1, 2.2, 5.1)",
                       "\n\n".join(f"![{p.stem}](figures/{p.name})" for p in figures[:3]))
    print("\n== Sampling estimators (Algs 3-5) against the exact answers ==", flush=True)
    for check in estimators.ALL:
        report.add(check(report))
    report.add_section("Estimator convergence", "\n\n".join(
        f"![{n}](figures/{n}.png)" for n in ("is_error_vs_J", "sgld_error_vs_J", "robbins_monro_error_vs_iterations",
                                                  "sgld_bias_vs_total_time")))
    estimators.trajectories_figure(report)
    mode = "full" if args.full else "quick" if args.quick else "default"
    print(f"\n== The paper's MNIST experiments ({mode} mode) ==", flush=True)
    mnist.run(report, mode, progress=args.progress)
    path = report.write()
    print(f"\n{sum(c.passed for c in report.checks)}/{len(report.checks)} checks passed; report: {path}")
    return 0 if report.all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
