"""``python -m validation.gpu``: the GPU check — parity, then the benchmark with a peer, in one run.

On a machine with a CUDA GPU (a few minutes):

1. parity: the numba.cuda kernels against the numba CPU kernels on the same
   counter-based noise, at the paper's sizes (784–200–10, batch 20);
2. benchmark: seconds per update of IS (reduced, J = 10³…10⁵; per-sample J = 10³),
   SGLD and HR (reduced and per-sample), SGD — beside a straightforward PyTorch
   (or CuPy) batched-matmul IS update with the noise materialised, timed in the same run;
3. ``--sweep``: the paper's open question (§6.4) — IS accuracy after 500 updates for
   J = 10 … 10⁵ beside SGD (``kltrain reproduce is-sweep --backend cuda``).

Writes ``OUT/gpu.json`` (and the sweep's results); ``--quick`` shrinks everything.
On the device image, carry a NumPy 2.4 wheel (numba-cuda 0.30.4 fails with NumPy 2.5);
see docs/gpu.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def device_info() -> dict:
    """The GPU's name and compute capability."""
    from numba import cuda
    dev = cuda.get_current_device()
    return {"name": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
            "compute_capability": list(dev.compute_capability)}


def self_check_timing() -> dict:
    """``backend="auto"``'s verdict on this machine and how long its self-check took (first call compiles)."""
    import time
    from kltrain.kernels import reset_auto, resolve
    out = {}
    for attempt in ("first", "second"):
        reset_auto()
        t = time.perf_counter()
        out["choice"] = resolve("auto")
        out[f"{attempt}_seconds"] = time.perf_counter() - t
    return out


def kernel_resources() -> dict:
    """Registers, shared and local memory per kernel as the driver loaded them, and the occupancy they allow."""
    from numba import cuda

    from kltrain.kernels.cuda_compile import LAUNCH_TYPES, kernel_module, occupancy, threads_per_block
    cc = tuple(cuda.get_current_device().compute_capability)
    out = {}
    for name in LAUNCH_TYPES:
        kernel = getattr(kernel_module(name), name)
        for compiled in kernel.overloads.values():
            regs, smem = int(compiled.regs_per_thread), int(compiled.shared_mem_per_block)
            threads = threads_per_block(name)
            out[name] = {"registers": regs, "shared_bytes": smem,
                         "local_bytes": int(compiled.local_mem_per_thread), "threads": threads,
                         "theoretical_occupancy": occupancy(regs, smem, threads, cc) if cc in ((8, 0), (9, 0))
                         else None}
    return out


def profile_projected_is(quick=False, n_samples=1000, repeat=20) -> dict:
    """Seconds spent in each part of one reduced IS update on the GPU (best of ``repeat``)."""
    import time

    from kltrain.estimators.importance import posterior_mean_from_partial
    from kltrain.kernels import get_backend
    from kltrain.nets.projected import ORTHOGONAL_SAMPLE, _gaussian_rows, reduce_minibatch
    gpu = get_backend("cuda")
    net, mb, p = _problem(quick)
    best = {}

    def timed(part, fn):
        t = time.perf_counter()
        value = fn()
        best[part] = min(best.get(part, np.inf), time.perf_counter() - t)
        return value

    for _ in range(repeat):
        red = timed("svd+qr+reduced minibatch", lambda: reduce_minibatch(mb))
        W1, _ = red._split(p)
        reduced = timed("reduce params", lambda: red.reduce(p))
        part, log_w = timed("IS kernels (weights, accumulate, transfers)",
                            lambda: gpu.importance_partial(red.minibatch, reduced, 0.01, 1, 0, n_samples, False))
        mean = posterior_mean_from_partial(part, reduced.astype(np.float64), 0.01)
        z = timed("orthogonal normals (GPU kernel + copy)",
                  lambda: _gaussian_rows(gpu, 1, ORTHOGONAL_SAMPLE, W1.shape))
        timed("lift (host)", lambda: red.lift_projecting(mean, W1 + 0.1 * z))
    return best


def _problem(quick):
    from kltrain.nets.data import load_mnist
    from kltrain.kernels.layout import Minibatch
    from kltrain.nets import MLP
    X, y, _, _ = load_mnist(quiet=True)
    net = MLP.small() if quick else MLP.hidden()
    return net, Minibatch.build(net, X[:20], y[:20]), net.init(0)


