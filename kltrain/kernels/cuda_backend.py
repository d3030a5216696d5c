"""The numba.cuda backend: the interface of kltrain.kernels.numpy_backend on the GPU kernels.

Arrays go in and come out as NumPy arrays; the minibatch's index arrays are
copied to the device once per Minibatch and cached on it. Inside an update
the only transfers are the J log weights (down) and their exponentials (up)
for importance sampling; the SGLD chain and the Robbins–Monro iteration stay
on the device from their first step to their last.
"""

from __future__ import annotations

import numpy as np
from numba import cuda as nbcuda

from ..estimators.importance import ISPartial, check_log_weights, check_sample_range
from ..noise import GOLDEN, stream_key
from . import cuda as K
from . import cuda_chain_runs
from .cuda_resident import reduced_importance_update  # noqa: F401  (projected IS, the whole update on the device)

name = "cuda"   # the backend's name (kltrain.kernels.resolve): a wrapper such as GatheringBackend reports it

THREADS = 256          # threads per network block (H200, run 3: 256 beat 128 by 1.3x on SGLD and HR; 512 no better)
COORD_THREADS = 256    # threads per block for per-coordinate kernels
SAMPLE_CHUNK = 128     # IS samples one accumulate thread sums (grid: coordinates × J/SAMPLE_CHUNK)


def supports(net) -> bool:
    """The GPU kernels cover the paper's nets: 0 or 1 hidden layer within the compile-time limits."""
    sizes = net.sizes
    return len(sizes) in (2, 3) and sizes[1] <= K.MAX_HIDDEN and sizes[-1] <= K.MAX_CLASSES


def _device_batch(mb):
    """Device copies of the minibatch (cached on the Minibatch object)."""
    cached = mb.__dict__.get("_cuda")
    if cached is None:
        net = mb.net
        if not supports(net) or mb.batch_size > K.MAX_BATCH:
            raise NotImplementedError(
                f"the CUDA kernels handle nets with 0 or 1 hidden layer of width <= {K.MAX_HIDDEN}, <= "
                f"{K.MAX_CLASSES} classes and batches <= {K.MAX_BATCH}; got sizes {net.sizes}, batch "
                f"{mb.batch_size} — use backend='cpu'")
        (w0, b0, _, H), last = net.layer_offsets[0], net.layer_offsets[-1]
        two = len(net.layer_offsets) == 2
        lay = np.array([w0, b0, H, last[0] if two else 0, last[1] if two else 0, net.sizes[-1], int(two)],
                       dtype=np.int64)
        cached = tuple(nbcuda.to_device(a) for a in (lay, mb.cols, mb.colptr, mb.col_row, mb.col_val, mb.y))
        mb.__dict__["_cuda"] = cached
    return cached


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _blocks(n, threads=COORD_THREADS):
    return (n + threads - 1) // threads


def log_weights(mb, params, tau, seed, start, stop, antithetic, d_params=None):
    """The log importance weights −f(x + √τ ε_j) of samples ``[start, stop)`` on the GPU (float64 on the host)."""
    lay, cols, colptr, col_row, col_val, y = _device_batch(mb)
    d_params = nbcuda.to_device(_f32(params)) if d_params is None else d_params
    out = nbcuda.device_array(stop - start, dtype=np.float32)
    K.log_weights[stop - start, THREADS](d_params, np.float32(np.sqrt(tau)), stream_key(seed), start, antithetic,
                                          lay, cols, colptr, col_row, col_val, y, mb.batch_size, out)
    return out.copy_to_host().astype(np.float64)


def importance_partial(mb, params, tau, seed, start, stop, antithetic):
    """The importance-sampling partial sums over samples ``[start, stop)`` and their log weights (GPU)."""
    check_sample_range(start, stop)
    d_params = nbcuda.to_device(_f32(params))
    log_w = log_weights(mb, params, tau, seed, start, stop, antithetic, d_params)
    check_log_weights(log_w, tau, start)  # a NaN would make m, and so every weight, NaN
    m = float(log_w.max())
    w = np.exp(log_w - m)
    acc = nbcuda.device_array(d_params.size, dtype=np.float32)
    chunks = _blocks(stop - start, SAMPLE_CHUNK)
    partial = nbcuda.device_array((chunks, acc.size), dtype=np.float32)
    K.accumulate[(_blocks(acc.size), chunks), (COORD_THREADS, 1)](stream_key(seed), start, antithetic,
                                                                   nbcuda.to_device(w.astype(np.float32)),
                                                                   SAMPLE_CHUNK, partial)
    K.sum_rows[_blocks(acc.size), COORD_THREADS](partial, acc)
    return ISPartial(m, float(w.sum()), float(w @ w), acc.copy_to_host().astype(np.float64), stop - start), log_w


