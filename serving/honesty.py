"""What the report must say about itself: that the model learned from synthetic data (when it did), that a low
estimate is not a safe closure, the limits of what it predicts, the neglect population's own bands and calibration
for a case in scope, and where a group is too small to judge."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit import ScoreRow
from models import RiskModel

__all__ = ["MIN_GROUP_SIZE", "HonestyView", "honesty_view"]

# Below this many test closures a group's rates and calibration error are not shown: a 30% rate among 100 children
# already has a 95% interval about 18 points wide, and the bootstrap's interval of a calibration error on fewer is
# mostly noise. The report says "too few children like this to judge" instead.
MIN_GROUP_SIZE = 100


@dataclass(frozen=True)
class HonestyView:
    synthetic: bool | None  # None: the model version does not record what it learned from
    in_scope: bool
    neglect_bands: list[tuple[str, int, float]] = field(default_factory=list)  # (band, closures, observed rate)
    neglect_ece: float | None = None
    overall_ece: float | None = None
    min_group: int = MIN_GROUP_SIZE


def honesty_view(row: ScoreRow, model: RiskModel | None) -> HonestyView:
    if model is None:
        return HonestyView(synthetic=None, in_scope=row.in_scope)
    meta = model.metadata
    bands = [(band, int(v["closures"]), float(v["observed_rate"])) for band, v in meta.neglect_bands.items()
             if v.get("closures")]  # fmt: skip
    return HonestyView(
        synthetic=meta.trained_on_synthetic,
        in_scope=row.in_scope,
        neglect_bands=bands,
        # the headline figures: the pooled backtest's where the version has one (both populations from the same one)
        neglect_ece=(meta.backtest_neglect_metrics if meta.backtest_metrics else meta.neglect_metrics)
        .get("ece", {})
        .get("value"),
        overall_ece=(meta.backtest_metrics or meta.test_metrics).get("ece", {}).get("value"),
    )
