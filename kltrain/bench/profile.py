"""Where the reduced IS update's time goes (``kltrain bench --profile``) and its scaling in J (``--sweep``).

The reduced IS update (:func:`kltrain.nets.projected.projected_importance_update`) is
split into its parts, each timed alone (best of ``repeat`` after a warm-up):
SVD/QR of the minibatch, the orthogonal draw Z, the products ŨᵀW₁ and ŨᵀZ, x → x̃,
the IS kernel (normals + forward + weights + reduction, fused; the normals are also
timed alone with the same generator, as one plain fill per sample, and the rest is the
difference: the kernel draws later layers' noise transposed, a few % slower than the
plain fill), the posterior mean, and P⊥ + lift (the host products on one BLAS thread,
as in the update). Beside each part is a *floor*: its operation count divided by a rate
measured on this machine in the same run — normals per second of our counter
generator on a large block, and GFLOP/s of a large float32 matmul. The floor
says how fast the part could be at that rate, not that it is reachable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from .._blas import single_blas_thread
from .timing import best_time as _best, median_time
from ..estimators.importance import posterior_mean_from_partial
from ..kernels.counter import fill_normals, sample_key
from ..noise import stream_key
from ..nets.projected import (ORTHOGONAL_SAMPLE, _orthogonal_scale, basis_coordinates, lift_with_noise,
                        projected_importance_update, reduce_minibatch)

SWEEP_SAMPLES = (100, 1_000, 10_000, 100_000)
PROFILE_REPEAT = 10   # at least this many timed runs per profile part


@dataclass(frozen=True)
class ProfilePart:
    """One part of the reduced IS update: its measured time beside the floor from its operation count."""

    part: str
    seconds: float
    floor_seconds: float | None
    operations: float
    unit: str

    @property
    def over_floor(self) -> float | None:
        return None if not self.floor_seconds else self.seconds / self.floor_seconds


@nb.njit(cache=True, error_model="numpy", fastmath=True, parallel=True)
def fill_rows(key, rows, n, n_threads):
    """Generate rows × n normals as the IS kernel does (one reused length-n buffer per thread)."""
    check = np.zeros(n_threads, dtype=np.float32)
    for t in nb.prange(n_threads):
        e = np.empty(n, dtype=np.float32)
        for j in range(t, rows, n_threads):
            fill_normals(sample_key(key, j), 0, e)
            check[t] += e[j % n]
    return check


def time_normals(rows: int, n: int, repeat: int = 3) -> float:
    """Seconds to generate rows × n normals in cache-resident rows on all numba threads."""
    key, threads = stream_key(0), nb.get_num_threads()
    return _best(lambda: fill_rows(key, rows, n, threads), repeat)


def normals_per_second(repeat: int = 3, rows: int = 2048, n: int = 8192) -> float:
    """Measured rate of our counter generator (all numba threads), rows of n normals as in the kernel."""
    return rows * n / time_normals(rows, n, repeat)


def matmul_flops_per_second(repeat: int = 3, n: int = 1024, rng: np.random.Generator | None = None) -> float:
    """Measured float32 GEMM rate (FLOP/s) of an n×n×n product with NumPy's BLAS."""
    rng = np.random.default_rng(0) if rng is None else rng
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    return 2.0 * n ** 3 / _best(lambda: a @ b, repeat)


def _counts(mb, red, samples):
    """Operation counts of each part: (normals, FLOPs) for the reduced problem of ``mb``."""
    sizes, B, in_dim, r = mb.net.sizes, mb.batch_size, mb.net.sizes[0], red.rank
    H = sizes[1]
    n_red = red.minibatch.net.n_params
    forward = samples * 2.0 * B * sum(a * b for a, b in zip((r,) + sizes[1:-1], sizes[1:]))
    return {
        "svd": 4.0 * B * B * in_dim + 22.0 * B ** 3 + 2.0 * in_dim * B * r,   # QR of Aᵀ, SVD of R₁, basis
        "coords": 2 * 2.0 * in_dim * r * H,              # ŨᵀW₁ and ŨᵀZ
        "normals": float(samples * n_red),
        "forward": forward,
        "weights": float(samples * B * sizes[-1]),        # one exp per logit
        "reduction": 2.0 * samples * n_red,               # Σ_j w_j ε_j
        "z": float(in_dim * H),
        "lift": 2.0 * in_dim * r * H,                     # W₁ + kZ + Ũc: one in×r×H product
    }


