"""A torch model's parameters as one flat vector x ∈ R^d, the coordinates of the paper's f(x).

kltrain's estimators see a loss as a function of a flat parameter vector (eq. 2.1);
a torch model keeps its parameters as a list of tensors. :class:`FlatParameters`
maps between the two: coordinate i of x is element i of the concatenation of the
given parameters, each flattened in row-major order (``tensor.reshape(-1)``), in the
order the optimizer holds them. That fixes which counter-based normal ε[j, i]
perturbs which weight, the same in :mod:`kltrain.torch.optim` and in kltrain's NumPy
estimators run on :class:`FlatLoss`.

Evaluating f at J perturbed parameter sets x_j uses ``torch.func.functional_call``
under ``torch.func.vmap`` (the closure runs once per chunk of samples, batched), with
the model's buffers left alone: :func:`frozen_running_stats` keeps a BatchNorm in
training mode on batch statistics without updating its running mean and variance,
which would otherwise absorb J perturbed networks per update (and which vmap cannot
update in place anyway).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

Closure = Callable[[], torch.Tensor]

CLOSURE_HINT = ("the closure must return the minibatch loss as a scalar tensor, without calling .backward(), "
                "zero_grad() or .item(): kltrain.torch evaluates it batched (torch.func.vmap) and differentiates "
                "it itself")


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers in training mode normalise with batch statistics but leave their running ones unchanged.

    Sets ``track_running_stats = False`` on each such layer for the duration (torch then
    passes no running buffers to ``batch_norm``, so nothing is updated in place, and
    ``num_batches_tracked`` stays); layers in eval mode keep using their running statistics.
    """
    changed = [m for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in changed:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


class _ClosureModule(nn.Module):
    """A module whose forward is the closure: ``functional_call`` on it swaps the wrapped model's parameters."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.closure: Closure | None = None

    def forward(self) -> torch.Tensor:
        assert self.closure is not None
        return self.closure()


class FlatParameters:
    """The flat-vector view of ``params`` (tensors of ``model``): flatten, write back, evaluate f at many x.

    All parameters must share one dtype and device; x is float64 on that device where
    the estimators accumulate, and the parameters' dtype where the model is evaluated.
    """

    def __init__(self, params: Iterable[torch.Tensor], model: nn.Module, chunk_size: int = 128,
                 randomness: str = "same"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be the torch.nn.Module that holds the parameters, got {type(model).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: pass the model's parameters (model.parameters())")
        names = {id(p): name for name, p in model.named_parameters()}
        missing = [k for k, p in enumerate(self.params) if id(p) not in names]
        if missing:
            raise ValueError(f"params[{missing[0]}] (shape {tuple(self.params[missing[0]].shape)}) is not a parameter "
                             f"of model {type(model).__name__}")
        dtypes = {p.dtype for p in self.params}
        devices = {p.device for p in self.params}
        if len(dtypes) > 1 or len(devices) > 1 or not self.params[0].is_floating_point():
            raise TypeError(f"the parameters must share one floating dtype and one device, got dtypes "
                            f"{sorted(map(str, dtypes))} on {sorted(map(str, devices))}")
        if not (isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        self.model = model
        self.names = [names[id(p)] for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        self.dim = int(sum(self.sizes))
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.chunk_size = chunk_size
        self.randomness = randomness
        self._wrapper = _ClosureModule(model)

    def flatten(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """x = the parameters' current values, concatenated (a copy, shape (d,))."""
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1).to(dtype) for p in self.params])

    def write(self, x: torch.Tensor) -> None:
        """Set the parameters to the flat vector ``x`` (cast to their dtype)."""
        with torch.no_grad():
            for p, part in zip(self.params, torch.split(x, self.sizes)):
                p.copy_(part.view_as(p))

    def _unflatten(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"model.{name}": part.view_as(p)
                for name, p, part in zip(self.names, self.params, torch.split(row, self.sizes))}

    def losses(self, closure: Closure, X: torch.Tensor) -> torch.Tensor:
        """f at each row of X (n, d), as float64: the closure under vmap, ``chunk_size`` rows per call.

        Runs without autograd and with the running statistics frozen; the parameters
        themselves are never written.
        """
        self._wrapper.closure = closure
        batched = torch.func.vmap(lambda row: torch.func.functional_call(self._wrapper, self._unflatten(row), ()),
                                  randomness=self.randomness)
        out = []
        try:
            with torch.no_grad(), frozen_running_stats(self.model):
                for lo in range(0, X.shape[0], self.chunk_size):
                    out.append(batched(X[lo:lo + self.chunk_size].to(self.dtype)).reshape(-1).to(torch.float64))
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n(kltrain.torch: {CLOSURE_HINT})") from err
        finally:
            self._wrapper.closure = None
        return torch.cat(out)

    def grad(self, closure: Closure, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(f(x), ∇f(x)) with the parameters set to x (they keep it), running statistics frozen; float64."""
        self.write(x)
        try:
            with torch.enable_grad(), frozen_running_stats(self.model):
                loss = closure()
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n(kltrain.torch: {CLOSURE_HINT})") from err
        flat = torch.cat([torch.zeros(n, dtype=torch.float64, device=self.device) if g is None
                          else g.reshape(-1).to(torch.float64) for g, n in zip(grads, self.sizes)])
        return float(loss.detach()), flat


class FlatLoss:
    """A torch model's loss as a kltrain loss (``value``, ``grad``, ``values``, ``dim``) of the flat x, in NumPy float64.

    ``closure()`` returns the loss at the model's current parameters (a minibatch, or a
    whole data set for the flatness measures of :mod:`kltrain.studies.flatness`). Each
    evaluation sets the parameters to x (cast to their dtype), evaluates with BatchNorm's
    running statistics frozen, and puts the original parameters back.
    """

    def __init__(self, model: nn.Module, closure: Closure, params: Iterable[torch.Tensor] | None = None,
                 chunk_size: int = 128):
        self.flat = FlatParameters(model.parameters() if params is None else params, model, chunk_size)
        self.closure = closure
        self.dim = self.flat.dim

    @contextlib.contextmanager
    def _restored(self) -> Iterator[None]:
        saved = self.flat.flatten(self.flat.dtype)
        try:
            yield
        finally:
            self.flat.write(saved)

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), device=self.flat.device)

    def x0(self) -> np.ndarray:
        """The model's current parameters as a flat float64 vector."""
        return self.flat.flatten().cpu().numpy()

    def value(self, x) -> float:
        return float(self.values(np.asarray(x, dtype=np.float64)[None, :])[0])

    def values(self, X) -> np.ndarray:
        return self.flat.losses(self.closure, self._tensor(X)).cpu().numpy()

    def grad(self, x) -> np.ndarray:
        with self._restored():
            return self.flat.grad(self.closure, self._tensor(x))[1].cpu().numpy()

    def grads(self, X) -> np.ndarray:
        return np.stack([self.grad(row) for row in np.asarray(X, dtype=np.float64)])
