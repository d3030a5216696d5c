"""``kltrain bench``: seconds per parameter update, beside the paper's Table 6.2, a NumPy baseline and a peer.

Settings are the paper's (§6.2): minibatch 20, τ = 0.01, 10³ samples for IS and
SGLD, M = J = 30 for heat regularization (HR, Robbins–Monro). Every row names its
*problem*:

- ``reduced``: "IS", "SGLD" and "HR", the exact-in-distribution updates of
  :mod:`kltrain.nets.projected` (the algorithm on an r ≤ B-input MLP, plus the
  minibatch's SVD/QR and the lift);
- ``full``: "SGD" and the "per-sample" rows, which draw every noise vector in full
  (the same samples as the NumPy reference backend).

With ``peer="jax"`` each row is also run by :class:`kltrain.bench.jax_peer.JaxKernels`
on the same problem — per-sample rows on the same minibatch, reduced rows through the
same reduction and lift with only the kernel in JAX — so ``jax/ours`` compares two
implementations of one computation. Our call and the peer's alternate (order swapped
every pair, a ``settle`` pause before each, because XLA's and numba's idle threads spin
for a while after a call); the table reports medians and the median of the per-pair
ratios. The baseline — the straightforward NumPy implementation of the same update —
is timed once, after both. Compare ratios, not absolute times across runs: the
machines are shared and noisy (the JSON records the load average before and after).

``--sweep-batch`` (:func:`kltrain.bench.batch_sweep.run_batch_sweep`) repeats the comparison for B = 20…500 and a
wider net (784–1000–10), the data the choice of :mod:`kltrain.nets.cost` was fitted to.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numba as nb
import numpy as np

from .._io import atomic_write_json
from ..nets.data import load_mnist
from ..kernels import get_backend, resolve
from ..kernels import reference as ref
from ..kernels.layout import Minibatch
from ..nets.mlp import MLP
from ..nets.projected import projected_importance_update, projected_robbins_monro, projected_sgld_chain
from ..schedules import HarmonicTemperatures, RobbinsMonroSteps

PAPER_TABLE_6_2 = {"SGD": 0.0032, "IS": 6.2504, "SGLD": 7.0599, "HR": 3.3053}  # 784–200–10, seconds
NETS: dict[str, Callable[[], MLP]] = {"small": MLP.small, "hidden": MLP.hidden,
                                      "wide": lambda: MLP((784, 1000, 10))}   # wide: --sweep-batch's second net
TAU, LR, BATCH = 0.01, 0.01, 20
SETTLE = 0.05        # seconds of idle before each timed call (lets the other side's threads stop spinning)
ALGORITHMS = ("SGD", "IS", "SGLD", "HR")


@dataclass(frozen=True)
class BenchRecord:
    """Seconds per update of one (algorithm, net, backend, samples), beside the baseline, the paper and a peer."""

    algorithm: str                       # SGD, IS, IS per-sample, SGLD, SGLD per-sample, HR, HR per-sample
    net: str                             # small, hidden, wide (sizes below)
    backend: str
    samples: int                         # J (IS, SGLD); M·J (HR); 1 (SGD)
    seconds_per_update: float            # ours: median of the timed calls
    reference_seconds_per_update: float | None
    reference: str
    paper_seconds_per_update: float | None
    peer: str | None = None
    peer_seconds_per_update: float | None = None   # the peer's median, same problem, same run
    problem: str = "full"                # "full" (SGD, per-sample rows) | "reduced" (kltrain.nets.projected)
    batch: int = BATCH
    sizes: tuple = ()
    repeats: int = 1                     # timed calls per side
    paired_ratio: float | None = None    # median over interleaved pairs of peer s / our s
    nnz: int | None = None               # nonzeros of the B×784 minibatch (kltrain.nets.cost's counts)
    active: int | None = None            # pixels nonzero in some row

    @property
    def peer_ratio(self) -> float | None:
        """Peer seconds / our seconds (> 1: we are faster): the median of the paired ratios when timed in pairs."""
        if self.paired_ratio is not None:
            return self.paired_ratio
        peer_s = self.peer_seconds_per_update
        return None if peer_s is None else peer_s / self.seconds_per_update

    @property
    def speedup(self) -> float | None:
        ref_s = self.reference_seconds_per_update
        return None if ref_s is None else ref_s / self.seconds_per_update


@dataclass(frozen=True)
class Case:
    """One bench row: ``make(kernels)`` returns the timed call on those kernels (ours or the peer's)."""

    algorithm: str
    problem: str
    samples: int
    make: Callable[[Any], Callable[[], Any]]
    reference: str
    reference_fn: Callable[[], Any]


def best_time(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def median_time(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call."""
    fn()
    return float(np.median([_timed(fn, 0.0) for _ in range(repeat)]))


def _timed(fn, settle: float) -> float:
    if settle:
        time.sleep(settle)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def paired_times(ours, peer, repeat: int, settle: float = SETTLE, warm_ours: bool = True
                 ) -> tuple[list[float], list[float]]:
    """Wall times of ``repeat`` interleaved calls of each (after one warm-up call each); ``peer`` None: ours only.

    Pair i runs ours first when i is even and the peer first when i is odd, so neither side
    always follows the other; a ``settle`` pause precedes every timed call. ``warm_ours``
    False: the caller has warmed ours up already.
    """
    if warm_ours:
        ours()
    if peer is not None:
        peer()
    a, b = [], []
    for i in range(repeat):
        if peer is None:
            a.append(_timed(ours, settle))
        elif i % 2 == 0:
            a.append(_timed(ours, settle))
            b.append(_timed(peer, settle))
        else:
            b.append(_timed(peer, settle))
            a.append(_timed(ours, settle))
    return a, b


def _schedules(samples, m):
    """SGLD temperatures ε_j (j = 1..samples) and Robbins–Monro steps a_j (j = 1..m) of the bench."""
    return HarmonicTemperatures()(np.arange(1, samples + 1)), RobbinsMonroSteps(0.1, 0.7)(np.arange(1, m + 1))


def _cases(net, mb, params, samples, m, algorithms=ALGORITHMS, problems=("full", "reduced")) -> list[Case]:
    """The bench rows of one net and minibatch, in table order."""
    rng = np.random.default_rng(0)
    eps, steps = _schedules(samples, m)
    X, y = mb.X, mb.y
    sgd_ref = lambda: params - LR * net.loss_and_grad(params, X, y)[1]  # noqa: E731
    is_ref = lambda: ref.naive_importance_update(net, params, X, y, TAU, samples, rng)  # noqa: E731
    sgld_ref = lambda: ref.naive_sgld_update(net, params, params, X, y, TAU, eps, rng)  # noqa: E731
    hr_ref = lambda: ref.naive_robbins_monro(net, params, X, y, TAU, steps, m, rng)  # noqa: E731
    rows = [
        Case("SGD", "full", 1, lambda k: lambda: params - LR * k.loss_and_grad(mb, params)[1],
             "NumPy backward", sgd_ref),
        Case("IS", "reduced", samples, lambda k: lambda: projected_importance_update(k, mb, params, TAU, 1, samples),
             "NumPy, noise materialised", is_ref),
        Case("IS per-sample", "full", samples,
             lambda k: lambda: k.importance_partial(mb, params, TAU, 1, 0, samples, False),
             "NumPy, noise materialised", is_ref),
        Case("SGLD", "reduced", samples, lambda k: lambda: projected_sgld_chain(k, mb, params, params, TAU, eps, 1),
             "NumPy backward per step", sgld_ref),
        Case("SGLD per-sample", "full", samples, lambda k: lambda: k.sgld_chain(mb, params, params, TAU, eps, 1),
             "NumPy backward per step", sgld_ref),
        Case("HR", "reduced", m * m, lambda k: lambda: projected_robbins_monro(k, mb, params, TAU, steps, m, 1),
             "NumPy backward per draw", hr_ref),
        Case("HR per-sample", "full", m * m, lambda k: lambda: k.robbins_monro(mb, params, TAU, steps, m, 1),
             "NumPy backward per draw", hr_ref),
    ]
    return [c for c in rows if c.algorithm.split()[0] in algorithms and (c.algorithm == "SGD" or c.problem in problems)]


def check_peer(peer) -> None:
    """Refuse an unknown peer, or the JAX peer without JAX, before any timing (ValueError)."""
    if peer is None:
        return
    if peer != "jax":
        raise ValueError(f"unknown peer {peer!r} (known: jax)")
    from . import jax_peer as bench_peers
    if not bench_peers.jax_available():
        raise ValueError("--peer jax needs JAX: pip install 'kltrain[peers]' (jax[cpu])")


def peer_kernels(peer):
    """The peer's kernel object (None without a peer)."""
    check_peer(peer)
    if peer is None:
        return None
    from .jax_peer import JaxKernels
    return JaxKernels()


def run_bench(nets=("small", "hidden"), backend="cpu", repeat=3, samples=1000, m=30,
              reference=True, json_path=None, printer=print, peer=None, extra=None,
              after_ours=None, batch=BATCH, algorithms=ALGORITHMS, settle=SETTLE) -> list[BenchRecord]:
    """Time every algorithm on every net (ours and the peer's interleaved); print the table; optionally write JSON.

    ``extra``: a dict written into the JSON beside the records (profile, sweep, …).
    ``after_ours``: called once the paired timings are done, before the NumPy baseline.
    """
    check_peer(peer)
    backend_name = resolve(backend)
    kernels, other = get_backend(backend_name), peer_kernels(peer)
    X_train, y_train, _, _ = load_mnist(quiet=True)
    load_before = os.getloadavg()
    rows, mb_of = [], {}   # (net name, net, Case, ours, peer's); each net's minibatch
    for net_name in nets:
        net = NETS[net_name]()
        mb = mb_of[net_name] = Minibatch.build(net, X_train[:batch], y_train[:batch])
        for case in _cases(net, mb, net.init(0), samples, m, algorithms):
            a, b = paired_times(case.make(kernels), None if other is None else case.make(other), repeat, settle)
            rows.append((net_name, net, case, a, b))
    if after_ours is not None:
        after_ours()
    records: list[BenchRecord] = []
    ref_cache: dict[Any, float | None] = {}
    for net_name, net, case, a, b in rows:
        ref_seconds = None
        if reference:
            key = (net_name, case.reference, case.samples)  # both IS rows share one baseline timing
            ref_seconds = ref_cache.get(key) or best_time(case.reference_fn, 1)
            ref_cache[key] = ref_seconds
        records.append(make_record(case, net_name, net, backend_name, mb_of[net_name], a, b, peer, ref_seconds))
        printer(format_row(records[-1]))
    if json_path:
        write_json(records, json_path, extra, load_before=load_before)
    return records


def make_record(case, net_name, net, backend_name, mb, ours, theirs, peer, ref_seconds=None) -> BenchRecord:
    """A BenchRecord from our and the peer's paired times (medians; the median of the per-pair ratios)."""
    batch = mb.batch_size
    paper = PAPER_TABLE_6_2.get(case.algorithm) if net_name == "hidden" and batch == BATCH else None
    peer_s = float(np.median(theirs)) if theirs else None
    ratio = float(np.median(np.asarray(theirs) / np.asarray(ours))) if theirs else None
    return BenchRecord(case.algorithm, net_name, backend_name, case.samples, float(np.median(ours)), ref_seconds,
                       case.reference, paper, peer if theirs else None, peer_s, case.problem, batch,
                       tuple(net.sizes), len(ours), ratio, int(mb.idx.size), int(mb.cols.size))


HEADER = (f"{'algorithm':<16} {'problem':<8} {'net':<7} {'B':>4} {'backend':<7} {'samples':>7} {'s/update':>10} "
          f"{'NumPy s/update':>15} {'speedup':>8} {'paper (Tab 6.2)':>16}")


def header(peer: str | None = None) -> str:
    """The table header, with the peer's columns when a peer is timed."""
    return HEADER if peer is None else HEADER + f" {peer + ' s/update':>15} {peer + '/ours':>9}"


def format_row(r: BenchRecord) -> str:
    """One row of the printed ``kltrain bench`` table."""
    ref_s = "" if r.reference_seconds_per_update is None else f"{r.reference_seconds_per_update:.4g}"
    speed = "" if r.speedup is None else f"{r.speedup:.0f}x"
    paper = "" if r.paper_seconds_per_update is None else f"{r.paper_seconds_per_update:.4g}"
    return (f"{r.algorithm:<16} {r.problem:<8} {r.net:<7} {r.batch:>4} {r.backend:<7} {r.samples:>7} "
            f"{r.seconds_per_update:>10.4g} {ref_s:>15} {speed:>8} {paper:>16}" + _peer_columns(r))


def _peer_columns(r: BenchRecord) -> str:
    if r.peer_seconds_per_update is None:
        return ""
    return f" {r.peer_seconds_per_update:>15.4g} {f'{r.peer_ratio:.2f}x':>9}"


def machine() -> dict:
    """What the JSON says about where it ran (CPU count, numba threads, load average now)."""
    return {"cpus": os.cpu_count(), "numba_threads": nb.get_num_threads(), "processor": platform.processor(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": nb.__version__,
            "loadavg": list(os.getloadavg())}


def write_json(records, path, extra=None, load_before=None) -> Path:
    """``{"records": [...], "machine": {...}, "loadavg_before": [...], **extra}`` (one object per row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [dict(asdict(r), speedup=r.speedup, peer_ratio=r.peer_ratio) for r in records]
    out = {"status": "done", "records": rows, "machine": machine(), "settle_seconds": SETTLE,
           "loadavg_before": None if load_before is None else list(load_before), **(extra or {})}
    return atomic_write_json(path, out, indent=1)


def markdown_table(records) -> str:
    """The bench table as markdown (for the validation report)."""
    lines = ["| algorithm | problem | net | backend | samples | s/update | NumPy baseline s/update | speedup | "
             "paper (Table 6.2) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r.algorithm} | {r.problem} | {r.net} | {r.backend} | {r.samples} | "
                     f"{r.seconds_per_update:.4g} | "
                     f"{'' if r.reference_seconds_per_update is None else f'{r.reference_seconds_per_update:.4g}'} | "
                     f"{'' if r.speedup is None else f'{r.speedup:.0f}×'} | "
                     f"{'' if r.paper_seconds_per_update is None else r.paper_seconds_per_update} |")
    return "\n".join(lines)
