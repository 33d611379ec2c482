"""Score and explain cases with a bundle: the one path the API, the offline scorer and the tests share.

Explanations are exact TreeSHAP contributions (tree-path-dependent), in log-odds, computed by LightGBM itself
(``pred_contrib``): for every case the base value plus the contributions equals the raw score, and they equal
``shap.TreeExplainer`` (a test checks both). A scored case keeps its model input values, so re-scoring the stored
values with the same model version reproduces the score exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, FEATURES, ChildRecord, build_features, current_episode, feature_spec
from models.bundle import FloatArray, RiskModel

__all__ = ["CaseScore", "Reason", "explain", "rescore_stored", "score_frame", "score_records", "stored_features"]

FeatureValue = float | str | None


@dataclass(frozen=True, slots=True)
class Reason:
    feature: str
    label: str
    value: FeatureValue
    contribution: float  # log-odds
    direction: str  # "raises" or "lowers" the risk

    def as_dict(self) -> dict[str, object]:
        return {"feature": self.feature, "label": self.label, "value": self.value,
                "contribution": self.contribution, "direction": self.direction}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CaseScore:
    """A scored case: what the API returns and the audit store keeps."""

    la_child_id: str
    episode_referral_date: dt.date
    as_of: dt.date
    probability: float
    band: str
    band_observed_rate: float | None
    raw_score: float
    base_value: float
    in_scope: bool
    out_of_distribution: list[str]
    features: dict[str, FeatureValue]
    reasons: list[Reason]  # every feature, largest absolute contribution first

    def top(self, k: int | None) -> list[Reason]:
        return self.reasons if k is None else self.reasons[:k]


def explain(model: RiskModel, frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """(base values, contributions) in log-odds: contributions[i, j] is feature j's share of case i's raw score."""
    return _explain_matrix(model, RiskModel.model_matrix(frame))


def _explain_matrix(model: RiskModel, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
    contributions = np.asarray(model.booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=float)
    return contributions[:, -1], contributions[:, :-1]


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


def _reasons(values: dict[str, FeatureValue], contributions: FloatArray) -> list[Reason]:
    order = np.argsort(-np.abs(contributions), kind="stable")
    return [
        Reason(
            feature=FEATURE_NAMES[j],
            label=feature_spec(FEATURE_NAMES[j]).label,
            value=values[FEATURE_NAMES[j]],
            contribution=float(contributions[j]),
            direction="raises" if contributions[j] > 0 else "lowers",
        )
        for j in order
    ]


def score_frame(model: RiskModel, frame: pd.DataFrame) -> list[CaseScore]:
    """Score rows of ``build_features`` output (key columns and features)."""
    if frame.empty:
        return []
    matrix = RiskModel.model_matrix(frame)  # once: the booster reads it twice
    base, contributions = _explain_matrix(model, matrix)
    # The booster's own raw score; base + contributions equals it to rounding (tested).
    raw_score = np.asarray(model.booster.predict(matrix, raw_score=True, num_threads=1), dtype=float)
    probability = model.calibrator.apply(raw_score)
    bands = model.bands.assign(probability)
    scores = []
    for i, (_, row) in enumerate(frame.iterrows()):
        values = stored_features(row)
        scores.append(
            CaseScore(
                la_child_id=str(row["la_child_id"]),
                episode_referral_date=row["episode_referral_date"],
                as_of=row["as_of"],
                probability=float(probability[i]),
                band=str(bands[i]),
                band_observed_rate=model.bands.observed_rate.get(str(bands[i])),
                raw_score=float(raw_score[i]),
                base_value=float(base[i]),
                in_scope=bool(row["in_scope"]),
                out_of_distribution=model.reference.reasons(row),
                features=values,
                reasons=_reasons(values, contributions[i]),
            )
        )
    return scores


def score_records(model: RiskModel, records: Sequence[ChildRecord], as_of: dt.date | Sequence[dt.date],
                  *, workers: int = 1) -> tuple[list[CaseScore], list[int]]:  # fmt: skip
    """Score the episode open on ``as_of`` of each record; also returns the indices of records with none open."""
    frame = build_features(records, as_of, workers=workers)
    dates = [as_of] * len(records) if isinstance(as_of, dt.date) else list(as_of)
    missing = [i for i, (r, d) in enumerate(zip(records, dates, strict=True)) if current_episode(r, d) is None]
    return score_frame(model, frame), missing


def rescore_stored(model: RiskModel, features: dict[str, Any]) -> tuple[float, float]:
    """(probability, raw score) of stored model input values: reproduces a stored score with the same model."""
    frame = pd.DataFrame([{name: features.get(name) for name in FEATURE_NAMES}])
    raw = model.raw_score(frame)
    return float(model.calibrator.apply(raw)[0]), float(raw[0])
