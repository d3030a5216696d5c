"""Argument types and error reporting for the ``kltrain`` command.

Range checks live in argparse types so that ``--samples 0`` is a usage error
(exit 2, before any data is loaded) rather than a crash deep in a kernel.
"""

from __future__ import annotations

import argparse
import math
import sys

NET_NAMES = ("small", "hidden", "wide")   # wide (784–1000–10): bench only


def at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0, or a one-line error naming the value."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value!r}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite float ≥ 0, or a one-line error naming the value."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value!r}")
    return value


def comma_counts(text: str) -> list[int]:
    """"1,2" → [1, 2]; every entry an integer >= 1."""
    one = at_least(1)
    return [one(part.strip()) for part in text.split(",")]


def comma_nets(text: str) -> list[str]:
    """An argparse type: comma-separated net names (``small``, ``hidden``), each checked."""
    nets = [part.strip() for part in text.split(",")]
    bad = [n for n in nets if n not in NET_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown net {bad[0]!r}; choose from {', '.join(NET_NAMES)}")
    return nets


def add_debug(parser, subparsers) -> None:
    """``--debug`` before or after the subcommand: show the traceback of an error."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for sub in subparsers:  # SUPPRESS: the subcommand's default must not override `kltrain --debug train`
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


BYTES_PER_SAMPLE = 64   # per sample of one update: log weights (float32 and float64), weights, k̂'s copy, ε_j, indices
BYTES_PER_UPDATE = 256  # per update of a run: time, loss, τ kept in Python lists, and their JSON


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (Linux), else physical memory, else None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(need: float, what: str) -> None:
    """ValueError (one line, exit 2) when ``what`` would need more memory than the machine has free:
    refused before any work rather than a MemoryError (or the OOM killer) midway."""
    free = available_memory()
    if free is not None and need > free:
        raise ValueError(f"{what} would need about {need / 2 ** 30:.3g} GiB, more than the {free / 2 ** 30:.3g} GiB "
                         "free on this machine; ask for less")


def check_run_fits(samples: int, n_updates: int = 0, what: str = "") -> None:
    """The estimate for runs and benches: BYTES_PER_SAMPLE per sample, BYTES_PER_UPDATE per update."""
    check_fits(BYTES_PER_SAMPLE * samples + BYTES_PER_UPDATE * n_updates,
               what or f"--samples {samples} with --updates {n_updates}")


# Errors that come from what the user asked for (bad values, paths, endpoints) or what a
# run met (divergence): reported in one line. Anything else is a bug and keeps its traceback.
RUN_ERRORS = (FloatingPointError, ConnectionError, TimeoutError, MemoryError)   # exit 1: the run failed
USER_ERRORS = (ValueError, TypeError, OSError)                     # exit 2: the request was bad


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it is handled like Ctrl-C (results kept)."""


def report_error(err: BaseException, debug: bool) -> int:
    """Print ``kltrain: error: …`` and return the exit status; re-raise with ``debug`` or for bugs."""
    if debug:
        raise err
    if isinstance(err, Terminated):
        print("kltrain: terminated", file=sys.stderr)
        return 143
    if isinstance(err, MemoryError):   # numpy's own message names the array; one line, not a traceback
        message = " ".join(str(err).split()) or "out of memory"
        print(f"kltrain: error: not enough memory: {message}", file=sys.stderr)
        return 1
    if isinstance(err, KeyboardInterrupt):
        print("kltrain: interrupted", file=sys.stderr)
        return 130
    if not isinstance(err, RUN_ERRORS + USER_ERRORS):
        raise err
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"kltrain: error: {message}", file=sys.stderr)
    return 1 if isinstance(err, RUN_ERRORS) else 2
