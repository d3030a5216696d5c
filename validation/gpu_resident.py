"""``python -m validation.gpu_resident``: issue 21's table on a lent GPU, as one prepared run.

Measures every row of issue 21's table for the device-resident updates
(:mod:`kltrain.kernels.cuda_resident`), each beside its PyTorch peer timed in the same process,
then each kernel's share of a reduced IS update (CUDA events between the launches), the kernels'
registers / shared / local memory with their theoretical occupancy, and Nsight Compute's achieved
occupancy where ``ncu`` runs. Every row has its own time limit, so a slow row cannot take the
others' results. Writes ``OUT/gpu-resident.json``; ``--store DIR`` appends the run to
``validation/data/gpu-<device>.json`` (the file the report reads) and writes the result to DIR.

``--dry-run`` runs the same code at toy sizes (a 12–4–3 net, J ≤ 8, one repeat, the PyTorch peer
on the CPU) under the CUDA simulator, so the script cannot break on the device for a trivial
reason; CI runs it (``tests/test_validation_gpu_resident.py``).

The persistent SGLD and Robbins–Monro chains are rows like the others (no peer: the PyTorch peer
has no chain); the batched Table 6.1 (5 seeds × 4 algorithms in one set of launches, beside the
same runs one at a time) is timed after the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

DATA = Path(__file__).with_name("data")
TAU = 0.01


@dataclass
class Problem:
    """The benchmark's net, training set, minibatch rows and parameters (784–200–10, batch 20 on a GPU)."""

    net: Any
    X: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    params: np.ndarray
    tiny: bool

    def samples(self, J: int) -> int:
        return min(J, 8) if self.tiny else J


def problem(tiny: bool) -> Problem:
    """The measured problem: the paper's 784–200–10 net on a minibatch of 20 MNIST digits (``tiny``: a 12–4–3 net)."""
    from kltrain.nets import MLP
    if tiny:
        rng = np.random.default_rng(0)
        X = (rng.random((40, 12)) * (rng.random((40, 12)) < 0.6)).astype(np.float32)
        net = MLP((12, 4, 3))
        return Problem(net, X, rng.integers(0, 3, 40), np.arange(5), net.init(0), True)
    from kltrain.nets.data import load_mnist
    X, y, _, _ = load_mnist(quiet=True)
    net = MLP.hidden()
    return Problem(net, X, y, np.arange(20), net.init(0), False)


def resident(prob: Problem):
    """A :class:`~kltrain.kernels.cuda_resident.ResidentMLP` holding ``prob``'s net, data and parameters."""
    from kltrain.kernels.cuda_resident import ResidentMLP
    res = ResidentMLP(prob.net, prob.X, prob.y, prob.params)
    res.set_batch(prob.rows)
    return res


# -- the rows ---------------------------------------------------------------------------------------------
Builder = Callable[[Problem], Callable[[], Any]]


@dataclass(frozen=True)
class Row:
    """One row of issue 21's table: what is timed (ours), against what (peer), and the targets."""

    measure: str
    algorithm: str
    samples: int
    target_seconds: float | None
    ours: Builder | None                 # None: not measurable yet (recorded as "pending")
    peer: Builder | None = None
    speedup_target: float | None = None  # peer time / ours at least this


def _is_ours(J):
    def build(prob):
        res = resident(prob)
        n = prob.samples(J)

        def update(seed=[0]):            # noqa: B006 (a counter: a fresh seed per call)
            seed[0] += 1
            res.set_batch(prob.rows)
            res.importance_update(TAU, seed[0], n)
        return update
    return build


def _is_peer(J):
    def build(prob):
        from validation.gpu import torch_is_update
        device = _torch_device()
        Xb, yb = prob.X[prob.rows], prob.y[prob.rows]
        return lambda: torch_is_update(prob.net, prob.params, Xb, yb, TAU, prob.samples(J), device=device)
    return build


def _sgd_ours(prob):
    res = resident(prob)

    def step():
        res.set_batch(prob.rows)
        res.sgd_update(0.1)
    return step


def _sgd_peer(prob):
    """PyTorch autograd SGD step, parameters resident, the loss read back (one sync, as ours)."""
    import torch
    device = _torch_device()
    p = torch.tensor(prob.params, device=device, requires_grad=True)
    Xb = torch.as_tensor(prob.X[prob.rows], device=device)
    yb = torch.as_tensor(prob.y[prob.rows], device=device)
    layers = prob.net.layer_offsets

    def step():
        h = Xb
        for k, (w, b, fi, fo) in enumerate(layers):
            h = h @ p[w:b].view(fi, fo) + p[b:b + fo]
            if k < len(layers) - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, yb)
        grad, = torch.autograd.grad(loss, p)
        with torch.no_grad():
            p.sub_(0.1 * grad)
        return loss.item()
    return step


