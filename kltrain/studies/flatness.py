"""How flat is a minimum? Four measures at given weights x (issue 14; the paper's motivation, §1).

- :func:`local_entropy_is` — F_τ(x) = −log E_{ξ∼N(0,I)}[e^{−f(x+√τ ξ)}], eq. (2.2) as printed
  (φ normalised), by importance sampling from φ_{x,τ} (Alg. 4's proposal) with a
  delta-method standard error and the effective sample size of the weights e^{−f}.
  :class:`ReducedPerturbation` does the same for an MLP on a whole data set in
  *reduced coordinates*: with X = V S Uᵀ (rank r) the first layer sees the noise Ξ₁
  only through X Ξ₁ = (V_r S_r)(U_rᵀ Ξ₁), and U_rᵀ Ξ₁ ∼ N(0, I_{r×H}) exactly, so one
  sample costs N·r·H instead of N·in·H and draws r·H normals instead of in·H
  (the idea of :mod:`kltrain.nets.projected`, for a fixed data set).
- :func:`sharpness` — max_{‖δ‖≤ρ} f(x+δ) − f(x) by projected normalised gradient ascent
  (Foret et al. 2021, eq. 1, ρ = 0.05; Keskar et al. 2017 measure the same in a box).
- :func:`hessian_trace` — Hutchinson's estimator tr H = E[vᵀHv], v Rademacher, with
  Hv = (∇f(x + hv) − ∇f(x − hv))/(2h) + O(h²): only ``loss.grad`` is needed.
- :func:`weight_noise_accuracy` — accuracy of x + σζ, ζ ∼ N(0, I), for a few σ.

Randomness is explicit (``rng``: seed or Generator); each returns its standard error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._checks import (as_generator, check_count, check_finite_values, check_labelled, check_nonnegative,
                       check_numbers, check_point, check_positive, check_seed, check_tau)
from .._logspace import logsumexp
from ..losses import check_loss, loss_dim, loss_values
from ..nets.mlp import MLP, softmax_cross_entropy


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error."""

    value: float
    standard_error: float


class LocalEntropyEstimate(NamedTuple):
    """An importance-sampling estimate of F_τ(x) with its standard error, ESS and sample count."""

    value: float           # F̂_τ(x), eq. (2.2) as printed
    standard_error: float  # delta method: sd(w)/(√J·mean(w))
    ess: float             # (Σw)²/Σw², eq. of blackjax smc/ess
    n_samples: int


def _point(loss, x) -> np.ndarray:
    """The weights x: a finite vector of the loss's dimension (a NaN weight would give NaN measures)."""
    check_loss(loss)
    return check_point(x, loss_dim(loss), name="x")


def _net_point(net: MLP, x) -> np.ndarray:
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a kltrain.nets.MLP, got {type(net).__name__}")
    return check_point(x, net.n_params, name="x")


def _finite(value, what: str, **where) -> float:
    """FloatingPointError naming the measure if its result is not finite."""
    if not np.all(np.isfinite(value)):
        detail = ", ".join(f"{k} = {v!r}" for k, v in where.items())
        raise FloatingPointError(f"{what} is not finite ({value!r}){' at ' + detail if detail else ''}")
    return value


def _from_log_weights(log_w) -> LocalEntropyEstimate:
    """F̂ = −log mean e^{lw}, its delta-method SE and the ESS, all in log space."""
    lw = np.asarray(log_w, dtype=np.float64)
    J = lw.size
    w = np.exp(lw - lw.max())                                  # shifted weights; ratios are exact
    value = -(logsumexp(lw) - np.log(J))
    se = float(np.std(w, ddof=1) / (np.sqrt(J) * w.mean())) if J > 1 else float("inf")
    return LocalEntropyEstimate(float(value), se, float(w.sum() ** 2 / (w ** 2).sum()), J)


def local_entropy_is(loss, x, tau, *, n_samples, rng=None) -> LocalEntropyEstimate:
    """F_τ(x) of eq. (2.2) by IS with proposal φ_{x,τ}: w_j = e^{−f(x+√τ ξ_j)} (Alg. 4's weights)."""
    x = _point(loss, x)
    tau, J = check_tau(tau), check_count(n_samples, "n_samples", 1)
    points = x + np.sqrt(tau) * as_generator(rng).standard_normal((J, x.size))
    if not np.all(np.isfinite(points)):
        raise FloatingPointError(f"local_entropy_is: a sample x + √τ ξ is not finite at τ = {tau!r}")
    estimate = _from_log_weights(-loss_values(loss, points))
    return estimate._replace(value=_finite(estimate.value, "local_entropy_is: F_τ", tau=tau))


