"""The training loop with the parameters and the training set on the GPU (issue 21).

For ``backend="cuda"`` runs of SGD, reduced IS (``projected=True``) or SGD then IS, the loop of
:mod:`kltrain.studies.training` hands its updates to :class:`kltrain.kernels.cuda_resident.ResidentMLP`:
the training images go to the device once, each update sends its minibatch's row indices and
reads back one report (the minibatch loss it records, ESS, status), and the parameters come to
the host only at an evaluation and at the end. Same random streams, same minibatches and the same
updates as the ordinary loop to float32 rounding (tested under the simulator), the same records
(``estimator_paths`` counts the reduced IS updates) and the same errors: a NaN loss raises
FloatingPointError naming τ, the estimator and the step, and a collapsed ESS warns or raises as
``ImportanceSampling(on_collapse=...)`` says. Not on this path: the Pareto k̂ (the log weights stay
on the device; it would cost a copy of J numbers per update).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..estimators.importance import ImportanceSampling, check_collapse
from ..noise import draw_seed
from ..schemes import SGD, LocalEntropy, SwitchAfter, check_step, step_context
from .config import TrainConfig


def _parts(rule) -> tuple[Any, Any, int]:
    """(SGD rule or None, IS rule or None, updates of SGD first)."""
    if isinstance(rule, SwitchAfter):
        return rule.first, rule.then, rule.n_first
    return (rule, None, 0) if isinstance(rule, SGD) else (None, rule, 0)


def applies(config: TrainConfig, backend: Any, rule, net) -> bool:
    """Whether the resident loop runs ``config``: the CUDA backend by name, SGD and/or reduced IS, a net
    and batch the resident kernels cover."""
    if not (isinstance(backend, str) and backend == "cuda") or type(config) is not TrainConfig:
        return False
    sgd, estimator_rule, _ = _parts(rule)
    if sgd is not None and not isinstance(sgd, SGD):
        return False
    if estimator_rule is not None:
        est = getattr(estimator_rule, "estimator", None)
        if not (isinstance(estimator_rule, LocalEntropy) and isinstance(est, ImportanceSampling)
                and est.projected is not False):   # None: the CUDA backend chooses the reduced path here
            return False
    from ..kernels.cuda_resident import unsupported
    return unsupported(net, config.batch_size) is None


def resident_loop(config, net, params, trainset, rule, tau, data_rng, noise_rng, X_test, y_test, result, bar,
                  checkpoint):
    """``kltrain.studies.training._loop`` with the state on the device (same arguments, same records)."""
    from ..kernels.cuda_resident import ResidentMLP
    res = ResidentMLP(net, trainset.X, trainset.y, params)
    sgd, is_rule, n_first = _parts(rule)
    n_rows, beta = trainset.X.shape[0], trainset.scale
    for k in range(config.n_updates):
        rows = data_rng.choice(n_rows, size=trainset.batch_size, replace=False)   # as TrainingSet.sample
        use_sgd = is_rule is None or k < n_first
        tau_k = tau(max(k - n_first, 0))
        start = time.perf_counter()
        res.set_batch(rows)
        try:
            if use_sgd:
                report = res.sgd_update(sgd.learning_rate, beta)
                finite = bool(np.isfinite(report.grad_norm))
            else:
                est, tau_is = is_rule.estimator, is_rule.tau(k - n_first)
                report = res.importance_update(tau_is, draw_seed(noise_rng), est.n_samples, est.antithetic, beta)
                finite = bool(np.isfinite(report.ess) and np.isfinite(report.max_weight))   # the weights, so the step
                check_collapse(report.ess, est.n_samples, tau_is, est, est.on_collapse)
                result.estimator_paths["reduced"] = result.estimator_paths.get("reduced", 0) + 1
        except FloatingPointError as err:
            raise type(err)(f"{err} ({config.label}, {step_context(rule, k)})") from err
        result.seconds.append(time.perf_counter() - start)
        result.minibatch_loss.append(report.loss)
        result.taus.append(tau_k)
        if not finite:                                   # a NaN gradient or weight: name the step, as the loop does
            check_step(rule, res.params(), k, f"{config.label} parameters (float32)")
        if (k + 1) % config.eval_every == 0 or k + 1 == config.n_updates:
            params = res.params()
            check_step(rule, params, k, f"{config.label} parameters (float32)")
            result.eval_updates.append(k + 1)
            result.test_accuracy.append(net.accuracy(params, X_test, y_test))
            bar.set_postfix(acc=f"{result.test_accuracy[-1]:.3f}")
            checkpoint(result)
        bar.update(1)
    return res.params()