def _reduced(prob: Problem):
    """(reduced Minibatch, x̃): ``prob``'s minibatch in row-space coordinates, as the persistent chains see it."""
    from kltrain.kernels.layout import Minibatch
    from kltrain.nets.projected import reduce_minibatch
    red = reduce_minibatch(Minibatch.build(prob.net, prob.X[prob.rows], prob.y[prob.rows]))
    return red.minibatch, red.reduce(prob.params)


def _sgld_ours(n_steps):
    def build(prob):
        from kltrain.kernels import cuda_chain_runs
        mb, x = _reduced(prob)
        eps = 1 / (1000 + np.arange(1, prob.samples(n_steps) + 1))   # the paper's ε_j
        return lambda: cuda_chain_runs.sgld_chain(mb, x, x, TAU, eps, 1)
    return build


def _hr_ours(m):
    def build(prob):
        from kltrain.kernels import cuda_chain_runs
        mb, x = _reduced(prob)
        n = min(m, 2) if prob.tiny else m                            # M = J = n
        steps = 0.1 * np.arange(1, n + 1) ** -0.7                    # a_j = c·j^(−α)
        return lambda: cuda_chain_runs.robbins_monro(mb, x, TAU, steps, n, 1)
    return build


ROWS: dict[str, Row] = {
    "is-1e3": Row("reduced IS, J = 10³", "IS resident", 1000, 0.15e-3, _is_ours(1000), _is_peer(1000)),
    "is-1e5": Row("reduced IS, J = 10⁵", "IS resident", 100_000, 3e-3, _is_ours(100_000), _is_peer(100_000),
                  speedup_target=50.0),
    "sgd": Row("SGD step", "SGD resident", 1, 0.05e-3, _sgd_ours, _sgd_peer),
    # the persistent chains (kltrain.kernels.cuda_chains): one launch per chain
    "sgld-1e3": Row("reduced SGLD, 10³ steps", "SGLD persistent", 1000, 10e-3, _sgld_ours(1000)),
    "hr-30": Row("reduced HR (M = J = 30)", "HR persistent", 900, 0.5e-3, _hr_ours(30)),
}
# Not a row (a whole table, not one call): main() times the batched Table 6.1 with validation.gpu.time_batched_table.


def _torch_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def peer_available() -> bool:
    """Whether PyTorch imports (the peer is optional; its rows are then left out)."""
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


@contextlib.contextmanager
def time_limit(seconds: float):
    """TimeoutError after ``seconds`` (SIGALRM: the main thread on Unix)."""
    def expire(signum, frame):
        raise TimeoutError(f"over its {seconds:.0f} s limit")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def best_seconds(fn, repeat: int) -> float:
    """The best wall time of ``repeat`` calls of ``fn`` after one warm-up call (each timed call ends in its
    own copy back to the host, so it includes the device's work)."""
    fn()                                          # warm-up (compiles on a fresh machine)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def measure_rows(prob: Problem, repeat: int, limit: float, peer: bool = True) -> list[dict]:
    """Every row of ``ROWS``: ours and the peer, best of ``repeat`` after a warm-up, each within ``limit`` s."""
    out = []
    for key, row in ROWS.items():
        entry: dict = {"key": key, "measure": row.measure, "algorithm": row.algorithm, "samples": row.samples,
                       "samples_run": prob.samples(row.samples), "target_seconds": row.target_seconds}
        for side, builder in (("ours", row.ours), ("peer", row.peer if peer and peer_available() else None)):
            if builder is None:
                entry[side] = "pending" if side == "ours" else None
                continue
            try:
                with time_limit(limit):
                    entry[f"{side}_seconds"] = best_seconds(builder(prob), repeat)
            except Exception as err:      # record it, keep the other rows
                entry[side] = f"{type(err).__name__}: {err}"
        ours, theirs = entry.get("ours_seconds"), entry.get("peer_seconds")
        if ours and theirs:
            entry["peer_over_ours"] = theirs / ours
        entry["met"] = _met(row, entry)
        out.append(entry)
        print(_line(entry), flush=True)
    return out


