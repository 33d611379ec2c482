"""``GET /v1/model/monitoring`` and the ``/metrics`` gauges: the served version's latest monitoring summary."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, FastAPI, HTTPException, Request, status

from models.performance import MonitoringReport, MonitoringSummary
from models.registry import latest_monitoring
from serving.deps import AUTH_RESPONSES, Manager, ModelDep
from serving.metrics import MonitoringFigures, ServiceMetrics

__all__ = ["LatestMonitoring", "install_monitoring", "router"]

router = APIRouter()
# How long /metrics trusts a fetched summary before asking MLflow again (the endpoint always asks).
GAUGE_REFRESH_SECONDS = 300.0


class LatestMonitoring:
    """The latest monitoring summary per registered version, fetched from MLflow and kept for the gauges."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, MonitoringReport | None]] = {}
        self._lock = threading.Lock()

    def get(self, version: str, *, max_age: float = 0.0) -> MonitoringReport | None:
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
    return summary.summary()


def install_monitoring(app: FastAPI) -> None:
    """Add the monitoring route and point the ``/metrics`` gauges at the served version's latest summary.

    ``closure-risk monitor`` logs each summary to MLflow with the model version (``models.registry``); the service only
    reads it. ``install_monitoring(app)`` adds the route and points the Prometheus gauges at the same summary.
    """
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
        drift = summary.largest_drift
        return MonitoringFigures(
            version, summary.calibration_error, drift.feature if drift else None, drift.psi if drift else None
        )

    metrics.monitoring.source = figures
