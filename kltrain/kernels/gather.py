"""Many runs per launch: a backend whose calls from R run threads are gathered and launched together.

Each of R training runs goes on in its own thread, unchanged: the same code, seeds
and checks as a run on its own. Their backend is one :class:`GatheringBackend`: a
call blocks until every live run waits on the backend (or has finished); then the
waiting calls are executed, those of a function with a batched form ``<name>_many``
(``sgld_chain_many``, ``robbins_monro_many`` of :mod:`kltrain.kernels.cuda_backend`)
as one call of it — R runs in one set of launches — and the others one by one. The
runs then go on to their next call.

This is the experiment-level ``vmap`` without rewriting a run as array code: a
run's numbers depend on who shares its launch at most through float32 rounding, since
the batched kernels keep the runs in separate blocks (tests/test_batch.py checks it bit
for bit where the block split is fixed: the CPU path and the simulator).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class _Call:
    name: str
    args: tuple
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    owner: int = field(default_factory=threading.get_ident)


class GatheringBackend:
    """A backend (module or object) whose calls from ``runs`` run threads are executed in batches.

    Each of the ``runs`` threads does its work inside ``with gathering.run():``; calls from
    other threads go straight to the backend. The count is fixed up front, so a run that
    has not started yet is waited for (the first calls are not sent alone). ``cancel()``
    makes every waiting and later call raise KeyboardInterrupt (an interrupted
    experiment: each run keeps what it measured).
    """

    def __init__(self, backend, runs: int):
        if not isinstance(runs, int) or runs < 1:
            raise ValueError(f"runs must be a positive int, got {runs!r}")
        self.backend = backend
        self._live = runs   # runs not finished yet (started or not)
        self.name = getattr(backend, "name", getattr(backend, "__name__", type(backend).__name__))
        self._cond = threading.Condition()
        self._runs: set[int] = set()
        self._pending: list[_Call] = []
        self._cancelled = False
        self.launches: list[tuple[str, int]] = []   # (function, calls it served): what was gathered

    # -- run threads ----------------------------------------------------------------------
    def run(self):
        """Context manager: the current thread is a run until the block ends."""
        return _RunScope(self)

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def _enter(self) -> None:
        with self._cond:
            if len(self._runs) >= self._live:
                raise RuntimeError("more run threads entered than the GatheringBackend was made for")
            self._runs.add(threading.get_ident())

    def _leave(self) -> None:
        with self._cond:
            self._runs.discard(threading.get_ident())
            self._live -= 1
            self._flush_if_all_wait()

    # -- calls ----------------------------------------------------------------------------
    def __getattr__(self, name: str):
        attr = getattr(self.backend, name)   # AttributeError for a function the backend lacks
        if not callable(attr):
            return attr
        signature = _signature(attr)

        def gathered(*args, **kwargs):
            if threading.get_ident() not in self._runs:
                return attr(*args, **kwargs)
            bound = signature.bind(*args, **kwargs) if signature else None
            if bound is not None:
                bound.apply_defaults()
            return self._submit(_Call(name, tuple(bound.args) if bound else args))
        gathered.__name__ = name
        return gathered

    def _submit(self, call: _Call):
        with self._cond:
            if self._cancelled:
                raise KeyboardInterrupt("the batched runs were cancelled")
            self._pending.append(call)
            self._flush_if_all_wait()
            while not call.done and not self._cancelled:
                self._cond.wait()
            if not call.done:
                self._pending.remove(call)
                raise KeyboardInterrupt("the batched runs were cancelled")
        if call.error is not None:
            raise call.error
        return call.result

    def _flush_if_all_wait(self) -> None:
        """Run the pending calls if every unfinished run waits on one (caller holds the lock)."""
        if self._cancelled or not self._pending or len({c.owner for c in self._pending}) < self._live:
            return   # cancelled: a woken caller may not have left yet; its call must not run after all
        pending, self._pending = self._pending, []
        by_name: dict[str, list[_Call]] = {}
        for call in pending:
            by_name.setdefault(call.name, []).append(call)
        for name, calls in by_name.items():
            many = getattr(self.backend, f"{name}_many", None)
            if many is not None and len(calls) > 1:
                self._run_many(name, many, calls)
            else:
                for call in calls:
                    self._run_one(call)
        self._cond.notify_all()

    def _run_many(self, name, many, calls) -> None:
        try:
            results = many([c.args for c in calls])
        except Exception:   # find which run's call fails: each gets its own error (or result)
            for call in calls:
                self._run_one(call)
            return
        self.launches.append((name, len(calls)))
        for call, result in zip(calls, results):
            call.result, call.done = result, True

    def _run_one(self, call: _Call) -> None:
        try:
            call.result = getattr(self.backend, call.name)(*call.args)
        except BaseException as err:   # re-raised in the run's own thread
            call.error = err
        call.done = True
        self.launches.append((call.name, 1))


class _RunScope:
    def __init__(self, gathering: GatheringBackend):
        self.gathering = gathering

    def __enter__(self):
        self.gathering._enter()
        return self.gathering

    def __exit__(self, *exc):
        self.gathering._leave()
        return False


def _signature(fn) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None
