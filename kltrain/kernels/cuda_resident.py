"""Device-resident updates: the parameters and the training set stay on the GPU between updates.

:class:`ResidentMLP` holds an MLP's parameters and its training images on the device and runs
the reduced IS update (Algorithm 4 in reduced coordinates, :mod:`kltrain.nets.projected`) and
plain SGD there. Per update the host sends the minibatch's row indices (an asynchronous copy
from pinned memory) and kernel arguments, and reads back **one** 8-number report (loss, ESS,
largest weight, rank, status): one synchronisation per update. The parameters come back only
when asked for (:meth:`ResidentMLP.params`), e.g. at an evaluation.

The update is the CPU reduced path's to float32 rounding (same basis, same counter-based noise,
same formulas; tested under the simulator), so also its distribution. The rare minibatch whose
device basis is not trusted (``kltrain.kernels.cuda_qr.STATUS_FALLBACK``) is redone with the
host's basis, at the cost of a second synchronisation for that update only.

:func:`reduced_importance_update` is the same update with host arrays in and out, which
``backend="cuda"`` runs for ``projected=True`` importance sampling
(:func:`kltrain.nets.projected.projected_importance_update`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import cuda

from ..estimators.importance import MAX_SAMPLES, ISInfo
from ..nets.basis import ORTHOGONAL_SAMPLE, rank_tolerance, row_space_basis
from ..nets.mlp import MLP
from ..noise import GOLDEN, stream_key
from . import cuda as K
from . import cuda_qr as Q
from . import cuda_reduced as R


@dataclass(frozen=True)
class LaunchShape:
    """Threads and blocks of the resident kernels (the simulator tests use tiny ones)."""

    qr_threads: int = Q.QR_THREADS
    sample_threads: int = R.REDUCED_THREADS
    sample_blocks: int | None = None      # None: 2 per multiprocessor (is_samples' launch bounds: 2 resident)
    coord_threads: int = 256
    sgd_threads: int = R.SGD_THREADS
    sgd_blocks: int | None = None         # None: as many as can be co-resident (a cooperative launch)

    @classmethod
    def simulated(cls) -> "LaunchShape":
        """Tiny blocks for the CUDA simulator (it runs each thread as a Python thread)."""
        return cls(qr_threads=16, sample_threads=32, sample_blocks=2, coord_threads=32, sgd_threads=32)

    def blocks_for_samples(self) -> int:
        if self.sample_blocks is not None:
            return self.sample_blocks
        return 2 * _multiprocessors()


def _simulated() -> bool:
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


DEFAULT_SHAPE = LaunchShape.simulated() if _simulated() else LaunchShape()


def _multiprocessors() -> int:
    if _simulated():
        return 1
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def unsupported(net: MLP, batch: int) -> str | None:
    """Why the resident kernels cannot run ``net`` on minibatches of ``batch`` rows, or None."""
    sizes = net.sizes
    if len(sizes) not in (2, 3):
        return f"the resident kernels handle 0 or 1 hidden layer, got sizes {sizes}"
    H, C = sizes[1], sizes[-1]
    rest = net.n_params - sizes[0] * H
    if C > K.MAX_CLASSES or batch > min(K.MAX_BATCH, Q.MAX_ROWS) or batch < 1:
        return f"classes <= {K.MAX_CLASSES} and 1 <= batch <= {Q.MAX_ROWS} needed, got {C} and {batch}"
    if min(batch, sizes[0]) * H + rest > R.POOL_EPS or batch * H > R.POOL_PRE:
        return (f"the reduced net ({min(batch, sizes[0])}×{H} + {rest} coordinates, {batch}×{H} activations) "
                f"exceeds the kernels' shared memory ({R.POOL_EPS} and {R.POOL_PRE})")
    return None


def _sample_key(key, j) -> np.uint64:
    """kltrain.kernels.cuda.sample_key in Python integers (no overflow warning)."""
    return np.uint64((int(key) + (int(j) << 32) * int(GOLDEN)) % 2 ** 64)


class ISReport(NamedTuple):
    """What one resident IS update reports (the contents of its one device→host copy)."""

    loss: float          # β·f(x) on the update's minibatch, before the update
    ess: float
    max_weight: float
    rank: int            # r, the reduced problem's first-layer fan-in
    seed: int
    syncs: int           # host synchronisations this update took: 1, or 2 after a QR fallback


class SGDReport(NamedTuple):
    """What one fused SGD step copies back to the host: the loss before the step and the gradient's norm."""

    loss: float          # β·f(x) before the step
    grad_norm: float     # |∇(βf)(x)|


