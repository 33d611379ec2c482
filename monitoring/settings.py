"""Monitoring settings: the stores the service writes (audit store, pseudonym key, MLflow) plus the monitor's own."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MonitoringSettings", "get_settings"]


def _default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")


class MonitoringSettings(BaseSettings):
    """Read from the same ``CCR_*`` variables as the service, so the monitor sees the store the service writes."""

    model_config = SettingsConfigDict(env_prefix="CCR_", env_file=".env", extra="ignore")

    tracking_uri: str = Field(default_factory=_default_tracking_uri, description="MLflow tracking and registry store")
    database_url: str = Field(default="sqlite:///audit.db", description="audit store (SQLite file or PostgreSQL URL)")
    pseudonym_key_file: str = Field(
        default="var/pseudonym.key", description="the service's secret for pseudonymous case ids (never created here)"
    )
    inputs_key_file: str = Field(
        default="",
        description="the service's key that seals stored score inputs (never created here); empty: inputs.key beside "
        "the pseudonym key",
    )

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

    @property
    def inputs_key_path(self) -> Path:
        """The inputs key's file: as set, else ``inputs.key`` beside the pseudonym key (as the service has it)."""
        return (
            Path(self.inputs_key_file)
            if self.inputs_key_file
            else Path(self.pseudonym_key_file).with_name("inputs.key")
        )


@lru_cache
def get_settings() -> MonitoringSettings:
    return MonitoringSettings()
