"""Two flat-minimum peers of the paper's algorithms: Entropy-SGD and SAM, as update rules.

Both follow the :mod:`kltrain.schemes` protocol (``init(loss, x) -> state``,
``step(rng, state, loss, x, k) -> (x_next, state, info)``) and use the loss's
hand-written backward (``loss.grad``; for MLPs the numba kernel of
:mod:`kltrain.kernels.cpu_backend`).

**Entropy-SGD** (Chaudhari et al., ICLR 2017, Algorithm 1; reference code
github.com/ucla-vision/entropy-sgd, ``python/optim.py`` and ``entropyoptim.lua``).
Local entropy with scope γ is the paper's F_τ with τ = 1/γ (their eq. 4 vs our
eq. 2.2); its gradient γ(x − E_q[x′]) is estimated by L SGLD steps on
x′ ↦ f(x′) + (γ/2)|x′ − x|², averaged by an exponential running mean μ:

    x′ ← x′ − η′(∇f(x′) [Nesterov] + γ(x′ − x)) + ε·√(2η′)·ξ,   ξ ~ N(0, I)
    μ  ← α μ + (1 − α) x′                                        (α = 0.75)
    x  ← x − η·Nesterov(x − μ)                                   (outer step)

As in the reference code the outer "gradient" is x − μ without the factor γ
(the learning rate absorbs it), both loops carry Nesterov momentum (the inner
buffer is reset each update), the noise std is ε·√(2η′) with ε = 10⁻⁴ — a
temperature T = ε² = 10⁻⁸ in the language of our SGLD — and every inner step
draws a fresh minibatch (their ``feval`` samples one per call). γ-scoping
γ_k = γ₀(1 + γ₁)^t with t = k + 1, the update count after increment, as in
``entropyoptim.lua`` (the PyTorch port never increments t). Their Python port
applies Nesterov momentum to the outer step, which we follow; the Lua version
applies none there. Defaults are their MNIST settings (train.lua and the
README): L = 20, η′ = 0.1, γ₀ = 10⁻⁴, γ₁ = 10⁻³, ε = 10⁻⁴, momentum 0.9,
η = 0.1 — their ``mnistfc`` schedule uses η = 1 for epochs 1–2 and 0.1 for
epochs 3–15; with η = 1 our 784–200–10 net at batch 20 oscillated (held-out
accuracy 0.55 after 20 updates, 0.29 after 100), with 0.1 it trains (0.95 after
200). Their batch size 128 is not used: the first inner step uses the update's
minibatch of 20, which all methods share.

**SAM** (Foret et al., ICLR 2021, eqs. 2–3 and Algorithm 1):

    ε̂ = ρ ∇f(x)/‖∇f(x)‖,   x ← x − η ∇f(x + ε̂)

on the same minibatch, ρ = 0.05, with plain SGD (η = 0.01, the paper's SGD)
as the base optimizer so that SAM differs from the SGD row only by the ascent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._checks import check_chain, check_count, check_finite_values, check_flag, check_nonnegative, check_positive
from ..kernels.peers import esgd_inner_step
from ..noise import draw_seed, stream_key


def _check_unit(value, name, *, closed=False):
    value = check_nonnegative(value, name)
    if not (0.0 <= value < 1.0 or (closed and value == 1.0)):
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value!r}")


class EntropySGDState(NamedTuple):
    """What Entropy-SGD keeps between updates: the outer Nesterov momentum."""

    momentum: np.ndarray  # outer Nesterov buffer, shape (d,)


class EntropySGDInfo(NamedTuple):
    """Diagnostics of an Entropy-SGD update: the local-entropy gradient norm, γ_k and the inner loop's reach."""

    grad_norm: float      # |x − μ|: the local-entropy "gradient" (without γ)
    gamma: float          # γ_k of this update
    inner_distance: float  # |x′_L − x| at the end of the inner loop


