"""Explanations of ``build_features`` rows, and re-scoring of stored values (every served score goes through assess)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, FEATURES
from models.bundle import FeatureValue, FloatArray, RiskModel

__all__ = ["explain", "rescore_stored", "stored_features"]


def explain(model: RiskModel, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """(base values, contributions) in log-odds: contributions[i, j] is feature j's share of case i's raw score."""
    matrix = RiskModel.model_matrix(frame)
    _, contributions = model.explainer.explain(matrix)
    return np.full(len(matrix), model.explainer.base_value), contributions


def stored_features(row: pd.Series) -> dict[str, FeatureValue]:
    """A case's model input as plain JSON values (NaN and missing categories become None)."""
    out: dict[str, FeatureValue] = {}
    for spec in FEATURES:
        value = row[spec.name]
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            out[spec.name] = None
        elif spec.kind == "categorical":
            out[spec.name] = str(value)
        else:
            out[spec.name] = float(value)
    return out


def rescore_stored(model: RiskModel, features: dict[str, Any]) -> tuple[float, float]:
    """(probability, raw score) of stored model input values: reproduces a stored score with the same model."""
    frame = pd.DataFrame([{name: features.get(name) for name in FEATURE_NAMES}])
    matrix = model.model_matrix(frame)
    raw = model.raw_score_matrix(matrix)
    return float(model.calibrated(raw, matrix)[0]), float(raw[0])
