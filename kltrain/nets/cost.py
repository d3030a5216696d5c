"""Which path an MLP update should take: per-sample or reduced (``projected=None``), by a cost model.

The reduced updates of :mod:`kltrain.nets.projected` run the algorithm on an MLP with
r = rank(A) ≤ min(B, active pixels) inputs (the model takes that bound), plus a fixed cost per update (the SVD/QR of the B×784 minibatch,
growing as 784·B², and the basis products and lift, 784·r·H₁). The per-sample updates run it
on the full net. Both run the *same* kernels, so one model prices both:

    seconds ≈ E·(λ + α·normals + β·MACs + β'·dense MACs)  [+ γ + γ_qr·(in·B² + B³) + δ·in·H₁·(r + 1)   reduced]

per algorithm (IS, SGLD, HR; γ_qr and δ are timed directly, the rest fitted), with E the number of loss evaluations per update (IS: J;
SGLD: J − 1 gradients; HR: J·M gradients), ``normals`` the noise drawn per evaluation (the
problem's parameter count; HR on the full problem: only the W₁ rows of active pixels and
the later layers) and ``MACs`` the multiply–adds of one forward pass (first layer: the
minibatch's nonzeros × H₁ on the full problem, the triangle Σ_b min(b + 1, r) × H₁ on the
reduced one, priced apart (β': the kernels read it as dense rows, the full problem's by CSR);
later layers B·fan_in·fan_out). The constants are fitted (non-negative least
squares on relative error) to the batch sweep ``kltrain bench --sweep-batch`` committed in
``validation/data/bench-like-for-like.json`` (its ``batch_sweep``); ``validation/data/cost-model.json`` holds them
with the fit's provenance, and ``tests/test_cost.py`` checks that the two agree and that the
model picks the measured faster path at every measured point where the two differ by more
than 25%.

The CUDA constants come from the H200 run of ``validation/data/gpu-h200.json`` (run 4;
784–200–10, B = 20 only): the GPU is launch-bound (λ) and its reduced path pays a host
round trip (γ), so per-sample IS wins there at J = 10³ and loses from J ≈ 1.3·10³ on.
That run predates the device-resident IS update and the persistent chains (issue 21), so
the constants price only what still runs as it did then: the host-side reduction, which
the CUDA backend uses where those kernels do not cover the net and batch. Where they do,
``MinibatchLoss.projected_pays`` takes the reduced path without the model: per evaluation it
draws r·H₁ + tail normals instead of d and does fewer multiply–adds, and per update it adds
a few launches and no host round trip, so it should win at every J — an expectation from
the work counts, not yet measured; the next GPU session's run refits these constants
(``kltrain.bench.costfit.cuda_constants``).
Backends without constants of their own (numpy, Dask) use the CPU's.
"""

from __future__ import annotations

ALGORITHMS = ("IS", "SGLD", "HR")
TERMS = ("per_eval", "per_normal", "per_mac", "per_dense_mac", "fixed", "per_qr", "per_lift")

# Fitted by kltrain.bench.costfit.fit_cost_model to validation/data/bench-like-for-like.json's batch_sweep (cpu) and
# derived from validation/data/gpu-h200.json run 4 (cuda); validation/data/cost-model.json holds the same.
CONSTANTS: dict[str, dict[str, dict[str, float]]] = {
    "cpu": {
        "IS": {"per_eval": 0.0, "per_normal": 9.83e-10, "per_mac": 3.6e-11, "per_dense_mac": 2.26e-11,
               "fixed": 0.000111, "per_qr": 8.96e-10, "per_lift": 8.39e-11},
        "SGLD": {"per_eval": 0.0, "per_normal": 1.73e-09, "per_mac": 1.36e-10, "per_dense_mac": 1.42e-10,
                 "fixed": 0.0224, "per_qr": 8.96e-10, "per_lift": 8.39e-11},
        "HR": {"per_eval": 0.0, "per_normal": 4.54e-09, "per_mac": 1.18e-10, "per_dense_mac": 1.18e-10,
               "fixed": 0.00454, "per_qr": 8.96e-10, "per_lift": 8.39e-11},
    },
    "cuda": {
        "IS": {"per_eval": 6.55e-08, "per_normal": 2.84e-11, "per_mac": 0.0, "per_dense_mac": 0.0,
               "fixed": 0.00563, "per_qr": 0.0, "per_lift": 0.0},
        "SGLD": {"per_eval": 8.14e-05, "per_normal": 5.43e-09, "per_mac": 0.0, "per_dense_mac": 0.0,
                 "fixed": 0.0022, "per_qr": 0.0, "per_lift": 0.0},
        "HR": {"per_eval": 2.42e-06, "per_normal": 5.93e-10, "per_mac": 0.0, "per_dense_mac": 0.0,
               "fixed": 0.0022, "per_qr": 0.0, "per_lift": 0.0},
    },
}