def hessian_trace(loss, x, *, n_probes, rng=None, step=1e-2) -> Estimate:
    """Hutchinson: tr ∇²f(x) ≈ mean_k v_kᵀ H v_k, v_k Rademacher; returns (estimate, standard error).

    Hv = (∇f(x + hv) − ∇f(x − hv))/(2h) with h = step/‖v‖ = step/√d, so the
    points differ from x by ``step`` in norm whatever the dimension.

    For a ReLU net this is the trace of the Hessian *averaged over the segment*
    [x − hv, x + hv], kinks included: units that switch inside the segment add
    terms of either sign, whose variance grows as ``step`` shrinks (measured on
    the 784–200–10 net: SE ×2–4 per decade of ``step`` below 10⁻²). The a.e.
    Hessian of the last layer is exact in :func:`output_layer_trace`.
    """
    x = _point(loss, x)
    n = check_count(n_probes, "n_probes", 2)
    check_positive(step, "step")
    rng = as_generator(rng)
    h = step / np.sqrt(x.size)
    quad = np.empty(n)
    grad = lambda z: check_finite_values(np.asarray(loss.grad(z), np.float64), "the loss gradient")  # noqa: E731
    for k in range(n):
        v = rng.choice(np.array([-1.0, 1.0]), size=x.size)
        hv = (grad(x + h * v) - grad(x - h * v)) / (2 * h)
        quad[k] = v @ hv
    value = _finite(float(quad.mean()), "hessian_trace", step=step, probe=n)
    return Estimate(value, float(quad.std(ddof=1) / np.sqrt(n)))


def output_layer_trace(net: MLP, x, X, y) -> float:
    """Exact trace of the Hessian block of the last layer (weights and biases) of an MLP's mean cross-entropy.

    f is smooth and convex in that layer: ∂²f/∂W[i,o]² = mean_n h_{n,i}² p_{n,o}(1 − p_{n,o}), so the
    block's trace is mean_n (|h_n|² + 1)(1 − |p_n|²), h_n the last hidden activations, p_n the softmax.
    A lower bound on the a.e. Hessian's trace (the other diagonal blocks are Gauss–Newton, ≥ 0, for ReLU).
    """
    layers = net.unflatten(_net_point(net, x))
    _, y = check_labelled(X, y, net.sizes[-1], n_features=net.sizes[0])   # checked; X keeps its precision
    h = np.asarray(X, dtype=np.float64)
    for W, b in layers[:-1]:
        h = np.maximum(h @ W + b, 0.0)                           # (N, H)
    W, b = layers[-1]
    z = h @ W + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)                            # (N, C)
    return float(np.mean(((h ** 2).sum(axis=1) + 1.0) * (1.0 - (p ** 2).sum(axis=1))))


class SharpnessResult(NamedTuple):
    """The largest rise of f found within radius ρ, the loss there and the size of the step."""

    value: float       # max found of f(x+δ) − f(x), ‖δ‖ ≤ ρ
    loss: float        # f(x)
    delta_norm: float  # ‖δ‖ of the best point


def sharpness(loss, x, *, rho=0.05, n_steps=10, rng=None, step=1.0) -> SharpnessResult:
    """SAM's sharpness max_{‖δ‖≤ρ} f(x+δ) − f(x) (Foret et al. 2021, eq. 1) by projected ascent.

    δ₀ = ρ∇f(x)/‖∇f(x)‖ (SAM's own first-order solution; a random direction if ∇f = 0),
    then δ ← Proj_ρ(δ + step·ρ·∇f(x+δ)/‖∇f(x+δ)‖); the best iterate is kept, so the
    result is a lower bound that can only grow with ``n_steps``.
    """
    x = _point(loss, x)
    check_positive(rho, "rho")
    check_positive(step, "step")
    n_steps = check_count(n_steps, "n_steps")
    rng = as_generator(rng)
    value_at = lambda z: float(check_finite_values(loss.value(z), "the loss"))                    # noqa: E731
    grad_at = lambda z: check_finite_values(np.asarray(loss.grad(z), np.float64), "the loss gradient")  # noqa: E731
    f0 = value_at(x)
    delta = _unit(grad_at(x), rng) * rho
    best, best_delta = value_at(x + delta), delta
    for _ in range(n_steps):
        delta = delta + step * rho * _unit(grad_at(x + delta), rng)
        delta *= min(1.0, rho / np.linalg.norm(delta))         # projection onto the ρ-ball
        value = value_at(x + delta)
        if value > best:
            best, best_delta = value, delta
    return SharpnessResult(best - f0, f0, float(np.linalg.norm(best_delta)))


