"""Algorithms 1 and 2 of the paper as ``torch.optim.Optimizer`` subclasses: local entropy and heat regularization.

    LocalEntropy (Algorithm 1):  x_{k+1} = E_{q_{x_k,τ}}[X],   q_{x,τ}(x') ∝ exp(−f(x') − |x − x'|²/2τ)  (eq. 2.6)
        estimator "is"   (Algorithm 4, eq. 5.2): x + √τ Σ_j w_j ε_j / Σ_j w_j,  log w_j = −f(x + √τ ε_j)
        estimator "sgld" (Algorithm 3): Σ_j ε_j x^j / Σ_j ε_j along a Langevin chain targeting q_{x,τ}
    Heat (Algorithm 2):  x_{k+1} ≈ argmin_x KL(φ_{x,τ} ‖ q_{x_k,τ}) by Robbins–Monro (Algorithm 5, eq. 5.3)

f is the minibatch loss that ``step(closure)`` receives: the closure returns it as a
scalar tensor at the model's current parameters, *without* calling ``backward()``
(the optimizer evaluates it batched with ``torch.func.vmap`` for importance sampling
and differentiates it with ``torch.autograd.grad`` for SGLD and Robbins–Monro)::

    opt = LocalEntropy(model.parameters(), tau=0.01, estimator="is", n_samples=100, model=model)
    for inputs, targets in loader:
        loss = opt.step(lambda: criterion(model(inputs), targets))

Each step is exactly the NumPy estimator's step (:mod:`kltrain.estimators`) on the flat
parameter vector of :mod:`kltrain.torch.flat`, with the same noise: update k uses the
stream seed :func:`update_seed` (seed, k), and ε_j is kltrain's counter-based normal
(:mod:`kltrain.torch.noise`), so ``ImportanceSampling(J).step(np.random.default_rng([seed, k]),
...)`` on :class:`~kltrain.torch.flat.FlatLoss` returns the same update (tests/test_torch.py).
τ is a float or a kltrain schedule k ↦ τ(k) (``TauScoping``).

Counting work per step (what the notebook ``examples/05_your_model.py`` matches across
methods): one forward pass at x (the returned loss; BatchNorm's running statistics see
the unperturbed network once per step, as under SGD), plus J perturbed forward passes
(IS), J − 1 gradients (SGLD) or J·M gradients (Robbins–Monro).

What is perturbed: exactly the parameters given to the optimizer (a BatchNorm's weight
and bias included). Buffers are not: BatchNorm's running mean and variance are frozen
during the perturbed evaluations (training mode still normalises with the minibatch's
statistics) and updated only by the evaluation at x.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, NamedTuple

import numpy as np
import torch
from torch import nn

from ..estimators import SGLD, ImportanceSampling, RobbinsMonro
from ..estimators.by_name import mean_estimator, prox_estimator
from ..estimators.importance import ISInfo
from ..estimators.robbins_monro import RMInfo, check_stable
from ..estimators.sgld import SGLDInfo, sgld_stability_hint
from ..noise import draw_seed
from ..schedules import as_tau_schedule
from .flat import CLOSURE_HINT, Closure, FlatParameters
from .noise import counter_normals


def update_seed(seed: int, k: int) -> int:
    """The counter-noise stream seed of update k: ``draw_seed(np.random.default_rng([seed, k]))``.

    A pure function of (seed, k), so a resumed optimizer draws the same noise, and a NumPy
    estimator given ``np.random.default_rng([seed, k])`` draws the same stream.
    """
    return draw_seed(np.random.default_rng([seed, k]))


class _RunningIS(NamedTuple):
    """Log-space running sums of Algorithm 4 over the chunks seen so far (kltrain's ISPartial, in torch)."""

    log_scale: float        # m, the largest log weight so far
    sum_w: torch.Tensor     # Σ e^{lw − m}
    sum_w2: torch.Tensor    # Σ e^{2(lw − m)}
    sum_w_eps: torch.Tensor  # Σ e^{lw − m} ε_j, shape (d,)

    def add(self, log_w: torch.Tensor, eps: torch.Tensor) -> "_RunningIS":
        if float(log_w.max()) == -math.inf:          # every loss of the chunk +inf: zero weights, nothing to add
            return self
        m = max(self.log_scale, float(log_w.max()))
        old = math.exp(self.log_scale - m) if math.isfinite(self.log_scale) else 0.0   # rescale to the new m
        w = torch.exp(log_w - m)
        return _RunningIS(m, old * self.sum_w + w.sum(), old * old * self.sum_w2 + (w * w).sum(),
                          old * self.sum_w_eps + w @ eps)


class _KLOptimizer(torch.optim.Optimizer):
    """What LocalEntropy and Heat share: the flat view, τ(k), the update count, the per-update seed."""

    def __init__(self, params: Iterable[Any], tau: Any, *, model: nn.Module, seed: int, chunk_size: int,
                 estimator: Any):
        super().__init__(params, {})
        self.tau = as_tau_schedule(tau)
        if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)
        self.estimator = estimator
        self.flat = FlatParameters([p for g in self.param_groups for p in g["params"]], model, chunk_size)
        self.last_info: Any = None

    @property
    def k(self) -> int:
        """Updates done so far (kept in the optimizer state, so it survives state_dict/load_state_dict)."""
        return int(self.state[self.flat.params[0]].get("step", 0))

    def _advance(self) -> None:
        k = self.k + 1
        for p in self.flat.params:
            self.state[p]["step"] = k

    def _loss_at_x(self, closure: Closure | None) -> torch.Tensor:
        """The closure at the current parameters (no autograd): the loss step() returns; BatchNorm updates once."""
        if closure is None or not callable(closure):
            raise TypeError(f"{type(self).__name__}.step needs a closure that returns the minibatch loss, got {closure!r}")
        try:
            with torch.no_grad():
                loss = closure()
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n(kltrain.torch: {CLOSURE_HINT})") from err
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"the closure returned {type(loss).__name__}; it must return the loss as a tensor")
        return loss.detach()

    def _fail(self, what: str) -> FloatingPointError:
        return FloatingPointError(f"{type(self).__name__} ({type(self.estimator).__name__}): {what} "
                                  f"(τ = {self.tau(self.k)!r}, step {self.k + 1})")

    def _noise(self, seed: int, start: int, stop: int) -> torch.Tensor:
        return counter_normals(seed, torch.arange(start, stop, device=self.flat.device), self.flat.dim)