PARITY_TOLERANCE = 1e-5  # relative, float32 kernels on the same noise (issue 13's target)


def parity(quick=False) -> dict:
    """Largest |GPU − CPU| of each quantity on the same noise."""
    from kltrain.kernels import get_backend
    from kltrain.nets.projected import projected_importance_update
    gpu, cpu = get_backend("cuda"), get_backend("cpu")
    net, mb, p = _problem(quick)
    J, tau = (32 if quick else 256), 0.01
    a, la = gpu.importance_partial(mb, p, tau, 1, 0, J, False)
    b, lb = cpu.importance_partial(mb, p, tau, 1, 0, J, False)
    eps = 1 / (1000 + np.arange(1, 21))
    steps = 0.1 * np.arange(1, 6) ** -0.7
    pairs = {
        "log_weights": (la, lb),
        "is_mean": (a.sum_w_eps / a.sum_w, b.sum_w_eps / b.sum_w),
        "gradient": (gpu.loss_and_grad(mb, p)[1], cpu.loss_and_grad(mb, p)[1]),
        "sgld_mean": (gpu.sgld_chain(mb, p, p, tau, eps, 2)[0], cpu.sgld_chain(mb, p, p, tau, eps, 2)[0]),
        "robbins_monro": (gpu.robbins_monro(mb, p, tau, steps, 5, 3)[0], cpu.robbins_monro(mb, p, tau, steps, 5, 3)[0]),
        "projected_is": (projected_importance_update(gpu, mb, p, tau, 4, J)[0],
                         projected_importance_update(cpu, mb, p, tau, 4, J)[0]),
    }
    out = {}
    for name, (g, c) in pairs.items():   # max |GPU − CPU|, and that over max |CPU| (relative)
        err = float(np.abs(np.asarray(g, np.float64) - np.asarray(c, np.float64)).max())
        out[name] = {"abs": err, "rel": err / max(float(np.abs(np.asarray(c, np.float64)).max()), 1e-30)}
    out["passed"] = all(v["rel"] <= PARITY_TOLERANCE for v in out.values())
    return out


def torch_is_update(net, params, X, y, tau, n_samples, device="cuda", chunk=2000):
    """The peer: IS update with materialised noise and batched matmuls (torch.bmm), log-space merge."""
    import torch
    p = torch.as_tensor(params, device=device)
    Xt = torch.as_tensor(X, device=device)
    yt = torch.as_tensor(y, device=device)
    s, m, acc, total = float(np.sqrt(tau)), -float("inf"), torch.zeros_like(p), 0.0
    for lo in range(0, n_samples, chunk):
        c = min(chunk, n_samples - lo)
        eps = torch.randn(c, p.numel(), device=device)
        P = p + s * eps
        h = Xt.expand(c, *Xt.shape)
        for k, (w, b, fi, fo) in enumerate(net.layer_offsets):
            h = torch.baddbmm(P[:, None, b:b + fo], h, P[:, w:b].reshape(c, fi, fo))
            if k < len(net.layer_offsets) - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h.reshape(-1, h.shape[-1]), yt.repeat(c), reduction="none")
        lw = -loss.reshape(c, -1).mean(1)
        m_new = max(m, float(lw.max()))
        scale = np.exp(m - m_new) if np.isfinite(m) else 0.0
        w = torch.exp(lw - m_new)
        acc = acc * scale + w @ eps
        total = total * scale + float(w.sum())
        m = m_new
    out = p + s * acc / total
    if device == "cuda":
        torch.cuda.synchronize()
    return out


def peer_available() -> str | None:
    """``"torch"`` when PyTorch with CUDA is installed (the peer of the benchmark), else None."""
    try:
        import torch
        return "torch" if torch.cuda.is_available() else None
    except ImportError:
        return None


