"""The review of decisions: whether managers weigh the estimate or defer to it, and what the closures of high-band
cases look like, worked out from the audit store alone (outcomes after closure are monitoring's, which joins later
returns).

For each score's current decision: agreement and override rates by band, by team and by group (sex, disability,
ethnic group), each with a 95% Wilson interval; decisions that follow the band or go against it (keeping a low-band
case open, closing a high-band one); closures of high-band cases with their grounds and whether the case was scored
again later; and a flag where a what-if's factors changed in the days just before a closure (a visit or a review
logged to move the estimate rather than for the child).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from audit.rows import DecisionReview, DecisionRow, ScoreRow
from audit.store import AuditStore
from features import Agreement, Band, Decision

__all__ = [
    "CLOSING",
    "WHAT_IF_WINDOW_DAYS",
    "GroupRates",
    "HighBandClosure",
    "Rate",
    "ReviewSummary",
    "WhatIfFlag",
    "review_from_store",
    "summarise_decisions",
]

CLOSING = frozenset({Decision.CLOSE, Decision.STEP_DOWN_EARLY_HELP})
WHAT_IF_WINDOW_DAYS = 14  # "just before closure": what-if factors changed within this many days of the decision
_Z = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    events: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.events / self.n if self.n else None

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """Wilson score 95% interval; (None, None) for no cases."""
        if self.n == 0:
            return None, None
        p, n = self.events / self.n, self.n
        centre = (p + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
        half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / (1 + _Z**2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class GroupRates:
    """One group's decisions: how many were reviewed, and the shares that agreed, judged higher or lower, and went
    against the band."""

    dimension: str
    group: str
    decisions: int
    agree: Rate
    higher: Rate
    lower: Rate
    against_band: Rate


@dataclass(frozen=True)
class WhatIfFlag:
    score_id: str
    decision_id: str
    earlier_score_id: str
    days_before: int
    changed: list[str]  # the what-if factors whose values changed


@dataclass(frozen=True)
class HighBandClosure:
    score: ScoreRow
    decision: DecisionRow
    review: DecisionReview | None
    scored_again: bool  # a later score of the same case: it was open again, or still was


@dataclass
class ReviewSummary:
    decisions: int = 0
    reviewed: int = 0
    by_band: list[GroupRates] = field(default_factory=list)
    by_team: list[GroupRates] = field(default_factory=list)
    by_group: list[GroupRates] = field(default_factory=list)
    follows_band: Rate = field(default_factory=lambda: Rate(0, 0))  # of low- and high-band decisions
    high_band_closures: list[HighBandClosure] = field(default_factory=list)
    high_band_closure_rate: Rate = field(default_factory=lambda: Rate(0, 0))  # of high-band decisions
    what_if_flags: list[WhatIfFlag] = field(default_factory=list)
    grounds: dict[str, Rate] = field(default_factory=dict)  # share of reviewed decisions that weighed each


def against_band(band: Band, decision: Decision) -> bool | None:
    """True when the decision goes against the band (closing a high-band case, keeping a low-band one open); None
    for the medium band, where either is in keeping."""
    if band is Band.HIGH:
        return decision in CLOSING
    if band is Band.LOW:
        return decision is Decision.KEEP_OPEN
    return None


def _groups_of(score: ScoreRow) -> dict[str, str]:
    disability = score.features.get("disability")
    sex = score.features.get("sex")
    return {
        "sex": str(sex) if isinstance(sex, str) else "not recorded",
        "disability": "not recorded" if disability is None else ("yes" if float(disability) >= 0.5 else "no"),
        "ethnic_group": score.ethnic_group or "not recorded",
    }


def _group_of(dimension: str, score: ScoreRow) -> str:
    return _groups_of(score)[dimension]


def _team_of(score: ScoreRow) -> str:
    team = getattr(score, "team", None)  # scores carry the asking team once need-to-know is in place
    return str(team) if team else "all teams (scores carry no team)"


def _rates(
    dimension: str, group: str, items: Sequence[tuple[ScoreRow, DecisionRow, DecisionReview | None]]
) -> GroupRates:
    reviewed = [r for _, _, r in items if r is not None]
    judged = [against_band(s.band, d.decision) for s, d, _ in items]
    judged_known = [j for j in judged if j is not None]
    return GroupRates(
        dimension=dimension,
        group=group,
        decisions=len(items),
        agree=Rate(sum(r.agreement is Agreement.AGREE for r in reviewed), len(reviewed)),
        higher=Rate(sum(r.agreement is Agreement.HIGHER for r in reviewed), len(reviewed)),
        lower=Rate(sum(r.agreement is Agreement.LOWER for r in reviewed), len(reviewed)),
        against_band=Rate(sum(judged_known), len(judged_known)),
    )


def _split(
    items: Iterable[tuple[ScoreRow, DecisionRow, DecisionReview | None]],
    dimension: str,
    key_of: Callable[[ScoreRow], str],
) -> list[GroupRates]:
    groups: dict[str, list[tuple[ScoreRow, DecisionRow, DecisionReview | None]]] = {}
    for item in items:
        groups.setdefault(key_of(item[0]), []).append(item)
    return [_rates(dimension, g, groups[g]) for g in sorted(groups)]


def _what_if_flags(
    closing: Sequence[tuple[ScoreRow, DecisionRow]], by_case: Mapping[str, Sequence[ScoreRow]], window: int
) -> list[WhatIfFlag]:
    flags = []
    for score, decision in closing:
        for earlier in by_case.get(score.case_id, []):
            days = (score.as_of - earlier.as_of).days
            if not 0 < days <= window or not earlier.what_ifs:
                continue
            factors = {str(f) for w in earlier.what_ifs for f in w.get("addresses", []) or []}  # type: ignore[attr-defined]
            changed = sorted(f for f in factors if earlier.features.get(f) != score.features.get(f))
            if changed:
                flags.append(WhatIfFlag(score.id, decision.id, earlier.id, days, changed))
                break
    return flags


def summarise_decisions(
    scores: Sequence[ScoreRow],
    decisions: Mapping[str, DecisionRow],
    reviews: Mapping[str, DecisionReview],
    *,
    window_days: int = WHAT_IF_WINDOW_DAYS,
    since: date | None = None,
) -> ReviewSummary:
    """The review of the current ``decisions`` (by score id) on ``scores``; ``reviews`` by decision id. ``scores``
    should hold every score of the cases decided (earlier ones feed the what-if flag, later ones "scored again")."""
    items = [
        (s, decisions[s.id], reviews.get(decisions[s.id].id))
        for s in scores
        if s.id in decisions and (since is None or decisions[s.id].created_at.date() >= since)
    ]
    by_case: dict[str, list[ScoreRow]] = {}
    for s in sorted(scores, key=lambda s: (s.as_of, s.created_at), reverse=True):
        by_case.setdefault(s.case_id, []).append(s)
    summary = ReviewSummary(decisions=len(items), reviewed=sum(r is not None for _, _, r in items))
    summary.by_band = [_rates("band", b.value, [i for i in items if i[0].band is b]) for b in Band]
    summary.by_team = _split(items, "team", _team_of)
    for dimension in ("sex", "disability", "ethnic_group"):
        summary.by_group.extend(_split(items, dimension, functools.partial(_group_of, dimension)))
    judged = [against_band(s.band, d.decision) for s, d, _ in items]
    known = [j for j in judged if j is not None]
    summary.follows_band = Rate(sum(not j for j in known), len(known))
    high = [(s, d, r) for s, d, r in items if s.band is Band.HIGH]
    closed_high = [(s, d, r) for s, d, r in high if d.decision in CLOSING]
    summary.high_band_closure_rate = Rate(len(closed_high), len(high))
    summary.high_band_closures = [
        HighBandClosure(s, d, r, scored_again=any(later.as_of > s.as_of for later in by_case.get(s.case_id, [])))
        for s, d, r in closed_high
    ]
    closing = [(s, d) for s, d, _ in items if d.decision in CLOSING]
    summary.what_if_flags = _what_if_flags(closing, by_case, window_days)
    reviewed = [r for _, _, r in items if r is not None]
    summary.grounds = {
        name: Rate(sum(bool(getattr(r, name)) for r in reviewed), len(reviewed))
        for name in ("child_voice", "family_strengths", "partner_views", "multi_agency")
    }
    return summary


def review_from_store(store: AuditStore, *, since: date | None = None) -> ReviewSummary:
    """The review of every score's current decision made since ``since`` (default: all), from the store."""
    made = store.decisions_between(since=since)
    chains = store.decisions_of_scores([d.score_id for d in made])
    current = {score_id: chain[-1] for score_id, chain in chains.items() if chain}
    decided = [store.get_score(score_id) for score_id in current]
    scores = store.scores_of_cases([s.case_id for s in decided if s is not None])
    reviews = store.reviews([d.id for d in current.values()])
    return summarise_decisions(scores, current, reviews, since=since)
