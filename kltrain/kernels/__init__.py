"""Backends for the MLP hot paths, behind one small dispatch.

Every backend module offers the same functions (see :mod:`kltrain.kernels.numpy_backend`):
``loss_and_grad``, ``population_losses``, ``importance_partial``,
``sgld_chain``, ``langevin_step``, ``robbins_monro`` and ``normals``, all
taking a :class:`~kltrain.kernels.layout.Minibatch`. The algorithms call
``get_backend(name)`` and never branch on which one runs.

    "numpy"  readable float64 reference, noise materialised
    "cpu"    numba kernels (parallel, float32), noise regenerated
    "cuda"   numba.cuda kernels (needs a GPU and the ``cuda`` extra)
    "auto"   cuda when numba.cuda finds a GPU *and* the kernels pass a self-check, else cpu

``auto`` never trusts a GPU it has not tested: the first time it would pick
CUDA, it compiles the kernels and compares them with the CPU kernels on a
tiny net (:func:`kltrain.kernels.cuda_backend.self_check`). The verdict is
cached for the process; on any failure ``auto`` warns once, naming the error,
and uses the CPU kernels. ``backend="cuda"`` skips the check and fails loudly.
"""

from __future__ import annotations

import warnings

BACKENDS = ("auto", "cpu", "cuda", "numpy")
_auto_choice: str | None = None  # the cached verdict of ``auto`` (None: not decided yet)


def cuda_available() -> bool:
    """True when numba.cuda is importable and sees a real (not simulated) GPU."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available()) and not getattr(cuda, "simulator_enabled", False) \
            and not _simulator_on()
    except Exception:  # a broken driver is "no GPU", not a crash
        return False


def _simulator_on() -> bool:
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def resolve(name: str) -> str:
    """The concrete backend name for ``name`` (``auto`` → cuda or cpu)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "auto":
        return _auto()
    return name


def _auto() -> str:
    """cuda if a GPU is present and passes the self-check (decided once per process), else cpu."""
    global _auto_choice
    if _auto_choice is None:
        _auto_choice = "cpu"
        if cuda_available():
            from . import cuda_backend
            try:
                cuda_backend.self_check()
                _auto_choice = "cuda"
            except Exception as err:  # any failure on the device means: do not use it
                warnings.warn(f"backend='auto' found a CUDA GPU but its self-check failed "
                              f"({type(err).__name__}: {err}); using the CPU kernels", RuntimeWarning, stacklevel=3)
    return _auto_choice


def reset_auto() -> None:
    """Forget ``auto``'s cached verdict (tests; after installing a driver)."""
    global _auto_choice
    _auto_choice = None


def get_backend(name: str = "auto"):
    """The backend module for ``name``; a clear error if cuda is asked for without a GPU."""
    name = resolve(name)
    if name == "numpy":
        from . import numpy_backend
        return numpy_backend
    if name == "cpu":
        from . import cpu_backend
        return cpu_backend
    if cuda_available() or _simulator_on():  # the simulator runs the same kernels (tests, tiny sizes)
        from . import cuda_backend
        return cuda_backend
    raise RuntimeError("backend='cuda' needs a CUDA GPU and numba-cuda (pip install 'kltrain[cuda]'); "
                       "none was found — use backend='cpu' or 'auto'")
