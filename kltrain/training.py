"""One training loop for SGD, IS, SGLD and HR on MNIST (paper §6).

Each parameter update draws a minibatch of 20 training images and applies an
update rule (:mod:`kltrain.schemes`): SGD (eq. 3.4), Algorithm 1 with importance
sampling (IS, Alg. 4) or SGLD (Alg. 3), or Algorithm 2 with Robbins–Monro (HR,
Alg. 5); optionally SGD first for ``sgd_first`` updates (§6.3) and a τ
schedule (§6.5.1). Held-out accuracy is measured every ``eval_every`` updates
on ``n_test`` test images; every update's wall time and minibatch loss are kept.

Randomness: one seed spawns three independent streams — the initial weights
(the same for every algorithm: "identical instantiations", §6.2), the
minibatch sequence (also the same for every algorithm) and the estimators' noise.
"""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._blas import single_blas_thread
from ._checks import check_count, check_labelled, check_positive, check_seed, check_tau
from ._io import atomic_write_csv, atomic_write_json, config_hash
from .data import Dataset, load
from .estimators import SGLD, ImportanceSampling, RobbinsMonro
from .kernels import BACKENDS
from .netloss import TrainingSet
from .nets import INIT_SCHEMES, MLP
from .peers import SAM, EntropySGD
from .schedules import ConstantTau, HarmonicTemperatures, ReverseTauScoping, TauScoping
from .schemes import SGD, Heat, LocalEntropy, SwitchAfter, check_step, step_context

ALGORITHMS = ("sgd", "is", "sgld", "hr", "entropy-sgd", "sam")
PEER_LABELS = {"entropy-sgd": "Entropy-SGD", "sam": "SAM"}  # peers (kltrain.peers), not the paper's
DATASETS = ("mnist", "fashion-mnist")
NETS = {"small": MLP.small, "hidden": MLP.hidden}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; defaults are the paper's (§6.2, Fig 6.1)."""

    algorithm: str                      # sgd | is | sgld | hr | entropy-sgd | sam (kltrain.peers)
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
    projected: bool = True              # exact-in-distribution reduced updates (kltrain.projected)
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

    The rule is :class:`kltrain.gaussian_sampling.DiagonalGaussianRule` (the paper's future
    work, derived in :mod:`kltrain.gaussian`); ``covariance_rate`` β damps c ← (1−β)c + βĉ.
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
        from .gaussian_sampling import covariance_rule
        return covariance_rule(self)

    @property
    def label(self) -> str:
        return f"{super().label}-C{self.covariance}"


def config_from_dict(d: dict) -> TrainConfig:
    """The config stored by ``asdict``: a CovarianceTrainConfig if it has a covariance field."""
    return (CovarianceTrainConfig if "covariance" in d else TrainConfig)(**d)


