"""What a training run is: its algorithm, net, data and estimator settings (paper §6.2).

:class:`TrainConfig` holds the paper's defaults; :class:`CovarianceTrainConfig` a run that also
learns the Gaussian's covariance (issue 16). Both are frozen dataclasses, so a config is a value:
its hash names the run's result files (``kltrain._io.config_hash``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .._checks import check_count, check_positive, check_seed, check_tau
from ..gaussian.sampling import DiagonalGaussianRule, GaussianIS, GaussianRobbinsMonro, GaussianSGLD
from ..estimators import SGLD, ImportanceSampling, RobbinsMonro
from ..kernels import BACKENDS
from ..nets.mlp import INIT_SCHEMES, MLP
from .peers import SAM, EntropySGD
from ..schedules import ConstantTau, HarmonicTemperatures, ReverseTauScoping, TauScoping
from ..schemes import SGD, Heat, LocalEntropy, SwitchAfter

ALGORITHMS = ("sgd", "is", "sgld", "hr", "entropy-sgd", "sam")
PEER_LABELS = {"entropy-sgd": "Entropy-SGD", "sam": "SAM"}  # peers (kltrain.studies.peers), not the paper's
DATASETS = ("mnist", "fashion-mnist")
NETS = {"small": MLP.small, "hidden": MLP.hidden}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; defaults are the paper's (§6.2, Fig 6.1)."""

    algorithm: str                      # sgd | is | sgld | hr | entropy-sgd | sam (kltrain.studies.peers)
    net: str = "hidden"                 # small (784–10) | hidden (784–200–10)
    n_updates: int = 500                # parameter updates (paper: 500)
    batch_size: int = 20                # minibatch (paper: 20)
    tau: float = 0.01                   # τ; the start τ₀ when tau_scoping is set
    tau_scoping: float | None = None    # τ₁ of τ(k) = τ₀/(1+τ₁)^k (§6.5.1)
    reverse_scoping: bool = False       # τ(k) = τ₀(1+τ₁)^k instead (Fig 6.5, bottom left)
    learning_rate: float = 0.01         # SGD step (paper: 0.01, equal to τ)
    samples: int = 1000                 # IS samples J / SGLD chain length (paper: 10³)
    sgld_offset: float = 1000.0         # ε_j = 1/(offset + j) (paper: 1000; Fig 6.2: 2000)
    sgld_temperature: float = 1.0       # T: Langevin noise variance T·ε_j, target ∝ q^{1/T} (1 as printed)
    sgld_warm_start: bool = True        # chain starts at the last update's end (§5.1.1); False: at x (cold)
    fresh_batches: bool = False         # new minibatch per SGLD step / Robbins–Monro iteration (§5.1.1)
    loss_scale: float = 1.0             # β: train on β·f (β = batch_size: f summed, not averaged, over the batch)
    init: str = "he"                    # he (kltrain default) | glorot (TensorFlow/Keras default), see MLP.init
    hr_iterations: int = 30             # Robbins–Monro J (paper: 30)
    hr_samples: int = 30                # Robbins–Monro M (paper: 30)
    hr_c: float = 0.1                   # a_j = c·j^{−α} (paper: c = 0.1)
    hr_alpha: float = 0.7               # (paper: α = 0.7)
    sgd_first: int = 0                  # run SGD for this many updates first (§6.3)
    projected: bool | None = None       # reduced updates (kltrain.nets.projected): None chooses by cost (nets.cost)
    antithetic: bool = False            # IS with antithetic pairs
    eval_every: int = 10                # held-out accuracy every this many updates
    n_test: int = 1000                  # test images scored (paper: 1000)
    dataset: str = "mnist"              # mnist | fashion-mnist
    seed: int | None = 0                # None: draw one (recorded here, so the run can be repeated)
    backend: str = "auto"               # auto | cpu | cuda | numpy
    scheduler: str | None = None        # Dask scheduler address: IS runs sharded on its workers
    workers: int = 0                    # > 0: start a local Dask cluster of this many workers instead

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.net not in NETS:
            raise ValueError(f"net must be one of {tuple(NETS)}, got {self.net!r}")
        if self.backend not in BACKENDS:  # refused now, not at the first update
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.seed is None:
            object.__setattr__(self, "seed", secrets.randbits(32))
        check_seed(self.seed)
        for name in ("n_updates", "sgd_first", "workers"):
            check_count(getattr(self, name), name)
        for name in ("batch_size", "samples", "hr_iterations", "hr_samples", "eval_every", "n_test"):
            check_count(getattr(self, name), name, 1)
        check_tau(self.tau)
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.sgld_temperature, "sgld_temperature")
        check_positive(self.loss_scale, "loss_scale")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if self.tau_scoping is not None:
            (ReverseTauScoping if self.reverse_scoping else TauScoping)(self.tau, self.tau_scoping)
        HarmonicTemperatures(self.sgld_offset)
        RobbinsMonro(1, 1, c=self.hr_c, alpha=self.hr_alpha)

    def tau_schedule(self):
        if self.tau_scoping is None:
            return ConstantTau(self.tau)
        return (ReverseTauScoping if self.reverse_scoping else TauScoping)(self.tau, self.tau_scoping)

    def update_rule(self):
        """The scheme this config trains with (see kltrain.schemes)."""
        tau = self.tau_schedule()
        rule = {
            "sgd": lambda: SGD(self.learning_rate),
            "is": lambda: LocalEntropy(tau, ImportanceSampling(self.samples, antithetic=self.antithetic,
                                                               projected=self.projected, keep_log_weights=False)),
            "sgld": lambda: LocalEntropy(tau, SGLD(self.samples, temperatures=HarmonicTemperatures(self.sgld_offset),
                                                   projected=self.projected and not self.fresh_batches,
                                                   temperature=self.sgld_temperature,
                                                   warm_start=self.sgld_warm_start,
                                                   fresh_minibatch=self.fresh_batches)),
            "hr": lambda: Heat(tau, RobbinsMonro(self.hr_iterations, self.hr_samples, c=self.hr_c,
                                                 alpha=self.hr_alpha, projected=self.projected,
                                                 fresh_minibatch=self.fresh_batches)),
            "entropy-sgd": EntropySGD, "sam": lambda: SAM(self.learning_rate),
        }[self.algorithm]()
        return SwitchAfter(SGD(self.learning_rate), rule, self.sgd_first) if self.sgd_first else rule

    @property
    def label(self) -> str:
        name = PEER_LABELS.get(self.algorithm, self.algorithm.upper())
        return f"SGD→{name}" if self.sgd_first and self.algorithm != "sgd" else name


