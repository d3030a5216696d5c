"""``kltrain bench``: seconds per parameter update, beside the paper's Table 6.2 and a NumPy baseline.

Settings are the paper's (§6.2): minibatch 20, τ = 0.01, 10³ samples for IS and
SGLD, M = J = 30 for heat regularization (HR, Robbins–Monro). "IS", "SGLD" and
"HR" are the exact-in-distribution updates of :mod:`kltrain.nets.projected`; the
"per-sample" rows draw every noise vector in full (the same samples as the
NumPy reference backend). Each of our
timings is the best of ``repeat`` runs after a warm-up (JIT compilation
excluded); the baseline — the straightforward NumPy implementation of the same
update (NumPy's Generator for the noise, batched matmuls or the hand-written
NumPy backward) — is timed once in the same run. Compare the ratio, not
absolute times across runs: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
NETS = {"small": MLP.small, "hidden": MLP.hidden}
TAU, LR, BATCH = 0.01, 0.01, 20


@dataclass(frozen=True)
class BenchRecord:
    """Seconds per update of one (algorithm, net, backend, samples), beside the baseline, the paper and a peer."""

    algorithm: str
    net: str
    backend: str
    samples: int
    seconds_per_update: float
    reference_seconds_per_update: float | None
    reference: str
    paper_seconds_per_update: float | None
    peer: str | None = None
    peer_seconds_per_update: float | None = None

    @property
    def peer_ratio(self) -> float | None:
        """Peer seconds / our seconds (> 1: we are faster)."""
        peer_s = self.peer_seconds_per_update
        return None if peer_s is None else peer_s / self.seconds_per_update

    @property
    def speedup(self) -> float | None:
        ref_s = self.reference_seconds_per_update
        return None if ref_s is None else ref_s / self.seconds_per_update


def best_time(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _schedules(samples, m):
    """SGLD temperatures ε_j (j = 1..samples) and Robbins–Monro steps a_j (j = 1..m) of the bench."""
    return HarmonicTemperatures()(np.arange(1, samples + 1)), RobbinsMonroSteps(0.1, 0.7)(np.arange(1, m + 1))


def _cases(net, mb, params, backend, samples, m):
    """(algorithm, samples, ours, reference name, reference) for one net."""
    rng = np.random.default_rng(0)
    eps, steps = _schedules(samples, m)
    X, y = mb.X, mb.y
    sgd_ref = lambda: params - LR * net.loss_and_grad(params, X, y)[1]  # noqa: E731
    is_ref = lambda: ref.naive_importance_update(net, params, X, y, TAU, samples, rng)  # noqa: E731
    sgld_ref = lambda: ref.naive_sgld_update(net, params, params, X, y, TAU, eps, rng)  # noqa: E731
    hr_ref = lambda: ref.naive_robbins_monro(net, params, X, y, TAU, steps, m, rng)  # noqa: E731
    return [
        ("SGD", 1, lambda: params - LR * backend.loss_and_grad(mb, params)[1], "NumPy backward", sgd_ref),
        ("IS", samples, lambda: projected_importance_update(backend, mb, params, TAU, 1, samples),
         "NumPy, noise materialised", is_ref),
        ("IS per-sample", samples, lambda: backend.importance_partial(mb, params, TAU, 1, 0, samples, False),
         "NumPy, noise materialised", is_ref),
        ("SGLD", samples, lambda: projected_sgld_chain(backend, mb, params, params, TAU, eps, 1),
         "NumPy backward per step", sgld_ref),
        ("SGLD per-sample", samples, lambda: backend.sgld_chain(mb, params, params, TAU, eps, 1),
         "NumPy backward per step", sgld_ref),
        ("HR", m * m, lambda: projected_robbins_monro(backend, mb, params, TAU, steps, m, 1),
         "NumPy backward per draw", hr_ref),
        ("HR per-sample", m * m, lambda: backend.robbins_monro(mb, params, TAU, steps, m, 1),
         "NumPy backward per draw", hr_ref),
    ]


def check_peer(peer) -> None:
    """Refuse an unknown peer, or the JAX peer without JAX, before any timing (ValueError)."""
    if peer is None:
        return
    if peer != "jax":
        raise ValueError(f"unknown peer {peer!r} (known: jax)")
    from . import jax_peer as bench_peers
    if not bench_peers.jax_available():
        raise ValueError("--peer jax needs JAX: pip install 'kltrain[peers]' (jax[cpu])")


def _peer_times(peer, net, X, y, params, samples, m, repeat) -> dict[str, float]:
    """{algorithm: seconds} of the peer implementation on one net ({} without a peer)."""
    check_peer(peer)
    if peer is None:
        return {}
    from .jax_peer import time_jax_peers
    eps, steps = _schedules(samples, m)
    return time_jax_peers(net, X, y, params, TAU, LR, samples, eps, steps, m, repeat)


def run_bench(nets=("small", "hidden"), backend="cpu", repeat=3, samples=1000, m=30,
              reference=True, json_path=None, printer=print, peer=None, extra=None,
              after_ours=None) -> list[BenchRecord]:
    """Time every algorithm on every net (and the peer's, same run); print the table; optionally write JSON.

    ``extra``: a dict written into the JSON beside the records (profile, sweep); with it the
    JSON is ``{"records": [...], **extra}`` instead of the list of records. ``after_ours``: called
    once our timings are done, before the peer and the NumPy baseline (which leave threads spinning).
    """
    check_peer(peer)
    backend_name = resolve(backend)
    kernels = get_backend(backend_name)
    X_train, y_train, _, _ = load_mnist(quiet=True)
    rows = []  # (net, algorithm, samples, seconds, reference name, reference fn)
    for net_name in nets:  # ours first: NumPy and XLA leave their threads spinning for a while
        net = NETS[net_name]()
        mb = Minibatch.build(net, X_train[:BATCH], y_train[:BATCH])
        for algorithm, n, ours, ref_name, ref_fn in _cases(net, mb, net.init(0), kernels, samples, m):
            rows.append((net_name, algorithm, n, best_time(ours, repeat), ref_name, ref_fn))
    if after_ours is not None:
        after_ours()
    peers = {name: _peer_times(peer, NETS[name](), X_train[:BATCH], y_train[:BATCH], NETS[name]().init(0),
                               samples, m, repeat) for name in nets}
    records: list[BenchRecord] = []
    ref_cache: dict[Any, float | None] = {}
    for net_name, algorithm, n, seconds, ref_name, ref_fn in rows:
        ref_seconds = None
        if reference:
            key = (net_name, ref_name, n)  # both IS rows share one baseline timing
            ref_seconds = ref_cache.get(key) or best_time(ref_fn, 1)
            ref_cache[key] = ref_seconds
        paper = PAPER_TABLE_6_2.get(algorithm) if net_name == "hidden" else None
        peer_s = peers[net_name].get(algorithm.split()[0])
        records.append(BenchRecord(algorithm, net_name, backend_name, n, seconds, ref_seconds, ref_name, paper,
                                   peer if peer_s is not None else None, peer_s))
        printer(format_row(records[-1]))
    if json_path:
        write_json(records, json_path, extra)
    return records


HEADER = (f"{'algorithm':<14} {'net':<7} {'backend':<7} {'samples':>7} {'s/update':>10} "
          f"{'NumPy s/update':>15} {'speedup':>8} {'paper (Tab 6.2)':>16}")


def header(peer: str | None = None) -> str:
    """The table header, with the peer's columns when a peer is timed."""
    return HEADER if peer is None else HEADER + f" {peer + ' s/update':>15} {peer + '/ours':>9}"


def format_row(r: BenchRecord) -> str:
    """One row of the printed ``kltrain bench`` table."""
    ref_s = "" if r.reference_seconds_per_update is None else f"{r.reference_seconds_per_update:.4g}"
    speed = "" if r.speedup is None else f"{r.speedup:.0f}x"
    paper = "" if r.paper_seconds_per_update is None else f"{r.paper_seconds_per_update:.4g}"
    return (f"{r.algorithm:<14} {r.net:<7} {r.backend:<7} {r.samples:>7} {r.seconds_per_update:>10.4g} "
            f"{ref_s:>15} {speed:>8} {paper:>16}" + _peer_columns(r))


def _peer_columns(r: BenchRecord) -> str:
    if r.peer_seconds_per_update is None:
        return ""
    return f" {r.peer_seconds_per_update:>15.4g} {f'{r.peer_ratio:.1f}x':>9}"


def write_json(records, path, extra=None) -> Path:
    """The records as a JSON list, or ``{"records": [...], **extra}`` when ``extra`` is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [dict(asdict(r), speedup=r.speedup, peer_ratio=r.peer_ratio) for r in records]
    return atomic_write_json(path, rows if extra is None else {"records": rows, **extra}, indent=1)


def markdown_table(records) -> str:
    """The bench table as markdown (for the validation report)."""
    lines = ["| algorithm | net | backend | samples | s/update | NumPy baseline s/update | speedup | paper (Table 6.2) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r.algorithm} | {r.net} | {r.backend} | {r.samples} | {r.seconds_per_update:.4g} | "
                     f"{'' if r.reference_seconds_per_update is None else f'{r.reference_seconds_per_update:.4g}'} | "
                     f"{'' if r.speedup is None else f'{r.speedup:.0f}×'} | "
                     f"{'' if r.paper_seconds_per_update is None else r.paper_seconds_per_update} |")
    return "\n".join(lines)
