"""The CUDA backend without a GPU: the real compiler (compile tier), the launch types, and ``auto``'s self-check.

The simulator runs kernels as Python and accepts code NVVM rejects, so the compile
tier runs numba-cuda's real compiler (NVVM, then nvJitLink for ptxas's report) in a
subprocess with the simulator off. CI installs the compiler wheels (the ``cuda``
extra, ``numba-cuda[cu13]``) and sets KLTRAIN_REQUIRE_CUDA_COMPILER=1, so there a
missing compiler fails instead of skipping.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import numba
from numba import types as nbt

import kltrain.kernels as kernels
from kltrain.kernels import cuda_backend
from kltrain.kernels.cuda_compile import KERNEL_MODULES, LAUNCH_TYPES, kernel, kernel_module, occupancy

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _run_without_simulator(code: str, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _compiler_missing() -> str | None:
    probe = _run_without_simulator("""
        from cuda.bindings import nvjitlink
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
    """, timeout=120)
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def compiler():
    missing = _compiler_missing()
    if missing:
        if os.environ.get("KLTRAIN_REQUIRE_CUDA_COMPILER") == "1":
            pytest.fail(f"the CUDA compiler wheels are required here but missing: {missing}")
        pytest.skip(f"numba-cuda's compiler is not installed (pip install 'kltrain[cuda]'): {missing}")


def test_every_kernel_compiles_for_sm80_and_sm90(compiler):
    run = _run_without_simulator("from kltrain.kernels.cuda_compile import main; raise SystemExit(main())")
    print(run.stdout)  # the per-kernel resource table (pytest -s shows it)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in LAUNCH_TYPES:
        assert run.stdout.count(f"{name} ") == 2, f"{name} missing from the table:\n{run.stdout}"
    assert "FAILED" not in run.stdout
    # the persistent chains keep their per-thread state in registers (issue 21): no stack frame, no spills.
    # (A dynamically indexed local array, as in log_weights' accumulator, shows up here as stack bytes.)
    for row in (line.split() for line in run.stdout.splitlines()):
        if row and row[0] in ("sgld_chains", "rm_chains"):
            assert row[3:5] == ["0", "0"], f"{row[0]} on {row[1]}: {row[3]} spill bytes, {row[4]} stack bytes"
    stacks = _stack_beyond_sincos(run.stdout)
    resident = [n for n in KERNEL_MODULES]
    assert all(stacks[n] == 0 for n in resident), f"a resident kernel keeps a local array: {stacks}"
    assert stacks["log_weights"] > 0   # negative control: its per-thread accumulator is dynamically indexed


def _stack_beyond_sincos(table: str) -> dict:
    """Per kernel, the largest stack frame beyond libdevice's sin/cos range reduction (32 bytes, which
    ``normals`` shows alone) and the spill slots: what a dynamically indexed local array would add."""
    out: dict = {}
    for line in table.splitlines():
        cells = line.split()
        if len(cells) == 8 and cells[1].startswith("sm_") and cells[2].isdigit():
            spill, stack = int(cells[3]), int(cells[4])
            out[cells[0]] = max(out.get(cells[0], 0), max(stack - 32 - spill, 0))
    return out


def test_the_compile_tier_catches_what_the_simulator_hides(compiler):
    """Negative control: a shared array sized by an expression (v0.1's bug) must fail to compile."""
    run = _run_without_simulator("""
        from numba import cuda, float32, types
        from kltrain.kernels.cuda_compile import target
        A, B = 4, 8
        def kernel(out):
            tmp = cuda.shared.array(A * B, float32)
            tmp[0] = 1.0
            out[0] = tmp[0]
        try:
            with target((9, 0)):
                cuda.compile_ptx(kernel, (types.float32[::1],), cc=(9, 0))
        except Exception as err:
            print("REJECTED", type(err).__name__)
    """, timeout=300)
    assert "REJECTED TypingError" in run.stdout, run.stdout + run.stderr


def _numba_type(value):
    if hasattr(value, "dtype") and hasattr(value, "ndim") and not np.isscalar(value):
        return nbt.Array(numba.from_dtype(value.dtype), value.ndim, "C")
    return numba.typeof(value)


@pytest.mark.skipif(not SIMULATED, reason="records launches under the CUDA simulator")
def test_the_backend_launches_every_kernel_with_the_compiled_types(monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            def launch(*args):
                seen[self.name] = tuple(_numba_type(a) for a in args)
                return self.kernel[config](*args)
            return launch

    for name in LAUNCH_TYPES:
        monkeypatch.setattr(kernel_module(name), name, Recorder(name, kernel(name)))
    monkeypatch.setattr(cuda_backend, "THREADS", 32)
    cuda_backend.self_check()  # exercises every launch site once
    assert set(seen) == set(LAUNCH_TYPES)
    for name, types in seen.items():
        assert types == LAUNCH_TYPES[name], f"{name}: launched with {types}, compiled for {LAUNCH_TYPES[name]}"


def test_occupancy_model():
    # 128 threads, 56 registers, 45 KB shared on sm_90: shared memory allows 5 blocks = 20 of 64 warps
    assert occupancy(56, 45216, 128, (9, 0)) == pytest.approx(20 / 64)
    assert occupancy(16, 0, 256, (9, 0)) == 1.0
    assert occupancy(128, 0, 256, (9, 0)) == 0.25  # registers bind: 65536 / (128·256) = 2 blocks of 8 warps


# -- backend="auto": the self-check and the fallback ----------------------------------------------
@pytest.fixture
def fake_gpu(monkeypatch):
    """A 'GPU' that is the simulator: auto sees a device and runs its self-check on it."""
    if not SIMULATED:
        pytest.skip("injects failures under the CUDA simulator")
    monkeypatch.setattr(kernels, "cuda_available", lambda: True)
    monkeypatch.setattr(cuda_backend, "THREADS", 32)
    kernels.reset_auto()
    yield
    kernels.reset_auto()


def test_auto_picks_cuda_after_a_passing_self_check(fake_gpu):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="backend='auto'")
        assert kernels.resolve("auto") == "cuda"


@pytest.mark.parametrize("injected", ["wrong gradient", "launch error"])
def test_auto_warns_once_and_falls_back_to_cpu(fake_gpu, monkeypatch, injected):
    if injected == "wrong gradient":
        real = cuda_backend.loss_and_grad
        monkeypatch.setattr(cuda_backend, "loss_and_grad", lambda mb, p: (real(mb, p)[0], real(mb, p)[1] + 1e-2))
        expected = "gradient"
    else:
        def broken(*args, **kwargs):
            raise RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU (injected)")
        monkeypatch.setattr(cuda_backend, "importance_partial", broken)
        expected = "CUDA_ERROR_NO_BINARY_FOR_GPU"
    with pytest.warns(RuntimeWarning, match=expected) as record:
        assert kernels.resolve("auto") == "cpu"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="backend='auto'")  # cached: no second check, no second warning
        assert kernels.get_backend("auto").__name__.endswith("cpu_backend")
    assert sum("backend='auto'" in str(w.message) for w in record) == 1
    # backend="cuda" is not second-guessed: the failure surfaces at the first call
    if injected == "launch error":
        with pytest.raises(RuntimeError, match="injected"):
            kernels.get_backend("cuda").importance_partial(None, None, 0.1, 0, 0, 1, False)
