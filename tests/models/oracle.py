"""The training-time way to score, as a test oracle: ``build_features`` as a DataFrame, the booster and LightGBM's own
``pred_contrib`` on it. ``models.assess`` (the serving path, pandas-free) must agree with it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features import FEATURE_NAMES, ChildRecord, build_features, feature_spec
from models import RiskModel, stored_features


@dataclass(frozen=True)
class Expected:
    la_child_id: str
    episode_referral_date: dt.date
    probability: float
    band: str
    raw_score: float
    base_value: float
    in_scope: bool
    out_of_distribution: list[str]
    features: dict[str, float | str | None]
    contributions: dict[str, float]  # LightGBM's pred_contrib, by feature

    def top(self, k: int | None) -> list[str]:
        """The features with the largest absolute contributions, first ``k`` (all for None)."""
        ordered = sorted(FEATURE_NAMES, key=lambda name: -abs(self.contributions[name]))
        return ordered if k is None else ordered[:k]


def expected_scores(model: RiskModel, records: Sequence[ChildRecord], as_of: dt.date) -> list[Expected]:
    frame = build_features(records, as_of)
    x = RiskModel.model_input(frame)
    raw = np.asarray(model.booster.predict(x, raw_score=True), dtype=float)
    contrib = np.asarray(model.booster.predict(x, pred_contrib=True), dtype=float)
    # The neglect population as the features record it, read from the values (not the bundle's codes).
    plan = frame["protection_plan_category"].astype("object") == "NEG"
    need = (frame["primary_need"].astype("object") == "N1") & (frame["factor_neglect"] == 1)
    probability = model.calibrator.apply(raw, (plan | need).to_numpy(dtype=bool))
    bands = model.bands.assign(probability)
    unusual = [model.reference.reasons(row) for _, row in frame.iterrows()]
    return [
        Expected(
            la_child_id=str(frame["la_child_id"].iloc[i]),
            episode_referral_date=frame["episode_referral_date"].iloc[i],
            probability=float(probability[i]),
            band=str(bands[i]),
            raw_score=float(raw[i]),
            base_value=float(contrib[i, -1]),
            in_scope=bool(frame["in_scope"].iloc[i]),
            out_of_distribution=unusual[i],
            features=stored_features(x.iloc[i]),
            contributions={name: float(contrib[i, j]) for j, name in enumerate(FEATURE_NAMES)},
        )
        for i in range(len(frame))
    ]


def labels_of(names: Sequence[str]) -> list[str]:
    return [feature_spec(name).label for name in names]
