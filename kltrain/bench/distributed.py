"""How the Dask-sharded IS update scales with workers (``kltrain bench-distributed``).

Times :class:`kltrain.kernels.distributed.DaskBackend` on the projected IS update of
784–200–10, and the share of each update spent consolidating the workers' partial sums.
"""

from __future__ import annotations

import time

import numpy as np

from ..kernels.distributed import DaskBackend
from ..kernels.layout import Minibatch
from ..nets.data import load_mnist
from ..nets.mlp import MLP
from ..nets.projected import projected_importance_update


def scaling_benchmark(client_factory, worker_counts=(1, 2), samples=(10_000, 100_000), repeat=2, printer=print):
    """Updates per second of the projected IS update on 784–200–10 for each (workers, J).

    ``client_factory(n)`` returns a client with n single-threaded workers. Also reports the
    consolidation overhead: the time spent combining partials, and the share of the update
    spent outside the workers' kernels (scatter, scheduling, gather, combine).
    """
    X, y, _, _ = load_mnist(quiet=True)
    net = MLP.hidden()
    mb, params = Minibatch.build(net, X[:20], y[:20]), net.init(0)
    records = []
    for n_workers in worker_counts:
        client = client_factory(n_workers)
        try:
            backend = DaskBackend(client, threads=1)
            for J in samples:
                projected_importance_update(backend, mb, params, 0.01, 0, min(J, 2000))  # warm the workers' JIT
                times, combine_s = [], []
                for r in range(repeat):
                    t = time.perf_counter()
                    projected_importance_update(backend, mb, params, 0.01, r + 1, J)
                    times.append(time.perf_counter() - t)
                    combine_s.append(backend.last_timing["combine_s"])
                rec = {"workers": n_workers, "samples": J, "seconds_per_update": min(times),
                       "updates_per_second": 1.0 / min(times), "combine_seconds": float(np.median(combine_s)),
                       "shards": backend.last_timing["shards"]}
                records.append(rec)
                printer(f"workers {n_workers}  J {J:>7}  {rec['seconds_per_update']:.3f} s/update  "
                        f"{rec['updates_per_second']:.2f} updates/s  combine {rec['combine_seconds'] * 1e3:.2f} ms")
        finally:
            client.close()
    return records