def benchmark(quick=False, peer=True, per_sample=True) -> list[dict]:
    """Seconds per update of the GPU kernels (IS, SGLD, HR), best of a few, beside the PyTorch peer in the same run."""
    from kltrain.bench.timing import best_time
    from kltrain.kernels import get_backend
    from kltrain.nets.projected import projected_importance_update, projected_robbins_monro, projected_sgld_chain
    gpu = get_backend("cuda")
    net, mb, p = _problem(quick)
    tau = 0.01
    eps = 1 / (1000 + np.arange(1, (100 if quick else 1000) + 1))
    steps = 0.1 * np.arange(1, 31) ** -0.7
    Js = (1000,) if quick else (1000, 10_000, 100_000)
    rows = []

    def add(algorithm, samples, fn, repeat=3):  # best of ``repeat`` after a warm-up
        rows.append({"algorithm": algorithm, "net": "small" if quick else "hidden", "backend": "cuda",
                     "samples": samples, "seconds_per_update": best_time(fn, repeat)})
        print(f"{algorithm:<22} {samples:>7} {rows[-1]['seconds_per_update']:.5f} s", flush=True)

    add("SGD", 1, lambda: gpu.loss_and_grad(mb, p))
    for J in Js:
        add("IS", J, lambda J=J: projected_importance_update(gpu, mb, p, tau, 1, J))
    if per_sample:
        add("IS per-sample", 1000, lambda: gpu.importance_partial(mb, p, tau, 1, 0, 1000, False))
    add("SGLD", eps.size, lambda: projected_sgld_chain(gpu, mb, p, p, tau, eps, 1))
    if per_sample:
        add("SGLD per-sample", eps.size, lambda: gpu.sgld_chain(mb, p, p, tau, eps, 1), repeat=1)
    add("HR", 900, lambda: projected_robbins_monro(gpu, mb, p, tau, steps, 30, 1))
    if per_sample:
        add("HR per-sample", 900, lambda: gpu.robbins_monro(mb, p, tau, steps, 30, 1), repeat=1)
    if peer and peer_available():
        for J in Js if not quick else (1000,):
            t = best_time(lambda J=J: torch_is_update(net, p, mb.X, mb.y, tau, J), 2)
            rows.append({"algorithm": "IS (PyTorch bmm peer)", "net": rows[0]["net"], "backend": "torch",
                         "samples": J, "seconds_per_update": t})
            print(f"{'IS (PyTorch bmm peer)':<22} {J:>7} {t:.5f} s", flush=True)
    return rows


def sweep(out: Path, seeds: int, quick=False, first_seed=0) -> dict:
    """§6.4 on the GPU: IS accuracy for J = 10 … 10⁵ beside SGD, seed-major so that a run cut short
    still holds every J for its first seeds. A seed's runs go side by side (kltrain.studies.batch);
    ``out/is-sweep-summary.json`` is rewritten after every seed, each run's file as it trains."""
    from dataclasses import replace

    from kltrain.studies.batch import RunBatch, run_batch
    from kltrain.studies.experiments import EXPERIMENTS, _slug, quick_config
    from kltrain.studies.training import load_data
    configs = EXPERIMENTS["is-sweep"].configs
    runs_dir = out / "is-sweep-runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    data = None
    for seed in range(first_seed, seeds):
        cfgs = [replace(quick_config(c) if quick else c, backend="cuda", seed=seed) for c in configs.values()]
        paths = [runs_dir / f"{_slug(label)}-seed{seed}.json" for label in configs]
        data = load_data(cfgs[0]) if data is None else data
        results = run_batch(RunBatch(tuple(cfgs)), data=data,
                            checkpoints=[lambda r, path=path: r.to_json(path) for path in paths])
        for label, res in zip(configs, results):
            entry = summary.setdefault(label, {"updates": list(res.eval_updates), "accuracy": [], "seconds": []})
            entry["accuracy"].append(list(map(float, res.test_accuracy)))
            entry["seconds"].append(float(np.median(res.seconds)))
            print(f"sweep seed {seed} {label:<12} final accuracy {res.test_accuracy[-1]:.3f} "
                  f"({np.median(res.seconds):.4f} s/update, {len(cfgs)} runs side by side)", flush=True)
        tmp = out / "is-sweep-summary.json.tmp"
        tmp.write_text(json.dumps({"device": device_info(), "seeds": [first_seed, seed + 1], "runs": summary}, indent=1))
        tmp.replace(out / "is-sweep-summary.json")
    return summary