def population_losses(mb, params, tau, seed, samples):
    """f(x + √τ ε_j) for each sample index j in ``samples`` (GPU; a test helper)."""
    return np.array([-log_weights(mb, params, tau, seed, j, j + 1, False)[0] for j in samples])


def _zeros(n):
    out = nbcuda.device_array(n, dtype=np.float32)
    K.fill[_blocks(n), COORD_THREADS](out, np.float32(0.0))
    return out


def _loss_grad(mb, d_params, d_grad, d_loss):
    lay, cols, colptr, col_row, col_val, y = _device_batch(mb)
    K.loss_grad[1, THREADS](d_params, lay, cols, colptr, col_row, col_val, y, mb.batch_size, d_grad, d_loss)


def loss_and_grad(mb, params):
    """The minibatch loss and its gradient at ``params`` (GPU)."""
    d_params = nbcuda.to_device(_f32(params))
    grad, loss = _zeros(d_params.size), nbcuda.device_array(1, dtype=np.float32)
    _loss_grad(mb, d_params, grad, loss)
    return float(loss.copy_to_host()[0]), grad.copy_to_host()


def langevin_step(x, chain, grad, total, e, e_next, tau, seed, j, noise_scale=1.0):
    """One Algorithm 3 transition in place on host arrays (the fresh-minibatch path)."""
    d = [nbcuda.to_device(_f32(a)) for a in (x, chain, grad, total)]
    _langevin(d, e, e_next, tau, stream_key(seed), j, noise_scale)
    chain[:], total[:] = d[1].copy_to_host(), d[3].copy_to_host()


def _langevin(d, e, e_next, tau, key, j, noise_scale):
    x, chain, grad, total = d
    skey = np.uint64((int(key) + (int(j) << 32) * int(GOLDEN)) % 2 ** 64)  # sample_key in Python ints: no overflow warning
    K.langevin[_blocks(chain.size), COORD_THREADS](x, chain, grad, total, np.float32(0.5 * e),
                                                    np.float32(noise_scale * np.sqrt(e)), np.float32(1.0 / tau),
                                                    np.float32(e_next), skey)


