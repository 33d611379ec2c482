"""The learning curve: how the model does with less of the training data (issue 15, small authorities).

The recipe this version was trained with (its setting, rounds and calibration) is refitted on nested shares of the
labelled closures before the test year, drawn by child (a child's closures are all in or all out, and a child in
the 25% share is in the 50% one), and tested on this version's own test closures: ROC AUC, its share of the
oracle's AUC where the true probabilities are known, and calibration error beside the bound a calibrated model
shows on that many cases. The full share is this version itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models import RiskModel, neglect_population
from outcomes.calibration import calibration_chance_bound
from outcomes.evaluate import expected_calibration_error
from training.fit import FitResult, booster_params, refit_calibrated
from training.policy import CalibratorPolicy
from training.split import Split

__all__ = ["LEARNING_SHARES", "LearningCurve", "LearningPoint", "learning_curve", "learning_rows", "share_of"]

LEARNING_SHARES = (0.25, 0.5, 1.0)
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class LearningPoint:
    share: float  # of the children behind the labelled closures before the test year
    closures: int  # labelled closures trained on
    rereferrals: int  # re-referrals among them
    roc_auc: float
    auc_ratio: float | None  # ROC AUC over the oracle's on the same test closures; None without the truth
    ece: float
    ece_chance: float  # what a calibrated model shows on these test closures, 95% of the time


@dataclass(frozen=True)
class LearningCurve:
    test_year: int
    test_closures: int
    points: tuple[LearningPoint, ...]


def share_of(children: pd.Series, *, seed: int) -> FloatArray:
    """Each child's place in [0, 1): a child is in every share above it, so shares are nested."""
    keys = children.astype(str).map(
        lambda child: int.from_bytes(hashlib.sha256(f"learn:{seed}:{child}".encode()).digest()[:8], "big") / 2**64
    )
    return keys.to_numpy(dtype=float)


def _point(share: float, train: pd.DataFrame, y: FloatArray, p: FloatArray, truth: FloatArray | None,
           *, seed: int) -> LearningPoint:  # fmt: skip
    auc = float(roc_auc_score(y, p))
    oracle = float(roc_auc_score(y, truth)) if truth is not None else None
    return LearningPoint(
        share=share,
        closures=len(train),
        rereferrals=int(train["label"].sum()),
        roc_auc=auc,
        auc_ratio=auc / oracle if oracle else None,
        ece=expected_calibration_error(y, p),
        ece_chance=calibration_chance_bound(p, seed=seed),
    )


def learning_curve(
    split: Split,
    fit: FitResult,
    p_full: FloatArray,
    *,
    seed: int,
    calibration: CalibratorPolicy | None = None,
    shares: tuple[float, ...] = LEARNING_SHARES,
) -> LearningCurve:
    """The recipe refitted on each share (below 1) of the children behind ``split.refit`` and tested on
    ``split.test``; the full share is ``p_full``, this version's own probabilities of the test closures."""
    test = split.test
    y = test["label"].to_numpy(dtype=float)
    truth = test["true_probability"].to_numpy(dtype=float) if "true_probability" in test else None
    truth = truth if truth is not None and np.isfinite(truth).all() else None
    matrix = RiskModel.model_matrix(test)
    in_neglect = neglect_population(matrix)
    refit_place = share_of(split.refit["la_child_id"], seed=seed)
    calibration_place = share_of(split.calibration["la_child_id"], seed=seed)
    points = []
    for share in sorted(shares):
        if share >= 1:
            points.append(_point(1.0, split.refit, y, p_full, truth, seed=seed))
            continue
        train = split.refit[refit_place < share]
        refit = refit_calibrated(train, split.calibration[calibration_place < share],
                                 params=booster_params(fit.params, seed=seed), rounds=fit.best_iteration, seed=seed,
                                 calibration=calibration)  # fmt: skip
        raw = np.asarray(refit.booster.predict(matrix, raw_score=True, num_threads=1), dtype=float)
        points.append(_point(share, train, y, refit.calibrator.apply(raw, in_neglect), truth, seed=seed))
    return LearningCurve(split.test_year, len(test), tuple(points))


def _num(value: float | None) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def learning_rows(curve: LearningCurve | None) -> list[list[str]]:
    """The card's table: share, closures (re-referrals), ROC AUC, share of the oracle's, calibration error (bound)."""
    if curve is None:
        return []
    return [
        [f"{100 * p.share:.0f}%", f"{p.closures:,} ({p.rereferrals:,})", _num(p.roc_auc), _num(p.auc_ratio),
         f"{_num(p.ece)} ({_num(p.ece_chance)})"]
        for p in curve.points
    ]  # fmt: skip
