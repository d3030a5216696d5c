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
from typing import Any

from numba import types as nbt

F32, I64, U64, BOOL = nbt.float32, nbt.int64, nbt.uint64, nbt.boolean
F32V, I64V, F64V = nbt.float32[::1], nbt.int64[::1], nbt.float64[::1]
F32M, F64M = nbt.float32[:, ::1], nbt.float64[:, ::1]
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
    # the device-resident updates (cuda_resident.py launches them; kernels in cuda_qr / cuda_reduced)
    "minibatch_qr": (F32M, I64V, I64, nbt.float64, F32M, F32M, F64M, I64V),
    "reduce_params": (F32V, F32M, I64V, I64V, U64, F32V, F32V, I64V),
    "is_samples": (F32V, F32M, I64V, I64V, I64V, I64, I64V, F32, U64, I64, BOOL, F32, F32V, F32M, F64M, I64V, F32V),
    "is_finish": (F32V, I64V, I64V, F32, F64M, F32M, I64V, F32V, F32V, F64V),
    "lift": (F32V, F32M, I64V, I64V, U64, F32V, F32V, F32V, F64V),
    "sgd_step": (F32V, F32M, I64V, I64V, I64, I64V, F32, F32, F32V, F32V, F32V, F64V),
}
# The module of each kernel outside kltrain.kernels.cuda.
KERNEL_MODULES: dict[str, str] = {"minibatch_qr": "cuda_qr", "reduce_params": "cuda_reduced",
                                  "is_samples": "cuda_reduced", "is_finish": "cuda_reduced", "lift": "cuda_reduced",
                                  "sgd_step": "cuda_reduced"}


def kernel_module(name: str):
    """The module that defines kernel ``name``."""
    import importlib
    return importlib.import_module(f"kltrain.kernels.{KERNEL_MODULES.get(name, 'cuda')}")


def kernel(name: str):
    """The dispatcher of kernel ``name``."""
    return getattr(kernel_module(name), name)


# The persistent chains of kltrain.kernels.cuda_chains (issue 21), launched by cuda_chain_runs.py.
I64M, F32T, U64V = nbt.int64[:, ::1], nbt.float32[:, :, ::1], nbt.uint64[::1]
_RUNS = (F32M, I64M, I64M, I64, I64, I64)             # xin, yin, dims, H, C, two
CHAIN_LAUNCH_TYPES: dict[str, tuple] = {
    "chain_noise": (U64V, I64, I64V, F32T),
    "sgld_chains": _RUNS + (F32M, F32M, F32M, F32T, F32V, F32T, F64V),
    "rm_chains": _RUNS + (F32M, F32M, F32V, F32M, F32V, I64, I64, I64, I64, F32T, F32T, F64V),
    "rm_apply": (F32M, F32M, F32T, I64V, F32M, F32V, I64, F64V),
}
LAUNCH_TYPES.update(CHAIN_LAUNCH_TYPES)
KERNEL_MODULES.update(dict.fromkeys(CHAIN_LAUNCH_TYPES, "cuda_chains"))


def threads_per_block(name: str) -> int:
    """Threads per block the backend launches ``name`` with (network kernels: cuda_backend.THREADS)."""
    from .cuda_backend import COORD_THREADS, THREADS
    from .cuda_chain_runs import NOISE_THREADS, RM_APPLY_THREADS
    from .cuda_chains import MAX_THREADS
    chains = {"chain_noise": NOISE_THREADS, "rm_apply": RM_APPLY_THREADS, "sgld_chains": MAX_THREADS,
              "rm_chains": MAX_THREADS}  # the chains: up to one thread per hidden unit (224 for H = 200)
    if name in chains:
        return chains[name]
    from .cuda_resident import DEFAULT_SHAPE as shape
    resident = {"minibatch_qr": shape.qr_threads, "is_samples": shape.sample_threads, "sgd_step": shape.sgd_threads,
                "reduce_params": 32 * 7}   # (TILE, ⌈20/ACC_ROWS⌉) at the paper's batch of 20
    if name in resident:
        return resident[name]
    return THREADS if name in ("log_weights", "loss_grad", "rm_grads") else COORD_THREADS