@dataclass(frozen=True)
class EntropySGD:
    """Entropy-SGD (Chaudhari et al. 2017, Alg. 1) with the reference code's details; see the module doc."""

    learning_rate: float = 0.1    # η, outer step (their mnistfc schedule: 1 for epochs 1–2, then 0.1; see doc)
    inner_steps: int = 20         # L, SGLD steps per update (their experiments: 20)
    inner_lr: float = 0.1         # η′, SGLD step ("lclr", fixed at 0.1 in their code)
    gamma: float = 1e-4           # γ₀, scope (their train.lua default and README)
    scoping: float = 1e-3         # γ₁ of γ₀(1 + γ₁)^t (their default)
    noise: float = 1e-4           # ε: SGLD noise std ε·√(2η′) (their --noise)
    alpha: float = 0.75           # μ ← αμ + (1 − α)x′ ("beta1" in their code)
    momentum: float = 0.9         # Nesterov momentum, inner and outer (their train.py)
    nesterov: bool = True         # Nesterov form g + m·buf (their default)
    fresh_minibatch: bool = True  # inner steps after the first draw new minibatches (loss.resample)

    def __post_init__(self):
        for name in ("learning_rate", "inner_lr"):
            check_positive(getattr(self, name), name)
        check_count(self.inner_steps, "inner_steps", 1)
        for name in ("gamma", "scoping", "noise"):      # finite: γ = inf would pin x′ to x, noise = inf is NaN
            check_nonnegative(getattr(self, name), name)
        _check_unit(self.alpha, "alpha")
        _check_unit(self.momentum, "momentum")
        check_flag(self.nesterov, "nesterov")
        check_flag(self.fresh_minibatch, "fresh_minibatch")

    def gamma_at(self, k: int) -> float:
        """γ-scoping: γ₀(1 + γ₁)^t, t = k + 1 (entropyoptim.lua increments t before use)."""
        with np.errstate(over="ignore"):
            gamma = self.gamma * (1.0 + self.scoping) ** (k + 1)
        if not np.isfinite(gamma):
            raise FloatingPointError(f"EntropySGD: the scope γ_k = γ₀(1 + γ₁)^(k+1) overflows at step {k + 1} "
                                     f"(γ₀ = {self.gamma!r}, γ₁ = {self.scoping!r})")
        return float(gamma)

    def init(self, loss, x):
        return EntropySGDState(np.zeros(np.shape(x), dtype=_dtype(x)))

    def step(self, rng, state, loss, x, k):
        x = np.asarray(x, dtype=_dtype(x))
        gamma = self.gamma_at(k)
        key = stream_key(draw_seed(rng))              # inner step i uses noise sample i of this stream
        chain, mu = x.copy(), x.copy()                # x′ and μ start at x
        inner_buf = np.zeros_like(x)                  # reset every update (optim.py: mdw.zero_())
        batch, resample = loss, _resampler(loss) if self.fresh_minibatch else None
        scale = max(1.0, float(np.sqrt(x.size / gamma)) if gamma > 0 else np.inf)   # x′ ~ N(x, I/γ) at f = 0
        what = f"the Entropy-SGD inner chain (γ = {gamma:g})"
        for i in range(self.inner_steps):
            if i > 0 and resample is not None:
                batch = resample(rng)
            g = np.asarray(check_finite_values(batch.grad(chain), "the loss gradient"), dtype=x.dtype)
            esgd_inner_step(chain, x, mu, inner_buf, g, self.inner_lr, self.momentum, self.nesterov, gamma,
                            self.noise * np.sqrt(2.0 * self.inner_lr), self.alpha, key, i)
            check_chain(chain, x, scale, what, i + 1, "the inner step η′ is too large for the loss's curvature and γ")
        direction = x - mu                            # "grad" of optim.py: wc − mw (no factor γ)
        buf, update = _momentum(state.momentum, direction, self.momentum, self.nesterov)
        x_next = x - self.learning_rate * update
        info = EntropySGDInfo(float(np.linalg.norm(direction)), gamma, float(np.linalg.norm(chain - x)))
        return x_next, EntropySGDState(buf), info


def _resampler(loss):
    """``loss.resample`` when the loss can draw fresh minibatches (a MinibatchLoss from a TrainingSet)."""
    resample = getattr(loss, "resample", None)
    return resample if callable(resample) and getattr(loss, "source", True) is not None else None


def _momentum(buf, g, m, nesterov):
    """(new buffer, step direction): buf ← m·buf + g; Nesterov g + m·buf, else buf (dampening 0)."""
    buf = (m * buf + g).astype(g.dtype)
    return buf, (g + m * buf if nesterov else buf).astype(g.dtype)


def _dtype(x):
    return np.float32 if np.asarray(x).dtype == np.float32 else np.float64


class SAMInfo(NamedTuple):
    """Diagnostics of a SAM update: the gradient norms at x and at the ascent point x + ε̂."""

    grad_norm: float         # |∇f(x)|
    sam_grad_norm: float     # |∇f(x + ε̂)|


@dataclass(frozen=True)
class SAM:
    """Sharpness-aware minimization (Foret et al. 2021, eq. 2–3): x ← x − η∇f(x + ρ∇f/‖∇f‖)."""

    learning_rate: float = 0.01   # η, base SGD step (the paper's SGD learning rate)
    rho: float = 0.05             # ρ, neighbourhood radius (Foret et al.'s default)

    def __post_init__(self):
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.rho, "rho")

    def init(self, loss, x):
        return None

    def step(self, rng, state, loss, x, k):
        x = np.asarray(x, dtype=_dtype(x))
        g = check_finite_values(np.asarray(loss.grad(x), dtype=np.float64), "the loss gradient")
        norm = float(np.linalg.norm(g))
        e_hat = self.rho * g / norm if norm > 0 else np.zeros_like(g)   # eq. (2): first-order ε̂(x)
        g_sam = check_finite_values(np.asarray(loss.grad((x + e_hat).astype(x.dtype)), dtype=np.float64),
                                    "the loss gradient at x + ε̂")                   # eq. (3)
        x_next = (x - self.learning_rate * g_sam).astype(x.dtype)
        return x_next, state, SAMInfo(norm, float(np.linalg.norm(g_sam)))
