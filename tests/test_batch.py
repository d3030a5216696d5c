"""Many runs per launch (kltrain.studies.batch, kltrain.kernels.gather): the same numbers as one run at a time.

Oracle: each run trained alone by ``train``. The GPU path runs under the CUDA
simulator on a synthetic 784-pixel set (the small net, a few updates).
"""

import os
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from kltrain.kernels.gather import GatheringBackend
from kltrain.studies.batch import RunBatch, run_batch
from kltrain.studies.config import CovarianceTrainConfig, TrainConfig
from kltrain.studies.training import train

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


# -- the gatherer, on a pure-Python backend --------------------------------------------------
class Doubling:
    """A backend: ``double`` has a batched form; ``fail`` raises for its own caller only."""

    def __init__(self):
        self.batches = []

    def double(self, x, offset=0):
        return 2 * x + offset

    def double_many(self, calls):
        self.batches.append(len(calls))
        return [2 * x + offset for x, offset in calls]

    def fail(self, x):
        raise FloatingPointError(f"run {x} diverged")


def _in_threads(gathering, work, n):
    out, errors = [None] * n, [None] * n

    def one(i):
        with gathering.run():
            try:
                out[i] = work(i)
            except BaseException as err:
                errors[i] = err
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a run thread hung"
    return out, errors


def test_calls_of_waiting_runs_go_out_as_one_batched_call():
    backend = Doubling()
    gathering = GatheringBackend(backend, runs=4)
    out, errors = _in_threads(gathering, lambda i: [gathering.double(i, offset=k) for k in range(3)], 4)
    assert errors == [None] * 4
    assert out == [[2 * i + k for k in range(3)] for i in range(4)]
    assert backend.batches == [4, 4, 4]           # every round: the four runs in one call


def test_a_run_that_finishes_early_or_fails_holds_nobody_up():
    backend = Doubling()
    gathering = GatheringBackend(backend, runs=4)

    def work(i):
        if i == 0:
            return "no GPU work"               # finishes without a call: the others must not wait for it
        if i == 1:
            return gathering.fail(i)
        time.sleep(0.01 * i)                   # arrive at different times
        return [gathering.double(i) for _ in range(2 + i)]
    out, errors = _in_threads(gathering, work, 4)
    assert out[0] == "no GPU work" and out[2] == [4] * 4 and out[3] == [6] * 5
    assert isinstance(errors[1], FloatingPointError) and "run 1" in str(errors[1])
    assert errors[2] is None and errors[3] is None


def test_calls_from_outside_a_run_are_not_gathered():
    backend = Doubling()
    assert GatheringBackend(backend, runs=4).double(3) == 6 and backend.batches == []


def test_cancel_interrupts_the_waiting_runs():
    gathering = GatheringBackend(Doubling(), runs=2)
    release, result = threading.Event(), {}

    def work(i):
        if i == 0:
            release.wait(30)                   # makes no call: run 1 waits for it …
            return "done"
        return gathering.double(i)
    holder = threading.Thread(target=lambda: result.update(zip(("out", "errors"), _in_threads(gathering, work, 2))))
    holder.start()
    time.sleep(0.2)
    assert holder.is_alive()
    gathering.cancel()                         # … until the batch is cancelled
    release.set()
    holder.join(10)
    assert result["out"][0] == "done" and isinstance(result["errors"][1], KeyboardInterrupt)


# -- RunBatch --------------------------------------------------------------------------------
def test_run_batch_refuses_what_it_cannot_share():
    with pytest.raises(ValueError, match="non-empty"):
        RunBatch(())
    with pytest.raises(TypeError, match="TrainConfig"):
        RunBatch(({"algorithm": "sgd"},))
    with pytest.raises(ValueError, match="dataset and test subset"):
        RunBatch((TrainConfig("sgd"), TrainConfig("sgd", n_test=50)))
    with pytest.raises(ValueError, match="one entry per run"):
        run_batch(RunBatch((TrainConfig("sgd"),)), data=_data(), checkpoints=[])