def _met(row: Row, entry: dict) -> bool | None:
    ours = entry.get("ours_seconds")
    if ours is None or row.target_seconds is None:
        return None
    ok = ours <= row.target_seconds
    if row.speedup_target is not None:
        ok = ok and entry.get("peer_over_ours", 0.0) >= row.speedup_target
    return bool(ok)


def _line(e: dict) -> str:
    ms = lambda v: f"{1e3 * v:9.3f} ms" if isinstance(v, float) else f"{str(v)[:40]:>12}"  # noqa: E731
    return (f"{e['measure']:<44} ours {ms(e.get('ours_seconds', e.get('ours')))}  "
            f"peer {ms(e.get('peer_seconds', e.get('peer')))}  met: {e['met']}")


def kernel_shares(prob: Problem, J: int = 1000, repeat: int = 5) -> dict:
    """Milliseconds of each launch of a reduced IS update (CUDA events on the stream), best of ``repeat``,
    with its share of the events' total, plus the host's wall time for the whole update."""
    res = resident(prob)
    n = prob.samples(J)
    best: dict = {}
    for seed in range(repeat + 1):
        res.trace = []
        t = time.perf_counter()
        res.importance_update(TAU, seed + 1, n)
        wall = time.perf_counter() - t
        if seed == 0:
            continue                                   # the warm-up
        marks = res.trace
        for (_, before), (name, after) in zip(marks, marks[1:]):
            best[name] = min(best.get(name, np.inf), before.elapsed_time(after))
        best["host wall, whole update"] = min(best.get("host wall, whole update", np.inf), 1e3 * wall)
    res.trace = None
    kernels = {k: v for k, v in best.items() if not k.startswith("host")}
    total = sum(v for v in kernels.values() if v > 0)
    return {"J": n, "milliseconds": best,
            "share": {k: (v / total if total > 0 and v >= 0 else None) for k, v in kernels.items()}}


RESIDENT_KERNELS = ("minibatch_qr", "reduce_params", "is_samples", "is_finish", "lift", "sgd_step")


def kernel_resources() -> dict:
    """Registers, shared and local memory of each resident kernel as loaded, and its theoretical occupancy."""
    from numba import cuda

    from kltrain.kernels.cuda_compile import kernel, occupancy, threads_per_block
    cc = tuple(cuda.get_current_device().compute_capability)
    out = {}
    for name in RESIDENT_KERNELS:
        for compiled in getattr(kernel(name), "overloads", {}).values():
            regs, smem = int(compiled.regs_per_thread), int(compiled.shared_mem_per_block)
            threads = threads_per_block(name)
            out[name] = {"registers": regs, "shared_bytes": smem, "local_bytes": int(compiled.local_mem_per_thread),
                         "threads": threads,
                         "theoretical_occupancy": occupancy(regs, smem, threads, cc) if cc in ((8, 0), (9, 0))
                         else None}
    return out


NCU_METRICS = ("sm__warps_active.avg.pct_of_peak_sustained_active", "gpu__time_duration.sum")


def achieved_occupancy(limit: float = 120.0) -> dict:
    """Nsight Compute on a child process that runs two resident IS updates and one SGD step:
    achieved occupancy (% of peak warps) and duration per kernel. {} with a reason when ncu is absent."""
    ncu = shutil.which("ncu")
    if ncu is None:
        return {"skipped": "ncu not found"}
    cmd = [ncu, "--csv", "--target-processes", "all", "--kernel-name", "regex:" + "|".join(RESIDENT_KERNELS),
           "--metrics", ",".join(NCU_METRICS), sys.executable, "-m", "validation.gpu_resident", "--ncu-child"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"skipped": f"ncu over its {limit:.0f} s limit"}
    return parse_ncu_csv(run.stdout) or {"skipped": f"ncu exit {run.returncode}: {run.stderr[-300:]}"}


def parse_ncu_csv(text: str) -> dict:
    """{kernel: {metric: [values per launch]}} from ``ncu --csv`` output (lines before the header skipped)."""
    lines = [ln for ln in text.splitlines() if ln.startswith('"')]
    if not lines:
        return {}
    import csv
    rows = list(csv.DictReader(lines))
    out: dict = {}
    for r in rows:
        name = next((k for k in RESIDENT_KERNELS if k in r.get("Kernel Name", "")), None)
        if name is None or r.get("Metric Name") not in NCU_METRICS:
            continue
        with contextlib.suppress(ValueError):
            out.setdefault(name, {}).setdefault(r["Metric Name"], []).append(float(r["Metric Value"].replace(",", "")))
    return out


