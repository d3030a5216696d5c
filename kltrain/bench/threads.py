"""``kltrain bench --threads``: the chains (SGLD, Robbins–Monro) on one numba thread and on all of them.

A chain is a sequence of short dependent steps, each ending in a barrier when it runs on
several threads (SGLD on the full problem: a parallel Langevin update per step;
Robbins–Monro: its M draws split per iteration). A second thread then gains little, and
when another process holds a core every barrier waits for a descheduled thread. This
times each chain of the bench (784–200–10, B = 20, both problems; IS beside them for
contrast) with ``CHAIN_THREADS`` = 1 and = all threads, calls interleaved, and reports
medians and the median of the per-pair ratios; ``kltrain.kernels.cpu_backend.CHAIN_THREADS``
is set from it (one thread for both; see that module's docstring for the numbers). The bits do not depend on the choice (tests/test_thread_count.py).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numba as nb
import numpy as np

from ..kernels import cpu_backend, get_backend
from ..kernels.layout import Minibatch
from ..nets.data import load_mnist
from .timing import BATCH, NETS, SETTLE, _cases, paired_times


@contextmanager
def chain_threads(n: int | None):
    """Every chain of cpu_backend.CHAIN_THREADS set to ``n`` threads (None: every numba thread), restored after."""
    old = dict(cpu_backend.CHAIN_THREADS)
    cpu_backend.CHAIN_THREADS.update({k: n for k in old})
    try:
        yield
    finally:
        cpu_backend.CHAIN_THREADS.update(old)


def _on(n, fn):
    def call():
        with chain_threads(n):
            if n == 1:   # IS uses every thread whatever CHAIN_THREADS says: set numba's count for it
                old = nb.get_num_threads()
                nb.set_num_threads(1)
                try:
                    return fn()
                finally:
                    nb.set_num_threads(old)
            return fn()
    return call


def run_thread_comparison(backend="cpu", samples=1000, m=30, repeat=3, net="hidden", batch=BATCH,
                          settle=SETTLE) -> dict:
    """{"rows": [{algorithm, problem, one_thread_s, all_threads_s, threads, ratio (1-thread s / all s)}], load}."""
    if backend != "cpu":
        return {"rows": [], "note": f"only the cpu backend has numba threads (got {backend!r})"}
    kernels, the_net = get_backend("cpu"), NETS[net]()
    X, y, _, _ = load_mnist(quiet=True)
    mb = Minibatch.build(the_net, X[:batch], y[:batch])
    rows, load = [], os.getloadavg()
    for case in _cases(the_net, mb, the_net.init(0), samples, m, ("IS", "SGLD", "HR")):
        fn = case.make(kernels)
        one, every = paired_times(_on(1, fn), _on(None, fn), repeat, settle)
        rows.append({"algorithm": case.algorithm, "problem": case.problem, "net": net, "batch": batch,
                     "samples": case.samples, "threads": nb.get_num_threads(),
                     "one_thread_seconds": float(np.median(one)), "all_threads_seconds": float(np.median(every)),
                     "one_over_all": float(np.median(np.asarray(one) / np.asarray(every)))})
    return {"rows": rows, "loadavg_before": list(load), "loadavg_after": list(os.getloadavg()),
            "chain_threads_default": dict(cpu_backend.CHAIN_THREADS)}


def thread_table(result: dict) -> list[str]:
    """The comparison as printable lines."""
    lines = ["", "chains on 1 thread vs all numba threads (median s; 1-thread/all < 1: one thread is faster)",
             f"{'algorithm':<16} {'problem':<8} {'1 thread':>10} {'all':>10} {'1/all':>7}"]
    for r in result["rows"]:
        lines.append(f"{r['algorithm']:<16} {r['problem']:<8} {r['one_thread_seconds']:>10.4g} "
                     f"{r['all_threads_seconds']:>10.4g} {r['one_over_all']:>7.2f}")
    return lines + [result.get("note", "")]


__all__ = ["chain_threads", "run_thread_comparison", "thread_table"]