class ResidentMLP:
    """An MLP's parameters and training set on the device; reduced IS and SGD updates in place.

    >>> # on a GPU:  res = ResidentMLP(net, X_train, y_train, params)
    >>> #            res.set_batch(rows); report = res.importance_update(0.01, seed, 1000)
    >>> #            params = res.params()      # only when needed
    """

    def __init__(self, net: MLP, X, y, params, *, shape: LaunchShape | None = None):
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != net.sizes[0] or y.shape != (X.shape[0],):
            raise ValueError(f"X must be (n, {net.sizes[0]}) and y (n,), got {X.shape} and {y.shape}")
        why = unsupported(net, 1)
        if why:
            raise NotImplementedError(why + " — use the host reduced path (backend='cpu')")
        self.net, self.shape = net, shape or DEFAULT_SHAPE
        self.n_rows = X.shape[0]
        self._X_host = X
        n_in, H, C = net.sizes[0], net.sizes[1], net.sizes[-1]
        rest = net.n_params - n_in * H
        self.lay = cuda.to_device(np.array([n_in, H, C, int(len(net.sizes) == 3), rest], dtype=np.int64))
        self.dim_max = min(Q.MAX_ROWS, n_in) * H + rest
        self.stream = cuda.stream()
        self.X, self.y = cuda.to_device(X), cuda.to_device(y)
        self.params_d = cuda.to_device(self._check_params(params))
        self._rows_host = cuda.pinned_array(Q.MAX_ROWS, dtype=np.int64)
        self._rows_host[:] = 0
        self.rows = cuda.to_device(self._rows_host)
        self.batch_size = 0
        f32 = np.float32
        self.basis = cuda.device_array((n_in, Q.MAX_ROWS), f32)
        self.tri = cuda.device_array((Q.MAX_ROWS, Q.MAX_ROWS), f32)
        self.u64 = cuda.device_array((n_in, Q.MAX_ROWS), np.float64)
        self.meta = cuda.device_array(Q.META_ROWS + Q.MAX_ROWS, np.int64)
        self.xr, self.new = cuda.device_array(self.dim_max, f32), cuda.device_array(self.dim_max, f32)
        self.bz = cuda.device_array(Q.MAX_ROWS * H, f32)
        self.bad, self.loss0 = cuda.device_array(1, np.int64), cuda.device_array(1, f32)
        self.report = cuda.device_array(R.REPORT_SIZE, np.float64)
        self._report_host = cuda.pinned_array(R.REPORT_SIZE, dtype=np.float64)
        self.log_w = cuda.device_array(1, f32)
        self._blocks = self.shape.blocks_for_samples()
        self.part = cuda.device_array((self._blocks, self.dim_max), f32)
        self.stats = cuda.device_array((self._blocks, 4), np.float64)
        self._sgd_grid: int | None = None
        self.trace: list | None = None    # a list: (kernel, event after it) per launch, for the profile
        self.pre = cuda.device_array(Q.MAX_ROWS * H, f32)
        self.d1 = cuda.device_array(Q.MAX_ROWS * H, f32)
        self.delta = cuda.device_array(Q.MAX_ROWS * C, f32)

    def _check_params(self, params) -> np.ndarray:
        params = np.ascontiguousarray(params, dtype=np.float32)
        if params.shape != (self.net.n_params,):
            raise ValueError(f"params must have shape ({self.net.n_params},), got {params.shape}")
        return params

    # -- state ------------------------------------------------------------------------------------
    def load_params(self, params) -> None:
        self.params_d.copy_to_device(self._check_params(params), stream=self.stream)

    def params(self) -> np.ndarray:
        """The parameters on the host (a device→host copy: call it when a result is needed)."""
        out = self.params_d.copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return out

    def set_batch(self, rows) -> None:
        """The next updates' minibatch: rows of the resident training set (an asynchronous copy)."""
        rows = np.asarray(rows, dtype=np.int64)
        why = unsupported(self.net, rows.size)
        if rows.ndim != 1 or why:
            raise ValueError(f"rows must be a 1-D array of 1..{Q.MAX_ROWS} row indices: {why or rows.shape}")
        if rows.min() < 0 or rows.max() >= self.n_rows:
            raise ValueError(f"rows must lie in [0, {self.n_rows}), got [{rows.min()}, {rows.max()}]")
        self._rows_host[:rows.size] = rows
        self.rows.copy_to_device(self._rows_host, stream=self.stream)   # pinned: does not wait
        self.batch_size = rows.size

    def _mark(self, name: str) -> None:
        """With tracing on, an event after the launch just queued (kernel shares of an update)."""
        if self.trace is not None:
            event = cuda.event()
            event.record(self.stream)
            self.trace.append((name, event))

    def _read_report(self) -> np.ndarray:
        """The update's one synchronisation: the report, copied into pinned memory."""
        self.report.copy_to_host(self._report_host, stream=self.stream)
        self.stream.synchronize()
        return self._report_host.copy()

    # -- the reduced IS update --------------------------------------------------------------------
    def importance_update(self, tau: float, seed: int, n_samples: int, antithetic: bool = False,
                          loss_scale: float = 1.0) -> ISReport:
        """One reduced IS update (Alg. 4 on β·f, β = ``loss_scale``) of the resident parameters."""
        if not self.batch_size:
            raise ValueError("set_batch(rows) must come before the first update")
        if not (np.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive finite number, got {tau!r}")
        if not 1 <= int(n_samples) < MAX_SAMPLES:
            raise ValueError(f"n_samples must be in [1, {MAX_SAMPLES}), got {n_samples!r}")
        J, s, key = int(n_samples), np.float32(np.sqrt(tau)), stream_key(seed)
        okey = _sample_key(key, ORTHOGONAL_SAMPLE)
        if self.log_w.size < J:
            self.log_w = cuda.device_array(J, np.float32)
        st, B = self.stream, self.batch_size
        self._mark("start")
        Q.minibatch_qr[1, self.shape.qr_threads, st](self.X, self.rows, B, rank_tolerance(B, self.net.sizes[0]),
                                                     self.basis, self.tri, self.u64, self.meta)
        self._mark("minibatch_qr")
        report, syncs = self._reduced_is(s, key, okey, J, antithetic, loss_scale), 1
        if report[R.REPORT_STATUS] == R.QR_FALLBACK:       # the device basis is not trusted: the host's
            self._host_basis()
            report, syncs = self._reduced_is(s, key, okey, J, antithetic, loss_scale), 2
        status = report[R.REPORT_STATUS]
        if status == R.BAD_SAMPLE:
            j = int(report[R.REPORT_BAD_SAMPLE])
            lw = float(self.log_w[j:j + 1].copy_to_host()[0])
            raise FloatingPointError(f"importance sampling (τ = {tau!r}): the loss f(x + √τ ε_j) is {-lw!r} at "
                                     f"sample j = {j}; every sample's loss must be finite")
        if status == R.NO_WEIGHT:
            raise FloatingPointError(f"importance sampling (τ = {tau!r}): the loss is +inf at all {J} samples, "
                                     f"so no weight is left")
        return ISReport(float(report[R.REPORT_LOSS]), float(report[R.REPORT_ESS]),
                        float(report[R.REPORT_MAX_WEIGHT]), int(report[R.REPORT_RANK]), int(seed), syncs)

    def _reduced_is(self, s, key, okey, J, antithetic, beta) -> np.ndarray:
        st, B, sh = self.stream, self.batch_size, self.shape
        H = self.net.sizes[1]
        lanes = -(-min(B, self.net.sizes[0]) // R.ACC_ROWS)
        tile = min(R.TILE, H)
        R.reduce_params[-(-H // tile), (tile, lanes), st](self.params_d, self.basis, self.meta, self.lay, okey,
                                                          self.xr, self.bz, self.bad)
        self._mark("reduce_params")
        units = (J + 1) // 2 if antithetic else J
        R.is_samples[min(units, self._blocks), sh.sample_threads, st](
            self.xr, self.tri, self.meta, self.y, self.rows, B, self.lay, s, key, J, bool(antithetic),
            np.float32(beta), self.log_w, self.part, self.stats[:min(units, self._blocks)], self.bad, self.loss0)
        self._mark("is_samples")
        ct = sh.coord_threads
        R.is_finish[-(-self.dim_max // ct), ct, st](self.xr, self.meta, self.lay, s,
                                                    self.stats[:min(units, self._blocks)], self.part, self.bad,
                                                    self.loss0, self.new, self.report)
        self._mark("is_finish")
        R.lift[-(-self.net.n_params // ct), ct, st](self.params_d, self.basis, self.meta, self.lay, okey, self.xr,
                                                    self.bz, self.new, self.report)
        self._mark("lift")
        return self._read_report()

    def _host_basis(self) -> None:
        """The host's basis (kltrain.nets.basis) in place of the device's, for a fallback update."""
        rows = self._rows_host[:self.batch_size].copy()
        basis, tri, accepted = row_space_basis(self._X_host[rows])
        r = basis.shape[1]
        padded = np.zeros((self.net.sizes[0], Q.MAX_ROWS), np.float32)
        padded[:, :r] = basis
        tri_padded = np.zeros((Q.MAX_ROWS, Q.MAX_ROWS), np.float32)
        tri_padded[:self.batch_size, :r] = tri
        meta = np.zeros(Q.META_ROWS + Q.MAX_ROWS, np.int64)
        meta[Q.META_RANK], meta[Q.META_STATUS] = r, Q.STATUS_OK
        meta[Q.META_ROWS:Q.META_ROWS + r] = accepted
        for device, host in ((self.basis, padded), (self.tri, tri_padded), (self.meta, meta)):
            device.copy_to_device(host, stream=self.stream)

    def log_weights(self, n_samples: int) -> np.ndarray:
        """The last IS update's J log weights −βf(x_j) (an extra device→host copy: diagnostics only)."""
        out = self.log_w[:n_samples].copy_to_host(stream=self.stream)
        self.stream.synchronize()
        return out.astype(np.float64)

    # -- SGD --------------------------------------------------------------------------------------
    def sgd_update(self, learning_rate: float, loss_scale: float = 1.0) -> SGDReport:
        """x ← x − η∇(βf)(x) on the current minibatch (eq. 3.4): one cooperative launch, one sync."""
        if not self.batch_size:
            raise ValueError("set_batch(rows) must come before the first update")
        threads = self.shape.sgd_threads
        args = (self.params_d, self.X, self.y, self.rows, self.batch_size, self.lay, np.float32(learning_rate),
                np.float32(loss_scale), self.pre, self.delta, self.d1, self.report)
        blocks = self.shape.sgd_blocks or self._sgd_blocks(threads, args)
        self._mark("start")
        R.sgd_step[blocks, threads, self.stream](*args)
        self._mark("sgd_step")
        report = self._read_report()
        return SGDReport(float(report[0]), float(np.sqrt(report[1])))

    def _sgd_blocks(self, threads, args) -> int:
        """Blocks of the cooperative SGD launch: all co-resident (a grid barrier needs them to be)."""
        if _simulated():
            return 1     # the simulator runs cooperative grids of one block
        if self._sgd_grid is None:
            from numba import typeof
            compiled = R.sgd_step.compile(tuple(typeof(a) for a in args))   # the launch's own specialisation
            most = self.net.n_params // threads + 1
            self._sgd_grid = max(1, min(most, compiled.max_cooperative_grid_blocks(threads)))
        return self._sgd_grid


def reduced_importance_update(mb, params, tau, seed, n_samples, antithetic=False, loss_scale=1.0):
    """The reduced IS update on the device with host arrays in and out: (new params, ISInfo).

    Same numbers as :func:`kltrain.nets.projected.projected_importance_update` on the CPU to
    float32 rounding. The minibatch and buffers are cached on ``mb``; the parameters go up,
    the update and its J log weights come down (the resident class avoids both). None when the
    kernels do not cover this net or batch (:func:`unsupported`): the caller's host path runs.
    """
    if unsupported(mb.net, mb.batch_size):
        return None
    res = mb.__dict__.get("_cuda_resident")
    if res is None:
        res = ResidentMLP(mb.net, mb.X, mb.y, params)
        res.set_batch(np.arange(mb.batch_size))
        mb.__dict__["_cuda_resident"] = res
    else:
        res.load_params(params)
    report = res.importance_update(tau, seed, n_samples, antithetic, loss_scale)
    info = ISInfo(report.ess, report.max_weight, res.log_weights(n_samples), int(seed))
    return res.params(), info
