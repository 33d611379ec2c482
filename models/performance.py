"""How a registered version does in use: the monitoring summary, typed once (built by monitoring, read by serving)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BandInUse",
    "BandOutcome",
    "DecisionInUse",
    "DecisionOutcome",
    "DriftBins",
    "DriftOut",
    "FeatureDrift",
    "MonitoringReport",
    "MonitoringSummary",
]


class BandOutcome(BaseModel):
    band: str
    stated_rate: float | None = Field(description="re-referral rate the band showed on the model's test closures")
    realised_rate: float | None = Field(description="re-referral rate of the scored closures with a known outcome")
    low: float | None = Field(description="Wilson 95% interval of the realised rate")
    high: float | None
    closures: int
    re_referred: int


class DecisionOutcome(BaseModel):
    decision: str
    scores: int
    outcome_known: int
    re_referred: int
    rate: float | None
    pending: int
    still_open: int


class DriftOut(BaseModel):
    feature: str
    psi: float


# What the service shows of a version's latest monitoring run (no docstring: it would change the API's description).
class MonitoringSummary(BaseModel):
    model_name: str
    model_version: str
    run_id: str = Field(description="the MLflow monitoring run")
    report_artifact: str = Field(description="the HTML report, an artifact of the run")
    created_at: str
    period_since: dt.date = Field(description="earliest as_of of the scores monitored")
    period_until: dt.date
    data_end: dt.date = Field(description="reference date of the latest return the outcomes come from")
    scores: int
    cases: int
    outcomes: dict[str, int] = Field(description="known, re_referred, pending (never counted as 0), open, ...")
    calibration_error: float | None = Field(description="realised expected calibration error")
    calibration_error_interval: list[float | None]
    auc: float | None
    auc_interval: list[float | None]
    flag_rate_scored: float | None = Field(description="share of scored cases in the high band")
    bands: list[BandOutcome]
    decisions: list[DecisionOutcome]
    drift_threshold: float
    drift_flags: list[str] = Field(description="features whose PSI is above the threshold")
    largest_drift: DriftOut | None


class BandInUse(BandOutcome):
    stated_on: str = Field(description="which closures the stated rate comes from")
    mean_predicted: float | None


class DecisionInUse(DecisionOutcome):
    low: float | None = Field(description="Wilson 95% interval of the rate")
    high: float | None


class FeatureDrift(DriftOut):
    label: str
    flagged: bool = Field(description="PSI above the threshold")
    moderate: bool = Field(description="PSI between 0.1 and the threshold: worth watching")


class DriftBins(BaseModel):
    bins: list[Any]
    expected: list[float]
    actual: list[float]


class MonitoringReport(MonitoringSummary):
    """The whole monitoring summary: what the service shows, and the detail behind the HTML report."""

    bands: list[BandInUse]  # type: ignore[assignment]  # the same bands, with the report's detail
    decisions: list[DecisionInUse]  # type: ignore[assignment]
    flag_rate_known: float | None = Field(description="share of the closures with a known outcome in the high band")
    evaluation: dict[str, Any] | None = Field(description="training's evaluation on the known outcomes, as JSON")
    fairness: list[dict[str, Any]] = Field(description="training's fairness audit on the known outcomes, by group")
    drift: list[FeatureDrift] = Field(description="every feature's PSI, largest first")
    drift_available: bool = Field(description="the version keeps reference distributions to measure drift against")
    drift_bins: dict[str, DriftBins] = Field(description="the binned distributions of the five largest drifts")

    def summary(self) -> MonitoringSummary:
        """The part the service shows."""
        return MonitoringSummary.model_validate(self.model_dump(include=set(MonitoringSummary.model_fields)))
