"""Importance sampling sharded across Dask workers, consolidated exactly (paper §5.1.2).

"If L processors are available, then each of the processors can be used to
produce an estimate using J/L Gaussian samples, and the associated estimates
can be subsequently consolidated." Here the J samples of an update are split
into index ranges; each range goes to a ``dask.distributed`` worker, which
*regenerates* its samples from (seed, index) with the counter-based generator
and returns an :class:`~kltrain.fastpath.ISPartial` (a largest log
weight and three sums). Only the parameters, the minibatch and these partial
sums travel; ``combine`` rescales them to a common maximum, so the update is
the single-process one up to float rounding, for any number of workers and
shards. A worker that dies mid-update has its ranges recomputed by Dask —
same seeds, same samples, same result (the inputs travel inside each task, so
nothing is lost with the worker).

``DaskBackend(client)`` is a kernel backend (:mod:`kltrain.kernels`): its
``importance_partial`` is sharded, everything else runs locally on ``inner``.
So both the per-sample and the exact-in-distribution projected IS updates
(:mod:`kltrain.nets.projected`) distribute without further code.

    from kltrain.kernels.distributed import connect, DaskBackend
    client = connect(workers=2)                  # or connect("tcp://scheduler:8786")
    loss = MinibatchLoss(net, X, y, backend=DaskBackend(client))
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from .._checks import check_count, check_positive
from ..estimators.importance import combine
from . import get_backend


def connect(scheduler: str | None = None, *, workers: int = 2, threads_per_worker: int = 1, timeout: float = 10.0):
    """A ``dask.distributed.Client``: to ``scheduler`` (``tcp://host:port``) or a new LocalCluster.

    Bounded by ``timeout`` seconds (> 0), the handshake included: an unreachable address,
    or one that is not a Dask scheduler, raises ConnectionError naming it; no answer, or a
    scheduler without workers, raises TimeoutError naming it. ``workers`` must be >= 1.
    """
    timeout = check_positive(timeout, "timeout")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("kltrain.kernels.distributed needs dask.distributed: pip install 'kltrain[distributed]'") from err
    if scheduler is None:
        check_count(workers, "workers", 1)   # a cluster of none would hang at the first update
        check_count(threads_per_worker, "threads_per_worker", 1)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=":0")
        return Client(cluster)
    try:
        client = bounded(lambda: Client(scheduler, timeout=timeout), timeout + GRACE_S,
                         f"the Dask scheduler at {scheduler!r}", close=lambda c: c.close())
    except TimeoutError:
        raise
    except (OSError, MemoryError, ValueError, TypeError) as err:  # MemoryError: a non-Dask peer's bytes
        raise ConnectionError(f"cannot connect to a Dask scheduler at {scheduler!r} within {timeout:g} s "
                              f"({type(err).__name__}: {err})") from err
    _wait_for_workers(client, scheduler, timeout)
    return client


GRACE_S = 5.0  # beyond Dask's own connect timeout, before a silent peer counts as a hang


def bounded(fn, timeout: float, what: str, close=None):
    """``fn()`` in a daemon thread; TimeoutError naming ``what`` if it has not returned in ``timeout`` s.

    Dask's own timeouts do not cover every read of a handshake: a peer that accepts and then
    stays silent held ``Client()`` for more than 150 s. A result that arrives after we gave
    up is passed to ``close``.
    """
    box, gave_up = {}, threading.Event()

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: B036 (re-raised in the caller's thread)
            box["error"] = err
        if gave_up.is_set() and "value" in box and close is not None:
            close(box["value"])

    thread = threading.Thread(target=target, daemon=True, name="kltrain-bounded")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        gave_up.set()
        raise TimeoutError(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _wait_for_workers(client, scheduler, timeout):
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as err:
        client.close()
        raise TimeoutError(f"the Dask scheduler at {scheduler!r} has no workers after {timeout:g} s") from err


def _shard_partial(batch, params, tau, seed, start, stop, antithetic, inner, threads):
    """Runs on a worker: the ISPartial of samples [start, stop), regenerated from (seed, index)."""
    from .layout import Minibatch
    from ..nets.mlp import MLP
    if threads and inner == "cpu":
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    sizes, X, y = batch
    mb = Minibatch.build(MLP(sizes), X, y)
    return get_backend(inner).importance_partial(mb, params, tau, seed, start, stop, antithetic)


def shard_bounds(start: int, stop: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal index ranges covering [start, stop)."""
    n_shards = max(1, min(n_shards, stop - start))
    edges = start + (np.arange(n_shards + 1) * (stop - start)) // n_shards
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class DaskBackend:
    """A kernel backend whose importance sampling runs in shards on Dask workers.

    Parameters
    ----------
    client : a ``dask.distributed.Client``.
    n_shards : ranges per update (default: two per worker, so a slow worker is not the bottleneck).
    inner : the backend that workers (and the local, non-IS functions) use: "cpu", "cuda", "auto".
    threads : numba threads per task on a CPU worker (None: leave the worker's setting).
    timeout : seconds an update may wait for its shards (a scheduler that lost its workers
        would otherwise wait forever); TimeoutError naming the scheduler after it.
    """

    name = "dask"

    def __init__(self, client, n_shards: int | None = None, inner: str = "cpu", threads: int | None = 1,
                 timeout: float = 600.0):
        self.timeout = check_positive(timeout, "timeout")
        self.client = client
        self.n_shards = n_shards
        self.inner = inner
        self.threads = threads
        self.local = get_backend(inner)
        self.last_timing: dict[str, Any] = {}

    def __getattr__(self, name):  # loss_and_grad, sgld_chain, robbins_monro, normals, ... run locally
        return getattr(self.local, name)

    def shards(self, start, stop):
        n = self.n_shards or 2 * max(1, len(self.client.scheduler_info()["workers"]))
        return shard_bounds(start, stop, n)

    def importance_partial(self, mb, params, tau, seed, start, stop, antithetic):
        t0 = time.perf_counter()
        # inputs travel inside each task (≤ 0.7 MB; 25 KB for the reduced problem) rather than
        # scattered: a task lost with its worker can then be rerun from its own spec
        batch = (mb.net.sizes, mb.X, mb.y)
        p = np.ascontiguousarray(params, dtype=np.float32)
        futures = [self.client.submit(_shard_partial, batch, p, tau, seed, lo, hi, antithetic, self.inner,
                                      self.threads, pure=False) for lo, hi in self.shards(start, stop)]
        results = self._gather(futures)  # in shard order
        t1 = time.perf_counter()
        partial = combine([part for part, _ in results])._replace(n=stop - start)
        log_w = np.concatenate([lw for _, lw in results])
        self.last_timing = {"distributed_s": t1 - t0, "combine_s": time.perf_counter() - t1,
                            "shards": len(futures)}
        return partial, log_w


    def _gather(self, futures):
        from dask.distributed import wait
        try:
            wait(futures, timeout=self.timeout)
        except TimeoutError as err:
            self.client.cancel(futures)
            n_workers = len(self.client.scheduler_info().get("workers", {}))
            raise TimeoutError(f"importance-sampling shards on the Dask scheduler at {self.client.scheduler.address!r} "
                               f"({n_workers} workers) not done within {self.timeout:g} s") from err
        return self.client.gather(futures)