COVARIANCE_FAMILIES = ("diag", "iso", "fixed")   # fixed: the same estimator with C frozen at τI (a control)


@dataclass(frozen=True)
class CovarianceTrainConfig(TrainConfig):
    """A run whose IS/SGLD/HR update also learns the Gaussian's covariance, from C_0 = τI (issue 16).

    The rule is :class:`kltrain.gaussian.sampling.DiagonalGaussianRule` (the paper's future
    work, derived in :mod:`kltrain.gaussian.schemes`); ``covariance_rate`` β damps c ← (1−β)c + βĉ.
    """

    covariance: str = "diag"            # diag | iso: the learned family; fixed: C stays τI
    covariance_rate: float = 1.0        # 1: the majorize–minimize step itself

    def __post_init__(self):
        super().__post_init__()
        if self.covariance not in COVARIANCE_FAMILIES:
            raise ValueError(f"covariance must be one of {COVARIANCE_FAMILIES}, got {self.covariance!r}")
        if self.algorithm not in ("is", "sgld", "hr"):
            raise ValueError(f"a learned covariance needs algorithm is, sgld or hr, got {self.algorithm!r}")
        if self.tau_scoping is not None:
            raise ValueError("a learned covariance replaces τ scoping; drop tau_scoping")
        if not 0 < self.covariance_rate <= 1:
            raise ValueError(f"covariance_rate must be in (0, 1], got {self.covariance_rate!r}")

    def update_rule(self):
        return covariance_rule(self)

    @property
    def label(self) -> str:
        return f"{super().label}-C{self.covariance}"


def config_from_dict(d: dict) -> TrainConfig:
    """The config stored by ``asdict``: a CovarianceTrainConfig if it has a covariance field."""
    return (CovarianceTrainConfig if "covariance" in d else TrainConfig)(**d)


def train_config(covariance: str, algorithm: str, **kwargs):
    """A :class:`kltrain.studies.config.TrainConfig` (``covariance`` "fixed": the paper's τI) or a
    :class:`kltrain.studies.config.CovarianceTrainConfig` that learns C ("diag" or "iso") from C_0 = τI."""
    if covariance == "fixed":
        return TrainConfig(algorithm, **kwargs)
    return CovarianceTrainConfig(algorithm, covariance=covariance, **kwargs)


def covariance_rule(config):
    """The update rule of a :class:`kltrain.studies.config.CovarianceTrainConfig`: IS, SGLD or HR with a
    learned covariance (per-sample noise, no projection: the reduced updates of
    kltrain.nets.projected assume an isotropic τ)."""
    estimator = {
        "is": lambda: GaussianIS(config.samples),
        "sgld": lambda: GaussianSGLD(config.samples, step=0.05),
        "hr": lambda: GaussianRobbinsMonro(config.hr_iterations, config.hr_samples, c=config.hr_c,
                                           alpha=config.hr_alpha),
    }[config.algorithm]()
    rule = DiagonalGaussianRule(config.tau, estimator, family=config.covariance, cov_rate=config.covariance_rate)
    return SwitchAfter(SGD(config.learning_rate), rule, config.sgd_first) if config.sgd_first else rule
