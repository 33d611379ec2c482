"""The audit store's methods for data rights and review: a child's scores found by their pseudonymous case ids,
annotations of scores based on wrong input, the reviews recorded with decisions, and every decision with its score
for the review of decisions. A mixin of :class:`audit.store.AuditStore`, which owns the transactions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from audit.chain import append_to_chain
from audit.rows import Annotation, DecisionReview, DecisionRow, ScoreNotFound, ScoreRow, StoreError
from audit.tables import AnnotationRecord, DecisionRecord, DecisionReviewRecord, ScoreRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["RightsMixin"]

_IN_CHUNK = 500  # keeps every IN list within the drivers' parameter limits
_SCORE_FIELDS = tuple(f.name for f in dataclasses.fields(ScoreRow))
_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(DecisionRow))
_REVIEW_FIELDS = tuple(f.name for f in dataclasses.fields(DecisionReview))
_ANNOTATION_FIELDS = tuple(f.name for f in dataclasses.fields(Annotation))


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), _IN_CHUNK):
        yield unique[start : start + _IN_CHUNK]


class RightsMixin:
    if TYPE_CHECKING:

        def _session(self, *, write: bool = False) -> AbstractContextManager[Session]: ...

    def scores_of_cases(self, case_ids: Sequence[str]) -> list[ScoreRow]:
        """Every score whose pseudonymous case id is one of ``case_ids``, oldest first."""
        out: list[ScoreRow] = []
        with self._session() as session:
            for chunk in _chunks(case_ids):
                records = session.scalars(select(ScoreRecord).where(ScoreRecord.case_id.in_(chunk)))
                out.extend(ScoreRow(**{name: getattr(r, name) for name in _SCORE_FIELDS}) for r in records)
        return sorted(out, key=lambda row: (row.created_at, row.id))

    def decisions_of_scores(self, score_ids: Sequence[str]) -> dict[str, list[DecisionRow]]:
        """Each score's decisions, oldest first (the last is the current one); scores without any are left out."""
        out: dict[str, list[DecisionRow]] = {}
        with self._session() as session:
            for chunk in _chunks(score_ids):
                for record in session.scalars(select(DecisionRecord).where(DecisionRecord.score_id.in_(chunk))):
                    row = DecisionRow(**{name: getattr(record, name) for name in _DECISION_FIELDS})
                    out.setdefault(row.score_id, []).append(row)
        return {score_id: _in_order(rows) for score_id, rows in out.items()}

    def reviews(self, decision_ids: Sequence[str]) -> dict[str, DecisionReview]:
        """The review recorded with each of these decisions that has one (decisions made through the API before
        reviews were kept have none)."""
        out: dict[str, DecisionReview] = {}
        with self._session() as session:
            for chunk in _chunks(decision_ids):
                query = select(DecisionReviewRecord).where(DecisionReviewRecord.decision_id.in_(chunk))
                for record in session.scalars(query):
                    out[record.decision_id] = DecisionReview(**{n: getattr(record, n) for n in _REVIEW_FIELDS})
        return out

    def decisions_between(self, *, since: date | None = None, until: date | None = None) -> list[DecisionRow]:
        """Every decision made in [since, until] (by its UTC date; either end open when None), oldest first."""
        query = select(DecisionRecord).order_by(DecisionRecord.created_at, DecisionRecord.id)
        if since is not None:
            query = query.where(DecisionRecord.created_at >= datetime(since.year, since.month, since.day, tzinfo=UTC))
        if until is not None:
            end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
            query = query.where(DecisionRecord.created_at < end)
        with self._session() as session:
            return [DecisionRow(**{n: getattr(r, n) for n in _DECISION_FIELDS}) for r in session.scalars(query)]

    def annotate_score(
        self,
        score_id: str,
        *,
        annotated_by: str,
        wrong_inputs: Sequence[str],
        note: str,
        rescored_as: str | None = None,
        annotated_by_key: str | None = None,
    ) -> Annotation:
        """Mark a score as based on wrong input: an appended, chained row; the score is never changed.

        ``rescored_as`` names the score made from the corrected record. Raises ScoreNotFound when either score is
        missing, ValueError for a note or input list that says nothing.
        """
        if not note.strip():
            raise ValueError("an annotation needs a note saying what was wrong")
        if not wrong_inputs or any(not name.strip() for name in wrong_inputs):
            raise ValueError("an annotation names the inputs that were wrong")
        row = Annotation(
            id=str(uuid.uuid4()), score_id=score_id, created_at=datetime.now(UTC), annotated_by=annotated_by,
            annotated_by_key=annotated_by_key, wrong_inputs=list(dict.fromkeys(wrong_inputs)), note=note.strip(),
            rescored_as=rescored_as,
        )  # fmt: skip
        try:
            with self._session(write=True) as session:
                for needed in (score_id, rescored_as):
                    if needed is not None and session.get(ScoreRecord, needed) is None:
                        raise ScoreNotFound(needed)
                session.add(AnnotationRecord(**dataclasses.asdict(row)))
                append_to_chain(session.connection(), [("score_annotations", dataclasses.asdict(row))])
        except IntegrityError as exc:
            raise StoreError(f"the annotation of score {score_id} was refused") from exc
        return row

    def annotations(self, score_ids: Sequence[str]) -> dict[str, list[Annotation]]:
        """The annotations of each of these scores that has any, oldest first."""
        out: dict[str, list[Annotation]] = {}
        with self._session() as session:
            for chunk in _chunks(score_ids):
                query = (
                    select(AnnotationRecord)
                    .where(AnnotationRecord.score_id.in_(chunk))
                    .order_by(AnnotationRecord.created_at, AnnotationRecord.id)
                )
                for record in session.scalars(query):
                    out.setdefault(record.score_id, []).append(
                        Annotation(**{n: getattr(record, n) for n in _ANNOTATION_FIELDS})
                    )
        return out


def _in_order(rows: list[DecisionRow]) -> list[DecisionRow]:
    """A score's decisions in the order they superseded each other (as ``AuditStore.decisions``)."""
    by_predecessor = {row.supersedes: row for row in rows}
    ordered: list[DecisionRow] = []
    row = by_predecessor.get(None)
    while row is not None:
        ordered.append(row)
        row = by_predecessor.get(row.id)
    ordered.extend(sorted((r for r in rows if r not in ordered), key=lambda r: (r.created_at, r.id)))
    return ordered
