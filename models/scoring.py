"""Score and explain cases with a bundle: the one path the API, the offline scorer and the tests share.

Explanations are exact TreeSHAP contributions (tree-path-dependent), in log-odds, computed by the bundle's compiled
explainer (``models/treeshap.py``): for every case the base value plus the contributions equals the raw score, and
they equal LightGBM's ``pred_contrib`` and ``shap.TreeExplainer`` (tests check all three). The raw score is the
booster's own, bit for bit. A scored case keeps its model input values, so re-scoring the stored values with the
same model version reproduces the score exactly. Records are scored from a float matrix, without a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, FEATURES, ChildRecord, FeatureRows, current_episode, feature_rows, feature_spec
from models.bundle import FeatureValue, FloatArray, RiskModel

__all__ = [
    "CaseScore",
    "Reason",
    "explain",
    "rescore_stored",
    "score_frame",
    "score_records",
    "stored_features",
]


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
    _, base, contributions = _explain_matrix(model, RiskModel.model_matrix(frame))
    return base, contributions


def _explain_matrix(model: RiskModel, matrix: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(raw scores, base values, contributions) of the rows of a model matrix."""
    raw, contributions = model.explainer.explain(matrix)
    return raw, np.full(len(matrix), model.explainer.base_value), contributions


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


_LABELS = tuple(feature_spec(name).label for name in FEATURE_NAMES)
_CATEGORIES = tuple(spec.categories if spec.kind == "categorical" else None for spec in FEATURES)


def _matrix_values(row: list[float]) -> dict[str, FeatureValue]:
    """``stored_features`` of a model matrix row (categoricals are codes there)."""
    out: dict[str, FeatureValue] = {}
    for name, categories, value in zip(FEATURE_NAMES, _CATEGORIES, row, strict=True):
        if value != value:  # NaN
            out[name] = None
        elif categories is not None:
            out[name] = categories[int(value)]
        else:
            out[name] = value
    return out


def _reasons(values: dict[str, FeatureValue], contributions: FloatArray) -> list[Reason]:
    order = np.argsort(-np.abs(contributions), kind="stable").tolist()
    shares = contributions.tolist()
    return [
        Reason(
            feature=FEATURE_NAMES[j],
            label=_LABELS[j],
            value=values[FEATURE_NAMES[j]],
            contribution=shares[j],
            direction="raises" if shares[j] > 0 else "lowers",
        )
        for j in order
    ]


def _score_rows(model: RiskModel, rows: FeatureRows) -> list[CaseScore]:
    if len(rows.matrix) == 0:
        return []
    raw_score, base, contributions = _explain_matrix(model, rows.matrix)
    probability = model.calibrator.apply(raw_score)
    bands = model.bands.assign(probability).tolist()
    unusual = model.reference.reasons_matrix(rows.matrix)
    scores = []
    for i, (values, p, raw, b) in enumerate(
        zip(rows.matrix.tolist(), probability.tolist(), raw_score.tolist(), base.tolist(), strict=True)
    ):
        features = _matrix_values(values)
        scores.append(
            CaseScore(
                la_child_id=str(rows.child_ids[i]),
                episode_referral_date=rows.referral_dates[i],
                as_of=rows.as_of[i],
                probability=p,
                band=bands[i],
                band_observed_rate=model.bands.observed_rate.get(bands[i]),
                raw_score=raw,
                base_value=b,
                in_scope=bool(rows.in_scope[i]),
                out_of_distribution=unusual[i],
                features=features,
                reasons=_reasons(features, contributions[i]),
            )
        )
    return scores


def score_frame(model: RiskModel, frame: pd.DataFrame) -> list[CaseScore]:
    """Score rows of ``build_features`` output (key columns and features)."""
    rows = FeatureRows(
        RiskModel.model_matrix(frame),
        [str(i) for i in frame["la_child_id"].tolist()],
        frame["episode_referral_date"].tolist(),
        frame["as_of"].tolist(),
        [bool(x) for x in frame["in_scope"].tolist()],
    )
    return _score_rows(model, rows)


def score_records(model: RiskModel, records: Sequence[ChildRecord], as_of: dt.date | Sequence[dt.date],
                  *, workers: int = 1) -> tuple[list[CaseScore], list[int]]:  # fmt: skip
    """Score the episode open on ``as_of`` of each record; also returns the indices of records with none open."""
    rows = feature_rows(records, as_of, workers=workers)
    dates = [as_of] * len(records) if isinstance(as_of, dt.date) else list(as_of)
    missing = [i for i, (r, d) in enumerate(zip(records, dates, strict=True)) if current_episode(r, d) is None]
    return _score_rows(model, rows), missing


def rescore_stored(model: RiskModel, features: dict[str, Any]) -> tuple[float, float]:
    """(probability, raw score) of stored model input values: reproduces a stored score with the same model."""
    frame = pd.DataFrame([{name: features.get(name) for name in FEATURE_NAMES}])
    raw = model.raw_score(frame)
    return float(model.calibrator.apply(raw)[0]), float(raw[0])
