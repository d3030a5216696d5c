"""The sampling estimators as the adapters accept them: a name and a sample count, or a configured object.

``kltrain.torch`` and ``kltrain.jax`` take ``estimator="is" | "sgld"`` with ``n_samples`` = J for
Algorithm 1, and J, M (``n_iter``, ``n_samples``) for Algorithm 2's Robbins–Monro step, or the
configured estimator itself; both resolve them here, so that they validate alike. The options
that only kltrain's MLP losses implement (``projected``, ``fresh_minibatch``) are refused.
"""

from __future__ import annotations

from typing import Any

from .importance import ImportanceSampling
from .robbins_monro import RobbinsMonro
from .sgld import SGLD


def _no_mlp_only_options(estimator: Any, where: str) -> None:
    if getattr(estimator, "projected", False) or getattr(estimator, "fresh_minibatch", False):
        raise ValueError(f"{where}: {type(estimator).__name__}(projected=True or fresh_minibatch=True) is for "
                         "kltrain's MLP losses; with your own model, a loss that draws a new minibatch at every "
                         "call gives fresh minibatches")


def mean_estimator(estimator: Any, n_samples: int | None, where: str) -> ImportanceSampling | SGLD:
    """``"is"``/``"sgld"`` with J = ``n_samples``, or an ``ImportanceSampling``/``SGLD`` (then no ``n_samples``)."""
    if isinstance(estimator, str):
        if estimator not in ("is", "sgld"):
            raise ValueError(f"{where}: estimator must be 'is', 'sgld' or a kltrain estimator, got {estimator!r}")
        if n_samples is None:
            raise TypeError(f"{where}: estimator={estimator!r} needs n_samples (J)")
        estimator = ImportanceSampling(n_samples, keep_log_weights=False) if estimator == "is" else SGLD(n_samples)
    elif not isinstance(estimator, (ImportanceSampling, SGLD)):
        raise TypeError(f"{where}: estimator must be 'is', 'sgld', ImportanceSampling(...) or SGLD(...), "
                        f"got {type(estimator).__name__}")
    elif n_samples is not None:
        raise TypeError(f"{where}: n_samples is set by the estimator object; do not pass both")
    _no_mlp_only_options(estimator, where)
    return estimator


def prox_estimator(estimator: RobbinsMonro | None, n_iter: int | None, n_samples: int | None, c: float,
                   alpha: float, where: str) -> RobbinsMonro:
    """``RobbinsMonro(n_iter, n_samples, c=c, alpha=alpha)``, or the configured ``estimator`` given instead."""
    if estimator is None:
        if n_iter is None or n_samples is None:
            raise TypeError(f"{where} needs n_iter (J) and n_samples (M), or estimator=RobbinsMonro(...)")
        estimator = RobbinsMonro(n_iter, n_samples, c=c, alpha=alpha)
    elif not isinstance(estimator, RobbinsMonro) or n_iter is not None or n_samples is not None:
        raise TypeError(f"{where}: estimator must be a RobbinsMonro(...) given instead of n_iter and n_samples")
    _no_mlp_only_options(estimator, where)
    return estimator
