"""Importance sampling sharded on Dask (LocalCluster, worker processes): exact consolidation and faults."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from kltrain.nets.data import load_mnist
from kltrain.kernels.distributed import DaskBackend, connect, shard_bounds
from kltrain.estimators.importance import posterior_mean_from_partial
from kltrain.kernels import get_backend
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.nets.projected import projected_importance_update
from kltrain.studies.training import TrainConfig, load_data, train

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.timeout(300)   # a LocalCluster of worker processes: minutes at most, never a hang
X, Y, _, _ = load_mnist(quiet=True)
CPU = get_backend("cpu")


@pytest.fixture(scope="module")
def client():
    c = connect(workers=2, threads_per_worker=1)
    yield c
    c.close()


def _problem(net=None):
    net = net or MLP.hidden()
    return Minibatch.build(net, X[:20], Y[:20]), net.init(0)


@pytest.mark.parametrize("n_shards", [1, 3, 7])
@pytest.mark.parametrize("antithetic", [False, True])
def test_sharded_update_equals_single_process(client, n_shards, antithetic):
    mb, p = _problem(MLP((784, 16, 10)))
    a, la = DaskBackend(client, n_shards=n_shards).importance_partial(mb, p, 0.01, 5, 3, 203, antithetic)
    b, lb = CPU.importance_partial(mb, p, 0.01, 5, 3, 203, antithetic)
    np.testing.assert_array_equal(la, lb)                 # same samples, same order
    x = p.astype(np.float64)
    np.testing.assert_allclose(posterior_mean_from_partial(a, x, 0.01), posterior_mean_from_partial(b, x, 0.01),
                               rtol=0, atol=1e-7)           # float rounding only
    assert a.n == b.n == 200


def test_projected_update_distributes_unchanged(client):
    mb, p = _problem()
    a, _ = projected_importance_update(DaskBackend(client, n_shards=4), mb, p, 0.01, 9, 1000)
    b, _ = projected_importance_update(CPU, mb, p, 0.01, 9, 1000)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_negative_control_a_missing_shard_changes_the_update(client):
    mb, p = _problem(MLP((784, 16, 10)))
    backend = DaskBackend(client, n_shards=4)
    full, _ = backend.importance_partial(mb, p, 0.01, 5, 0, 200, False)
    backend.shards = lambda start, stop: shard_bounds(start, stop, 4)[:-1]   # drop the last range
    short, _ = backend.importance_partial(mb, p, 0.01, 5, 0, 200, False)
    x = p.astype(np.float64)
    assert np.abs(posterior_mean_from_partial(full, x, 0.01) - posterior_mean_from_partial(short, x, 0.01)).max() > 1e-4


def test_a_worker_killed_mid_update_changes_nothing(client):
    mb, p = _problem()
    backend = DaskBackend(client, n_shards=8)
    backend.importance_partial(mb, p, 0.01, 1, 0, 16, False)             # warm the workers' JIT
    pids = client.run(os.getpid)
    victim = next(iter(pids))
    killed = threading.Event()

    def kill_when_busy():  # kill the worker as soon as it is computing one of our shards
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not killed.is_set():
            if client.processing().get(victim):
                os.kill(pids[victim], signal.SIGKILL)
                killed.set()
            time.sleep(0.01)
    watcher = threading.Thread(target=kill_when_busy)
    watcher.start()
    a, _ = backend.importance_partial(mb, p, 0.01, 2, 0, 2400, False)
    watcher.join()
    assert killed.is_set()
    b, _ = CPU.importance_partial(mb, p, 0.01, 2, 0, 2400, False)
    x = p.astype(np.float64)
    np.testing.assert_allclose(posterior_mean_from_partial(a, x, 0.01), posterior_mean_from_partial(b, x, 0.01),
                               atol=1e-7)
    client.wait_for_workers(2, timeout=60)                             # the nanny restarted it
    assert pids[victim] not in client.run(os.getpid).values()


def test_unreachable_scheduler_is_a_clear_error_within_the_timeout():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="tcp://127.0.0.1:9"):
        connect("tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - start < 15


def test_shard_bounds_cover_the_range():
    assert shard_bounds(3, 13, 4) == [(3, 5), (5, 8), (8, 10), (10, 13)]
    assert shard_bounds(0, 2, 5) == [(0, 1), (1, 2)]


def test_training_through_dask_matches_single_process(client):
    data = load_data(TrainConfig("is", n_test=200))
    cfg = TrainConfig("is", samples=200, n_updates=4, eval_every=2, n_test=200)
    a = train(cfg, data=data, progress=False, backend=DaskBackend(client, n_shards=3))
    b = train(cfg, data=data, progress=False)
    np.testing.assert_allclose(a.final_params, b.final_params, atol=1e-5)
    assert a.test_accuracy == b.test_accuracy
