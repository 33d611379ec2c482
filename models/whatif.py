"""What could still change a score: the model's estimate if one thing the team can act on were different."""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features import AgencyInvolvement, Episode, PlanReview, Service, Visit, edited_row
from models.bundle import RiskModel

__all__ = ["OpenCase", "WhatIf", "what_ifs_of_cases", "withdrawn_changes"]

# The versioned policy file's [whatif] section names the changes checked against the synthetic authority's true
# effects (benchmarks/bench_whatif_truth.py) and found to point the wrong way too often: they are never offered.
_POLICY_FILE = Path(__file__).resolve().parents[1] / "training" / "policy.toml"


@functools.cache
def withdrawn_changes() -> frozenset[str]:
    """The changes the policy withdraws (as a manager reads them, e.g. "If health were involved in the plan")."""
    if not _POLICY_FILE.exists():
        return frozenset()
    section = tomllib.loads(_POLICY_FILE.read_text(encoding="utf-8")).get("whatif", {})
    return frozenset(str(change) for change in section.get("withdrawn", ()))


_SERVICE_NAMES = {
    "parenting_programme": "the parenting programme",
    "counselling": "counselling",
    "family_support": "family support",
    "domestic_abuse_support": "domestic abuse support",
    "substance_misuse_treatment": "substance misuse treatment",
    "parental_mental_health": "the parent's mental health support",
}


@dataclass(frozen=True, slots=True)
class WhatIf:
    change: str  # in a manager's words
    addresses: tuple[str, ...]  # the features pushing the risk up that the change addresses
    probability: float  # the model's estimate with the change
    difference: float  # estimate minus the current probability

    def as_dict(self) -> dict[str, object]:
        return {"change": self.change, "addresses": list(self.addresses), "probability": self.probability,
                "difference": self.difference}  # fmt: skip


# A change: what it is, what it addresses, and the open episode's extension list it edits (its name, its new items).
Edit = Callable[[Episode, dt.date], tuple[str, list[Any]]]
Change = tuple[str, tuple[str, ...], Edit]


