"""Statistics shared by the statistical tests and the validation suite (the emcee harness pattern).

An estimator is run R times with fixed, distinct seeds; the mean error is
compared with its standard error. A test asserts both that the right target
passes (z ≤ K_SIGMA) and, as a negative control, that a wrong target fails.
"""

import numpy as np

K_SIGMA = 4.0  # per-coordinate z bound; ~6e-5 two-sided false-alarm rate per coordinate


def z_scores(estimates, exact, bias_bound=0.0):
    """|mean error| − known bias bound, in units of the standard error, per coordinate."""
    err = np.asarray(estimates) - np.asarray(exact)
    se = err.std(axis=0, ddof=1) / np.sqrt(err.shape[0])
    return np.maximum(np.abs(err.mean(axis=0)) - bias_bound, 0.0) / se


def rmse(estimates, exact):
    """Root-mean-square over rows of the Euclidean error of ``estimates`` against ``exact``."""
    err = np.asarray(estimates) - np.asarray(exact)
    return float(np.sqrt(np.mean(np.sum(err ** 2, axis=1))))


def loglog_slope(ns, errors):
    """Least-squares slope of log(error) against log(n): the empirical convergence rate."""
    return float(np.polyfit(np.log(ns), np.log(errors), 1)[0])