def _layers(sizes):
    """(inputs, H₁, tail parameters after W₁, MACs of the layers after the first per row)."""
    sizes = tuple(int(s) for s in sizes)
    n_in, h1 = sizes[0], sizes[1]
    tail = sum(a * b + b for a, b in zip(sizes[1:-1], sizes[2:])) + h1
    later = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return n_in, h1, tail, later


def features(algorithm: str, problem: str, sizes, batch: int, nnz: int, active: int, samples: int,
             m: int = 1) -> dict[str, float]:
    """The model's counts for one update: {term: count}, so that seconds = Σ constant[term]·count.

    ``nnz``: nonzeros of the B×inputs minibatch; ``active``: inputs nonzero in some row;
    ``samples``: J (IS, SGLD) or Robbins–Monro iterations J (HR, with ``m`` = M draws each).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if problem not in ("full", "reduced"):
        raise ValueError(f"problem must be 'full' or 'reduced', got {problem!r}")
    n_in, h1, tail, later = _layers(sizes)
    B = int(batch)
    r = max(1, min(B, n_in, int(active)))    # the rank of A is at most its number of nonzero columns
    evals = {"IS": samples, "SGLD": max(samples - 1, 0), "HR": samples * m}[algorithm]
    if problem == "full":
        normals = (active if algorithm == "HR" else n_in) * h1 + tail
        first = nnz * h1
    else:
        normals = r * h1 + tail
        first = (r * (r + 1) // 2 + (B - r) * r) * h1      # Rᵀ is lower-trapezoidal: row b has min(b + 1, r) entries
    sparse_first, dense_first = (first, 0) if problem == "full" else (0, first)
    out = {"per_eval": float(evals), "per_normal": float(evals) * normals,
           "per_mac": float(evals) * (sparse_first + B * later), "per_dense_mac": float(evals) * dense_first,
           "fixed": 0.0, "per_qr": 0.0, "per_lift": 0.0}
    if problem == "reduced":
        out.update(fixed=1.0, per_qr=float(n_in) * B * B + float(B) ** 3, per_lift=float(n_in) * h1 * (r + 1))
    return out


def update_seconds(algorithm: str, problem: str, sizes, batch: int, nnz: int, active: int, samples: int,
                   m: int = 1, backend: str = "cpu") -> float:
    """The model's seconds for one update of ``algorithm`` on ``problem`` (see the module docstring)."""
    consts = CONSTANTS.get(backend, CONSTANTS["cpu"])[algorithm]
    return sum(consts[k] * v for k, v in features(algorithm, problem, sizes, batch, nnz, active, samples, m).items())


def reduced_pays(algorithm: str, sizes, batch: int, nnz: int, active: int, samples: int, m: int = 1,
                 backend: str = "cpu") -> bool:
    """Whether the model prices the reduced update below the per-sample one (ties: per-sample, the reference)."""
    args = (sizes, batch, nnz, active, samples, m, backend)
    return update_seconds(algorithm, "reduced", *args) < update_seconds(algorithm, "full", *args)


__all__ = ["ALGORITHMS", "CONSTANTS", "TERMS", "features", "reduced_pays", "update_seconds"]
