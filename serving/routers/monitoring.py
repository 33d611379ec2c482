"""``GET /v1/model/monitoring``: the served version's latest monitoring summary, and the gauges behind ``/metrics``.

``closure-risk monitor`` logs each summary to MLflow with the model version (``models.registry``); the service only
reads it. ``install_monitoring(app)`` adds the route and points the Prometheus gauges at the same summary.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, Field

from models.registry import latest_monitoring
from serving.deps import AUTH_RESPONSES, Manager, ModelDep
from serving.metrics import MonitoringFigures, ServiceMetrics

__all__ = ["LatestMonitoring", "MonitoringSummary", "install_monitoring", "router"]

router = APIRouter()
# How long /metrics trusts a fetched summary before asking MLflow again (the endpoint always asks).
GAUGE_REFRESH_SECONDS = 300.0


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


def _as_response(summary: dict[str, Any]) -> MonitoringSummary:
    return MonitoringSummary(
        model_name=summary["model_name"],
        model_version=summary["model_version"],
        run_id=summary["run_id"],
        report_artifact=summary["report_artifact"],
        created_at=summary["created_at"],
        period_since=summary["period"]["since"],
        period_until=summary["period"]["until"],
        data_end=summary["data_end"],
        scores=summary["scores"],
        cases=summary["cases"],
        outcomes=summary["outcomes"],
        calibration_error=summary["calibration_error"],
        calibration_error_interval=summary["calibration_error_interval"],
        auc=summary["auc"],
        auc_interval=summary["auc_interval"],
        flag_rate_scored=summary["flag_rate_scored"],
        bands=[BandOutcome(band=b["band"], stated_rate=b["stated_rate"], realised_rate=b["rate"], low=b["low"],
                           high=b["high"], closures=b["n"], re_referred=b["events"]) for b in summary["bands"]],
        decisions=[DecisionOutcome(decision=d["decision"], scores=d["scores"], outcome_known=d["n"],
                                   re_referred=d["events"], rate=d["rate"], pending=d["pending"],
                                   still_open=d["still_open"]) for d in summary["decisions"]],
        drift_threshold=summary["drift_threshold"],
        drift_flags=summary["drift_flags"],
        largest_drift=DriftOut(**summary["largest_drift"]) if summary["largest_drift"] else None,
    )  # fmt: skip


class LatestMonitoring:
    """The latest monitoring summary per registered version, fetched from MLflow and kept for the gauges."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def get(self, version: str, *, max_age: float = 0.0) -> dict[str, Any] | None:
        if not version.isdigit():
            return None  # a local bundle has no registered version to monitor
        with self._lock:
            held = self._held.get(version)
        if held is not None and time.monotonic() - held[0] <= max_age:
            return held[1]
        summary = latest_monitoring(version)
        with self._lock:
            self._held[version] = (time.monotonic(), summary)
        return summary


@router.get(
    "/v1/model/monitoring",
    response_model=MonitoringSummary,
    tags=["model"],
    summary="How the served model is really doing: its latest monitoring summary",
    responses={
        **AUTH_RESPONSES,
        404: {"description": "the served version has no monitoring run yet (or is a local bundle)"},
    },
)
def get_monitoring(model: ModelDep, caller: Manager, request: Request) -> MonitoringSummary:
    if not model.version.isdigit():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"the served model ({model.version}) is a local bundle, not a registered version: it has no monitoring",
        )
    latest: LatestMonitoring = request.app.state.monitoring
    summary = latest.get(model.version)
    if summary is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model version {model.version} has no monitoring run yet: run `closure-risk monitor --returns PATH...` "
            "once later census returns are in",
        )
    return _as_response(summary)


def install_monitoring(app: FastAPI) -> None:
    """Add the monitoring route and point the ``/metrics`` gauges at the served version's latest summary."""
    latest = LatestMonitoring()
    app.state.monitoring = latest
    app.include_router(router)
    metrics: ServiceMetrics = app.state.metrics

    def figures() -> MonitoringFigures | None:
        holder = getattr(app.state, "models", None)
        if holder is None:  # before start-up
            return None
        version = holder.model.version
        summary = latest.get(version, max_age=GAUGE_REFRESH_SECONDS)
        if summary is None:
            return None
        drift = summary.get("largest_drift") or {}
        return MonitoringFigures(version, summary.get("calibration_error"), drift.get("feature"), drift.get("psi"))

    metrics.monitoring.source = figures
