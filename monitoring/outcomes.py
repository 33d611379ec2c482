"""Join stored scores to what later census returns say happened, by pseudonymous case id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audit import DecisionRow, Pseudonymiser, ScoreRow
from features import ChildRecord, Decision, ethnic_group
from outcomes.labels import closure_outcome

__all__ = ["STATUSES", "ScoredOutcome", "join_outcomes"]

# known: closed and labelled; pending: closed, outcome not yet observable; open: not closed by the end of the data;
# excluded_reason / excluded_age: a closure the label does not cover; not_found: the case is not in these returns.
STATUSES = ("known", "pending", "open", "excluded_reason", "excluded_age", "not_found")
_YEAR = 365.25


@dataclass(frozen=True)
class ScoredOutcome:
    score: ScoreRow
    status: str  # one of STATUSES
    label: int | None  # 1 re-referred within 365 days of closure, 0 not; None unless status is "known"
    closure_date: dt.date | None
    closure_reason: str | None
    at_closure: bool  # the last score of this case on or before its closure (or the last one, while open)
    decision: Decision | None  # the score's current decision, if a manager recorded one
    sex: str | None
    ethnic_group: str | None
    disability: float | None
    age_years: float | None


def _age(record: ChildRecord, on: dt.date) -> float | None:
    born = record.birth_date or record.expected_birth_date
    return None if born is None else max(0.0, (on - born).days / _YEAR)


def join_outcomes(
    scores: Sequence[ScoreRow],
    records: Sequence[ChildRecord],
    *,
    data_end: dt.date,
    pseudonymiser: Pseudonymiser,
    decisions: Mapping[str, DecisionRow],
) -> list[ScoredOutcome]:
    """Every score with the outcome of its case as the records show it on ``data_end``.

    The audit store keeps no child identifiers, only ``case_id`` = HMAC(key, LAchildID + episode referral date). With
    the same key the monitor computes the case id of every episode in the newer returns, finds the episode each score
    was about, and applies the training label rules (``outcomes.labels.closure_outcome``: RC7-RC9 closures, child under
    17 at closure, a re-referral within 365 days; a closure with under a year of data after it is *pending*, never 0).
    """
    episodes: dict[str, tuple[ChildRecord, int]] = {}
    for record in records:
        for i, episode in enumerate(record.episodes):
            episodes[pseudonymiser.case_id(record.la_child_id, episode.referral_date)] = (record, i)
    # The score a manager saw when the case closed: the last one of the model version on or before the closure.
    last: dict[tuple[str, str], ScoreRow] = {}
    for score in scores:
        key = (score.model_version, score.case_id)
        found = episodes.get(score.case_id)
        closure = found[0].episodes[found[1]].closure_date if found else None
        if closure is not None and score.as_of > closure:
            continue
        held = last.get(key)
        if held is None or (score.as_of, score.created_at) > (held.as_of, held.created_at):
            last[key] = score
    out: list[ScoredOutcome] = []
    for score in scores:
        decision = decisions.get(score.id)
        at_closure = last.get((score.model_version, score.case_id)) is score
        found = episodes.get(score.case_id)
        if found is None:
            out.append(ScoredOutcome(score, "not_found", None, None, None, at_closure,
                                     decision.decision if decision else None, None, None, None, None))  # fmt: skip
            continue
        record, index = found
        episode = record.episodes[index]
        outcome = closure_outcome(record, index, data_end=data_end)
        status = {"eligible": "known", "censored": "pending"}.get(outcome.status, outcome.status)
        closed = episode.closure_date if status != "open" else None
        out.append(
            ScoredOutcome(
                score=score,
                status=status,
                label=outcome.label if status == "known" else None,
                closure_date=closed,
                closure_reason=episode.closure_reason.value if closed and episode.closure_reason else None,
                at_closure=at_closure,
                decision=decision.decision if decision else None,
                sex=record.sex.value,
                ethnic_group=ethnic_group(record.ethnicity).value,
                disability=float(any(d.value != "NONE" for d in record.disabilities)) if record.disabilities else None,
                age_years=_age(record, score.as_of),
            )
        )
    return out
