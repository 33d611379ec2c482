"""The fit stage: booster search, calibrator, band thresholds and reference, from the training and validation years."""

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
from models import Bands, Calibrator, ModelMetadata, Reference, RiskModel
from training.settings import SearchSpace
from training.split import Split

__all__ = ["FitResult", "FittedBundle", "band_thresholds", "fit_booster", "fit_bundle", "fit_calibrator"]

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


@dataclass(frozen=True)
class FitResult:
    """The chosen booster, trimmed to its best iteration, and every candidate's result."""

    booster: lgb.Booster
    params: dict[str, Any]  # the chosen candidate
    best_iteration: int
    validation_log_loss: float
    search: list[dict[str, Any]]  # each candidate with its best iteration and validation log loss


@dataclass(frozen=True)
class FittedBundle:
    """Everything the training and validation years give a bundle: never the test year."""

    fit: FitResult
    calibrator: Calibrator
    calibration_scores: dict[str, float]  # cross-validated log loss of each calibration method
    bands: Bands  # thresholds only: what each band has meant is observed on the test year
    reference: Reference
    split: dict[str, Any]  # ``Split.describe()``

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Calibrated probabilities, exactly as the bundle built from this fit gives them (``RiskModel``)."""
        raw = self.fit.booster.predict(RiskModel.model_matrix(frame), raw_score=True, num_threads=1)
        return self.calibrator.apply(np.asarray(raw, dtype=float))

    def model(self) -> RiskModel:
        """The bundle as fitted, before any test year: bands without observed rates (tests and benchmarks)."""
        metadata = ModelMetadata(split=self.split, params=self.fit.params, trees=self.fit.best_iteration)
        return RiskModel(self.fit.booster, self.calibrator, self.bands, self.reference, metadata)


def fit_bundle(split: Split, *, seed: int, search: SearchSpace) -> FittedBundle:
    """Booster, calibrator, band thresholds and reference from the training and validation years only."""
    fit = fit_booster(split.train, split.validation, seed=seed, search=search)
    y_valid = split.validation["label"].to_numpy().astype(float)
    raw_valid = np.asarray(fit.booster.predict(RiskModel.model_input(split.validation), raw_score=True), dtype=float)
    calibrator, calibration_scores = fit_calibrator(raw_valid, y_valid, seed=seed)
    low_below, high_from = band_thresholds(calibrator.apply(raw_valid))
    return FittedBundle(
        fit=fit,
        calibrator=calibrator,
        calibration_scores=calibration_scores,
        bands=Bands(low_below, high_from),
        reference=Reference.from_frame(split.train),
        split=split.describe(),
    )


def _monotone_constraints() -> list[int]:
    # Features whose direction the domain knows move the risk that way only: a completed parenting programme never
    # raises it, all else equal.
    return [spec.direction if spec.kind != "categorical" else 0 for spec in FEATURES]


def fit_booster(train: pd.DataFrame, validation: pd.DataFrame, *, seed: int, search: SearchSpace) -> FitResult:
    """Try each candidate of ``search`` with early stopping on validation; keep the lowest log loss.

    The search stays small and shallow because explanations are computed on every request and their cost grows
    with trees and depth.
    """
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
    """Choose Platt or isotonic by 5-fold log loss within the held-out data (the validation year, never test data),
    then fit it on all of it."""
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
