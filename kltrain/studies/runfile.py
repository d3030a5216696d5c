"""Run files read back to resume: checked against their own config, hashes and checkpoints, or refused.

A run file (``TrainResult.to_dict``) holds a config, its ``config_hash``, a ``status`` and the
measurements. Resuming trusts a "done" file instead of training again, so the file must be what
it says: a JSON object with a valid config whose hash matches, a known status, the evaluations
that config makes (updates 0, eval_every, 2·eval_every, …, n_updates, accuracies in [0, 1]) and
one time, loss and τ per update. ``results_hash`` (written since issue 26) covers the
measurements, so a hand-edited accuracy is found too. Anything else is :class:`InvalidRunFile`,
one line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from .._io import config_hash
from .config import config_from_dict

STATUSES = ("running", "done", "interrupted", "diverged")
RESULT_KEYS = ("status", "eval_updates", "test_accuracy", "minibatch_loss", "seconds", "taus")


class InvalidRunFile(ValueError):
    """A file where a run should be that is not a valid run (its message names the file)."""


def results_hash(record: dict) -> str:
    """12 hex digits over the measurements and status of a run record (NaN as null, as stored)."""
    return config_hash({k: record.get(k) for k in RESULT_KEYS})


def expected_evaluations(n_updates: int, eval_every: int) -> list[int]:
    """The update counts at which a finished run measured accuracy (the training loop's rule)."""
    return [0] + [k for k in range(1, n_updates + 1) if k % eval_every == 0 or k == n_updates]


def read_run_file(path) -> dict:
    """The checked record of a run file; InvalidRunFile naming ``path`` if it is not a valid run."""
    path = Path(path)

    def bad(why: str) -> InvalidRunFile:
        return InvalidRunFile(f"{path} is not a valid run file: {why}; delete it or pass --overwrite")

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise bad(f"cannot read it as JSON ({type(err).__name__})") from None
    if not isinstance(record, dict):
        raise bad(f"it holds {type(record).__name__ if record is not None else 'null'}, not a run")
    missing = [k for k in ("config", "config_hash", "status") if k not in record]
    if missing:
        raise bad(f"no {', '.join(missing)}")
    if not isinstance(record["config"], dict):
        raise bad("its config is not an object")
    try:
        config = config_from_dict(record["config"])
    except (TypeError, ValueError) as err:
        raise bad(f"its config is not valid ({' '.join(str(err).split())})") from None
    if config_hash(record["config"]) != record["config_hash"]:
        raise bad("its config does not match its config_hash (edited by hand?)")
    if record["status"] not in STATUSES:
        raise bad(f"unknown status {record['status']!r}")
    if "results_hash" in record and results_hash(record) != record["results_hash"]:
        raise bad("its results do not match their results_hash (edited by hand?)")
    if record["status"] == "done":
        _check_measurements(record, config, bad)
    return record


def _check_measurements(record, config, bad) -> None:
    want = expected_evaluations(config.n_updates, config.eval_every)
    if record.get("eval_updates") != want:
        raise bad(f"'done' but its evaluations are at {_short(record.get('eval_updates'))}, not {_short(want)}")
    acc = record.get("test_accuracy")
    if not isinstance(acc, list) or len(acc) != len(want) or \
            not all(a is None or (isinstance(a, (int, float)) and 0 <= a <= 1) for a in acc):
        raise bad(f"'done' but its test_accuracy is not {len(want)} numbers in [0, 1]")
    for key in ("seconds", "minibatch_loss", "taus"):
        if not isinstance(record.get(key), list) or len(record[key]) != config.n_updates:
            raise bad(f"'done' but {key} does not hold one entry per update ({config.n_updates})")


def _short(values) -> str:
    if not isinstance(values, list) or len(values) <= 6:
        return repr(values)
    return f"[{values[0]}, {values[1]}, …, {values[-1]}] ({len(values)})"


def same_config(stored: dict, config) -> bool:
    """Whether a stored config is ``config``, with backend "auto" resolved on both sides (a folder run
    with ``--backend cpu`` resumes under the default ``auto`` on a machine where auto means cpu)."""
    from ..kernels import resolve

    def canonical(cfg) -> str:
        return config_hash(asdict(replace(cfg, backend=resolve(cfg.backend))))
    return canonical(config_from_dict(stored)) == canonical(config)