# -- issue 21's rows: persistent chains and many runs per launch ------------------------------------------
def _chain_problem(net="hidden", batch=20, synthetic=False, seed=0):
    """(reduced Minibatch, x̃) of a batch of MNIST (or MNIST-shaped random) images, as the reduced updates see it."""
    from kltrain.kernels.layout import Minibatch
    from kltrain.nets import MLP
    from kltrain.nets.projected import reduce_minibatch
    mlp = MLP.small() if net == "small" else MLP.hidden()
    X, y = _images(batch, synthetic, seed)
    red = reduce_minibatch(Minibatch.build(mlp, X, y))
    return red.minibatch, red.reduce(mlp.init(seed))


def _images(n, synthetic, seed=0):
    if synthetic:
        rng = np.random.default_rng(seed)
        return (rng.random((n, 784)) * (rng.random((n, 784)) < 0.15)).astype(np.float32), rng.integers(0, 10, n)
    from kltrain.nets.data import load_mnist
    X, y, _, _ = load_mnist(quiet=True)
    return X[seed * n:(seed + 1) * n], y[seed * n:(seed + 1) * n]


def time_sgld_chain(n_steps=1000, net="hidden", synthetic=False, repeat=3, tau=0.01) -> dict:
    """The reduced SGLD row: one chain of ``n_steps`` ε_j = 1/(1000 + j) on the persistent kernel (best of
    ``repeat`` after a warm-up), with its parity against the CPU kernel on the same noise."""
    from kltrain.kernels import cpu_backend, cuda_chain_runs
    mb, x = _chain_problem(net, synthetic=synthetic)
    eps = 1 / (1000 + np.arange(1, n_steps + 1))
    gpu, seconds = _first_and_best(lambda: cuda_chain_runs.sgld_chain(mb, x, x, tau, eps, 1), repeat)
    cpu = cpu_backend.sgld_chain(mb, x, x, tau, eps, 1)
    return {"row": "SGLD (reduced, persistent)", "net": net, "steps": n_steps, "seconds": seconds,
            "microseconds_per_step": 1e6 * seconds / max(n_steps - 1, 1), "parity": _relative(gpu[0], cpu[0])}


def time_robbins_monro(iterations=30, draws=30, net="hidden", synthetic=False, repeat=3, tau=0.01,
                       groups=(None, 1)) -> list[dict]:
    """The reduced HR row (M = J = 30): the persistent iteration for each ``groups`` (None: the default
    choice; 1: one block per run, every iteration in one launch), with parity against the CPU kernel."""
    from kltrain.kernels import cpu_backend, cuda_chain_runs
    mb, x = _chain_problem(net, synthetic=synthetic)
    steps = 0.1 * np.arange(1, iterations + 1) ** -0.7
    cpu = cpu_backend.robbins_monro(mb, x, tau, steps, draws, 1)[0]
    rows = []
    for g in groups:
        G = g or cuda_chain_runs.default_groups(draws, 1)
        (gpu, _), seconds = _first_and_best(lambda: cuda_chain_runs.robbins_monro(mb, x, tau, steps, draws, 1,
                                                                                 groups=G), repeat)
        rows.append({"row": "HR (reduced, persistent)", "net": net, "M": draws, "J": iterations, "groups": G,
                     "seconds": seconds, "parity": _relative(gpu, cpu)})
    return rows


def time_batched_table(seeds=5, n_updates=20, net="hidden", synthetic=False, toy=False,
                       algorithms=("sgd", "is", "sgld", "hr")) -> dict:
    """Batched Table 6.1: 5 seeds × 4 algorithms (SGD, IS, SGLD, HR) side by side (kltrain.studies.batch)
    beside the same runs one at a time, both on the GPU: wall seconds per update of the whole table, and
    whether every run's numbers agree to float32 rounding (the largest relative difference of the final
    parameters, and the accuracies; the Robbins–Monro block split depends on the runs in a launch)."""
    import time
    from dataclasses import replace

    from kltrain.studies.batch import RunBatch, run_batch
    from kltrain.studies.training import TrainConfig, train
    configs = tuple(TrainConfig(a, net=net, n_updates=n_updates, eval_every=n_updates, n_test=100, seed=s,
                                backend="cuda") for a in algorithms for s in range(seeds))
    if toy:   # simulator size: 3 samples, M = J = 2
        configs = tuple(replace(c, samples=3, hr_iterations=2, hr_samples=2) for c in configs)
    X, y = _images(400, synthetic)
    data = (X[:300], y[:300], X[300:], y[300:])
    start = time.perf_counter()
    together = run_batch(RunBatch(configs), data=data)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    alone = [train(c, data=data, progress=False) for c in configs]
    serial = time.perf_counter() - start
    worst = max(_relative(a.final_params, b.final_params) for a, b in zip(together, alone))
    same = worst <= 1e-4 and all(np.allclose(a.test_accuracy, b.test_accuracy, atol=0.011)   # one test image in 100
                                 for a, b in zip(together, alone))
    return {"row": "Table 6.1, batched", "runs": len(configs), "net": net, "updates": n_updates,
            "seconds_per_update_batched": batched / n_updates, "seconds_per_update_one_at_a_time": serial / n_updates,
            "speedup": serial / batched, "same_results": bool(same), "max_relative_difference": worst}


