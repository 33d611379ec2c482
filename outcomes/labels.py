"""Re-referral labels for closed episodes (DESIGN.md section 1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from features import ChildRecord, ClosureReason

__all__ = [
    "ELIGIBLE_REASONS",
    "FOLLOW_UP_DAYS",
    "ClosureOutcome",
    "LabelSummary",
    "LabelledClosure",
    "closure_outcome",
    "label_closures",
]

ELIGIBLE_REASONS = frozenset({ClosureReason.RC7, ClosureReason.RC8, ClosureReason.RC9})
FOLLOW_UP_DAYS = 365
AGE_LIMIT_YEARS = 17


@dataclass(frozen=True, slots=True)
class LabelledClosure:
    record_index: int
    episode_index: int
    la_child_id: str
    referral_date: dt.date
    closure_date: dt.date
    closure_reason: str
    label: int
    days_to_next_referral: int | None


@dataclass
class LabelSummary:
    """How the closures in the data were counted; every closure is in exactly one bucket."""

    data_end: dt.date
    closures: int = 0
    excluded_reason: int = 0  # RC1-RC6: adoption, death, orders, transfers
    excluded_age: int = 0  # 17 or over at closure
    censored: int = 0  # fewer than 365 days of data after the closure
    eligible: int = 0
    positives: int = 0

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.eligible if self.eligible else None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "data_end": self.data_end.isoformat(), "positive_rate": self.positive_rate}


def birthday(born: dt.date, years: int) -> dt.date:
    """The date ``years`` after ``born`` (29 February falls on 1 March in other years)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return dt.date(born.year + years, 3, 1)


@dataclass(frozen=True, slots=True)
class ClosureOutcome:
    """What the data say about one episode's closure: its status, and its label where it has one.

    status: ``open`` (not closed by the end of the data), ``excluded_reason`` (RC1-RC6), ``excluded_age`` (17 or
    over at closure), ``censored`` (under a full year of data after it: pending, never 0) or ``eligible``.
    """

    status: str
    label: int | None = None
    days_to_next_referral: int | None = None


def closure_outcome(record: ChildRecord, episode_index: int, *, data_end: dt.date) -> ClosureOutcome:
    """The label rules for one episode of a record: the single implementation training and monitoring share.

    A closure counts when a re-referral after it is observable and meaningful: reason RC7 (services ceased), RC8
    (closed after assessment, no further action) or RC9 (closed after assessment, referred to early help), and the
    child under 17 on the closure date, so a full year is seen before they turn 18. Its label is 1 when the same
    child has a new referral dated within 365 days after the closure (day 365 counts, day 366 does not), else 0. A
    closure with less than 365 days of data after it is censored: excluded and counted, never labelled 0.
    """
    episodes = record.episodes
    episode = episodes[episode_index]
    closed, reason = episode.closure_date, episode.closure_reason
    if closed is None or reason is None or closed > data_end:
        return ClosureOutcome("open")
    if reason not in ELIGIBLE_REASONS:
        return ClosureOutcome("excluded_reason")
    born = record.birth_date or record.expected_birth_date
    if born is None or closed >= birthday(born, AGE_LIMIT_YEARS):
        return ClosureOutcome("excluded_age")
    if closed > data_end - dt.timedelta(days=FOLLOW_UP_DAYS):
        return ClosureOutcome("censored")
    # Episodes never overlap, so the next one is the first referral after this closure.
    i = episode_index
    gap = (episodes[i + 1].referral_date - closed).days if i + 1 < len(episodes) else None
    return ClosureOutcome("eligible", int(gap is not None and gap <= FOLLOW_UP_DAYS), gap)


def label_closures(records: Sequence[ChildRecord], *, data_end: dt.date) -> tuple[list[LabelledClosure], LabelSummary]:
    """Every eligible, fully observed closure with its label; and how every closure in the data was counted."""
    summary = LabelSummary(data_end=data_end)
    labelled: list[LabelledClosure] = []
    for r, record in enumerate(records):
        for i, episode in enumerate(record.episodes):
            outcome = closure_outcome(record, i, data_end=data_end)
            if outcome.status == "open":
                continue
            summary.closures += 1
            if outcome.status == "excluded_reason":
                summary.excluded_reason += 1
            elif outcome.status == "excluded_age":
                summary.excluded_age += 1
            elif outcome.status == "censored":
                summary.censored += 1
            else:
                closed, reason, label = episode.closure_date, episode.closure_reason, outcome.label
                if closed is None or reason is None or label is None:  # closure_outcome never says eligible then
                    raise AssertionError(f"record {r} episode {i}: an eligible closure without date, reason or label")
                summary.eligible += 1
                summary.positives += label
                labelled.append(
                    LabelledClosure(
                        record_index=r,
                        episode_index=i,
                        la_child_id=record.la_child_id,
                        referral_date=episode.referral_date,
                        closure_date=closed,
                        closure_reason=reason.value,
                        label=label,
                        days_to_next_referral=outcome.days_to_next_referral,
                    )
                )
    return labelled, summary
