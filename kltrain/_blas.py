"""Keep OpenBLAS to one thread around the numba kernels.

After a multithreaded BLAS call, OpenBLAS's workers spin-wait for a while; a
numba parallel region that starts then shares its cores with them. On 2 cores
that made the projected IS update 3× slower (42 ms instead of 14). Our hot
paths are BLAS-free; the few small dense products around them (SVD, U_r·G)
run under ``single_blas_thread()``, which costs ~20 µs.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # without threadpoolctl the limit is a no-op
        return None
    return ThreadpoolController()


def single_blas_thread():
    """Context manager limiting every loaded BLAS to one thread (a no-op without threadpoolctl)."""
    ctl = _controller()
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")
