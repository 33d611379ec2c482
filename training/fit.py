"""Fit the booster (a modest, seeded search with early stopping), the calibrator and the band thresholds.

The booster is kept compact (shallow trees, a few hundred at most) because explanations are computed on every
request and their cost grows with trees and depth. Features whose direction the domain knows are constrained to
move the risk that way only (a completed parenting programme never raises it, all else equal). The calibrator
is fitted on the validation year only, never on test data; its method (Platt or isotonic) is the one with the
lower cross-validated log loss within the validation year.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from features import FEATURES
from models import Calibrator, RiskModel
from training.settings import SearchSpace

__all__ = ["FitResult", "band_thresholds", "fit_booster", "fit_calibrator"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 20,
    "min_data_per_group": 100,
    "monotone_constraints_method": "advanced",
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}


@dataclass
class FitResult:
    booster: lgb.Booster
    params: dict[str, Any]
    best_iteration: int
    validation_log_loss: float
    search: list[dict[str, Any]]


def _monotone_constraints() -> list[int]:
    return [spec.direction if spec.kind != "categorical" else 0 for spec in FEATURES]


def fit_booster(train: pd.DataFrame, validation: pd.DataFrame, *, seed: int, search: SearchSpace) -> FitResult:
    """Try each candidate of ``search`` with early stopping on validation; keep the lowest log loss."""
    x_train, x_valid = RiskModel.model_input(train), RiskModel.model_input(validation)
    y_train, y_valid = train["label"].to_numpy(), validation["label"].to_numpy()
    results: list[dict[str, Any]] = []
    best: FitResult | None = None
    for candidate in search.candidates:
        setting = candidate.model_dump()
        params = {**BASE_PARAMS, **setting, "seed": seed, "monotone_constraints": _monotone_constraints()}
        train_set = lgb.Dataset(x_train, y_train, free_raw_data=False)
        valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set, free_raw_data=False)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=search.max_rounds,
            valid_sets=[valid_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(search.early_stopping, verbose=False)],
        )
        loss = float(booster.best_score["validation"]["binary_logloss"])
        results.append({**setting, "best_iteration": booster.best_iteration, "validation_log_loss": loss})
        if best is None or loss < best.validation_log_loss:
            best = FitResult(booster, {**setting}, booster.best_iteration, loss, results)
    assert best is not None
    # Keep only the trees early stopping chose: smaller bundle, faster explanations.
    trimmed = lgb.Booster(model_str=best.booster.model_to_string(num_iteration=best.best_iteration))
    return FitResult(trimmed, best.params, best.best_iteration, best.validation_log_loss, results)


def _platt(raw: FloatArray, y: FloatArray) -> Calibrator:
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def _isotonic(raw: FloatArray, y: FloatArray) -> Calibrator:
    iso = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(raw, y)
    return Calibrator("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))


_METHODS = {"platt": _platt, "isotonic": _isotonic}


def fit_calibrator(raw: FloatArray, y: FloatArray, *, seed: int) -> tuple[Calibrator, dict[str, float]]:
    """Choose Platt or isotonic by 5-fold log loss within the held-out data, then fit it on all of it."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    for name, fit in _METHODS.items():
        losses = []
        for fit_rows, score_rows in folds.split(raw, y):
            calibrator = fit(raw[fit_rows], y[fit_rows])
            losses.append(log_loss(y[score_rows], calibrator.apply(raw[score_rows]), labels=[0, 1]))
        scores[name] = float(np.mean(losses))
    chosen = min(scores, key=lambda name: scores[name])
    return _METHODS[chosen](raw, y), scores


def band_thresholds(
    p_validation: FloatArray, *, low_share: float = 0.4, high_share: float = 0.2
) -> tuple[float, float]:
    """Probability thresholds so that about ``low_share`` of validation cases are low and ``high_share`` high."""
    low_below, high_from = np.quantile(p_validation, [low_share, 1 - high_share])
    return float(low_below), float(high_from)
