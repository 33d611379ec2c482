"""The gate's policy: its thresholds, in one versioned file (``policy.toml``) logged with every run."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from outcomes.disparity import FairnessPolicy

__all__ = ["DEFAULT_POLICY_FILE", "CalibrationPolicy", "GatePolicy", "WhatIfPolicy", "load_policy"]

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")


class CalibrationPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_error: float = Field(ge=0)
    max_group_error: float = Field(ge=0)
    min_group_cases: int = Field(ge=1)
    chance_quantile: float = Field(gt=0, lt=1)
    chance_draws: int = Field(ge=50)
    slope_low: float = Field(gt=0)
    slope_high: float = Field(gt=0)


class WhatIfPolicy(BaseModel):
    """The [whatif] section: what-ifs withdrawn after the check against the synthetic truth (read by models.whatif)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_direction_right: float = Field(gt=0, le=1)
    withdrawn: tuple[str, ...] = ()


class GatePolicy(BaseModel):
    """The thresholds the gate applies; ``text`` is the file as read, logged verbatim with the run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    calibration: CalibrationPolicy
    fairness: FairnessPolicy | None = None  # the [fairness] section: disparities that block or warn
    whatif: WhatIfPolicy | None = None  # the [whatif] section: changes no longer offered
    text: str = ""

    def with_overrides(self, **calibration: float | int | None) -> GatePolicy:
        """The policy with the given calibration thresholds replaced (those that are not None)."""
        changed = {k: v for k, v in calibration.items() if v is not None}
        if not changed:
            return self
        note = "".join(f"\n# overridden by a setting: calibration.{k} = {v}" for k, v in changed.items())
        return self.model_copy(
            update={"calibration": self.calibration.model_copy(update=changed), "text": self.text + note}
        )


def load_policy(path: Path | None = None) -> GatePolicy:
    """Read the gate policy (the package's ``policy.toml`` unless ``path`` names another)."""
    text = (path or DEFAULT_POLICY_FILE).read_text(encoding="utf-8")
    return GatePolicy.model_validate({**tomllib.loads(text), "text": text})