def sgld_chain(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """Algorithm 3 on the device: one persistent block (cuda_chains) for the reduced problem, else
    :func:`sgld_chain_per_step`."""
    if cuda_chain_runs.fits(mb):
        return cuda_chain_runs.sgld_chain(mb, x, chain, tau, eps, seed, noise_scale)
    return sgld_chain_per_step(mb, x, chain, tau, eps, seed, noise_scale)


def sgld_chain_many(calls):
    """``sgld_chain(*call)`` for each call; the reduced ones as the blocks of one launch (issue 21)."""
    return _many(calls, sgld_chain, cuda_chain_runs.sgld_chain_many)


def _many(calls, one, batched):
    calls = list(calls)
    fit = [i for i, c in enumerate(calls) if cuda_chain_runs.fits(c[0])]
    out = [None if i in fit else one(*c) for i, c in enumerate(calls)]
    for i, res in zip(fit, batched([calls[i] for i in fit]) if fit else ()):
        out[i] = res
    return out


def sgld_chain_per_step(mb, x, chain, tau, eps, seed, noise_scale=1.0):
    """Algorithm 3 on the device: per inner step one gradient block and one Langevin grid, no host sync."""
    eps = np.asarray(eps, np.float64)
    key = stream_key(seed)
    d_x, d_chain = nbcuda.to_device(_f32(x)), nbcuda.to_device(_f32(chain))
    d_total = nbcuda.to_device((eps[0] * _f32(chain)).astype(np.float32))
    d_grad, d_loss = _zeros(d_x.size), nbcuda.device_array(1, dtype=np.float32)
    for j in range(1, eps.size):
        _loss_grad(mb, d_chain, d_grad, d_loss)
        _langevin((d_x, d_chain, d_grad, d_total), eps[j - 1], eps[j], tau, key, j, noise_scale)
    grad_norm = float(np.linalg.norm(d_grad.copy_to_host())) if eps.size > 1 else 0.0
    return d_total.copy_to_host() / np.float32(eps.sum()), d_chain.copy_to_host(), grad_norm


def robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Algorithm 5 on the device: persistent blocks (cuda_chains) for the reduced problem, else
    :func:`robbins_monro_per_step`."""
    if cuda_chain_runs.fits(mb):
        return cuda_chain_runs.robbins_monro(mb, x_k, tau, steps, n_samples, seed, grad_scale)
    return robbins_monro_per_step(mb, x_k, tau, steps, n_samples, seed, grad_scale)


def robbins_monro_many(calls):
    """``robbins_monro(*call)`` for each call; the reduced ones in one set of launches (issue 21)."""
    return _many(calls, robbins_monro, cuda_chain_runs.robbins_monro_many)


def robbins_monro_per_step(mb, x_k, tau, steps, n_samples, seed, grad_scale=1.0):
    """Algorithm 5 on the device: per iteration M gradient blocks (atomically summed) and one update grid."""
    lay, cols, colptr, col_row, col_val, y = _device_batch(mb)
    d_xk = nbcuda.to_device(_f32(x_k))
    d_x = nbcuda.to_device(_f32(x_k))
    gsum, res2 = _zeros(d_x.size), nbcuda.to_device(np.zeros(1))
    key, s, M = stream_key(seed), np.float32(np.sqrt(tau)), n_samples
    for j, a in enumerate(np.asarray(steps, np.float64), start=1):
        K.rm_grads[M, THREADS](d_x, s, key, (j - 1) * M, lay, cols, colptr, col_row, col_val, y,
                               mb.batch_size, gsum)
        if j == len(steps):
            res2 = nbcuda.to_device(np.zeros(1))
        K.rm_update[_blocks(d_x.size), COORD_THREADS](d_x, d_xk, gsum, np.float32(a), np.float32(grad_scale * tau / M), res2)
    return d_x.copy_to_host(), float(np.sqrt(res2.copy_to_host()[0]))


def normals(seed, samples, n_coords):
    """The counter-based normals ε[j, i] of ``seed`` for the sample indices ``samples`` (GPU, float32)."""
    samples = np.asarray(samples, dtype=np.int64)
    out = nbcuda.device_array((samples.size, n_coords), dtype=np.float32)
    grid = (_blocks(samples.size, 16), _blocks(n_coords, 16))
    K.normals[grid, (16, 16)](stream_key(seed), nbcuda.to_device(samples), 0, out)
    return out.copy_to_host()


SELF_CHECK_TOLERANCE = 1e-4  #: float32 kernels against float32 CPU kernels on a tiny net


def self_check() -> None:
    """Compile every kernel and compare it with the numba CPU kernels on a tiny net (6–4–3, batch 3).

    Raises RuntimeError naming the first quantity that differs by more than
    :data:`SELF_CHECK_TOLERANCE` (relative to its scale); numba's own error if a kernel does not
    compile or launch. ``backend="auto"`` calls this once before it picks the GPU.
    """
    from ..nets.mlp import MLP
    from . import cpu_backend as cpu
    from .layout import Minibatch
    rng = np.random.default_rng(0)
    net = MLP((6, 4, 3))
    mb = Minibatch.build(net, rng.random((3, 6)) * (rng.random((3, 6)) < 0.7), np.array([0, 2, 1]))
    p = net.init(1)
    eps, steps = 1 / (10 + np.arange(1, 4)), 0.5 * np.arange(1, 3) ** -0.7
    gpu_is, cpu_is = importance_partial(mb, p, 0.1, 7, 0, 3, True), cpu.importance_partial(mb, p, 0.1, 7, 0, 3, True)
    pairs = {
        "normals": (normals(5, [0, 3], 7), cpu.normals(5, [0, 3], 7)),
        "log_weights": (gpu_is[1], cpu_is[1]),
        "is_sum_w_eps": (gpu_is[0].sum_w_eps, cpu_is[0].sum_w_eps),
        "gradient": (loss_and_grad(mb, p)[1], cpu.loss_and_grad(mb, p)[1]),
        "sgld_mean": (sgld_chain_per_step(mb, p, p, 0.1, eps, 3)[0], cpu.sgld_chain(mb, p, p, 0.1, eps, 3)[0]),
        "robbins_monro": (robbins_monro_per_step(mb, p, 0.1, steps, 2, 4)[0],
                          cpu.robbins_monro(mb, p, 0.1, steps, 2, 4)[0]),
        **_resident_pairs(mb, p),
    }
    pairs.update(_chains_self_check(mb, p, eps, steps, cpu))
    for quantity, (gpu, ref) in pairs.items():
        gpu, ref = np.asarray(gpu, np.float64), np.asarray(ref, np.float64)
        error = float(np.max(np.abs(gpu - ref), initial=0.0)) if gpu.shape == ref.shape else np.inf
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1.0)
        if not error <= SELF_CHECK_TOLERANCE * scale:  # catches NaN too
            raise RuntimeError(f"CUDA kernels disagree with the CPU kernels on {quantity}: "
                               f"max |GPU - CPU| = {error:.3g} (tolerance {SELF_CHECK_TOLERANCE * scale:.3g})")


def _chains_self_check(mb, p, eps, steps, cpu) -> dict:
    """The persistent chain kernels (cuda_chains) against the CPU kernels: two runs in one launch, and
    Robbins–Monro with two blocks per run (rm_apply)."""
    (mean_a, chain_a, _), (mean_b, _, _) = cuda_chain_runs.sgld_chain_many(
        [(mb, p, p, 0.1, eps, 3), (mb, p, p, 0.2, eps, 5, 0.5)])
    return {
        "sgld_chain_persistent": (np.concatenate([mean_a, chain_a, mean_b]), np.concatenate(
            [*cpu.sgld_chain(mb, p, p, 0.1, eps, 3)[:2], cpu.sgld_chain(mb, p, p, 0.2, eps, 5, 0.5)[0]])),
        "robbins_monro_persistent": (cuda_chain_runs.robbins_monro(mb, p, 0.1, steps, 2, 4, groups=1)[0],
                                     cpu.robbins_monro(mb, p, 0.1, steps, 2, 4)[0]),
        "robbins_monro_grouped": (cuda_chain_runs.robbins_monro(mb, p, 0.1, steps, 3, 4, groups=2)[0],
                                  cpu.robbins_monro(mb, p, 0.1, steps, 3, 4)[0]),
    }


def _resident_pairs(mb, p) -> dict:
    """The device-resident kernels (cuda_qr, cuda_reduced) against the CPU kernels on the same tiny net:
    the reduced IS update (QR, reduced parameters, samples, combine, lift) and one fused SGD step."""
    from ..nets.basis import ORTHOGONAL_SAMPLE, row_space_basis
    from ..nets.mlp import MLP
    from . import cpu_backend as cpu
    from .cuda_resident import ResidentMLP
    from .layout import Minibatch
    tau, seed, J = 0.1, 7, 3
    res = ResidentMLP(mb.net, mb.X, mb.y, p)
    res.set_batch(np.arange(mb.batch_size))
    res.importance_update(tau, seed, J, True)
    # the reference: the host basis, the CPU kernels on the reduced net, the lift (kltrain.nets.projected's steps)
    basis, tri, _ = row_space_basis(mb.X)
    n_in, H = mb.net.sizes[:2]
    W1 = p[:n_in * H].reshape(n_in, H).astype(np.float64)
    coords = basis.T @ W1
    reduced = np.concatenate([coords.ravel(), p[n_in * H:]])
    small = Minibatch.build(MLP((basis.shape[1],) + mb.net.sizes[1:]), tri, mb.y)
    part, log_w = cpu.importance_partial(small, reduced, tau, seed, 0, J, True)
    new = reduced + np.sqrt(tau) * part.sum_w_eps / part.sum_w
    w = np.exp(log_w - log_w.max()) / np.exp(log_w - log_w.max()).sum()
    k = np.sqrt(tau) * np.sqrt(np.sum((w[0::2][:w[1::2].size] - w[1::2]) ** 2) + (w[-1] ** 2 if J % 2 else 0.0))
    z = cpu.normals(seed, [ORTHOGONAL_SAMPLE], n_in * H).reshape(n_in, H)
    W1_new = W1 + k * z + basis @ (new[:coords.size].reshape(coords.shape) - coords - k * (basis.T @ z))
    reference = np.concatenate([W1_new.ravel(), new[coords.size:]])
    device_is = res.params()
    res.load_params(p)
    report = res.sgd_update(0.5)
    loss, grad = cpu.loss_and_grad(mb, p)
    return {"resident_is_update": (device_is, reference), "resident_sgd_step": (res.params(), p - 0.5 * grad),
            "resident_sgd_loss": (report.loss, loss)}