class LocalEntropy(_KLOptimizer):
    """Algorithm 1 on a torch model: each ``step(closure)`` moves x to an estimate of E_{q_{x,τ(k)}}[X].

    Parameters
    ----------
    params : the parameters to regularise (perturbed and updated), e.g. ``model.parameters()``.
    tau : τ > 0, or a schedule k ↦ τ(k) (``kltrain.schedules.TauScoping``).
    estimator : ``"is"`` (Algorithm 4) or ``"sgld"`` (Algorithm 3) with ``n_samples`` = J, or a
        configured ``kltrain.estimators.ImportanceSampling`` / ``SGLD`` (antithetic pairs,
        temperatures ε_j, temperature T, warm start: their docstrings).
    model : the ``nn.Module`` that holds ``params`` (the closure calls it).
    seed : the noise of update k is the counter stream :func:`update_seed` (seed, k).
    chunk_size : perturbed parameter sets evaluated per vmapped call (memory ∝ chunk_size).

    After each step ``last_info`` holds the NumPy estimator's diagnostics: ``ISInfo``
    (effective sample size, largest weight, log weights, seed) or ``SGLDInfo``.

    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> X, y = torch.randn(20, 3), torch.randn(20, 1)
    >>> opt = LocalEntropy(model.parameters(), 0.01, "is", 64, model=model)
    >>> loss = opt.step(lambda: torch.nn.functional.mse_loss(model(X), y))
    >>> 1 <= opt.last_info.ess <= 64
    True
    """

    def __init__(self, params: Iterable[Any], tau: Any, estimator: Any = "is", n_samples: int | None = None, *,
                 model: nn.Module, seed: int = 0, chunk_size: int = 128):
        estimator = mean_estimator(estimator, n_samples, "LocalEntropy")
        super().__init__(params, tau, model=model, seed=seed, chunk_size=chunk_size, estimator=estimator)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One update of Algorithm 1; returns the loss at the parameters before it."""
        loss = self._loss_at_x(closure)
        assert closure is not None
        tau, seed, x = self.tau(self.k), update_seed(self.seed, self.k), self.flat.flatten()
        try:
            if isinstance(self.estimator, ImportanceSampling):
                x_next = self._importance_sampling(closure, x, tau, seed)
            else:
                x_next = self._sgld(closure, x, tau, seed)
        except BaseException:
            self.flat.write(x)          # a failed step leaves the parameters where they were (SGLD moved them)
            raise
        self.flat.write(x_next)
        self._advance()
        return loss

    def _importance_sampling(self, closure: Closure, x: torch.Tensor, tau: float, seed: int) -> torch.Tensor:
        """Algorithm 4 in chunks of samples, weights in log space (eq. 5.2)."""
        est: ImportanceSampling = self.estimator
        J, d, chunk = est.n_samples, self.flat.dim, self.flat.chunk_size
        run = _RunningIS(-math.inf, torch.zeros((), dtype=torch.float64, device=x.device),
                         torch.zeros((), dtype=torch.float64, device=x.device),
                         torch.zeros(d, dtype=torch.float64, device=x.device))
        log_ws = []
        for lo in range(0, J, chunk):
            hi = min(lo + chunk, J)
            eps = self._proposal_noise(seed, lo, hi, est.antithetic)              # ε_j, (n, d) float64
            log_w = -self.flat.losses(closure, x + math.sqrt(tau) * eps)         # log w_j = −f(x + √τ ε_j)
            bad = torch.isnan(log_w) | (log_w == math.inf)
            if bool(bad.any()):
                j = lo + int(torch.argmax(bad.to(torch.int8)))
                raise self._fail(f"the loss f(x + √τ ε_j) is {float(-log_w[j - lo])!r} at sample j = {j}")
            run = run.add(log_w, eps)
            log_ws.append(log_w)
        if not math.isfinite(run.log_scale):
            raise self._fail(f"the loss is +inf at all {J} samples, so no weight is left")
        self.last_info = ISInfo(float(run.sum_w ** 2 / run.sum_w2), float(1.0 / run.sum_w),
                                torch.cat(log_ws).cpu().numpy() if est.keep_log_weights else None, seed)
        return x + math.sqrt(tau) * run.sum_w_eps / run.sum_w                     # eq. (5.2)

    def _proposal_noise(self, seed: int, start: int, stop: int, antithetic: bool) -> torch.Tensor:
        """ε_j for j in [start, stop); antithetic: samples 2p, 2p+1 use ±ε_p (as kltrain.estimators.importance)."""
        if not antithetic:
            return self._noise(seed, start, stop)
        j = torch.arange(start, stop, device=self.flat.device)
        sign = (1.0 - 2.0 * (j % 2)).to(torch.float64)[:, None]
        return sign * counter_normals(seed, j // 2, self.flat.dim)

    def _sgld(self, closure: Closure, x: torch.Tensor, tau: float, seed: int) -> torch.Tensor:
        """Algorithm 3: x^{j+1} = x^j − (ε_j/2)(∇f(x^j) − (x − x^j)/τ) + √(T ε_j) η_j, averaged with weights ε_j."""
        est: SGLD = self.estimator
        eps, scale = est.eps(), est.noise_scale
        chain = self._chain_start(x, est.warm_start)
        total, grad_norm = float(eps[0]) * chain, 0.0
        for j in range(1, eps.size):                                           # chain is x^j
            _, g = self.flat.grad(closure, chain)
            noise = self._noise(seed, j, j + 1)[0]                             # η_j: noise sample j, as sgld_chain
            chain = chain - 0.5 * eps[j - 1] * (g - (x - chain) / tau) + scale * math.sqrt(eps[j - 1]) * noise
            if not bool(torch.isfinite(chain).all()):
                raise self._fail(f"the Langevin chain is not finite at inner step {j}{sgld_stability_hint(eps, tau)}")
            total = total + eps[j] * chain                                     # Σ ε_j x^j
            grad_norm = float(torch.linalg.vector_norm(g))
        for p, part in zip(self.flat.params, torch.split(chain, self.flat.sizes)):
            # warm start of the next update (§5.1.1), kept in the parameters' dtype (as load_state_dict would cast it)
            self.state[p]["sgld_chain"] = part.view_as(p).to(p.dtype)
        self.last_info = SGLDInfo(float(torch.linalg.vector_norm(x - chain)), grad_norm, seed)
        return total / float(eps.sum())

    def _chain_start(self, x: torch.Tensor, warm_start: bool) -> torch.Tensor:
        parts = [self.state[p].get("sgld_chain") for p in self.flat.params]
        if not warm_start or any(part is None for part in parts):
            return x.clone()
        return torch.cat([part.to(x.device, torch.float64).reshape(-1) for part in parts])


class Heat(_KLOptimizer):
    """Algorithm 2 on a torch model: each ``step(closure)`` takes a Robbins–Monro step to argmin KL(φ_{x,τ} ‖ q_{x_k,τ}).

    Parameters
    ----------
    params, tau, model, seed : as :class:`LocalEntropy`.
    n_iter, n_samples : J iterations of M gradient draws z ~ φ_{x^j,τ} each (eq. 5.3), or
    estimator : a configured ``kltrain.estimators.RobbinsMonro`` (steps a_j = c·j^{−α}).

    ``last_info`` holds ``RMInfo`` (last residual |ĥ|, J, seed).
    """

    def __init__(self, params: Iterable[Any], tau: Any, n_iter: int | None = None, n_samples: int | None = None, *,
                 c: float = 0.1, alpha: float = 0.7, estimator: RobbinsMonro | None = None, model: nn.Module,
                 seed: int = 0):
        estimator = prox_estimator(estimator, n_iter, n_samples, c, alpha, "Heat")
        super().__init__(params, tau, model=model, seed=seed, chunk_size=1, estimator=estimator)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One update of Algorithm 2; returns the loss at the parameters before it."""
        loss = self._loss_at_x(closure)
        assert closure is not None
        est: RobbinsMonro = self.estimator
        tau, seed, x_k = self.tau(self.k), update_seed(self.seed, self.k), self.flat.flatten()
        try:
            x, residual = self._robbins_monro(closure, x_k, tau, seed)
        except BaseException:
            self.flat.write(x_k)        # a failed step leaves the parameters where they were
            raise
        self.flat.write(x)
        self.last_info = RMInfo(residual, est.n_iter, seed)
        self._advance()
        return loss

    def _robbins_monro(self, closure: Closure, x_k: torch.Tensor, tau: float, seed: int) -> tuple[torch.Tensor, float]:
        """Algorithm 5 from x^0 = x_k: (x^J, |ĥ(x^{J−1})|)."""
        est: RobbinsMonro = self.estimator
        x, residual, first, M = x_k.clone(), 0.0, None, est.n_samples
        for j, a in enumerate(est.steps(), start=1):
            z = x + math.sqrt(tau) * self._noise(seed, (j - 1) * M, j * M)     # z^(m) ~ φ_{x^{j−1},τ}
            g = torch.stack([self.flat.grad(closure, row)[1] for row in z]).mean(dim=0)
            h = x - x_k + tau * g                                               # eq. (5.3)
            x = x - a * h
            residual = float(torch.linalg.vector_norm(h))
            first = residual if first is None else first
            if not math.isfinite(residual):
                raise self._fail(f"the Robbins–Monro residual is not finite at iteration {j}")
            check_stable(first, residual, j, tau)
        return x, residual