def _data(seed=0, n_train=60, n_test=40):
    """MNIST-shaped synthetic data: 784 pixels, ~15% nonzero, 10 classes."""
    rng = np.random.default_rng(seed)

    def images(n):
        return (rng.random((n, 784)) * (rng.random((n, 784)) < 0.15)).astype(np.float32)
    return images(n_train), rng.integers(0, 10, n_train), images(n_test), rng.integers(0, 10, n_test)


def _same(a, b):
    assert a.status == b.status == "done"
    assert a.test_accuracy == b.test_accuracy and a.minibatch_loss == b.minibatch_loss and a.taus == b.taus
    np.testing.assert_array_equal(a.final_params, b.final_params)


TINY = dict(net="small", n_updates=2, eval_every=1, n_test=40, samples=4, hr_iterations=2, hr_samples=2)


def test_cpu_path_gives_each_run_its_own_numbers_and_checkpoints():
    data = _data()
    configs = (TrainConfig("sgld", seed=0, backend="cpu", **TINY), TrainConfig("hr", seed=1, backend="cpu", **TINY),
               TrainConfig("is", seed=2, tau=0.1, backend="cpu", **TINY))
    seen = [[] for _ in configs]
    got = run_batch(RunBatch(configs), data=data, checkpoints=[lambda r, i=i: seen[i].append(r.status)
                                                               for i in range(len(configs))])
    for cfg, res, statuses in zip(configs, got, seen):
        _same(res, train(cfg, data=data, progress=False))
        assert statuses[-1] == "done" and len(statuses) == 4   # start, two evaluations, end


@pytest.mark.skipif(not SIMULATED, reason="the GPU path runs under the CUDA simulator")
def test_gpu_path_gathers_the_chains_and_gives_each_run_its_own_numbers(monkeypatch):
    from kltrain.kernels import cpu_backend, cuda_backend
    # the full-size orthogonal draws (7840 normals) would cost seconds each in the simulator;
    # both paths take them from the CPU generator, so the comparison is unchanged
    monkeypatch.setattr(cuda_backend, "normals", cpu_backend.normals)
    batched = []
    for name in ("sgld_chain_many", "robbins_monro_many"):
        real = getattr(cuda_backend, name)
        monkeypatch.setattr(cuda_backend, name, lambda calls, real=real, name=name:
                            batched.append((name, len(calls))) or real(calls))
    data = _data(1)
    configs = (TrainConfig("sgld", seed=0, backend="cuda", **TINY), TrainConfig("sgld", seed=1, tau=0.05,
                                                                               backend="cuda", **TINY),
               TrainConfig("hr", seed=2, backend="cuda", **TINY), TrainConfig("hr", seed=3, backend="cuda", **TINY))
    got = run_batch(RunBatch(configs), data=data)
    assert ("sgld_chain_many", 2) in batched and ("robbins_monro_many", 2) in batched
    for cfg, res in zip(configs, got):
        _same(res, train(cfg, data=data, progress=False))


def test_learned_covariance_runs_stay_in_series(monkeypatch):
    """They call the parallel CPU kernels, which must not run from two threads at once."""
    import kltrain.studies.batch as B
    calls = []
    monkeypatch.setattr(B, "_run_gathered", lambda cfgs, data, cps: calls.append(cfgs) or [None] * len(cfgs))
    monkeypatch.setattr(B, "train", lambda cfg, **kw: cfg)
    monkeypatch.setattr(B, "gathers", lambda backend: True)
    plain = [TrainConfig("sgld", seed=s, **TINY) for s in range(2)]
    learned = replace(CovarianceTrainConfig("is", **TINY), seed=5)
    got = run_batch(RunBatch((plain[0], learned, plain[1])), data=_data())
    assert calls == [plain] and got[1] is learned


def test_a_gathered_run_chooses_its_path_as_a_lone_run_does():
    """GatheringBackend reports the wrapped backend's name, so projected=None prices it as that backend
    (it once reported the module's dotted name, and gathered CUDA runs took the CPU model's choice)."""
    from kltrain.kernels import cpu_backend, cuda_backend
    from kltrain.kernels.gather import GatheringBackend
    assert GatheringBackend(cuda_backend, runs=2).name == "cuda" and GatheringBackend(cpu_backend, runs=1).name == "cpu"