@dataclass(frozen=True)
class KernelResources:
    """ptxas's report for one kernel on one target, and the occupancy it allows."""

    kernel: str
    cc: tuple
    registers: int
    spill_bytes: int        # spill stores + loads
    local_bytes: int        # the kernel's own stack frame (local memory per thread: spilled or indexed arrays)
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
    bounds = getattr(kernel_module(name), "LAUNCH_BOUNDS", {}).get(name)   # as the module's decorator has it
    options: dict[str, Any] = {"launch_bounds": bounds} if bounds else {}
    with target(cc):
        ptx, _ = cuda.compile_ptx(kernel(name).py_func, LAUNCH_TYPES[name], cc=tuple(cc), **options)
    return ptx


def link_report(ptx: str, cc) -> str:
    """nvJitLink's verbose log for ``ptx`` on sm_<cc> (the ptxas resource lines)."""
    from cuda.bindings import nvjitlink
    handle = nvjitlink.create(2, [f"-arch=sm_{cc[0]}{cc[1]}", "-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel.ptx")
        if "cudaCGSynchronize" in ptx:   # a grid barrier (cooperative launch) calls into the device runtime
            nvjitlink.add_file(handle, nvjitlink.InputType.LIBRARY, _cudadevrt())
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
        return log.decode(errors="replace")
    finally:
        nvjitlink.destroy(handle)


def _cudadevrt() -> str:
    """libcudadevrt.a of the CUDA wheels (or a system toolkit): grid synchronisation lives there."""
    import glob
    import os

    found = []
    with contextlib.suppress(Exception):   # cuda-pathfinder ≥ 1.4
        from cuda import pathfinder
        found.append(pathfinder.find_static_lib("cudadevrt"))
    roots = [os.path.dirname(os.path.dirname(p)) for p in sys.path if p.endswith("site-packages")]
    for pattern in [os.path.join(r, "nvidia", "*", "lib", "libcudadevrt.a") for r in roots] + \
            ["/usr/local/cuda*/lib*/libcudadevrt.a"]:
        found += sorted(glob.glob(pattern))
    for path in found:
        if path and os.path.exists(path):
            return path
    raise FileNotFoundError("libcudadevrt.a not found (install numba-cuda[cu13]); it links grid synchronisation")


def kernel_section(log: str, name: str) -> str:
    """The lines of a ptxas log about kernel ``name`` (a linked library such as cudadevrt adds its own)."""
    mangled, mine, keep = f"{len(name)}{name}", [], True
    for line in log.splitlines():
        if "Function properties for" in line or "Compiling entry function" in line:
            keep = mangled in line
        if keep:
            mine.append(line)
    return "\n".join(mine)


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
    log = kernel_section(link_report(compile_kernel(name, cc), cc), name)
    regs = _number(r"[Uu]sed (\d+) registers", log)
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
    print(f"{'kernel':<13} {'target':<7} {'regs':>5} {'spill B':>8} {'stack B':>8} {'smem B':>7} "
          f"{'threads':>7} {'occupancy':>9}")
    for cc in ((int(c[0]), int(c[1])) for c in args.cc):
        for name in LAUNCH_TYPES:
            try:
                r = resources(name, cc)
            except Exception as err:  # report every kernel, then fail
                failed.append(name)
                print(f"{name:<13} sm_{cc[0]}{cc[1]}  FAILED: {type(err).__name__}: {str(err).splitlines()[0]}")
                continue
            print(f"{name:<13} sm_{cc[0]}{cc[1]:<4} {r.registers:>5} {r.spill_bytes:>8} {r.local_bytes:>8} "
                  f"{r.shared_bytes:>7} {r.threads:>7} {r.occupancy:>9.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