def _unit(g, rng):
    norm = np.linalg.norm(g)
    if norm == 0:
        g = rng.standard_normal(g.size)
        norm = np.linalg.norm(g)
    return g / norm


def weight_noise_accuracy(net: MLP, x, X, y, sigmas, *, n_draws, rng=None) -> dict:
    """{σ: Estimate(mean accuracy of x + σζ, its SE over draws)}, ζ ∼ N(0, I) fresh per draw."""
    rng = as_generator(rng)
    x = _net_point(net, x).astype(np.float32)
    X, y = check_labelled(X, y, net.sizes[-1], n_features=net.sizes[0])
    sigmas = check_numbers(sigmas, "sigmas", check_nonnegative)
    n = check_count(n_draws, "n_draws", 2)
    out = {}
    for sigma in sigmas:
        acc = [net.accuracy(x + np.float32(sigma) * rng.standard_normal(x.size, dtype=np.float32), X, y)
               for _ in range(n)]
        out[float(sigma)] = Estimate(float(np.mean(acc)), float(np.std(acc, ddof=1) / np.sqrt(n)))
    return out


@dataclass(frozen=True, eq=False)
class ReducedPerturbation:
    """f(x + √τ ξ) on a whole data set (X, y) of an MLP, with the first layer in reduced coordinates.

    X = V S Uᵀ; directions with singular value ≤ ``rtol``·s_max are dropped (for the
    4,000 embedded training images r = 648 of 784: blank border pixels).
    """

    net: MLP
    X: np.ndarray
    y: np.ndarray
    rtol: float = 1e-6   # singular values below rtol·s_max count as zero
    _VS: np.ndarray = field(init=False, repr=False)   # V_r S_r (N, r), set in __post_init__

    def __post_init__(self):
        if not isinstance(self.net, MLP):
            raise TypeError(f"net must be a kltrain.nets.MLP, got {type(self.net).__name__}")
        check_positive(self.rtol, "rtol")
        _, y = check_labelled(self.X, self.y, self.net.sizes[-1], n_features=self.net.sizes[0])
        object.__setattr__(self, "y", y)
        X = np.asarray(self.X, dtype=np.float64)                 # the SVD in the data's own precision
        V, s, _ = np.linalg.svd(X, full_matrices=False)
        if not s[0] > 0:
            raise ValueError("X is all zeros: the data set has no direction to perturb")
        r = int(np.sum(s > self.rtol * s[0]))
        object.__setattr__(self, "X", np.ascontiguousarray(X, dtype=np.float32))
        object.__setattr__(self, "y", np.asarray(self.y, dtype=np.int64))
        object.__setattr__(self, "_VS", np.ascontiguousarray(V[:, :r] * s[:r], dtype=np.float32))  # (N, r)

    @property
    def rank(self) -> int:
        return self._VS.shape[1]

    def noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(Z (r, H₁), rest noise (d − in·H₁,)): one standard-normal draw in reduced coordinates."""
        w0, b0, fan_in, H = self.net.layer_offsets[0]
        rest = self.net.n_params - fan_in * H
        return (rng.standard_normal((self.rank, H), dtype=np.float32),
                rng.standard_normal(rest, dtype=np.float32))

    def perturbed_loss(self, x, tau, z, rest, base=None) -> float:
        """f(x + √τ ξ) where ξ's first-layer weights enter only as X Ξ₁ = (V_r S_r) z (exact in law)."""
        s = np.float32(np.sqrt(tau))
        w0, b0, fan_in, H = self.net.layer_offsets[0]
        x = np.asarray(x, dtype=np.float32)
        tail = x[b0:] + s * rest                                   # b₁, W₂, b₂, ... perturbed explicitly
        h = (self.X @ x[w0:b0].reshape(fan_in, H) if base is None else base) + s * (self._VS @ z) + tail[:H]
        pos = H
        for _, _, fi, fo in self.net.layer_offsets[1:]:
            np.maximum(h, 0, out=h)                                # (N, fi)
            W, b = tail[pos:pos + fi * fo].reshape(fi, fo), tail[pos + fi * fo:pos + fi * fo + fo]
            h = h @ W + b                                          # (N, fo)
            pos += fi * fo + fo
        return softmax_cross_entropy(h, self.y)[0]

    def local_entropy(self, x, tau, *, n_samples, rng=None) -> LocalEntropyEstimate:
        """F_τ(x) on the whole data set by IS with proposal φ_{x,τ}, sampled in reduced coordinates."""
        rng, tau = as_generator(rng), check_tau(tau)
        x = _net_point(self.net, x)
        n_samples = check_count(n_samples, "n_samples", 1)
        w0, b0, fan_in, H = self.net.layer_offsets[0]
        base = self.X @ np.asarray(x, np.float32)[w0:b0].reshape(fan_in, H)     # X W₁, once
        log_w = check_finite_values(np.array([-self.perturbed_loss(x, tau, *self.noise(rng), base=base.copy())
                                              for _ in range(n_samples)]), "the perturbed loss f(x + √τ ξ)")
        estimate = _from_log_weights(log_w)
        return estimate._replace(value=_finite(estimate.value, "ReducedPerturbation.local_entropy: F_τ", tau=tau))


