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
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value!r}")
    return value


def nonnegative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value!r}")
    return value


def comma_counts(text: str) -> list[int]:
    """"1,2" → [1, 2]; every entry an integer >= 1."""
    one = at_least(1)
    return [one(part.strip()) for part in text.split(",")]


def comma_nets(text: str) -> list[str]:
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


# Errors that come from what the user asked for (bad values, paths, endpoints) or what a
# run met (divergence): reported in one line. Anything else is a bug and keeps its traceback.
RUN_ERRORS = (FloatingPointError, ConnectionError, TimeoutError)   # exit 1: the run failed
USER_ERRORS = (ValueError, TypeError, OSError)                     # exit 2: the request was bad


def report_error(err: BaseException, debug: bool) -> int:
    """Print ``kltrain: error: …`` and return the exit status; re-raise with ``debug`` or for bugs."""
    if debug:
        raise err
    if isinstance(err, KeyboardInterrupt):
        print("kltrain: interrupted", file=sys.stderr)
        return 130
    if not isinstance(err, RUN_ERRORS + USER_ERRORS):
        raise err
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"kltrain: error: {message}", file=sys.stderr)
    return 1 if isinstance(err, RUN_ERRORS) else 2
