"""Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable.

    ci (default)  few examples, derandomized: the same draws on every CI run
    dev           fewer still, for a quick local loop
    thorough      many examples, random: run before a release
"""

import os

# CUDA kernels run under numba's simulator in the tests (tiny sizes); a GPU machine runs the
# real-GPU tests with `NUMBA_ENABLE_CUDASIM=0 python -m pytest -m cuda`. Set before numba loads.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import matplotlib  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

matplotlib.use("Agg")

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=8, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.getenv("HYPOTHESIS_PROFILE", "ci"))