def profile_reduced_is(backend, mb, params, tau, samples, repeat=3, seed=1, rates=None) -> list[ProfilePart]:
    """Time each part of one reduced IS update of ``samples`` samples and set its floor beside it."""
    normal_rate, flop_rate = rates or (normals_per_second(repeat), matmul_flops_per_second(repeat))
    with single_blas_thread():
        return _profile_parts(backend, mb, params, tau, samples, repeat, seed, normal_rate, flop_rate)


def _profile_parts(backend, mb, params, tau, samples, repeat, seed, normal_rate, flop_rate):
    red = reduce_minibatch(mb)
    W1 = red.first_layer(params)
    z = np.asarray(backend.normals(seed, [ORTHOGONAL_SAMPLE], W1.size), np.float32).reshape(W1.shape)
    coords, basis_z = basis_coordinates(red.basis, W1, z)
    reduced = red.reduce(params, coords)
    n = _counts(mb, red, samples)
    part, log_w = backend.importance_partial(red.minibatch, reduced, tau, seed, 0, samples, False)
    kernel = _best(lambda: backend.importance_partial(red.minibatch, reduced, tau, seed, 0, samples, False), repeat)
    normals = time_normals(samples, reduced.size, repeat)
    rest_floor = (n["forward"] + n["reduction"] + n["weights"]) / flop_rate
    parts = [
        ProfilePart("SVD/QR", _best(lambda: reduce_minibatch(mb), repeat), n["svd"] / flop_rate, n["svd"], "FLOP"),
        ProfilePart("orthogonal Z", _best(lambda: backend.normals(seed, [ORTHOGONAL_SAMPLE], W1.size), repeat),
                    n["z"] / normal_rate, n["z"], "normals"),
        ProfilePart("U~T W1, U~T Z", _best(lambda: basis_coordinates(red.basis, W1, z), repeat),
                    n["coords"] / flop_rate, n["coords"], "FLOP"),
        ProfilePart("x -> x~", _best(lambda: red.reduce(params, coords), repeat), None, 0.0, ""),
        ProfilePart("IS kernel (fused)", kernel, n["normals"] / normal_rate + rest_floor,
                    n["normals"] + n["forward"] + n["reduction"], "normals+FLOP"),
        ProfilePart("  normals (alone)", normals, n["normals"] / normal_rate, n["normals"], "normals"),
        ProfilePart("  fwd+weights+reduce", max(kernel - normals, 0.0), rest_floor,
                    n["forward"] + n["weights"] + n["reduction"], "FLOP"),
        ProfilePart("    forward (floor)", float("nan"), n["forward"] / flop_rate, n["forward"], "FLOP"),
        ProfilePart("    reduction (floor)", float("nan"), n["reduction"] / flop_rate, n["reduction"], "FLOP"),
        ProfilePart("posterior mean", _best(lambda: posterior_mean_from_partial(part, reduced.astype(np.float64),
                                                                              tau), repeat), None, 0.0, ""),
        ProfilePart("P-perp + lift", _best(lambda: lift_with_noise(red, reduced, W1, coords, z,
                                                                   _orthogonal_scale(log_w, False), basis_z), repeat),
                    n["lift"] / flop_rate, n["lift"], "FLOP"),
    ]
    total_floor = sum(p.floor_seconds or 0.0 for p in parts if not p.part.startswith(" "))
    total = _best(lambda: projected_importance_update(backend, mb, params, tau, seed, samples), repeat)
    return parts + [ProfilePart("update (total)", total, total_floor, float("nan"), "")]


