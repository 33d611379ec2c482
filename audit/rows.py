"""What crosses the audit store's boundary: its rows, as frozen dataclasses typed with the product's vocabulary,
and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from features import Band, Decision, Role

__all__ = [
    "ApiKey",
    "DecisionExists",
    "DecisionRow",
    "QueueRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
]


class StoreError(Exception):
    """The audit store could not do what was asked (the database refused or could not be reached)."""


class ScoreNotFound(StoreError):  # noqa: N818 (the API contract's name)
    """No score with that id."""


class DecisionExists(StoreError):  # noqa: N818 (the API contract's name)
    """The score already has a current decision and superseding it was not asked for."""


@dataclass(frozen=True)
class ScoreRow:
    id: str
    created_at: datetime  # UTC, timezone-aware
    caller: str
    request_id: str
    model_name: str
    model_version: str
    case_id: str  # pseudonymous, computed by the caller; never a raw LAchildID
    as_of: date
    probability: float
    band: Band
    raw_score: float
    base_value: float
    in_scope: bool
    out_of_distribution: list[str]
    features: dict[str, float | str | None]  # the model's input values for the case
    reasons: list[dict[str, object]]  # every feature's contribution, as given
    # What the model estimates if one actionable thing were different (None: not computed, as before revision 0002).
    what_ifs: list[dict[str, object]] | None = None
    warnings: list[str] | None = None  # what the caller was warned of (None: stored before revision 0002)
    ethnic_group: str | None = None  # for the fairness summary only: never a model input


@dataclass(frozen=True)
class DecisionRow:
    id: str
    score_id: str
    created_at: datetime
    decided_by: str
    decision: Decision
    reason: str
    supersedes: str | None


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class QueueRow:
    """A case's latest score with its current decision (None: undecided), for the manager's queue."""

    score: ScoreRow
    decision: Decision | None
    decided_at: datetime | None


@dataclass(frozen=True)
class UiSession:
    key: ApiKey
    csrf_token: str
    expires_at: datetime
