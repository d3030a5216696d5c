"""The CUDA compile tier: every kernel of :mod:`kltrain.kernels.cuda` through numba-cuda's real compiler.

The CUDA simulator runs kernels as Python, so it accepts code that NVVM rejects
(a shared array whose shape is an expression, for one). This module compiles
each kernel, with the argument types :mod:`kltrain.kernels.cuda_backend`
launches it with (``LAUNCH_TYPES``; a simulator test checks every launch
against them), to PTX for a target compute capability, and links the PTX with
nvJitLink to read ptxas's resource report (registers, spills, shared memory).
None of it needs a GPU, only ``numba-cuda[cu13]`` (NVVM, NVRTC, nvJitLink)::

    python -m kltrain.kernels.cuda_compile --cc 80 90

It must run with ``NUMBA_ENABLE_CUDASIM=0`` (the tests call it in a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import dataclass

from numba import types as nbt

F32, I64, U64, BOOL = nbt.float32, nbt.int64, nbt.uint64, nbt.boolean
F32V, I64V, F64V = nbt.float32[::1], nbt.int64[::1], nbt.float64[::1]
_BATCH = (I64V, I64V, I64V, I64V, F32V, I64V, I64)   # lay, cols, colptr, col_row, col_val, y, B

# Argument types of every launch in cuda_backend.py, in the kernels' parameter order.
LAUNCH_TYPES: dict[str, tuple] = {
    "normals": (U64, I64V, I64, nbt.float32[:, ::1]),
    "log_weights": (F32V, F32, U64, I64, BOOL) + _BATCH + (F32V,),
    "accumulate": (U64, I64, BOOL, F32V, I64, nbt.float32[:, ::1]),
    "sum_rows": (nbt.float32[:, ::1], F32V),
    "fill": (F32V, F32),
    "loss_grad": (F32V,) + _BATCH + (F32V, F32V),
    "langevin": (F32V, F32V, F32V, F32V, F32, F32, F32, F32, U64),
    "rm_grads": (F32V, F32, U64, I64) + _BATCH + (F32V,),
    "rm_update": (F32V, F32V, F32V, F32, F32, F64V),
}

def threads_per_block(name: str) -> int:
    """Threads per block the backend launches ``name`` with (network kernels: cuda_backend.THREADS)."""
    from .cuda_backend import COORD_THREADS, THREADS
    return THREADS if name in ("log_weights", "loss_grad", "rm_grads") else COORD_THREADS


@dataclass(frozen=True)
class KernelResources:
    """ptxas's report for one kernel on one target, and the occupancy it allows."""

    kernel: str
    cc: tuple
    registers: int
    spill_bytes: int        # spill stores + loads
    local_bytes: int        # stack frame (local memory per thread)
    shared_bytes: int       # static shared memory per block
    threads: int            # threads per block at launch
    occupancy: float        # theoretical: resident warps / max warps per SM


class _TargetDevice:
    """Stands in for ``get_current_device()`` while compiling device functions with no GPU."""

    def __init__(self, cc):
        self.compute_capability = tuple(cc)


@contextlib.contextmanager
def target(cc):
    """Compile for ``cc`` without a GPU: numba-cuda asks the current device for its compute
    capability when it compiles a kernel's device functions, which fails with no driver."""
    from numba.cuda import dispatcher
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _TargetDevice(cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def compile_kernel(name: str, cc=(9, 0)) -> str:
    """PTX of kernel ``name`` for compute capability ``cc``; raises numba's error if it does not compile."""
    from numba import cuda
    from . import cuda as K
    with target(cc):
        ptx, _ = cuda.compile_ptx(getattr(K, name).py_func, LAUNCH_TYPES[name], cc=tuple(cc))
    return ptx


def link_report(ptx: str, cc) -> str:
    """nvJitLink's verbose log for ``ptx`` on sm_<cc> (the ptxas resource lines)."""
    from cuda.bindings import nvjitlink
    handle = nvjitlink.create(2, [f"-arch=sm_{cc[0]}{cc[1]}", "-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel.ptx")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
        return log.decode(errors="replace")
    finally:
        nvjitlink.destroy(handle)


def _number(pattern, text):
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


# Per-SM limits of sm_80 and sm_90 (CUDA programming guide, "Technical specifications").
_SM_LIMITS = {(8, 0): (65536, 167936, 2048, 32), (9, 0): (65536, 233472, 2048, 32)}


def occupancy(registers: int, shared: int, threads: int, cc) -> float:
    """Theoretical occupancy: resident warps per SM (limited by registers, shared memory,
    threads and blocks) over the SM's maximum."""
    regs_sm, smem_sm, threads_sm, blocks_sm = _SM_LIMITS[tuple(cc)]
    warps = -(-threads // 32)
    regs_per_warp = -(-max(registers, 1) * 32 // 256) * 256     # allocated in units of 256
    by_regs = regs_sm // (regs_per_warp * warps)
    by_smem = smem_sm // (shared + 1024) if shared else blocks_sm  # 1 KiB reserved per block
    blocks = min(by_regs, by_smem, threads_sm // (warps * 32), blocks_sm)
    return blocks * warps / (threads_sm // 32)


def resources(name: str, cc=(9, 0)) -> KernelResources:
    """Compile kernel ``name`` for ``cc``; its registers, spills, stack, shared memory and occupancy."""
    log = link_report(compile_kernel(name, cc), cc)
    regs = _number(r"used (\d+) registers", log)
    shared = _number(r"(\d+) bytes smem", log)
    threads = threads_per_block(name)
    return KernelResources(name, tuple(cc), regs,
                           _number(r"(\d+) bytes spill stores", log) + _number(r"(\d+) bytes spill loads", log),
                           _number(r"(\d+) bytes stack frame", log), shared, threads,
                           occupancy(regs, shared, threads, cc))


def main(argv=None) -> int:
    """``python -m kltrain.kernels.cuda_compile``: compile every kernel, print its resources; exit 1 if any fails."""
    parser = argparse.ArgumentParser(prog="python -m kltrain.kernels.cuda_compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cc", nargs="+", default=["80", "90"], choices=["80", "90"],
                        help="compute capabilities to compile for (default: 80 90)")
    args = parser.parse_args(argv)
    failed = []
    print(f"{'kernel':<12} {'target':<7} {'regs':>5} {'spill B':>8} {'stack B':>8} {'smem B':>7} "
          f"{'threads':>7} {'occupancy':>9}")
    for cc in ((int(c[0]), int(c[1])) for c in args.cc):
        for name in LAUNCH_TYPES:
            try:
                r = resources(name, cc)
            except Exception as err:  # report every kernel, then fail
                failed.append(name)
                print(f"{name:<12} sm_{cc[0]}{cc[1]}  FAILED: {type(err).__name__}: {str(err).splitlines()[0]}")
                continue
            print(f"{name:<12} sm_{cc[0]}{cc[1]:<4} {r.registers:>5} {r.spill_bytes:>8} {r.local_bytes:>8} "
                  f"{r.shared_bytes:>7} {r.threads:>7} {r.occupancy:>9.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