@dataclass(frozen=True)
class FlatnessConfig:
    """What :func:`measure` computes; defaults size one 784–200–10 run to ~10 s of one core."""

    taus: tuple = (1e-3, 1e-2, 1e-1)        # τ of F_τ (issue 14)
    le_samples: int = 64                    # IS samples J per τ (full training set, reduced coordinates)
    rho: float = 0.05                       # sharpness radius (SAM's ρ)
    ascent_steps: int = 10                  # projected gradient-ascent steps for the sharpness
    hessian_probes: int = 20                # Hutchinson probes (2 full-data gradients each)
    hessian_step: float = 1e-2              # ‖x ± hv − x‖ of the central difference
    sigmas: tuple = (0.01, 0.02, 0.05, 0.1)  # weight-noise std σ
    noise_draws: int = 10                   # draws per σ
    seed: int = 0                           # one seed for all runs: common random numbers across methods

    def __post_init__(self):
        check_numbers(self.taus, "taus", lambda t, name: check_positive(t, name))
        for name in ("le_samples", "hessian_probes", "noise_draws"):
            check_count(getattr(self, name), name, 2)
        check_count(self.ascent_steps, "ascent_steps")
        check_positive(self.rho, "rho")
        check_positive(self.hessian_step, "hessian_step")
        check_numbers(self.sigmas, "sigmas", check_nonnegative)
        check_seed(self.seed)


def measure(net: MLP, x, train, test, config: FlatnessConfig = FlatnessConfig(), *, backend="cpu",
            reduced: ReducedPerturbation | None = None) -> dict:
    """All four measures at weights x: F_τ and f on ``train`` = (X, y), accuracy under noise on ``test``.

    Each measure draws from its own stream of ``config.seed`` (the same for every run),
    so differences between methods are not differences of noise draws. ``reduced``
    reuses the SVD of the training set across runs (≈ 3 s for 4,000 × 784).
    """
    from ..nets.netloss import MinibatchLoss
    x = np.asarray(x, dtype=np.float32)
    full = MinibatchLoss(net, *train, backend=backend)           # f on the whole training set
    le_ss, sh_ss, h_ss, wn_ss = np.random.SeedSequence(config.seed).spawn(4)
    reduced = ReducedPerturbation(net, *train) if reduced is None else reduced
    out: dict[str, Any] = {"train_loss": full.value(x), "test_accuracy": net.accuracy(x, *test), "rank": reduced.rank,
           "local_entropy": {}}
    for tau, ss in zip(config.taus, le_ss.spawn(len(config.taus))):
        out["local_entropy"][repr(tau)] = reduced.local_entropy(x, tau, n_samples=config.le_samples,
                                                                rng=np.random.default_rng(ss))._asdict()
    out["sharpness"] = sharpness(full, x, rho=config.rho, n_steps=config.ascent_steps,
                                 rng=np.random.default_rng(sh_ss))._asdict()
    out["hessian_trace"] = hessian_trace(full, x, n_probes=config.hessian_probes, rng=np.random.default_rng(h_ss),
                                         step=config.hessian_step)._asdict()
    out["output_layer_trace"] = output_layer_trace(net, x, *train)
    out["weight_norm"] = float(np.linalg.norm(np.asarray(x, np.float64)))   # curvature and noise scale with it
    noise = weight_noise_accuracy(net, x, test[0], test[1], config.sigmas, n_draws=config.noise_draws,
                                  rng=np.random.default_rng(wn_ss))
    out["weight_noise"] = {repr(s): e._asdict() for s, e in noise.items()}
    return out
