"""Training settings: one typed class, read from ``CCR_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.policy import GatePolicy, load_policy

__all__ = ["Candidate", "SearchSpace", "TrainingSettings", "get_settings"]


def _default_tracking_uri() -> str:
    # MLflow's own variable wins, so an existing MLflow set-up is used as it is.
    return os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")


class Candidate(BaseModel):
    """One tree shape the search tries (kept shallow: explanations cost grows with depth and trees)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_leaves: int = Field(ge=2)
    max_depth: int
    min_data_in_leaf: int = Field(ge=1)


class SearchSpace(BaseModel):
    """The booster search: each candidate trained with early stopping on the validation year."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidates: tuple[Candidate, ...] = Field(
        default=(
            Candidate(num_leaves=7, max_depth=3, min_data_in_leaf=100),
            Candidate(num_leaves=7, max_depth=3, min_data_in_leaf=300),
            Candidate(num_leaves=15, max_depth=4, min_data_in_leaf=100),
            Candidate(num_leaves=15, max_depth=4, min_data_in_leaf=300),
            Candidate(num_leaves=31, max_depth=5, min_data_in_leaf=200),
        ),
        min_length=1,
    )
    max_rounds: int = Field(default=800, ge=1, description="most boosting rounds per candidate")
    early_stopping: int = Field(default=50, ge=1, description="rounds without a better validation log loss")


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCR_", env_file=".env", extra="ignore")

    tracking_uri: str = Field(default_factory=_default_tracking_uri, description="MLflow tracking and registry store")
    experiment: str = Field(default="case-closure-risk", description="MLflow experiment for training runs")
    artifact_location: str | None = Field(
        default=None, description="where a new experiment keeps its artifacts (MLflow's default: ./mlruns)"
    )
    seed: int = Field(default=20250331, description="seed for the search, calibration folds and bootstrap")
    bootstrap: int = Field(default=500, ge=50, description="bootstrap resamples for every interval")
    backtest_years: int = Field(
        default=3, ge=0, description="rolling-origin backtest: the last complete years, each tested (0: none)"
    )
    gate_policy_file: Path | None = Field(
        default=None, description="the gate's thresholds (TOML); default: the versioned training/policy.toml"
    )
    # Overrides of single thresholds of the policy file (tests and one-off runs); the logged policy notes them.
    max_calibration_error: float | None = Field(default=None, description="gate: material calibration error")
    max_group_calibration_error: float | None = Field(default=None, description="gate: material group error")
    min_group_cases: int | None = Field(default=None, description="gate: smallest audited group that is gated")
    min_closures: int | None = Field(default=None, description="refuse to train on fewer labelled closures")
    min_rereferrals: int | None = Field(default=None, description="refuse to train on fewer re-referrals")
    deployed_since: dt.date | None = Field(
        default=None,
        description="the day the tool came into use (overrides the policy's [deployment] date): closures decided "
        "before it form the pre-deployment hold-out every new version is judged on",
    )
    min_holdout_closures: int | None = Field(default=None, ge=1, description="gate: smallest hold-out judged on")
    shap_sample: int = Field(default=2000, ge=100, description="test cases explained for global importance")
    ablation: bool = Field(
        default=True, description="refit without sex and disability for the equality impact draft (two more fits)"
    )
    learning_curve: bool = Field(
        default=True,
        description="refit on 25% and 50% of the training children for the card's learning curve (two more fits: "
        "+4.3 s of the default cohort's 29 s of training measured; false leaves it out of the card)",
    )
    paperwork_pdf: bool = Field(default=True, description="print the drafted paperwork to PDF beside its Markdown")
    search: SearchSpace = Field(default_factory=SearchSpace, description="booster search (JSON in CCR_SEARCH)")

    def gate_policy(self) -> GatePolicy:
        """The policy file with this run's overrides applied."""
        return (
            load_policy(self.gate_policy_file)
            .with_overrides(
                max_error=self.max_calibration_error,
                max_group_error=self.max_group_calibration_error,
                min_group_cases=self.min_group_cases,
                min_closures=self.min_closures,
                min_rereferrals=self.min_rereferrals,
            )
            .with_deployment(deployed_since=self.deployed_since, min_holdout_closures=self.min_holdout_closures)
        )


@lru_cache
def get_settings() -> TrainingSettings:
    return TrainingSettings()