def sweep_reduced_is(backend, mb, params, tau, samples=SWEEP_SAMPLES, repeat=3, seed=1) -> list[dict]:
    """Seconds per reduced IS update against J (best of ``repeat``, one run above 10⁴ samples)."""
    out = []
    for J in samples:
        fn = lambda: projected_importance_update(backend, mb, params, tau, seed, J)  # noqa: E731
        out.append({"samples": int(J), "seconds_per_update": _best(fn, repeat if J <= 10_000 else 1)})
    return out


PROFILE_HEADER = f"{'part':<24} {'seconds':>10} {'floor s':>10} {'x floor':>8} {'operations':>12} unit"


def format_part(p: ProfilePart) -> str:
    """One row of the ``--profile`` table: part, seconds, floor, ratio to the floor, operations."""
    secs = "" if np.isnan(p.seconds) else f"{p.seconds:.4g}"
    floor = "" if p.floor_seconds is None else f"{p.floor_seconds:.4g}"
    ratio = "" if p.over_floor is None or np.isnan(p.over_floor) else f"{p.over_floor:.1f}x"
    ops = "" if not p.operations or np.isnan(p.operations) else f"{p.operations:.3g}"
    return f"{p.part:<24} {secs:>10} {floor:>10} {ratio:>8} {ops:>12} {p.unit}"


def profile_json(parts, normal_rate, flop_rate) -> dict:
    """The profile as a JSON-ready dict (rates and parts)."""
    return {"normals_per_second": normal_rate, "matmul_flops_per_second": flop_rate,
            "parts": [dict(asdict(p), over_floor=p.over_floor) for p in parts]}


__all__ = ["GRADIENT_BATCHES", "PROFILE_HEADER", "SWEEP_SAMPLES", "ProfilePart", "format_part", "gradient_table",
           "matmul_flops_per_second", "profile_gradient",
           "normals_per_second", "profile_json", "profile_reduced_is", "run_profile_and_sweep", "sweep_reduced_is"]


def run_profile_and_sweep(backend_name, samples=1000, repeat=3, profile=True, sweep=True, printer=print) -> dict:
    """Profile and/or sweep the reduced IS update of 784–200–10 on an MNIST minibatch; return the JSON part."""
    from .timing import BATCH, NETS, TAU
    from ..nets.data import load_mnist
    from ..kernels import get_backend
    from ..kernels.layout import Minibatch
    from ..nets.mlp import MLP

    backend, net = get_backend(backend_name), MLP.hidden()
    X, y, _, _ = load_mnist(quiet=True)
    mb, params = Minibatch.build(net, X[:BATCH], y[:BATCH]), net.init(0)
    out: dict = {}
    if profile:
        best_of = max(repeat, PROFILE_REPEAT)   # parts take milliseconds: more repeats, less noise
        rates = (normals_per_second(best_of), matmul_flops_per_second(best_of))
        parts = profile_reduced_is(backend, mb, params, TAU, samples, best_of, rates=rates)
        printer(f"\nreduced IS, 784-200-10, J = {samples}: {rates[0] / 1e9:.3g} G normals/s, "
                f"{rates[1] / 1e9:.3g} GFLOP/s (float32 GEMM)")
        printer(PROFILE_HEADER)
        for p in parts:
            printer(format_part(p))
        out["profile"] = dict(profile_json(parts, *rates), samples=samples)
        out["gradient"] = {name: profile_gradient(NETS[name](), repeat=max(repeat, 5)) for name in ("hidden", "wide")}
        for name, rows in out["gradient"].items():
            printer(f"\n{name} ({'-'.join(map(str, NETS[name]().sizes))})")
            for line in gradient_table(rows):
                printer(line)
    if sweep:
        out["sweep"] = sweep_reduced_is(backend, mb, params, TAU, repeat=repeat)
        printer("\nreduced IS, 784-200-10: seconds per update against J")
        for row in out["sweep"]:
            printer(f"J = {row['samples']:>7}  {row['seconds_per_update']:.4g} s")
    return out