@dataclass
class TrainResult:
    """What a run measured; ``to_json``/``to_csv`` write it."""

    config: TrainConfig
    eval_updates: list = field(default_factory=list)     # update counts at which accuracy was measured
    test_accuracy: list = field(default_factory=list)
    minibatch_loss: list = field(default_factory=list)   # f on the update's minibatch, before the update
    seconds: list = field(default_factory=list)          # wall time of each update
    taus: list = field(default_factory=list)
    status: str = "running"                              # running | done | interrupted | diverged
    final_params: np.ndarray | None = field(default=None, repr=False)  # the weights after the last update

    @property
    def config_hash(self) -> str:
        """Identifies the config in result files: a rerun with the same hash may be skipped."""
        return config_hash(asdict(self.config))

    def accuracy_at(self, update: int) -> float:
        return self.test_accuracy[self.eval_updates.index(update)]

    @property
    def seconds_per_update(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else float("nan")

    def to_dict(self) -> dict:
        return {"status": self.status, "config_hash": self.config_hash, "config": asdict(self.config),
                "eval_updates": self.eval_updates,
                "test_accuracy": self.test_accuracy, "minibatch_loss": self.minibatch_loss,
                "seconds": self.seconds, "taus": self.taus, "seconds_per_update": self.seconds_per_update}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        """Inverse of ``to_dict`` (NaN stored as null comes back as NaN)."""
        nan = lambda xs: [float("nan") if v is None else v for v in xs]  # noqa: E731
        return cls(config_from_dict(d["config"]), list(d["eval_updates"]), nan(d["test_accuracy"]),
                   nan(d["minibatch_loss"]), nan(d["seconds"]), nan(d["taus"]), d.get("status", "done"))

    def to_json(self, path) -> Path:
        return atomic_write_json(path, self.to_dict())

    def to_csv(self, path) -> Path:
        return atomic_write_csv(path, ["update", "test_accuracy"], zip(self.eval_updates, self.test_accuracy))


def load_data(config: TrainConfig):
    X_train, y_train, X_test, y_test = load(config.dataset)
    if config.n_test < len(X_test):  # "1000 randomly selected images from the held-out test set"
        pick = np.random.default_rng(12345).choice(len(X_test), size=config.n_test, replace=False)
        X_test, y_test = X_test[pick], y_test[pick]
    return X_train, y_train, X_test, y_test


def train(config: TrainConfig, data: Dataset | None = None, progress: bool = True, backend: Any = None,
          checkpoint: Any = None) -> TrainResult:
    """Run one training run; ``data`` = (X_train, y_train, X_test, y_test) or None to load.

    ``checkpoint(result)``, if given, is called after every evaluation and once more at the
    end with ``result.status`` "done", or "interrupted" (KeyboardInterrupt) / "diverged"
    (FloatingPointError) just before that exception propagates: what was measured is kept.

    ``backend`` (an object such as :class:`kltrain.distributed.DaskBackend`) overrides
    ``config.backend``; with ``config.scheduler`` or ``config.workers`` a Dask backend is
    made for this run. BLAS is kept to one thread throughout: the kernels use both cores,
    and OpenBLAS threads left spinning by an accuracy evaluation made the next update 2.5× slower.
    """
    with backend_context(config, backend) as chosen, single_blas_thread():
        return _train(config, data, progress, chosen, checkpoint or (lambda result: None))


@contextmanager
def backend_context(config, given=None):
    """The backend to train with: ``given``, a Dask one from the config (closed after), or the config's name."""
    if given is not None:
        yield given
    elif config.scheduler or config.workers:
        from .distributed import DaskBackend, connect
        client = connect(config.scheduler, workers=config.workers or 2)
        try:
            yield DaskBackend(client)
        finally:
            client.close()
    else:
        yield config.backend


def _train(config, data, progress, backend, checkpoint):
    X_train, y_train, X_test, y_test = load_data(config) if data is None else data
    net = NETS[config.net]()
    n_in, n_classes = net.sizes[0], net.sizes[-1]
    X_test, y_test = check_labelled(X_test, y_test, n_classes, "X_test", n_features=n_in)  # before update 1
    X_train, y_train = check_labelled(X_train, y_train, n_classes, "X_train", n_features=n_in)
    init_ss, data_ss, noise_ss = np.random.SeedSequence(config.seed).spawn(3)
    params = net.init(np.random.default_rng(init_ss), scheme=config.init)
    data_rng, noise_rng = np.random.default_rng(data_ss), np.random.default_rng(noise_ss)
    trainset = TrainingSet(net, X_train, y_train, config.batch_size, backend=backend, scale=config.loss_scale)
    rule = config.update_rule()
    tau = config.tau_schedule()
    result = TrainResult(config, [0], [net.accuracy(params, X_test, y_test)])
    checkpoint(result)
    bar = _progress(config, progress)
    try:
        params = _loop(config, net, params, trainset, rule, tau, data_rng, noise_rng, X_test, y_test, result,
                       bar, checkpoint)
    except KeyboardInterrupt:
        result.status = "interrupted"
        checkpoint(result)
        raise
    except FloatingPointError:
        result.status = "diverged"
        checkpoint(result)
        raise
    finally:
        bar.close()
    result.status = "done"
    checkpoint(result)
    result.final_params = params
    return result


def _loop(config, net, params, trainset, rule, tau, data_rng, noise_rng, X_test, y_test, result, bar, checkpoint):
    """The updates; appends to ``result`` as it goes (so an exception leaves what was measured)."""
    state = None
    for k in range(config.n_updates):
        batch = trainset.sample(data_rng)
        if state is None:
            state = rule.init(batch, params)
        tau_k = _effective_tau(rule, state, tau, k - config.sgd_first)   # before the step changes the state
        start = time.perf_counter()
        try:
            new, state, _ = rule.step(noise_rng, state, batch, params, k)
        except FloatingPointError as err:  # e.g. a NaN importance weight: say which update
            raise type(err)(f"{err} ({config.label}, {step_context(rule, k)})") from err
        result.seconds.append(time.perf_counter() - start)
        result.minibatch_loss.append(batch.value(params))
        result.taus.append(tau_k)
        params = np.asarray(new, dtype=np.float32)
        check_step(rule, params, k, f"{config.label} parameters (float32)")
        if (k + 1) % config.eval_every == 0 or k + 1 == config.n_updates:
            result.eval_updates.append(k + 1)
            result.test_accuracy.append(net.accuracy(params, X_test, y_test))
            bar.set_postfix(acc=f"{result.test_accuracy[-1]:.3f}")
            checkpoint(result)
        bar.update(1)
    return params


def _effective_tau(rule, state, tau, k):
    """τ of update k; for a learned covariance the mean of its variances (its isotropic scale)."""
    if isinstance(state, tuple) and hasattr(rule, "then"):     # SwitchAfter: (first's state, then's state)
        rule, state = rule.then, state[1]
    mean_variance = getattr(rule, "mean_variance", None)
    if mean_variance is None or state is None or k < 0:
        return tau(max(k, 0))
    return float(mean_variance(state))


def _progress(config, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=config.n_updates, desc=f"{config.label} {config.net} seed {config.seed}",
                disable=not enabled, leave=False)