def _first_and_best(fn, repeat):
    """(the first call's value: warm-up and parity, best wall time of ``repeat`` more calls)."""
    import time
    value, times = fn(), []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return value, min(times)


def _relative(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))


def chain_rows(quick=False) -> dict:
    """Issue 21's GPU rows in one call (``quick``: the small net and shorter runs)."""
    net = "small" if quick else "hidden"
    out = {"sgld": time_sgld_chain(100 if quick else 1000, net),
           "hr": time_robbins_monro(net=net),
           "table_6_1_batched": time_batched_table(2 if quick else 5, 5 if quick else 20, net)}
    for value in out.values():
        print(json.dumps(value), flush=True)
    return out


def tune_threads(counts, quick=False) -> list[dict]:
    """Parity and the reduced-update benchmark for each threads-per-network-block count, in one process
    (the kernels read blockDim at run time, so one compilation serves every count)."""
    from kltrain.kernels import cuda_backend
    rows = []
    for threads in counts:
        cuda_backend.THREADS = threads
        print(f"-- {threads} threads per network block", flush=True)
        ok = parity(quick)["passed"]
        rows += [dict(r, threads=threads, parity_passed=ok) for r in benchmark(quick, peer=False, per_sample=False)]
    return rows


def main(argv=None) -> int:
    """``python -m validation.gpu``: the self-check, parity, benchmark and (``--sweep``) the §6.4 IS sweep on a GPU."""
    parser = argparse.ArgumentParser(prog="python -m validation.gpu", description=__doc__)
    parser.add_argument("--out", default="gpu-report")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also run the IS sample-size sweep (J up to 1e5)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sweep-only", action="store_true", help="skip parity and benchmark (resume a sweep)")
    parser.add_argument("--first-seed", type=int, default=0, help="the sweep's first seed (resume a cut-short sweep)")
    parser.add_argument("--tune-threads", type=int, nargs="+", metavar="N",
                        help="only compare threads per network block (e.g. 128 256 512) -> OUT/threads.json")
    args = parser.parse_args(argv)
    from kltrain.kernels import cuda_available
    if not cuda_available():
        print("no CUDA GPU found (numba.cuda.is_available() is False); nothing to check")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": device_info()}
    print("device:", result["device"], flush=True)
    if args.sweep_only:
        sweep(out, 1 if args.quick else args.seeds, args.quick, args.first_seed)
        return 0
    if args.tune_threads:
        rows = tune_threads(args.tune_threads, args.quick)
        (out / "threads.json").write_text(json.dumps({"device": result["device"], "rows": rows}, indent=1))
        return 0
    result["auto"] = self_check_timing()
    print("backend='auto' self-check:", result["auto"], flush=True)
    result["parity"] = parity(args.quick)
    print("parity (max |GPU - CPU|):", result["parity"], flush=True)
    result["benchmark"] = benchmark(args.quick)
    (out / "gpu.json").write_text(json.dumps(result, indent=1))
    result["profile_reduced_is"] = profile_projected_is(args.quick)
    print("reduced IS update, best seconds per part:", result["profile_reduced_is"], flush=True)
    result["kernels"] = kernel_resources()
    print("kernel resources:", json.dumps(result["kernels"]), flush=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=1))
    result["chains"] = chain_rows(args.quick)      # issue 21: persistent chains, many runs per launch
    (out / "gpu.json").write_text(json.dumps(result, indent=1))
    if args.sweep:
        sweep(out, 1 if args.quick else args.seeds, args.quick)
    print(f"wrote {out}/gpu.json")
    return 0 if result["parity"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
