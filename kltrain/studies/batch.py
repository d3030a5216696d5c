"""R training runs side by side: seeds, τ values and algorithms of one net, in one set of launches.

    batch = RunBatch(tuple(TrainConfig(a, seed=s) for a in ("sgd", "is", "sgld", "hr") for s in range(5)))
    results = run_batch(batch, data)          # [TrainResult], in the order of batch.configs

What evosax's ``vmap`` over seeds and EvoTorch's vectorised problems give their
users, for our training runs — but each run stays the readable one-run code of
:func:`kltrain.studies.training.train`:

- **GPU path** (the backend resolves to ``cuda``): every run goes on in its own thread
  with one shared :class:`kltrain.kernels.gather.GatheringBackend`. Whenever every run
  waits on the GPU, the waiting calls go out together: the SGLD chains of all SGLD runs
  as the blocks of one launch, the Robbins–Monro iterations of all HR runs as one set
  of launches (:mod:`kltrain.kernels.cuda_chain_runs`); other calls one by one.
- **CPU path** (any other backend): the runs one after the other in this process, the
  code that ran them before (the CPU kernels already use every core).

Both give each run the numbers it gets alone, to float32 rounding: the same seeds and code,
and kernels whose blocks never mix runs (bit for bit on the CPU path and under the simulator;
on a GPU the Robbins–Monro block split and the lone run's resident loop can change the last
bits: docs/gpu.md). A run's ``checkpoint`` is called as
``train`` calls it, so result files, resumption and interrupted runs behave as before.
An error in one run (a diverged chain) does not stop the others; the first is re-raised
once they have finished.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..kernels import resolve
from .config import TrainConfig
from .training import TrainResult, train


@dataclass(frozen=True)
class RunBatch:
    """The runs of one batch: same dataset and test subset (one copy of the data serves all)."""

    configs: tuple

    def __post_init__(self):
        if not isinstance(self.configs, tuple) or not self.configs:
            raise ValueError(f"configs must be a non-empty tuple of TrainConfig, got {self.configs!r}")
        for cfg in self.configs:
            if not isinstance(cfg, TrainConfig):
                raise TypeError(f"configs must hold TrainConfig values, got {type(cfg).__name__}")
        shared = {(c.dataset, c.n_test) for c in self.configs}
        if len(shared) > 1:
            raise ValueError(f"a RunBatch shares one dataset and test subset; got (dataset, n_test) {sorted(shared)}")

    def __len__(self) -> int:
        return len(self.configs)


def batch_backend(batch: RunBatch, backend: Any = None) -> Any:
    """The backend the batch runs on: ``backend`` if given (a name or object), else the first config's."""
    return batch.configs[0].backend if backend is None else backend


def gathers(backend: Any) -> bool:
    """Whether run_batch takes the GPU path: the backend is a name that resolves to cuda."""
    return isinstance(backend, str) and resolve(backend) == "cuda"


def run_batch(batch: RunBatch, data=None, backend: Any = None, checkpoints: Sequence[Callable | None] | None = None,
              progress: bool = False) -> list[TrainResult]:
    """Train every run of ``batch``; ``checkpoints[i]`` is run i's ``train`` checkpoint (None: none).

    ``data`` = (X_train, y_train, X_test, y_test) or None to load it once for all runs.
    """
    from .training import load_data
    checkpoints = list(checkpoints) if checkpoints is not None else [None for _ in batch.configs]
    if len(checkpoints) != len(batch):
        raise ValueError(f"checkpoints must have one entry per run ({len(batch)}), got {len(checkpoints)}")
    data = load_data(batch.configs[0]) if data is None else data
    chosen = batch_backend(batch, backend)
    # learned-covariance runs call the parallel CPU kernels, which numba's workqueue layer forbids from
    # two threads at once: they stay in series
    together = [i for i, cfg in enumerate(batch.configs) if type(cfg) is TrainConfig] if gathers(chosen) else []
    results: list = [None] * len(batch)
    if len(together) > 1:
        for i, res in zip(together, _run_gathered([batch.configs[i] for i in together], data,
                                                  [checkpoints[i] for i in together])):
            results[i] = res
    for i, (cfg, cp) in enumerate(zip(batch.configs, checkpoints)):
        if results[i] is None:
            results[i] = train(cfg, data=data, progress=progress, backend=None if isinstance(chosen, str) else chosen,
                               checkpoint=cp)
    return results


def _run_gathered(configs, data, checkpoints) -> list[TrainResult]:
    """The runs in threads over one GatheringBackend on the cuda backend."""
    from ..kernels import get_backend
    from ..kernels.gather import GatheringBackend
    gathering = GatheringBackend(get_backend("cuda"), runs=len(configs))
    results: list = [None] * len(configs)
    errors: list = [None] * len(configs)

    def one(i):
        with gathering.run():
            try:
                results[i] = train(configs[i], data=data, progress=False, backend=gathering, checkpoint=checkpoints[i])
            except BaseException as err:  # kept for the main thread; the other runs go on
                errors[i] = err

    threads = [threading.Thread(target=one, args=(i,), name=f"kltrain-run-{i}", daemon=True)
               for i in range(len(configs))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:    # Ctrl-C (or a signal turned into an exception) in the main thread
        gathering.cancel()   # every waiting run raises KeyboardInterrupt: it checkpoints "interrupted" and stops
        for t in threads:
            t.join()
        raise
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results
