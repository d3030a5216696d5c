"""Fit :mod:`kltrain.nets.cost`'s CPU constants to a batch sweep (``kltrain bench --sweep-batch --json``).

The reduced path's fixed parts are timed directly (:func:`measure_fixed_costs`: the SVD/QR
and the lift against B and H₁, stored with the constants) and fitted alone; then, for each
algorithm, non-negative least squares on *relative* error: every measured update (our
seconds, full and reduced problems, every net and batch size) gives one row, so a 10 ms
update counts as much as a 10 s one. The result is written
as ``validation/data/cost-model.json`` and pasted into ``kltrain.nets.cost.CONSTANTS``
(tests/test_cost.py checks that the two agree and that refitting the committed sweep gives
them back)::

    python -m kltrain.bench.costfit validation/data/bench-like-for-like.json validation/data/cost-model.json \
        validation/data/gpu-h200.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from .._io import atomic_write_json
from ..nets.cost import ALGORITHMS, TERMS, features, update_seconds

SIGNIFICANT = 3   # digits kept of each constant


def _rows(records: list[dict]) -> list[tuple[str, str, dict, float]]:
    """(algorithm, problem, features, our seconds) of every record of a reduced or per-sample update."""
    out = []
    for r in records:
        algorithm = r["algorithm"].split()[0]
        if algorithm not in ALGORITHMS:
            continue
        samples, m = r["samples"], 1
        if algorithm == "HR":   # the bench runs M = J = m: its samples are m²
            m = math.isqrt(samples)
            samples = m
        f = features(algorithm, r["problem"], r["sizes"], r["batch"], r["nnz"], r["active"], samples, m)
        out.append((algorithm, r["problem"], f, r["seconds_per_update"]))
    return out


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


FITTED = ("per_eval", "per_normal", "per_mac", "per_dense_mac", "fixed")   # per_qr, per_lift: measured directly (fixed_costs)


def measure_fixed_costs(batches=(20, 100, 300, 500), nets=((784, 200, 10), (784, 1000, 10)), repeat=7) -> list[dict]:
    """Medians of the reduced update's fixed parts on MNIST rows: the SVD/QR (``reduce_minibatch``) and the
    basis products with the lift (``basis_coordinates`` + ``lift_with_noise``), one BLAS thread."""
    from .._blas import single_blas_thread
    from ..kernels.layout import Minibatch
    from ..nets.data import load_mnist
    from ..nets.mlp import MLP
    from ..nets.projected import basis_coordinates, lift_with_noise, reduce_minibatch
    from .timing import median_time

    def median(fn):
        return median_time(fn, repeat)

    X, y, _, _ = load_mnist(quiet=True)
    out = []
    with single_blas_thread():
        for sizes in nets:
            net = MLP(sizes)
            p = net.init(0)
            for B in batches:
                mb = Minibatch.build(net, X[:B], y[:B])
                red = reduce_minibatch(mb)
                W1 = red.first_layer(p)
                z = np.ones_like(W1)

                def lift():
                    coords, basis_z = basis_coordinates(red.basis, W1, z)
                    lift_with_noise(red, red.reduce(p, coords), W1, coords, z, 0.1, basis_z)
                out.append({"sizes": list(sizes), "batch": B, "rank": red.rank,
                            "qr_seconds": median(lambda: reduce_minibatch(mb)), "lift_seconds": median(lift)})
    return out


def fit_fixed_costs(rows: list[dict]) -> dict[str, float]:
    """per_qr and per_lift by least squares through the origin on in·B² + B³ and in·H₁·(r + 1)."""
    qr = np.array([r["sizes"][0] * r["batch"] ** 2 + r["batch"] ** 3 for r in rows], float)
    lift = np.array([r["sizes"][0] * r["sizes"][1] * (r["rank"] + 1) for r in rows], float)
    t_qr, t_lift = np.array([r["qr_seconds"] for r in rows]), np.array([r["lift_seconds"] for r in rows])
    # relative error: divide each row by its time
    return {"per_qr": _round(float(np.sum(qr / t_qr) / np.sum((qr / t_qr) ** 2))),
            "per_lift": _round(float(np.sum(lift / t_lift) / np.sum((lift / t_lift) ** 2)))}


def fit_cost_model(records: list[dict], fixed_costs: list[dict]) -> dict[str, dict[str, float]]:
    """{algorithm: {term: seconds per count}} fitted to the records (see the module docstring).

    per_qr and per_lift come from the direct timings ``fixed_costs`` (:func:`measure_fixed_costs`);
    the other terms by non-negative least squares on relative error, the reduced rows' known
    QR and lift seconds subtracted first.
    """
    known = fit_fixed_costs(fixed_costs)
    rows = _rows(records)
    out = {}
    for algorithm in ALGORITHMS:
        mine = [(f, t - known["per_qr"] * f["per_qr"] - known["per_lift"] * f["per_lift"], t)
                for a, _, f, t in rows if a == algorithm]
        if not mine:
            raise ValueError(f"the sweep has no {algorithm} records")
        A = np.array([[f[k] / t for k in FITTED] for f, _, t in mine])
        b = np.array([rest / t for _, rest, t in mine])
        scale = np.maximum(A.max(axis=0), 1e-300)   # columns of unit size: nnls is scale-sensitive
        coef, _ = nnls(A / scale, b)
        out[algorithm] = {**{k: _round(c / s) for k, c, s in zip(FITTED, coef, scale)}, **known}
    return out


def agreement(records: list[dict], constants: dict, margin: float = 1.25) -> list[dict]:
    """Per (algorithm, net, B) with both problems measured: measured and modelled seconds, and whether the
    model picks the measured faster path (``decisive``: the measured times differ by more than ``margin``)."""
    from ..nets import cost
    saved = cost.CONSTANTS.get("fit")
    cost.CONSTANTS["fit"] = constants
    try:
        by_key: dict = {}
        for r in records:
            algorithm = r["algorithm"].split()[0]
            if algorithm in ALGORITHMS:
                by_key.setdefault((algorithm, tuple(r["sizes"]), r["batch"], r["samples"]), {})[r["problem"]] = r
        out = []
        for (algorithm, sizes, batch, samples), pair in sorted(by_key.items()):
            if set(pair) != {"full", "reduced"}:
                continue
            m = 1
            if algorithm == "HR":
                m = math.isqrt(samples)
                samples = m
            r = pair["full"]
            model = {p: update_seconds(algorithm, p, sizes, batch, r["nnz"], r["active"], samples, m, "fit")
                     for p in ("full", "reduced")}
            measured = {p: pair[p]["seconds_per_update"] for p in ("full", "reduced")}
            ratio = measured["full"] / measured["reduced"]
            out.append({"algorithm": algorithm, "sizes": list(sizes), "batch": batch, "measured": measured,
                        "model": model, "measured_reduced_faster": ratio > 1,
                        "model_reduced_faster": model["reduced"] < model["full"],
                        "decisive": ratio > margin or ratio < 1 / margin})
        return out
    finally:
        if saved is None:
            cost.CONSTANTS.pop("fit", None)
        else:
            cost.CONSTANTS["fit"] = saved


HOST_REDUCTION_SECONDS = 2.2e-3   # H200 run 4's host SVD/QR (1.10 ms) + lift (1.13 ms) of one reduced update


def cuda_constants(gpu: dict, run: int = -1, nnz: int = 3927, active: int = 393) -> dict[str, dict[str, float]]:
    """CUDA constants from ``validation/data/gpu-h200.json`` (784–200–10, B = 20; nnz/active of its minibatch).

    Per algorithm, two unknowns per eval — a latency λ (launches) and a cost α per normal —
    from the per-sample and reduced rows; the reduced update's fixed cost γ is the IS rows'
    intercept in J (10⁴ and 10⁵ samples) and, for the chains, the host reduction the profile
    measured. The B-dependence of the host QR is not measured on the GPU host: B = 20 only.
    """
    bench = gpu["runs"][run]["benchmark"]

    def secs(name, samples):
        return next(r["seconds_per_update"] for r in bench if r["algorithm"] == name and r["samples"] == samples)

    sizes, out = (784, 200, 10), {}
    for algorithm, samples, m in (("IS", 1000, 1), ("SGLD", 1000, 1), ("HR", 30, 30)):
        f_full, f_red = (features(algorithm, p, sizes, 20, nnz, active, samples, m) for p in ("full", "reduced"))
        label = {"IS": "IS", "SGLD": "SGLD", "HR": "HR"}[algorithm]
        full, reduced = secs(f"{label} per-sample", samples * m), secs(label, samples * m)
        if algorithm == "IS":   # the reduced rows at J = 10⁴ and 10⁵: slope per sample and intercept
            slope = (secs("IS", 100_000) - secs("IS", 10_000)) / 90_000
            fixed = secs("IS", 10_000) - 10_000 * slope
        else:
            fixed = HOST_REDUCTION_SECONDS
            slope = (reduced - fixed) / f_red["per_eval"]
        per_eval_full = full / f_full["per_eval"]
        n_full, n_red = f_full["per_normal"] / f_full["per_eval"], f_red["per_normal"] / f_red["per_eval"]
        alpha = (per_eval_full - slope) / (n_full - n_red)
        out[algorithm] = {"per_eval": _round(slope - alpha * n_red), "per_normal": _round(alpha), "per_mac": 0.0,
                          "per_dense_mac": 0.0, "fixed": _round(fixed), "per_qr": 0.0, "per_lift": 0.0}
    return out


def main(argv=None) -> int:
    """``python -m kltrain.bench.costfit SWEEP.json [OUT.json]``: fit the constants and print (or write) them."""
    argv = sys.argv[1:] if argv is None else argv
    sweep_path, out_path = Path(argv[0]), Path(argv[1]) if len(argv) > 1 else None
    data = json.loads(sweep_path.read_text())
    records = data["batch_sweep"]["records"] if "batch_sweep" in data else data["records"]
    old = json.loads(out_path.read_text()) if out_path is not None and out_path.exists() else {}
    fixed = old.get("cpu", {}).get("fixed_costs") or measure_fixed_costs()
    constants = fit_cost_model(records, fixed)
    checks = agreement(records, constants)
    for c in checks:
        print(f"{c['algorithm']:<5} {str(c['sizes']):<16} B={c['batch']:>4}  measured full/reduced "
              f"{c['measured']['full'] / c['measured']['reduced']:6.2f}  model "
              f"{c['model']['full'] / c['model']['reduced']:6.2f}  {'ok' if c['measured_reduced_faster'] == c['model_reduced_faster'] else 'DIFFERS'}"
              f"{'' if c['decisive'] else ' (within 25%)'}")
    print(json.dumps(constants, indent=1))
    gpu_path = Path(argv[2]) if len(argv) > 2 else None
    if out_path is not None:
        old["cpu"] = {"constants": constants, "fitted_to": str(sweep_path), "fixed_costs": fixed, "checks": checks,
                      "loadavg": data.get("batch_sweep", data).get("loadavg_before")}
        if gpu_path is not None:
            old["cuda"] = {"constants": cuda_constants(json.loads(gpu_path.read_text())),
                           "derived_from": f"{gpu_path} (last run; 784-200-10, B = 20 only)"}
            print(json.dumps(old["cuda"]["constants"], indent=1))
        atomic_write_json(out_path, old, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
