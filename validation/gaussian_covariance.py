"""Does learning the covariance replace τ scoping? Issue 16's MNIST study and its report section.

    kltrain reproduce gaussian-covariance --seeds 5 --out kltrain-results   # the runs (resumable)
    python -m validation.gaussian_covariance collect kltrain-results         # → validation/data/...json
    python -m validation.gaussian_covariance show                            # the section alone

The runs are the experiment ``gaussian-covariance`` of :mod:`kltrain.studies.experiments`: IS with
J = 10³ for 500 updates on both nets, with τ fixed at 0.01 or 1.5, scoped 1.5 → 0.01 by
Fig 6.5's schedule τ(k) = 1.5/1.01^k, or with a learned diagonal (or isotropic) covariance
from C₀ = τI (:class:`kltrain.studies.config.CovarianceTrainConfig`). ``collect`` keeps, per run,
the accuracy curve and the run's effective τ — the mean of the learned variances — so the
stored file is small; :func:`gaussian_covariance_section` renders it in the report's
``--full`` mode, with a reading computed from the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data") / "gaussian-covariance.json"
TITLE = "Learned covariance vs τ scoping (issue 16; the paper's future work)"
NETS = ("784–10", "784–200–10")
SCOPED, FIXED = "IS τ: 1.5→0.01", "IS τ=0.01"
LEARNED = ("IS diag C, C₀=0.01I", "IS diag C, C₀=1.5I", "IS diag C, C₀=1.5I, rate 0.1", "IS iso σ²I, C₀=1.5I")
CHAIN_SCOPED, CHAIN_FROZEN = "SGLD τ: 1.5→0.01 (Fig 6.5)", "C-SGLD τ=0.01, C frozen"
CHAIN_LEARNED = ("C-SGLD diag C, C₀=0.01I", "C-SGLD diag C, C₀=1.5I")


def collect(folder, path=DATA, measure_ess=True) -> dict:
    """Read the experiment's run files under ``folder`` (finished runs only) into the compact store;
    ``measure_ess`` adds :func:`first_update_ess` (a few seconds)."""
    import platform

    from kltrain._io import atomic_write_json
    from kltrain.studies.experiments import EXPERIMENTS, _slug, experiment_folder

    from .flatness import _cpu_name
    exp = EXPERIMENTS["gaussian-covariance"]
    runs_dir = experiment_folder(folder, exp.name, False) / "runs"
    store = {"meta": {"machine": f"{platform.machine()}, {_cpu_name()}", "data": "embedded 4,000/1,000 MNIST subset",
                      "n_updates": 500, "samples": 1000}, "runs": {}}
    for label in exp.configs:
        for f in sorted(runs_dir.glob(f"{_slug(label)}-seed*.json")):
            d = json.loads(f.read_text())
            if d.get("status") != "done":
                continue
            taus = d["taus"]
            store["runs"].setdefault(label, []).append({
                "seed": d["config"]["seed"], "updates": d["eval_updates"], "accuracy": d["test_accuracy"],
                "tau": [taus[min(u, len(taus)) - 1] if u else taus[0] for u in d["eval_updates"]],
                "seconds_median": float(np.median(d["seconds"]))})
    if measure_ess:
        store["meta"]["first_update_ess"] = first_update_ess()
        store["meta"]["flat_loss_null"] = flat_loss_null()
    atomic_write_json(path, store, indent=1)                      # never a half-written file
    return store


def flat_loss_null(n_updates=500, n_coords=500, seed=0) -> dict:
    """Effective τ / C₀ after ``n_updates`` learned-C updates on a *flat* loss (q_k = N(m_k, C_k) exactly,
    so the exact scheme keeps C): what the estimators' own bias does. IS at full ESS: closed form
    (1 − 1/J)^k. C-SGLD: the reference chain's recursion with ∇f = 0, simulated on ``n_coords``
    independent coordinates, from C₀ = 0.01 and 1.5."""
    from kltrain.gaussian.sampling import GaussianSGLD
    chain = GaussianSGLD()
    rng = np.random.default_rng(seed)
    out = {"IS (1 - 1/J)^k, J = 1000": (1 - 1 / 1000) ** n_updates}
    for c0 in (0.01, 1.5):
        m, c = np.zeros(n_coords), np.full(n_coords, c0)
        for _ in range(n_updates):
            x, s1, s2 = m.copy(), 0.0, 0.0
            for _ in range(chain.n_steps):      # the reference's step with ∇f = 0
                x = x - chain.step * (x - m) + np.sqrt(2 * chain.step * c) * rng.standard_normal(n_coords)
                s1, s2 = s1 + x, s2 + x * x
            m = s1 / chain.n_steps
            c = np.maximum(s2 / chain.n_steps - m * m, 0.0)
        out[f"C-SGLD from {c0}I"] = float(c.mean() / c0)
    return out


def first_update_ess(seeds=range(5), taus=(0.01, 1.5), samples=1000) -> dict:
    """ESS of IS's first update, {net: {τ: [ESS per seed]}}, at the runs' own init and first minibatch.

    Reproduces :func:`kltrain.studies.training.train`'s seeding (init, data and noise streams from
    SeedSequence(seed)); the proposal is N(x₀, τI), as in every row's first update.
    """
    from kltrain.gaussian.sampling import GaussianIS
    from kltrain.nets.netloss import TrainingSet
    from kltrain.noise import draw_seed
    from kltrain.studies.training import NETS as NET_MAKERS, TrainConfig, load_data
    X, y, _, _ = load_data(TrainConfig("sgd"))
    out: dict = {}
    for net_key, name in (("small", NETS[0]), ("hidden", NETS[1])):
        net = NET_MAKERS[net_key]()
        trainset = TrainingSet(net, X, y, 20, backend="cpu")
        out[name] = {str(tau): [] for tau in taus}
        for seed in seeds:
            init_ss, data_ss, noise_ss = np.random.SeedSequence(seed).spawn(3)
            x0 = net.init(np.random.default_rng(init_ss)).astype(np.float64)
            batch = trainset.sample(np.random.default_rng(data_ss))
            seed_k = draw_seed(np.random.default_rng(noise_ss))
            for tau in taus:                  # the same first minibatch and noise seed for every τ
                out[name][str(tau)].append(GaussianIS(samples).estimate(seed_k, batch, x0,
                                                                        np.full(x0.size, tau))[2].ess)
    return out


def at(runs, update: int, key: str = "accuracy"):
    """(mean, SE, n) over seeds of ``key`` at ``update`` (SE = sample std / √n)."""
    vals = np.array([r[key][r["updates"].index(update)] for r in runs])
    se = vals.std(ddof=1) / np.sqrt(vals.size) if vals.size > 1 else float("nan")
    return float(vals.mean()), float(se), int(vals.size)


def table(store) -> str:
    """The markdown table of the stored mean-and-covariance runs: accuracy at 100/300/500 updates, τ, s/update."""
    lines = ["| net | row | seeds | acc @100 | acc @300 | acc @500 | effective τ at 500 | s/update |",
             "|---|---|---|---|---|---|---|---|"]
    for label, runs in store["runs"].items():
        row, net = label.rsplit(" [", 1)
        cells = [f"{m:.3f} ± {s:.3f}" for m, s, _ in (at(runs, u) for u in (100, 300, 500))]
        tau = "—" if row == "SGD" else f"{at(runs, 500, 'tau')[0]:.3g}"
        lines.append(f"| {net[:-1]} | {row} | {len(runs)} | " + " | ".join(cells)
                     + f" | {tau} | {np.median([r['seconds_median'] for r in runs]):.3f} |")
    return "\n".join(lines)


def _diff(store, a, b, net):
    """(mean_a − mean_b, its SE) of the final accuracies."""
    (ma, sa, _), (mb, sb, _) = at(store["runs"][f"{a} [{net}]"], 500), at(store["runs"][f"{b} [{net}]"], 500)
    return ma - mb, float(np.hypot(sa, sb))


def _fmt(d):
    return f"{d[0]:+.3f} ({d[0] / d[1]:+.1f} SE)" if d[1] > 0 else f"{d[0]:+.3f}"


def _final(store, row, net, key="accuracy"):
    return at(store["runs"][f"{row} [{net}]"], 500, key)[0]


def reading(store) -> str:
    """The answer, computed from the stored numbers (nothing here is typed in by hand).

    Like for like: the learned rows that start where scoping starts (C₀ = 1.5I) against the
    scoped schedule. Overall: the best learned row against the best hand-chosen τ (fixed or scoped).
    """
    out, verdicts = [], []
    for net in NETS:
        if not all(f"{r} [{net}]" in store["runs"] for r in (SCOPED, FIXED, "IS τ=1.5") + LEARNED):
            continue
        same_start = [r for r in LEARNED if "1.5I" in r]
        like = max(same_start, key=lambda r: _final(store, r, net))
        best = max(LEARNED, key=lambda r: _final(store, r, net))
        hand = max((FIXED, "IS τ=1.5", SCOPED), key=lambda r: _final(store, r, net))
        vs_scoped = _diff(store, like, SCOPED, net)
        within = [d >= -2 * se for d, se in (_diff(store, r, SCOPED, net) for r in same_start) if np.isfinite(se)]
        verdicts.append(any(within))
        taus = {r: _final(store, r, net, "tau") for r in LEARNED}
        ess = store["meta"].get("first_update_ess", {}).get(net, {})
        out.append(f"**{net}:** like for like (both from 1.5I), the best learned row, *{like}*, ends at "
                   f"{_final(store, like, net):.3f}, {_fmt(vs_scoped)} against scoping's "
                   f"{_final(store, SCOPED, net):.3f}. Overall the best learned row is *{best}* "
                   f"({_final(store, best, net):.3f}) and the best hand-chosen τ is *{hand}* "
                   f"({_final(store, hand, net):.3f}): {_fmt(_diff(store, best, hand, net))}. "
                   "Effective τ (mean variance) at update 500: "
                   + ", ".join(f"{r.removeprefix('IS ')} {t:.2g}" for r, t in taus.items())
                   + f"; the scoped τ ends at {_final(store, SCOPED, net, 'tau'):.2g}."
                   + ("" if not ess else " ESS of the first update (J = 10³, median over seeds): "
                      + ", ".join(f"C₀ = {t}I {np.median(e):.3g}" for t, e in ess.items()) + "."))
    if not verdicts:
        return "Not enough stored runs for a reading."
    out.extend(_chain_reading(store))
    null = store["meta"].get("flat_loss_null")
    if null:
        out.append("**Caveat: the estimators shrink C by themselves.** On a flat loss q_k = N(m_k, C_k), so the "
                   "exact scheme keeps C; the sampled one does not. Effective τ / C₀ after 500 updates on a flat "
                   "loss: " + ", ".join(f"{k} {v:.3g}" for k, v in null.items())
                   + " (IS: the self-normalised weighted variance is low by the factor 1 − 1/ESS per update; "
                   "C-SGLD: simulated, ∇f = 0). Measured ratios for comparison: IS diag C from 0.01I "
                   + ", ".join(f"{_final(store, LEARNED[0], n, 'tau') / 0.01:.3g} ({n})" for n in NETS
                               if f"{LEARNED[0]} [{n}]" in store["runs"])
                   + "; C-SGLD " + ", ".join(f"{_final(store, r, NETS[0], 'tau') / c0:.2g} (from {c0}I)"
                                             for r, c0 in zip(CHAIN_LEARNED, (0.01, 1.5))
                                             if f"{r} [{NETS[0]}]" in store["runs"])
                   + ". So the learned-C rows' shrinkage is not the exact scheme's annealing alone: the IS rows "
                   "from 0.01I shrink by about their null, at ESS ≈ 1 the bias factor is ≈ 0.2 per update, and "
                   "the C-SGLD collapse is of the order of its null. The answer above is "
                   "about these sampled estimators; whether a bias-corrected covariance estimate (e.g. ĉ/(1 − Σw̄²), "
                   "or a burnt-in chain) would replace scoping was not tested.")
    answer = ("**Answer from these runs: yes, on both nets** — started where scoping starts, a learned covariance "
              "ends within 2 SE of, or above, the hand-scoped τ" if all(verdicts) else
              "**Answer from these runs: no, not on both nets** — on " + ", ".join(
                  n for n, v in zip(NETS, verdicts) if not v) + " no learned covariance started where scoping "
              "starts (1.5I) ends within 2 SE of the hand-scoped τ")
    return (answer + " (final accuracy at 500 updates, mean ± SE over seeds; the learned rows still choose C₀ and, "
            "in one row, a damping rate by hand, so at best they replace the schedule τ(k), not every choice).\n\n"
            + "\n\n".join(out))


def _chain_reading(store) -> list:
    """The Langevin rows (784–10 only): learning C in the C-preconditioned chain, against C frozen and Fig 6.5."""
    net = NETS[0]
    if not all(f"{r} [{net}]" in store["runs"] for r in (CHAIN_SCOPED, CHAIN_FROZEN) + CHAIN_LEARNED):
        return []
    parts = [f"*{r}* {_fmt(_diff(store, r, CHAIN_FROZEN, net))} against C frozen, "
             f"{_fmt(_diff(store, r, CHAIN_SCOPED, net))} against Fig 6.5's scoped SGLD, effective τ at 500 "
             f"{_final(store, r, net, 'tau'):.2g}, accuracy change from update 100 to 500 "
             f"{_final(store, r, net) - at(store['runs'][f'{r} [{net}]'], 100)[0]:+.3f}" for r in CHAIN_LEARNED]
    return [f"**Langevin chains ({net}; C-SGLD = the C-preconditioned chain, constant ε = 0.05):** "
            + "; ".join(parts) + "."]


def plot(store, path):
    """Accuracy (top) and effective τ (bottom, log scale) against updates, one column per net.

    One colour per row in both panels (tab20); Langevin-chain rows dashed.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    rows = list(dict.fromkeys(label.rsplit(" [", 1)[0] for label in store["runs"]))
    colour = {row: colormaps["tab20"](i % 20) for i, row in enumerate(rows)}
    fig = Figure(figsize=(10, 6.4))
    axes = fig.subplots(2, len(NETS), squeeze=False)
    for col, net in enumerate(NETS):
        for label, runs in store["runs"].items():
            if not label.endswith(f"[{net}]"):
                continue
            row = label.rsplit(" [", 1)[0]
            style = dict(color=colour[row], linestyle="--" if "SGLD" in row else "-", label=row)
            u = np.array(runs[0]["updates"])
            axes[0, col].plot(u, np.mean([r["accuracy"] for r in runs], 0), **style)
            if row != "SGD":
                axes[1, col].semilogy(u, np.mean([r["tau"] for r in runs], 0), **style)
        axes[0, col].set(title=net, ylim=(0, 1), ylabel="held-out accuracy")
        axes[1, col].set(xlabel="parameter updates", ylabel="effective τ (mean variance)")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def gaussian_covariance_section(report, path=DATA) -> None:
    """The report's section from the stored study."""
    if not Path(path).exists():
        report.add_section(TITLE, "No stored data: run `kltrain reproduce gaussian-covariance` and "
                                  "`python -m validation.gaussian_covariance collect`.")
        return
    store = json.loads(Path(path).read_text())
    figure = plot(store, report.figure("gaussian-covariance.png"))
    meta = store["meta"]
    intro = (f"Stored data ({Path(path).name}; {meta.get('machine', '')}; {meta.get('data', '')}). IS with "
             f"J = {meta.get('samples')} for {meta.get('n_updates')} updates, minibatch 20, mean ± SE over seeds. "
             "Fixed and scoped τ are the paper's Algorithm 1 (reduced updates); learned rows run the "
             "majorize–minimize step of `kltrain.gaussian` — mean and diagonal variances of q_k by importance "
             "sampling from N(m_k, C_k) — from C₀ = τI ('rate 0.1': C ← 0.9C + 0.1Ĉ; 'iso': one learned σ²). "
             "Scoping is Fig 6.5's τ(k) = 1.5/1.01^k; the Fig 6.5 row is its SGLD (reduced, as printed). "
             "Effective τ is the mean variance of the Gaussian used at update 500. C-SGLD rows (784–10 only) estimate "
             "q_k's moments with the C-preconditioned Langevin chain of `GaussianSGLD` (constant ε = 0.05, "
             "J = 10³ steps) instead of IS; 'C frozen' is that chain with C = τI, the control for learning C.")
    report.add_section(TITLE, intro + "\n\n" + table(store) + "\n\n" + reading(store)
                       + f"\n\n![learned covariance vs τ scoping](figures/{figure.name})")


def main(argv=None) -> int:
    """``python -m validation.gaussian_covariance collect|show``: store the runs' summary, or show the section."""
    parser = argparse.ArgumentParser(prog="python -m validation.gaussian_covariance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["collect", "show"])
    parser.add_argument("folder", nargs="?", default="kltrain-results", help="the reproduce --out folder")
    args = parser.parse_args(argv)
    if args.phase == "collect":
        store = collect(args.folder)
        print(f"collected {sum(len(r) for r in store['runs'].values())} runs into {DATA}")
        print(table(store))
    else:
        from .report import Report
        report = Report(args.folder)
        gaussian_covariance_section(report)
        print(report.write())
    return 0


if __name__ == "__main__":
    sys.exit(main())
