"""Monitoring settings: the serving settings (audit store, pseudonym key, MLflow store) plus the monitor's own."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from serving.settings import ServingSettings

__all__ = ["MonitoringSettings", "get_settings"]


class MonitoringSettings(ServingSettings):
    """Read from the same ``CCR_*`` variables as the service, so the monitor sees the store the service writes."""

    monitoring_experiment: str = Field(
        default="case-closure-risk-monitoring", description="MLflow experiment for monitoring runs"
    )
    artifact_location: str | None = Field(
        default=None, description="where a new experiment keeps its artifacts (MLflow's default: ./mlruns)"
    )
    drift_threshold: float = Field(default=0.25, gt=0, description="a feature's PSI above this is flagged as drift")
    bootstrap: int = Field(default=500, ge=0, description="bootstrap resamples behind every interval")
    seed: int = Field(default=20250331, description="seed of the bootstrap")
    report_dir: str = Field(default="reports", description="folder the HTML monitoring reports are written to")


@lru_cache
def get_settings() -> MonitoringSettings:
    return MonitoringSettings()
