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

A run's settings (:class:`~kltrain.studies.config.TrainConfig`) live in :mod:`kltrain.studies.config`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._blas import single_blas_thread
from .._checks import check_labelled
from .._io import atomic_write_csv, atomic_write_json, config_hash
from ..nets.data import Dataset, load
from ..nets.netloss import TrainingSet
from .config import (  # noqa: F401  (re-exported: the configs were defined here)
    ALGORITHMS, COVARIANCE_FAMILIES, DATASETS, NETS, PEER_LABELS, CovarianceTrainConfig, TrainConfig,
    config_from_dict, covariance_rule, train_config)
from ..schemes import check_step, step_context
from .resident import applies, resident_loop
from .runfile import results_hash


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
    estimator_paths: dict = field(default_factory=dict)  # {"reduced" | "per-sample": updates}, as each estimator chose

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
        record = {"status": self.status, "config_hash": self.config_hash, "config": asdict(self.config),
                  "eval_updates": self.eval_updates,
                  "test_accuracy": self.test_accuracy, "minibatch_loss": self.minibatch_loss,
                  "seconds": self.seconds, "taus": self.taus, "seconds_per_update": self.seconds_per_update,
                  "estimator_paths": self.estimator_paths}
        return dict(record, results_hash=results_hash(record))   # a resume checks the measurements too

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        """Inverse of ``to_dict`` (NaN stored as null comes back as NaN)."""
        nan = lambda xs: [float("nan") if v is None else v for v in xs]  # noqa: E731
        return cls(config_from_dict(d["config"]), list(d["eval_updates"]), nan(d["test_accuracy"]),
                   nan(d["minibatch_loss"]), nan(d["seconds"]), nan(d["taus"]), d.get("status", "done"),
                   estimator_paths=dict(d.get("estimator_paths", {})))

    def to_json(self, path) -> Path:
        return atomic_write_json(path, self.to_dict())

    def to_csv(self, path) -> Path:
        return atomic_write_csv(path, ["update", "test_accuracy"], zip(self.eval_updates, self.test_accuracy))


def load_data(config: TrainConfig):
    """The run's training set and its held-out test images (a fixed random subset of ``n_test``)."""
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

    ``backend`` (an object such as :class:`kltrain.kernels.distributed.DaskBackend`) overrides
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
        from ..kernels.distributed import DaskBackend, connect
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
    loop = resident_loop if applies(config, trainset.backend, rule, net) else _loop   # cuda: state on the device
    try:
        params = loop(config, net, params, trainset, rule, tau, data_rng, noise_rng, X_test, y_test, result,
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
            new, state, info = rule.step(noise_rng, state, batch, params, k)
        except FloatingPointError as err:  # e.g. a NaN importance weight: say which update
            raise type(err)(f"{err} ({config.label}, {step_context(rule, k)})") from err
        result.seconds.append(time.perf_counter() - start)
        _count_path(result.estimator_paths, info)
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


def _count_path(paths: dict, info) -> None:
    """Count the path an estimator's ``projected=None`` chose (its info's ``projected``; SGD has none)."""
    chosen = getattr(info, "projected", None)
    if chosen is not None:
        key = "reduced" if chosen else "per-sample"
        paths[key] = paths.get(key, 0) + 1


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
