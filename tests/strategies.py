"""Hypothesis strategies for random toy problems (mixture, bumps and quadratic losses)."""

import numpy as np
from hypothesis import strategies as st

from toyproblems import GaussianBumpsLoss, GaussianMixtureLoss, Quadratic

coords = st.floats(-2.0, 2.0, allow_nan=False)
taus = st.floats(0.02, 1.5, allow_nan=False)
dims = st.sampled_from([1, 2])


@st.composite
def spd(draw, dim, low=0.15 ** 2, high=1.0):
    """A symmetric positive definite matrix with eigenvalues in [low, high]."""
    evals = np.array([draw(st.floats(low, high)) for _ in range(dim)])
    if dim == 1:
        return np.diag(evals)
    angle = draw(st.floats(0, np.pi))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rot @ np.diag(evals) @ rot.T


@st.composite
def points(draw, dim):
    return np.array([draw(coords) for _ in range(dim)])


@st.composite
def mixtures(draw, dim=None, offset=0.0):
    dim = draw(dims) if dim is None else dim
    k = draw(st.integers(1, 3))
    return GaussianMixtureLoss(weights=[draw(st.floats(0.2, 1.0)) for _ in range(k)],
                               means=[draw(points(dim)) for _ in range(k)],
                               covs=[draw(spd(dim)) for _ in range(k)], offset=offset)


@st.composite
def bumps(draw, dim=None):
    dim = draw(dims) if dim is None else dim
    k = draw(st.integers(1, 4))
    return GaussianBumpsLoss(amplitudes=[draw(st.floats(-2.0, 1.0)) for _ in range(k)],
                             centers=[draw(points(dim)) for _ in range(k)],
                             covs=[draw(spd(dim)) for _ in range(k)],
                             bowl=draw(spd(dim, 0.05, 0.5)))


@st.composite
def quadratics(draw, dim=None):
    dim = draw(dims) if dim is None else dim
    return Quadratic(A=draw(spd(dim, 0.1, 5.0)), center=draw(points(dim)),
                     offset=draw(st.floats(-1, 1)))


@st.composite
def problems(draw, losses):
    """(loss, x, tau) with x of the loss's dimension."""
    loss = draw(losses)
    return loss, draw(points(loss.dim)), draw(taus)
