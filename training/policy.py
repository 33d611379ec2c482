"""The gate's policy: its thresholds, in one versioned file (``policy.toml``) logged with every run."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from outcomes.disparity import FairnessPolicy

__all__ = [
    "DEFAULT_POLICY_FILE",
    "BaselinePolicy",
    "CalibrationPolicy",
    "CalibratorPolicy",
    "DataPolicy",
    "DeploymentPolicy",
    "GatePolicy",
    "WhatIfPolicy",
    "load_policy",
]

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")


class CalibrationPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_error: float = Field(ge=0)
    max_group_error: float = Field(ge=0)
    min_group_cases: int = Field(ge=1)
    chance_quantile: float = Field(gt=0, lt=1)  # figures reported (card, backtest): a calibrated model's 95%
    chance_draws: int = Field(ge=50)
    slope_low: float = Field(gt=0)
    slope_high: float = Field(gt=0)
    # The gate's checks as one family: the chance that a calibrated model is refused by any of them (Bonferroni)
    family_wise_level: float = Field(default=0.05, gt=0, lt=1)
    tail_draws: int = Field(default=20, ge=1)  # chance draws expected beyond each check's corrected quantile


class CalibratorPolicy(BaseModel):
    """The [calibrator] section: one pooled calibrator, or population-aware calibration for the neglect population."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: Literal["pooled", "neglect"] = "pooled"
    min_cases: int = Field(default=100, ge=1)  # neglect-population calibration rows needed for its own recalibration
    min_events: int = Field(default=20, ge=1)  # ... and re-referrals, and closures without one, among them
    prior_cases: float = Field(default=300.0, ge=0)  # shrinkage toward the pooled calibrator, in cases
    folds: int = Field(default=3, ge=2)  # out-of-fold boosters behind the calibrator's scores, grouped by child
    scarce_rows: int = Field(default=16000, ge=0)  # below this many labelled closures ...
    scarce_folds: int = Field(default=10, ge=2)  # ... this many, each also learning from every other labelled child


class WhatIfPolicy(BaseModel):
    """The [whatif] section: what-ifs withdrawn after the check against the synthetic truth (read by models.whatif)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_direction_right: float = Field(gt=0, le=1)
    withdrawn: tuple[str, ...] = ()


class DataPolicy(BaseModel):
    """The least data the pipeline trains on: below it a model's figures mean nothing, so it refuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_closures: int = Field(ge=0)
    min_rereferrals: int = Field(ge=0)


class DeploymentPolicy(BaseModel):
    """The [deployment] section: when the tool came into use, and the pre-deployment hold-out judged on from then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployed_since: dt.date | None = None  # None: not in use yet (every closure was decided without the tool)
    min_holdout_closures: int = Field(ge=1)


class BaselinePolicy(BaseModel):
    """What the gate does when the booster does not beat the logistic regression beyond chance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when_not_better: Literal["note", "refuse"]


class GatePolicy(BaseModel):
    """The thresholds the gate applies; ``text`` is the file as read, logged verbatim with the run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    calibration: CalibrationPolicy
    data: DataPolicy
    baseline: BaselinePolicy
    calibrator: CalibratorPolicy = CalibratorPolicy()  # the [calibrator] section (pooled where the file has none)
    fairness: FairnessPolicy | None = None  # the [fairness] section: disparities that block or warn
    whatif: WhatIfPolicy | None = None  # the [whatif] section: changes no longer offered
    deployment: DeploymentPolicy | None = None  # the [deployment] section: the pre-deployment hold-out
    text: str = ""

    def with_overrides(self, **thresholds: float | int | None) -> GatePolicy:
        """The policy with the given thresholds of its calibration or data section replaced (those not None)."""
        changed = {k: v for k, v in thresholds.items() if v is not None}
        if not changed:
            return self
        data_fields = set(DataPolicy.model_fields)
        section = {k: "data" if k in data_fields else "calibration" for k in changed}
        note = "".join(f"\n# overridden by a setting: {section[k]}.{k} = {v}" for k, v in changed.items())
        calibration = {k: v for k, v in changed.items() if section[k] == "calibration"}
        data = {k: v for k, v in changed.items() if section[k] == "data"}
        return self.model_copy(
            update={
                "calibration": self.calibration.model_copy(update=calibration),
                "data": self.data.model_copy(update=data),
                "text": self.text + note,
            }
        )

    def with_deployment(self, *, deployed_since: dt.date | None, min_holdout_closures: int | None) -> GatePolicy:
        """The policy with the deployment date or the hold-out's minimum replaced (those not None), noted."""
        changed = {k: v for k, v in (("deployed_since", deployed_since),
                                     ("min_holdout_closures", min_holdout_closures)) if v is not None}  # fmt: skip
        if not changed:
            return self
        base = self.deployment or DeploymentPolicy(min_holdout_closures=min_holdout_closures or 1)
        note = "".join(f"\n# overridden by a setting: deployment.{k} = {v}" for k, v in changed.items())
        return self.model_copy(update={"deployment": base.model_copy(update=changed), "text": self.text + note})


def load_policy(path: Path | None = None) -> GatePolicy:
    """Read the gate policy (the package's ``policy.toml`` unless ``path`` names another)."""
    text = (path or DEFAULT_POLICY_FILE).read_text(encoding="utf-8")
    return GatePolicy.model_validate({**tomllib.loads(text), "text": text})
