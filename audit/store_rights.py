"""The audit store's methods for data rights and review: a child's scores found by their pseudonymous case ids,
annotations of scores based on wrong input, the reviews recorded with decisions, and every decision with its score
for the review of decisions. A mixin of :class:`audit.store.AuditStore`, which owns the transactions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from audit.chain import append_to_chain
from audit.rows import (
    Annotation,
    DecisionReview,
    DecisionRow,
    ScoreNotFound,
    ScoreRow,
    StoreError,
    superseding_order,
)
from audit.tables import (
    AnnotationRecord,
    ChainRecord,
    DecisionRecord,
    DecisionReviewRecord,
    ScoreReadRecord,
    ScoreRecord,
    TombstoneRecord,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["RightsMixin"]

_IN_CHUNK = 500  # keeps every IN list within the drivers' parameter limits
_SCORE_FIELDS = tuple(f.name for f in dataclasses.fields(ScoreRow))
_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(DecisionRow))
_REVIEW_FIELDS = tuple(f.name for f in dataclasses.fields(DecisionReview))
_ANNOTATION_FIELDS = tuple(f.name for f in dataclasses.fields(Annotation))
# What a score holds, in the order it is deleted: rows referring to others go first.
_ERASE_ORDER = (
    ("decision_reviews", DecisionReviewRecord, DecisionReviewRecord.decision_id),
    ("decisions", DecisionRecord, DecisionRecord.id),
    ("score_annotations", AnnotationRecord, AnnotationRecord.id),
    ("score_reads", ScoreReadRecord, ScoreReadRecord.id),
    ("scores", ScoreRecord, ScoreRecord.id),
)


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), _IN_CHUNK):
        yield unique[start : start + _IN_CHUNK]


class RightsMixin:
    if TYPE_CHECKING:

        def _session(self, *, write: bool = False) -> AbstractContextManager[Session]: ...

        def _score_row(self, record: ScoreRecord) -> ScoreRow: ...

    def scores_of_cases(self, case_ids: Sequence[str]) -> list[ScoreRow]:
        """Every score whose pseudonymous case id is one of ``case_ids``, oldest first."""
        out: list[ScoreRow] = []
        with self._session() as session:
            for chunk in _chunks(case_ids):
                records = session.scalars(select(ScoreRecord).where(ScoreRecord.case_id.in_(chunk)))
                out.extend(self._score_row(r) for r in records)  # the sealed inputs opened (``audit.crypto``)
        return sorted(out, key=lambda row: (row.created_at, row.id))

    def decisions_of_scores(self, score_ids: Sequence[str]) -> dict[str, list[DecisionRow]]:
        """Each score's decisions, oldest first (the last is the current one); scores without any are left out."""
        out: dict[str, list[DecisionRow]] = {}
        with self._session() as session:
            for chunk in _chunks(score_ids):
                for record in session.scalars(select(DecisionRecord).where(DecisionRecord.score_id.in_(chunk))):
                    row = DecisionRow(**{name: getattr(record, name) for name in _DECISION_FIELDS})
                    out.setdefault(row.score_id, []).append(row)
        return {score_id: superseding_order(rows) for score_id, rows in out.items()}

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

    def erase_scores(self, due: Mapping[str, str], *, erased_by: str) -> dict[str, int]:
        """Erase these scores and everything they hold (decisions, their reviews, annotations) under the retention
        schedule: ``due`` maps each score id to the rule that made it due. Each row first gets a chained tombstone
        holding its chain hash, then it is deleted (the triggers let a delete through only under a tombstone), in
        one transaction per chunk of scores: a crash leaves every chunk erased whole or not at all. Returns how many
        rows of each table went."""
        counts: dict[str, int] = {kind: 0 for kind, _, _ in _ERASE_ORDER}
        now = datetime.now(UTC)
        for chunk in _chunks(list(due)):
            with self._session(write=True) as session:
                erased = _erase_chunk(session, {score_id: due[score_id] for score_id in chunk}, erased_by=erased_by,
                                      now=now)  # fmt: skip
            for kind, count in erased.items():
                counts[kind] += count
        return counts


def _erase_chunk(session: Session, due: Mapping[str, str], *, erased_by: str, now: datetime) -> dict[str, int]:
    held = _erasable_rows(session, list(due))
    rows = [(kind, row_id) for kind, row_id, _ in held]
    hashes: dict[tuple[str, str], str] = {}
    for kind in {kind for kind, _ in rows}:
        ids = [row_id for k, row_id in rows if k == kind]
        query = select(ChainRecord.row_id, ChainRecord.row_hash).where(
            ChainRecord.kind == kind, ChainRecord.row_id.in_(ids)
        )
        hashes.update({(kind, str(r.row_id)): str(r.row_hash) for r in session.execute(query)})
    unchained = [f"{kind} {row_id}" for kind, row_id in rows if (kind, row_id) not in hashes]
    if unchained:  # never erase what the chain does not hold: verify would have nothing to prove it by
        raise StoreError(f"not erased: {len(unchained)} rows are not in the chain, first {unchained[0]}")
    tombstones = [
        {"id": str(uuid.uuid4()), "created_at": now, "kind": kind, "row_id": row_id,
         "row_hash": hashes[(kind, row_id)], "rule": due[score_id], "erased_by": erased_by}
        for kind, row_id, score_id in held
    ]  # fmt: skip
    session.execute(insert(TombstoneRecord), tombstones)
    append_to_chain(session.connection(), [("tombstones", t) for t in tombstones])
    counts: dict[str, int] = {}
    for kind, record, key in _ERASE_ORDER:
        ids = [row_id for k, row_id in rows if k == kind]
        if ids:
            session.execute(delete(record).where(key.in_(ids)))
        counts[kind] = len(ids)
    return counts


def _erasable_rows(session: Session, score_ids: list[str]) -> list[tuple[str, str, str]]:
    """(table, row id, score id) of everything these scores hold, dependants first: reviews, decisions,
    annotations, reads, then the scores."""
    decisions = session.execute(
        select(DecisionRecord.id, DecisionRecord.score_id).where(DecisionRecord.score_id.in_(score_ids))
    )
    score_of = {str(d): str(score) for d, score in decisions}
    reviewed = select(DecisionReviewRecord.decision_id).where(DecisionReviewRecord.decision_id.in_(list(score_of)))
    reviews = list(session.scalars(reviewed)) if score_of else []
    notes = session.execute(
        select(AnnotationRecord.id, AnnotationRecord.score_id).where(AnnotationRecord.score_id.in_(score_ids))
    )
    reads = session.execute(
        select(ScoreReadRecord.id, ScoreReadRecord.score_id).where(ScoreReadRecord.score_id.in_(score_ids))
    )
    return [
        *(("decision_reviews", r, score_of[r]) for r in reviews),
        *(("decisions", d, score) for d, score in score_of.items()),
        *(("score_annotations", str(n), str(score)) for n, score in notes),
        *(("score_reads", str(r), str(score)) for r, score in reads),  # who read the child's score: theirs too
        *(("scores", s, s) for s in score_ids),
    ]