GRADIENT_BATCHES = (20, 100, 300, 500)


def profile_gradient(net, batches=GRADIENT_BATCHES, repeat=5) -> list[dict]:
    """What bounds our gradient (the SGLD/HR inner step) as B grows: our kernel against BLAS GEMMs.

    For each B (MNIST rows) and problem (``full``: the minibatch; ``reduced``: its r-input
    problem, whose first layer is the dense lower-trapezoidal Rᵀ): our ``loss_and_grad``
    (first layer by CSR loops over the nonzeros, later layers hand-written), its first-layer
    forward alone (``sparse_affine``: nnz·H₁ multiply–adds), the same product as a dense float32
    GEMM X·W₁ (B·inputs·H₁ multiply–adds), and NumPy's whole dense gradient
    (:meth:`kltrain.nets.MLP.loss_and_grad`, GEMMs) — the last two on one BLAS thread. Medians of ``repeat``
    calls; GFLOP/s = 2·multiply–adds/s.
    """
    from ..kernels import cpu_backend, cpu_mlp
    from ..kernels.layout import Minibatch
    from ..nets.data import load_mnist

    X_all, y_all, _, _ = load_mnist(quiet=True)
    p_full = net.init(0)
    out = []
    with single_blas_thread():
        for B in batches:
            full = Minibatch.build(net, X_all[:B], y_all[:B])
            red = reduce_minibatch(full)
            for problem, mb, p in (("full", full, p_full), ("reduced", red.minibatch, red.reduce(p_full))):
                out.append(_gradient_row(problem, mb, p, repeat, cpu_backend, cpu_mlp))
    return out


def _gradient_row(problem, mb, p, repeat, cpu_backend, cpu_mlp) -> dict:
    net, X, y = mb.net, mb.X, mb.y
    w0, b0, n_in, H = net.layer_offsets[0]
    W1, first = p[w0:b0].reshape(n_in, H), np.empty((mb.batch_size, H), np.float32)

    def median(fn):
        return median_time(fn, repeat)
    row = {"problem": problem, "batch": mb.batch_size, "sizes": list(net.sizes), "nnz": int(mb.idx.size),
           "ours_gradient": median(lambda: cpu_backend.loss_and_grad(mb, p)),
           "ours_first_layer": median(lambda: cpu_mlp.sparse_affine(p, w0, b0, H, mb.indptr, mb.idx, mb.val, first)),
           "gemm_first_layer": median(lambda: X @ W1),
           "numpy_gradient": median(lambda: net.loss_and_grad(p, X, y))}
    row["ours_first_layer_gflops"] = 2e-9 * mb.idx.size * H / row["ours_first_layer"]
    row["gemm_first_layer_gflops"] = 2e-9 * mb.batch_size * n_in * H / row["gemm_first_layer"]
    return row


def gradient_table(rows) -> list[str]:
    """The printed lines of :func:`profile_gradient`'s rows: our gradient beside BLAS GEMMs, per problem and B."""
    lines = ["", "gradient (SGLD/HR inner step) against B: ours vs BLAS GEMM (one thread), median seconds",
             f"{'problem':<8} {'B':>4} {'ours grad':>10} {'NumPy grad':>10} {'ours W1 fwd':>11} {'GFLOP/s':>8} {'GEMM X.W1':>10} "
             f"{'GFLOP/s':>8}"]
    for r in rows:
        lines.append(f"{r['problem']:<8} {r['batch']:>4} {r['ours_gradient']:>10.4g} {r['numpy_gradient']:>10.4g} "
                     f"{r['ours_first_layer']:>11.4g} {r['ours_first_layer_gflops']:>8.3g} "
                     f"{r['gemm_first_layer']:>10.4g} {r['gemm_first_layer_gflops']:>8.3g}")
    return lines