def _ncu_child() -> None:
    prob = problem(False)
    res = resident(prob)
    for seed in (1, 2):
        res.importance_update(TAU, seed, 1000)
    res.sgd_update(0.1)


def device_info() -> dict:
    """What :func:`validation.gpu.device_info` says of the device (under the simulator: its name and cc 0.0)."""
    from numba import config, cuda
    if config.ENABLE_CUDASIM:
        return {"name": "CUDA simulator", "compute_capability": [0, 0]}
    from validation.gpu import device_info as info
    return info()


def device_slug(name: str) -> str:
    """'NVIDIA H200' → 'h200', 'NVIDIA H100 80GB HBM3' → 'h100' (the data file's name)."""
    found = re.search(r"\b([A-Z]\d{2,4}[A-Za-z]*)\b", name)
    return (found.group(1) if found else re.sub(r"\W+", "-", name).strip("-")).lower()


def store(run: dict, out_dir: Path = DATA, data_dir: Path = DATA) -> Path:
    """Append ``run`` to data_dir/gpu-<device>.json (or a new file), numbered after the stored runs,
    and write the result to out_dir (on a lent GPU: under $OUT, which comes back; then commit it)."""
    name = f"gpu-{device_slug(run['device']['name'])}.json"
    source = data_dir / name
    data = json.loads(source.read_text()) if source.exists() else {"device": run["device"], "runs": []}
    run = dict(run, run=max((r.get("run", i + 1) for i, r in enumerate(data["runs"])), default=0) + 1)
    data["runs"].append(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    """``python -m validation.gpu_resident``: measure, print and store the run (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m validation.gpu_resident", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu-report")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes under the CUDA simulator (CI)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--row-seconds", type=float, default=60.0, help="time limit of each row")
    parser.add_argument("--store", metavar="DIR", nargs="?", const=str(DATA),
                        help="append the run to validation/data/gpu-<device>.json, written to DIR "
                             "(default: validation/data itself)")
    parser.add_argument("--ncu-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ncu_child:
        _ncu_child()
        return 0
    from numba import config
    from kltrain.kernels import cuda_available
    if args.dry_run and not config.ENABLE_CUDASIM:
        print("--dry-run needs the CUDA simulator: NUMBA_ENABLE_CUDASIM=1")
        return 2
    if not args.dry_run and not cuda_available():
        print("no CUDA GPU found (numba.cuda.is_available() is False); use --dry-run under the simulator")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prob = problem(args.dry_run)
    run: dict = {"issue": 21, "date": time.strftime("%Y-%m-%d"), "device": device_info(),
                 "sizes": list(prob.net.sizes), "batch": int(prob.rows.size), "dry_run": bool(args.dry_run)}
    print("device:", run["device"], flush=True)
    repeat = 1 if args.dry_run else args.repeat
    run["rows"] = measure_rows(prob, repeat, args.row_seconds)
    _write(out, run)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("kernel_share_is_1e3", lambda: kernel_shares(prob, 1000, repeat)),
        ("batched_table_6_1", lambda: _batched_table(args.dry_run)),
        ("kernel_resources", lambda: {} if args.dry_run else kernel_resources()),
        ("achieved_occupancy", lambda: {"skipped": "dry run"} if args.dry_run else achieved_occupancy())]
    for key, fn in steps:
        try:
            with time_limit(max(args.row_seconds, 150.0)):
                run[key] = fn()
        except Exception as err:
            run[key] = {"error": f"{type(err).__name__}: {err}"}
        print(f"{key}:", json.dumps(run[key]), flush=True)
        _write(out, run)
    if args.store and not args.dry_run:
        print("stored as", store(run, Path(args.store)), "(commit it as validation/data/ if written elsewhere)")
    print(f"wrote {out}/gpu-resident.json")
    return 0


def _batched_table(dry_run: bool) -> dict:
    """Table 6.1's 5 seeds × 4 algorithms side by side in one set of launches, beside the same runs one at a
    time (skipped in a dry run)."""
    if dry_run:   # its toy-size run lives in tests/test_cuda_chains.py: the small net's draws take minutes here
        return {"skipped": "dry run"}
    from validation.gpu import time_batched_table
    return time_batched_table()


def _write(out: Path, run: dict) -> None:
    (out / "gpu-resident.json").write_text(json.dumps(run, indent=1))


if __name__ == "__main__":
    sys.exit(main())
