"""What crosses the audit store's boundary: its rows, as frozen dataclasses typed with the product's vocabulary,
and its errors."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from features import Agreement, Band, Decision, Role

__all__ = [
    "Annotation",
    "ApiKey",
    "DecisionExists",
    "DecisionReview",
    "DecisionRow",
    "KeyNameTaken",
    "QueueRow",
    "ReadKind",
    "ReadRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
    "check_score_row",
    "superseding_order",
    "vocabulary_member",
]

WordT = TypeVar("WordT", bound=StrEnum)
_BANDS = frozenset(Band)


class StoreError(Exception):
    """The audit store could not do what was asked (the database refused or could not be reached)."""


class ScoreNotFound(StoreError):  # noqa: N818 (the API contract's name)
    """No score with that id."""


class KeyNameTaken(ValueError):  # noqa: N818 (reads as what happened, like DecisionExists)
    """Another API key has this name already: names say who decided, so each names one key."""


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
    caller_key: str | None = None  # the id of the API key that asked (None: batch scoring, or before revision 0004)
    case_reference: str | None = None  # the calling system's own reference for the case, opaque (None: not given)
    team: str | None = None  # the team that asked for it (None: before revision 0005); managers see their teams' only


@dataclass(frozen=True)
class DecisionRow:
    id: str
    score_id: str
    created_at: datetime
    decided_by: str
    decision: Decision
    reason: str
    supersedes: str | None
    decided_by_key: str | None = None  # the id of the manager's API key (None: before revision 0004)


@dataclass(frozen=True)
class DecisionReview:
    """How a decision was reached: the manager's view of the estimate, the grounds weighed, and how long the report
    was open before the decision (None: decided through the API, without the page)."""

    agreement: Agreement
    child_voice: bool  # the child's wishes and feelings were heard
    family_strengths: bool  # the family's strengths were weighed
    partner_views: bool  # partner agencies' views were sought
    multi_agency: bool  # a multi-agency discussion was held
    grounds: str = ""  # free text
    report_open_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "agreement", vocabulary_member(Agreement, self.agreement, "agreement"))
        if self.report_open_s is not None and not (math.isfinite(self.report_open_s) and self.report_open_s >= 0):
            raise ValueError("report_open_s must be a finite number of seconds, 0 or more")


@dataclass(frozen=True)
class Annotation:
    """A score marked as based on wrong input: the score itself is never changed."""

    id: str
    score_id: str
    created_at: datetime
    annotated_by: str
    annotated_by_key: str | None
    wrong_inputs: list[str]  # the model inputs that were wrong
    note: str
    rescored_as: str | None  # the score made from the corrected record, when there is one


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    created_by: str | None = None  # the admin key's id, or "command line" (None: before revision 0004)
    revoked_by: str | None = None
    # The team whose cases the key serves, or ``ALL_TEAMS`` ("*", a lead's); None: made before revision 0005, which
    # reads as all teams (revoke such a key and make one with a team).
    team: str | None = None


@dataclass(frozen=True)
class QueueRow:
    """A case's latest score with the case's latest decision on any of its scores (None: undecided), for the
    manager's queue."""

    score: ScoreRow
    decision: Decision | None
    decided_at: datetime | None
    decided_by: str | None = None
    decided_on: str | None = None  # the id of the score the decision was recorded on (maybe an earlier one)


@dataclass(frozen=True)
class UiSession:
    key: ApiKey
    csrf_token: str
    expires_at: datetime

    @property
    def team(self) -> str | None:
        """A session serves its key's team."""
        return self.key.team


class ReadKind(StrEnum):
    """What was read: a stored score (the API), its decisions, its report (page or PDF), or the queue."""

    SCORE = "score"
    DECISIONS = "decisions"
    REPORT = "report"
    REPORT_PDF = "report.pdf"
    QUEUE = "queue"


@dataclass(frozen=True)
class ReadRow:
    """One recorded read: who (the key's id), when, and which score (None for the queue, which lists many)."""

    id: str
    key_id: str
    what: ReadKind
    score_id: str | None
    read_at: datetime


def vocabulary_member(vocabulary: type[WordT], value: str, what: str) -> WordT:
    """``value`` as a member of the vocabulary: callers that ignore the types may hand over a plain string."""
    try:
        return vocabulary(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(vocabulary)}") from None


def check_score_row(row: ScoreRow) -> None:
    if row.created_at.utcoffset() is None:
        raise ValueError(f"score {row.id}: created_at has no time zone")
    for name in ("probability", "raw_score", "base_value"):
        if not math.isfinite(getattr(row, name)):
            raise ValueError(f"score {row.id}: {name} is not a finite number")
    if not 0.0 <= row.probability <= 1.0:
        raise ValueError(f"score {row.id}: probability {row.probability} is outside [0, 1]")
    if row.band not in _BANDS:
        raise ValueError(f"score {row.id}: band {row.band!r} is not one of {', '.join(Band)}")
    for name in ("out_of_distribution", "features", "reasons", "what_ifs", "warnings"):
        try:
            json.dumps(getattr(row, name), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"score {row.id}: {name} is not plain JSON ({exc})") from exc


class _Superseding(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def supersedes(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


_D = TypeVar("_D", bound=_Superseding)


def superseding_order(decisions: Sequence[_D]) -> list[_D]:
    """A score's decisions (rows or records) in the order they superseded each other, first decision first; any the
    constraints should have forbidden follow by time, so a row is never hidden if they were bypassed."""
    by_predecessor = {d.supersedes: d for d in decisions}
    ordered: list[_D] = []
    current = by_predecessor.get(None)
    while current is not None:
        ordered.append(current)
        current = by_predecessor.get(current.id)
    if len(ordered) != len(decisions):
        ordered.extend(sorted((d for d in decisions if d not in ordered), key=lambda d: (d.created_at, d.id)))
    return ordered
