"""Readings of the paper's §6 setup, and the Table 6.1 falsification study.

The paper prints the algorithms but not its code. A *reading* is one consistent
interpretation of what that code did, applied to all four algorithms of Table 6.1
(SGD, IS, SGLD, HR) at once, with no per-algorithm tuning:

- ``printed``: f is the mean loss over the minibatch (eq. 2.1), kltrain's init;
- ``batch-sum``: f is the *sum* of the 20 per-example losses, f → β·f, β = 20,
  everywhere: IS log weights −β·f, HR's τβ∇f, SGLD's target ∝ exp(−βf − |y − x|²/2τ),
  SGD (learning rate 0.01) on β·f (see :mod:`kltrain.nets.netloss`);
- ``tf-init``: TensorFlow/Keras's default init (glorot-uniform weights, zero biases);
- ``cold-chain``: SGLD restarts at x every update (x¹ = x, as Algorithm 3 prints);
- ``fresh-batches``: every SGLD step and every Robbins–Monro iteration draws a new
  minibatch (§5.1.1's stochastic gradients);
- combinations of these.

The control ``beta=b`` fits the loss scale β as one free parameter shared by all four
algorithms (:data:`BETA_GRID`); it has a degree of freedom the readings lack.

The study that trains every reading lives in :mod:`kltrain.studies.readings_study`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._checks import check_flag, check_positive
from ..nets.mlp import INIT_SCHEMES
from .config import TrainConfig

CHECKPOINTS = (100, 200, 300, 400, 500)
PAPER_TABLE_6_1 = {"SGD": (0.75, 0.80, 0.85, 0.87, 0.87), "IS": (0.27, 0.45, 0.54, 0.57, 0.65),
                   "SGLD": (0.72, 0.81, 0.84, 0.86, 0.88), "HR": (0.52, 0.64, 0.70, 0.73, 0.76)}
PAPER_ORDER = ("SGLD", "SGD", "HR", "IS")   # the paper's final column, best first (.88 > .87 > .76 > .65)
ALGORITHMS = {"SGD": "sgd", "IS": "is", "SGLD": "sgld", "HR": "hr"}
BATCH_SUM_BETA = 20.0                      # the paper's minibatch size: reduce_sum = 20 × reduce_mean
BETA_GRID = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)  #: the loss scales β of the fitted-β control


@dataclass(frozen=True)
class Reading:
    """One interpretation of the paper's code, as a transformation of a TrainConfig."""

    name: str
    loss_scale: float = 1.0      # β: train on β·f (20 = per-example losses summed over the minibatch)
    init: str = "he"             # he (kltrain) | glorot (TensorFlow/Keras Dense default)
    cold_chain: bool = False     # SGLD chain starts at x every update instead of warm-starting
    fresh_batches: bool = False  # new minibatch per SGLD step and per Robbins–Monro iteration
    kind: str = "reading"        # reading | beta-fit (the control with a free parameter)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        check_positive(self.loss_scale, "loss_scale")
        check_flag(self.cold_chain, "cold_chain")
        check_flag(self.fresh_batches, "fresh_batches")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if self.kind not in ("reading", "beta-fit"):
            raise ValueError(f"kind must be 'reading' or 'beta-fit', got {self.kind!r}")

    def apply(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` under this reading (the same for every algorithm).

        Fields an algorithm does not read are left alone (the chain start is SGLD's; inner
        minibatches are SGLD's and HR's), so readings that agree on an algorithm share its runs.
        """
        inner = cfg.algorithm in ("sgld", "hr")
        return replace(cfg, loss_scale=self.loss_scale, init=self.init,
                       sgld_warm_start=cfg.sgld_warm_start if cfg.algorithm != "sgld" else not self.cold_chain,
                       fresh_batches=self.fresh_batches if inner else cfg.fresh_batches)


def _readings():
    base = {"printed": Reading("printed"),
            "batch-sum": Reading("batch-sum", loss_scale=BATCH_SUM_BETA),
            "tf-init": Reading("tf-init", init="glorot"),
            "cold-chain": Reading("cold-chain", cold_chain=True),
            "fresh-batches": Reading("fresh-batches", fresh_batches=True),
            "batch-sum+tf-init": Reading("batch-sum+tf-init", loss_scale=BATCH_SUM_BETA, init="glorot"),
            "batch-sum+cold-chain": Reading("batch-sum+cold-chain", loss_scale=BATCH_SUM_BETA, cold_chain=True)}
    return base


READINGS = _readings()


def beta_readings(grid=BETA_GRID) -> dict:
    """The control: one loss scale β shared by all algorithms, kltrain's init otherwise."""
    return {f"beta={b:g}": Reading(f"beta={b:g}", loss_scale=b, kind="beta-fit") for b in grid}


def paper_configs(**common) -> dict:
    """Table 6.1's four runs, paper settings (τ = 0.01, lr 0.01, J = 10³, M = J = 30, 500 updates)."""
    return {label: TrainConfig(algo, **common) for label, algo in ALGORITHMS.items()}


# -- scoring ------------------------------------------------------------------------

def checkpoints_for(n_updates: int) -> tuple:
    """100..500, or the same fractions of a shorter (quick) run."""
    return CHECKPOINTS if n_updates >= CHECKPOINTS[-1] else tuple(n_updates * (i + 1) // 5 for i in range(5))


def rmse(cells: dict) -> float:
    """Root-mean-square difference to the paper over the 20 cells (4 algorithms × 5 checkpoints)."""
    diff = [np.asarray(cells[a]) - np.asarray(PAPER_TABLE_6_1[a]) for a in PAPER_TABLE_6_1]
    return float(np.sqrt(np.mean(np.square(diff))))


def ordering_matches(cells: dict) -> bool:
    """Whether the final column ranks SGLD > SGD > HR > IS, as the paper's does."""
    final = [cells[a][-1] for a in PAPER_ORDER]
    return all(a > b for a, b in zip(final, final[1:]))


def fit_beta(scores: dict) -> float:
    """The β of the control with the smallest RMSE; ``scores`` maps β → RMSE."""
    return float(min(scores, key=lambda b: (scores[b], b)))


# -- resumable runs -----------------------------------------------------------------
