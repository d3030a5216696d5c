"""``kltrain bench --sweep-batch``: the bench's rows against the minibatch size, on two nets.

Where does the reduced path stop paying (its SVD/QR grows as B²·784 and its reduced
problem has r ≈ B inputs), and where do XLA's GEMMs overtake our hand-written kernels
(B·H large)? Both are measured here, not guessed: every algorithm on both problems
(``full`` and ``reduced``, see :mod:`kltrain.bench.timing`) for B = 20, 100, 300, 500 on
784–200–10 and 784–1000–10, ours and the peer's calls interleaved. The records are the
bench's (:class:`~kltrain.bench.timing.BenchRecord`, with ``batch`` and ``sizes``); the
committed run (``validation/data/bench-like-for-like.json`` (its ``batch_sweep``)) is what :mod:`kltrain.nets.cost`
was fitted to.

Each case is timed ``repeat`` times per side, except that a case whose warm-up call took
longer than ``long_call`` seconds is timed once per side (the per-sample rows at B = 500 on
the wide net take tens of seconds).
"""

from __future__ import annotations

import os
import time

from ..kernels import get_backend, resolve
from ..kernels.layout import Minibatch
from ..nets.data import load_mnist
from .timing import (ALGORITHMS, NETS, SETTLE, BenchRecord, _cases, check_peer, format_row, make_record, paired_times,
                     peer_kernels)

SWEEP_BATCHES = (20, 100, 300, 500)
SWEEP_NETS = ("hidden", "wide")
LONG_CALL = 2.0   # seconds: a case whose warm-up call takes longer is timed once per side


def _repeats(fn, repeat: int, long_call: float) -> int:
    """How many timed calls a case gets: ``repeat``, or one when a single call (this warm-up) is long."""
    t = time.perf_counter()
    fn()
    return repeat if time.perf_counter() - t <= long_call else 1


def run_batch_sweep(backend="cpu", batches=SWEEP_BATCHES, nets=SWEEP_NETS, samples=1000, m=30, repeat=3, peer=None,
                    algorithms=ALGORITHMS, printer=print, long_call=LONG_CALL, settle=SETTLE,
                    on_record=None) -> list[BenchRecord]:
    """Time every case for each (net, B): ours and the peer's interleaved; print each row as it is measured.

    ``on_record(records so far)`` is called after every row (the CLI rewrites its JSON: a long
    sweep keeps what it measured if it is stopped).
    """
    check_peer(peer)
    backend_name = resolve(backend)
    kernels, other = get_backend(backend_name), peer_kernels(peer)
    X_train, y_train, _, _ = load_mnist(quiet=True)
    if max(batches) > len(X_train):
        raise ValueError(f"batch sizes must be at most the {len(X_train)} training images, got {max(batches)}")
    records = []
    for net_name in nets:
        net = NETS[net_name]()
        params = net.init(0)
        for B in batches:
            mb = Minibatch.build(net, X_train[:B], y_train[:B])
            for case in _cases(net, mb, params, samples, m, algorithms):
                ours, theirs = case.make(kernels), None if other is None else case.make(other)
                n = _repeats(ours, repeat, long_call)   # our warm-up call
                a, b = paired_times(ours, theirs, n, settle, warm_ours=False)
                records.append(make_record(case, net_name, net, backend_name, mb, a, b, peer))
                printer(format_row(records[-1]))
                if on_record is not None:
                    on_record(records)
    return records


def sweep_json(records, started: float, load_before) -> dict:
    """The sweep's part of the bench JSON: its records, wall time and load averages."""
    from dataclasses import asdict
    return {"records": [dict(asdict(r), peer_ratio=r.peer_ratio) for r in records],
            "wall_seconds": time.perf_counter() - started, "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg())}


__all__ = ["LONG_CALL", "SWEEP_BATCHES", "SWEEP_NETS", "run_batch_sweep", "sweep_json"]
