"""Issue 11, class 4: every Dask call ends within its timeout, naming the address.

Only loopback: a plain TCP listener (not Dask) that this test opens and closes.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from kltrain.kernels.distributed import DaskBackend, bounded, connect

pytest.importorskip("dask.distributed")


@contextmanager
def not_dask(reply: bytes | None):
    """A loopback listener that accepts, then sends ``reply`` (or nothing) and holds the connection."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            held.append(conn)
            if reply:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reply", [None, b"\xff" * 64, b"HTTP/1.1 200 OK\r\n\r\nhello"],
                         ids=["silent", "huge-frame", "http"])
def test_a_non_dask_endpoint_fails_within_the_timeout_naming_it(reply):
    with not_dask(reply) as address:
        start = time.perf_counter()
        with pytest.raises((ConnectionError, TimeoutError), match=address.replace(".", r"\.")):
            connect(address, timeout=1)
        assert time.perf_counter() - start < 1 + 5 + 3          # timeout + grace + slack


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kwargs,error", [({"workers": 0}, ValueError), ({"timeout": -1}, ValueError),
                                          ({"timeout": 0}, ValueError), ({"workers": 1.5}, TypeError)])
def test_bad_connect_arguments_are_refused_before_any_cluster(kwargs, error):
    with pytest.raises(error, match="workers" if "workers" in kwargs else "timeout"):
        connect(**kwargs)


@pytest.mark.timeout(30)
def test_bounded_returns_raises_or_times_out():
    assert bounded(lambda: 3, 1, "x") == 3                          # negative control: no false timeouts
    with pytest.raises(KeyError):
        bounded(lambda: {}["k"], 1, "x")
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="the sleeper: no answer within 0.2 s"):
        bounded(lambda: time.sleep(3), 0.2, "the sleeper")
    assert time.perf_counter() - start < 1


@contextmanager
def workerless_scheduler():
    """A Dask scheduler with no workers, in its own process, on loopback; yields its address.

    An in-process ``LocalCluster`` deadlocked once inside dask's start-up (``Client.__del__`` ran in
    ``LoopRunner._start_unlocked`` during a retry: 2 h 19 min, issue 26). A scheduler process shares no
    loop, lock or garbage collector with the test, so nothing of it can wedge the test process; it is
    killed on the way out whatever happens.
    """
    with tempfile.TemporaryDirectory() as folder:
        info = os.path.join(folder, "scheduler.json")
        proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                 "--port", "0", "--no-dashboard", "--scheduler-file", info],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(info) or not os.path.getsize(info):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Dask scheduler process did not start (exit status {proc.poll()})")
                time.sleep(0.1)
            time.sleep(0.1)   # the file is written whole, but give it a moment to be flushed
            with open(info) as fh:
                yield json.load(fh)["address"]
        finally:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(90)
def test_a_scheduler_without_workers_times_out_naming_it():
    from dask.distributed import Client
    with workerless_scheduler() as address:
        with Client(address, timeout=30):   # the scheduler answers: what follows times out on the workers alone
            pass                            # (a first handshake on a busy 2-core machine took over 6 s once)
        with pytest.raises(TimeoutError, match=f"{address!r} has no workers"):
            connect(address, timeout=2)
        with Client(address, timeout=10) as client:   # a client made elsewhere: the update's gather is bounded too
            from kltrain.kernels.layout import Minibatch
            from kltrain.nets import MLP
            net = MLP((4, 2))
            mb = Minibatch.build(net, np.ones((3, 4)), np.array([0, 1, 0]))
            with pytest.raises(TimeoutError, match="not done within 1 s"):
                DaskBackend(client, timeout=1).importance_partial(mb, net.init(0), 0.1, 1, 0, 10, False)
