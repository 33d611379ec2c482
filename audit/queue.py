"""The manager's queue as one query: each case's latest score, the case's latest decision, filters, order, a page.

A case is a child's episode (``case_id``): its decision is the latest one recorded on any score of that episode, so
a decision made on one score still shows after the case is scored again. A case reference is searched by its blind
index (``audit.crypto``: the reference is sealed since revision 0010), and in plain among the rows stored before.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Select, func, select

from audit.crypto import normalise_reference
from audit.tables import DecisionRecord, ScoreRecord
from features import Band, Decision

__all__ = ["QueueSort", "queue_select"]


class QueueSort(StrEnum):
    """The queue's orders: every one ends on the score id, so pages never overlap or skip a row."""

    RISK = "risk"  # highest probability first
    SCORED = "scored"  # most recently scored first
    DAYS_OPEN = "days_open"  # open longest first (cases whose start is not recorded last)


def queue_select(
    *,
    band: Band | None = None,
    decision: Decision | Literal["undecided"] | None = None,
    case_reference: str | None = None,
    reference_indexes: Sequence[str] = (),
    sort: QueueSort = QueueSort.RISK,
    teams: frozenset[str] | None = None,
) -> tuple[Select[Any], tuple[Any, ...]]:
    """The query of the queue's rows (score record, decision, decided at, decided by, decided on score) and its
    order; ``None`` filters mean any. ``reference_indexes`` are the blind indexes of ``case_reference`` under every
    inputs key (``InputsCipher.reference_indexes``)."""
    newest_first = (ScoreRecord.as_of.desc(), ScoreRecord.created_at.desc(), ScoreRecord.id.desc())
    ranked = func.row_number().over(partition_by=ScoreRecord.case_id, order_by=newest_first)
    latest = select(ScoreRecord.id, ranked.label("rank")).subquery()
    decided_order = (DecisionRecord.created_at.desc(), DecisionRecord.id.desc())
    episode = (
        select(
            ScoreRecord.case_id,
            DecisionRecord.decision,
            DecisionRecord.created_at,
            DecisionRecord.decided_by,
            DecisionRecord.score_id,
            func.row_number().over(partition_by=ScoreRecord.case_id, order_by=decided_order).label("rank"),
        )
        .join(ScoreRecord, ScoreRecord.id == DecisionRecord.score_id)
        .subquery()
    )
    query = (
        select(ScoreRecord, episode.c.decision, episode.c.created_at, episode.c.decided_by, episode.c.score_id)
        .join(latest, (latest.c.id == ScoreRecord.id) & (latest.c.rank == 1))
        .outerjoin(episode, (episode.c.case_id == ScoreRecord.case_id) & (episode.c.rank == 1))
    )
    if teams is not None:
        query = query.where(ScoreRecord.team.in_(sorted(teams)))
    if band is not None:
        query = query.where(ScoreRecord.band == band)
    if decision == "undecided":
        query = query.where(episode.c.decision.is_(None))
    elif decision is not None:
        query = query.where(episode.c.decision == decision)
    if case_reference is not None:
        plain = sorted({case_reference, normalise_reference(case_reference)})  # rows stored before revision 0010
        query = query.where(
            ScoreRecord.case_reference_index.in_(list(reference_indexes)) | ScoreRecord.case_reference.in_(plain)
        )
    if sort == QueueSort.SCORED:
        order: tuple[Any, ...] = (ScoreRecord.created_at.desc(), ScoreRecord.probability.desc())
    else:  # by risk; by days open, the store sorts the opened rows itself (the inputs are sealed: audit.crypto)
        order = (ScoreRecord.probability.desc(),)
    return query, (*order, ScoreRecord.id)