def _complete_service(index: int) -> Edit:
    def change(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
        services: list[Any] = list(episode.services or [])
        s = services[index]
        services[index] = Service.model_construct(service=s.service, referred_date=s.referred_date,
                                                  start_date=s.start_date or s.referred_date, end_date=as_of,
                                                  completed=True)  # fmt: skip
        return "services", services

    return change


def _start_promptly(index: int) -> Edit:
    def change(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
        services: list[Any] = list(episode.services or [])
        s = services[index]
        prompt = min(s.referred_date + dt.timedelta(days=14), as_of)
        services[index] = Service.model_construct(service=s.service, referred_date=s.referred_date,
                                                  start_date=prompt, end_date=None, completed=None)  # fmt: skip
        return "services", services

    return change


def _involve_health(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
    involvement = AgencyInvolvement(agency="health", forum="plan_meeting", date=as_of)  # type: ignore[arg-type]
    return "agencies", [*(episode.agencies or []), involvement]


def _health_at_strategy(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
    dates = sorted({a.date for a in episode.agencies or [] if a.forum == "strategy_discussion"})
    added = [AgencyInvolvement(agency="health", forum="strategy_discussion", date=d) for d in dates]  # type: ignore[arg-type]
    return "agencies", [*(episode.agencies or []), *added]


def _visit_now(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
    return "visits", [*(episode.visits or []), Visit(date=as_of, child_seen=True)]


def _goals_met(episode: Episode, as_of: dt.date) -> tuple[str, list[Any]]:
    reviews = episode.plan_reviews or []
    goals = reviews[-1].goals_set if reviews else 4
    return "plan_reviews", [*reviews, PlanReview(date=as_of, goals_set=goals, goals_met=goals)]


def _changes(episode: Episode, raising: set[str], as_of: dt.date) -> list[Change]:
    changes: list[Change] = []
    for i, service in enumerate(episode.services or []):
        if service.referred_date > as_of or (
            service.end_date is not None and service.end_date <= as_of and service.completed
        ):
            continue
        name = _SERVICE_NAMES.get(service.service.value, service.service.value)
        began = service.start_date is not None and service.start_date <= as_of
        wait = ((service.start_date if began and service.start_date else as_of) - service.referred_date).days
        completion = {
            "services_pending",
            "services_not_completed",
            "services_completed",
            "parenting_completed",
            "counselling_completed",
            "parenting_days_waiting",
            "counselling_days_waiting",
            "longest_wait_days",
            "long_waits",
        }
        if raising & completion:
            changes.append((f"If {name} were completed", tuple(sorted(raising & completion)), _complete_service(i)))
        waiting = {"longest_wait_days", "long_waits", "parenting_days_waiting", "counselling_days_waiting"}
        if not began and wait > 14 and raising & waiting:
            changes.append(
                (
                    f"If {name} had started within two weeks of the referral",
                    tuple(sorted(raising & waiting)),
                    _start_promptly(i),
                )
            )
    if episode.agencies is not None:
        partners = {"health_involved", "partner_agencies", "plan_meeting_agencies"}
        if raising & partners and not any(a.agency == "health" and a.date <= as_of for a in episode.agencies):
            changes.append(("If health were involved in the plan", tuple(sorted(raising & partners)), _involve_health))
        if "police_only_strategy" in raising:
            changes.append(
                ("If health had joined the strategy discussion", ("police_only_strategy",), _health_at_strategy)
            )
    seen_today = any(v.date == as_of and v.child_seen for v in episode.visits or [])
    if episode.visits is not None and raising & {"days_since_visit", "visits_90d"} and not seen_today:
        changes.append(
            (
                "If the child were visited and seen today",
                tuple(sorted(raising & {"days_since_visit", "visits_90d"})),
                _visit_now,
            )
        )
    # A change that already holds is no change: the latest review found every goal met already.
    reviewed = sorted((r for r in episode.plan_reviews or [] if r.date <= as_of), key=lambda r: r.date)
    all_met = bool(reviewed) and reviewed[-1].goals_met >= reviewed[-1].goals_set
    if episode.plan_reviews is not None and raising & {"goals_met_share", "goals_met_change"} and not all_met:
        changes.append(
            (
                "If a review today found the plan's goals met",
                tuple(sorted(raising & {"goals_met_share", "goals_met_change"})),
                _goals_met,
            )
        )
    return changes


@dataclass(frozen=True, slots=True)
class OpenCase:
    """A scored open case as the what-ifs need it: its open episode, the date, its feature row, its probability
    and what raises its risk."""

    episode: Episode  # the episode open on ``as_of``
    as_of: dt.date
    row: Sequence[float]  # the case's feature row (``features.feature_rows``)
    probability: float
    raising: frozenset[str]  # the features whose contribution raises the risk


def what_ifs_of_cases(
    model: RiskModel, cases: Sequence[OpenCase | None], *, withdrawn: frozenset[str] | None = None
) -> list[list[WhatIf]]:
    """The what-ifs of each case (none for None), every changed row scored in one batch.

    Each change is made to the case's facts (a service completed, a visit today, health involved, the plan's goals
    met at a review today) and the feature row is edited by the same feature code for the facts changed
    (``features.edited_row``), so every feature the change touches moves together, as if the changed record had been
    scored. Only changes that address something pushing this case's risk up are offered. The result is the model's
    estimate, not a promise of cause and effect. A change the policy withdraws (``withdrawn``, default
    ``withdrawn_changes()``) is not offered.
    """
    skip = withdrawn_changes() if withdrawn is None else withdrawn
    offered: list[tuple[int, str, tuple[str, ...], float]] = []
    changed: list[list[float]] = []
    for number, case in enumerate(cases):
        if case is None:
            continue
        episode, day = case.episode, case.as_of
        for label, addresses, apply in _changes(episode, set(case.raising), day):
            if label in skip:
                continue
            field, items = apply(episode, day)
            changed.append(edited_row(case.row, episode, day, field, items))
            offered.append((number, label, addresses, case.probability))
    out: list[list[WhatIf]] = [[] for _ in cases]
    if not changed:
        return out
    # Only the probability is needed. The explainer's compiled pass gives the raw score LightGBM gives, bit for bit,
    # without LightGBM's per-call set-up (a predictor made for every call: most of a what-if's cost in a request).
    matrix = np.array(changed, dtype=np.float64)
    raw, _ = model.explainer.explain(matrix)
    probabilities = model.calibrated(raw, matrix)
    for (number, label, addresses, now), p in zip(offered, probabilities.tolist(), strict=True):
        out[number].append(WhatIf(change=label, addresses=addresses, probability=p, difference=p - now))
    return [sorted(found, key=lambda w: w.difference) for found in out]
