"""A data subject's records: every score about a child, found through the pseudonym key, with its inputs, reasons,
what-ifs, decisions (and how each was reached) and annotations, for a subject access request or a rectification.

The store keeps no child's identifier: a case id is ``HMAC(key, LAchildID, episode referral date)``. So the child's
case ids are worked out for every referral date the child could have had, from 280 days before birth (the census's
earliest referral of an unborn child) or, without a birth date, from ``LOOKBACK_YEARS`` back, to today, and looked
up together. Nothing else is read: another child's scores cannot match, and the export holds only this child's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from audit.pseudonym import Pseudonymiser
from audit.rows import Annotation, DecisionReview, DecisionRow, ReadRow, ScoreRow
from audit.store import AuditStore

__all__ = ["LOOKBACK_YEARS", "SubjectExport", "SubjectScore", "candidate_case_ids", "export_subject"]

UNBORN_DAYS = 280  # DfE rule 8606: a referral at most 280 days before birth
# Without a birth date: a child referred at birth and scored until 18, plus the CIN record schedule's years after
# (records kept to the 25th birthday), with room to spare: about 9,900 ids, well under a second to compute.
LOOKBACK_YEARS = 27
READS_NOTE = "Each score lists who read it (by API key id), when, and what: the score, its decisions or its report."


def candidate_case_ids(
    pseudonymiser: Pseudonymiser, la_child_id: str, *, birth_date: dt.date | None, today: dt.date
) -> tuple[dt.date, list[str]]:
    """The first referral date searched and the case id of every referral date from it to ``today``."""
    if not la_child_id.strip():
        raise ValueError("the child's LAchildID is empty")
    if birth_date is not None and birth_date > today + dt.timedelta(days=UNBORN_DAYS):
        raise ValueError(f"the birth date {birth_date} is more than 280 days after today")
    earliest = dt.date(today.year - LOOKBACK_YEARS, today.month, min(today.day, 28))  # 29 February has no match
    start = birth_date - dt.timedelta(days=UNBORN_DAYS) if birth_date else earliest
    days = (today - start).days + 1
    return start, [pseudonymiser.case_id(la_child_id, start + dt.timedelta(days=i)) for i in range(max(days, 0))]


@dataclass(frozen=True)
class SubjectScore:
    """One score about the child with everything that hangs off it."""

    score: ScoreRow
    decisions: list[DecisionRow]
    reviews: dict[str, DecisionReview]  # by decision id
    annotations: list[Annotation]
    reads: list[ReadRow] = field(default_factory=list)  # who read the score, its decisions or its report; newest first

    @property
    def current_decision(self) -> DecisionRow | None:
        return self.decisions[-1] if self.decisions else None


@dataclass(frozen=True)
class SubjectExport:
    """Everything the store holds about one child. ``subject`` is the identifier asked about: the export goes to the
    requester only, never to a log."""

    subject: str
    searched_from: dt.date
    searched_to: dt.date
    generated_at: dt.datetime
    scores: list[SubjectScore]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The export as plain JSON values (dates as ISO text, vocabulary as its values)."""
        return {
            "subject": self.subject,
            "searched_referral_dates": {"from": self.searched_from.isoformat(), "to": self.searched_to.isoformat()},
            "generated_at": self.generated_at.isoformat(),
            "notes": list(self.notes),
            "scores": [
                {
                    **_plain(asdict(s.score)),
                    "decisions": [
                        {**_plain(asdict(d)), "review": _plain(asdict(s.reviews[d.id])) if d.id in s.reviews else None}
                        for d in s.decisions
                    ],
                    "annotations": [_plain(asdict(a)) for a in s.annotations],
                    "reads": [_plain(asdict(r)) for r in s.reads],
                }
                for s in self.scores
            ],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return str.__str__(value)
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    return value


def export_subject(
    store: AuditStore,
    pseudonymiser: Pseudonymiser,
    la_child_id: str,
    *,
    birth_date: dt.date | None = None,
    today: dt.date | None = None,
) -> SubjectExport:
    """Every score about the child, oldest first, with its decisions, their reviews and its annotations."""
    today = today or dt.date.today()
    start, case_ids = candidate_case_ids(pseudonymiser, la_child_id.strip(), birth_date=birth_date, today=today)
    scores = store.scores_of_cases(case_ids)
    return SubjectExport(
        subject=la_child_id.strip(),
        searched_from=start,
        searched_to=today,
        generated_at=dt.datetime.now(dt.UTC),
        scores=_gathered(store, scores),
        notes=[READS_NOTE],
    )


def _gathered(store: AuditStore, scores: Sequence[ScoreRow]) -> list[SubjectScore]:
    ids = [s.id for s in scores]
    decisions = store.decisions_of_scores(ids)
    reviews = store.reviews([d.id for rows in decisions.values() for d in rows])
    annotations = store.annotations(ids)
    return [
        SubjectScore(
            score=s,
            decisions=decisions.get(s.id, []),
            reviews={d.id: reviews[d.id] for d in decisions.get(s.id, []) if d.id in reviews},
            annotations=annotations.get(s.id, []),
            reads=store.reads(score_id=s.id, limit=100_000),
        )
        for s in scores
    ]
