"""Point-in-time features: the case exactly as it stood on a date, one row per open episode.

``build_features(records, as_of)`` is the only feature code: training calls it at each closure date, serving
calls it today (or at a given date). For each record the *current episode* is the latest one referred on or
before ``as_of`` that was not closed before ``as_of``; a closure dated ``as_of`` itself is ignored, so a case
seen on the day it closed is the same case a manager would score that day. Every event dated after ``as_of`` is
invisible, nothing about the closure (date, reason) is read, the child's id is never read, and ethnicity is kept
only as an audit column. Extension facts that were not recorded are missing (NaN), never zero.

Each record is read once into a row of a float matrix (categoricals as codes), then the batch becomes one
DataFrame: no per-feature passes over the records.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from features.batching import collector_paused
from features.codes import EthnicGroup, Ethnicity, ethnic_group
from features.record import ChildRecord, Episode
from features.spec import FACTOR_FEATURES, FEATURE_NAMES, FEATURES, FeatureGroup

__all__ = ["KEY_COLUMNS", "FeatureRows", "build_features", "current_episode", "edited_row", "feature_rows"]

KEY_COLUMNS = ("la_child_id", "episode_referral_date", "as_of", "in_scope", "ethnic_group")
NAN = math.nan
_YEAR = 365.25
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_CATEGORY_CODES = {f.name: {c: float(i) for i, c in enumerate(f.categories)} for f in FEATURES if f.categories}
_PARENTAL = frozenset({"4B", "3B", "1B", "2B"})
_FACTOR_COLUMNS = [(_INDEX[name], frozenset(codes)) for name, codes, _, _ in FACTOR_FEATURES]
_ETHNIC_GROUPS = tuple(g.value for g in EthnicGroup)
_GROUP_CODE = {code: _ETHNIC_GROUPS.index(ethnic_group(code)) for code in Ethnicity}


def current_episode(record: ChildRecord, as_of: dt.date) -> int | None:
    """Index of the episode open on ``as_of`` (referred by then, not closed before it), or None."""
    for i in range(len(record.episodes) - 1, -1, -1):
        episode = record.episodes[i]
        if episode.referral_date <= as_of:
            return i if episode.closure_date is None or episode.closure_date >= as_of else None
    return None


def _days(later: dt.date, earlier: dt.date) -> float:
    return float(later.toordinal() - earlier.toordinal())


def _episode_features(row: list[float], e: Episode, as_of: dt.date) -> bool:
    """Fill the current-episode columns; returns whether the episode is in the neglect population."""
    ix = _INDEX
    row[ix["days_open"]] = _days(as_of, e.referral_date)
    row[ix["referral_source"]] = _CATEGORY_CODES["referral_source"][e.referral_source]
    if e.primary_need is not None:
        row[ix["primary_need"]] = _CATEGORY_CODES["primary_need"][e.primary_need]
    row[ix["referral_nfa"]] = float(e.referral_nfa)

    started = [a for a in e.assessments if a.start_date <= as_of]
    authorised = [a for a in started if a.authorisation_date is not None and a.authorisation_date <= as_of]
    row[ix["assessments"]] = float(len(started))
    row[ix["assessment_in_progress"]] = float(len(authorised) < len(started))
    neglect_found = False
    if authorised:
        latest = max(authorised, key=lambda a: a.authorisation_date or a.start_date)
        row[ix["days_since_assessment"]] = _days(as_of, latest.authorisation_date or as_of)
        factors = set(latest.factors)  # StrEnum members hash and compare as their codes
        factors.discard("21")
        row[ix["factor_count"]] = float(len(factors))
        row[ix["parental_factor_count"]] = float(len(factors & _PARENTAL))
        for column, codes in _FACTOR_COLUMNS:
            row[column] = float(not factors.isdisjoint(codes))
        neglect_found = any("16A" in a.factors for a in authorised)
    else:
        row[ix["factor_count"]] = row[ix["parental_factor_count"]] = 0.0
        for column, _ in _FACTOR_COLUMNS:
            row[column] = 0.0

    enquiries = [s for s in e.section47s if s.start_date <= as_of]
    row[ix["section47_enquiries"]] = float(len(enquiries))
    conference = (e.initial_cpc_date is not None and e.initial_cpc_date <= as_of) or any(
        s.icpc_date is not None and s.icpc_date <= as_of for s in enquiries
    )
    row[ix["conference_held"]] = float(conference)

    plans = [c for c in e.protection_plans if c.start_date <= as_of]
    row[ix["protection_plan_in_episode"]] = float(bool(plans))
    row[ix["protection_plan_active"]] = float(any(c.end_date is None or c.end_date > as_of for c in plans))
    neglect_plan = False
    if plans:
        latest_plan = max(plans, key=lambda c: c.start_date)
        row[ix["protection_plan_category"]] = _CATEGORY_CODES["protection_plan_category"][latest_plan.latest_category]
        row[ix["previous_protection_plans"]] = float(max(c.previous_plans for c in plans))
        neglect_plan = any(c.initial_category == "NEG" or c.latest_category == "NEG" for c in plans)
    else:
        row[ix["previous_protection_plans"]] = 0.0
    row[ix["protection_plan_days"]] = sum(
        _days(min(c.end_date, as_of) if c.end_date else as_of, c.start_date) for c in plans
    )
    row[ix["protection_plan_reviews"]] = float(sum(r <= as_of for c in plans for r in c.review_dates))

    cin_plans = [p for p in e.cin_plans if p.start_date <= as_of]
    row[ix["cin_plan_days"]] = sum(
        _days(min(p.end_date, as_of) if p.end_date else as_of, p.start_date) for p in cin_plans
    )
    return neglect_plan or (e.primary_need == "N1" and neglect_found)


def _history_features(row: list[float], history: Sequence[Episode], current: Episode, as_of: dt.date) -> None:
    ix = _INDEX
    row[ix["prior_episodes"]] = float(len(history))
    ages = [as_of.toordinal() - h.referral_date.toordinal() for h in history]
    row[ix["referrals_12m"]] = float(sum(d <= 365 for d in ages))
    row[ix["referrals_24m"]] = float(sum(d <= 730 for d in ages))
    row[ix["referrals_36m"]] = float(sum(d <= 1095 for d in ages))
    rereferrals = 0
    for before, after in pairwise(history):
        if before.closure_date is not None and _days(after.referral_date, before.closure_date) <= 365:
            rereferrals += 1
    row[ix["prior_rereferrals"]] = float(rereferrals)
    last_closure = history[-1].closure_date if history else None
    row[ix["days_since_last_closure"]] = _days(as_of, last_closure) if last_closure else NAN
    row[ix["rereferral_now"]] = float(last_closure is not None and _days(current.referral_date, last_closure) <= 365)
    row[ix["prior_protection_plans"]] = float(sum(bool(h.protection_plans) for h in history))


def _service_features(row: list[float], e: Episode, as_of: dt.date) -> None:
    if e.services is None:
        return  # not recorded: every service column stays NaN
    ix = _INDEX
    offered = completed = pending = dropped = long_waits = 0
    longest = 0.0
    waiting = {"parenting_programme": 0.0, "counselling": 0.0}
    seen = {"parenting_programme": [0.0, 0.0, 0.0], "counselling": [0.0, 0.0, 0.0]}  # offered, started, completed
    for s in e.services:
        if s.referred_date > as_of:
            continue
        offered += 1
        began = s.start_date is not None and s.start_date <= as_of
        ended = s.end_date is not None and s.end_date <= as_of
        wait = _days(s.start_date if began and s.start_date else as_of, s.referred_date)
        longest = max(longest, wait)
        long_waits += wait > 60
        finished = ended and s.completed is True
        completed += finished
        dropped += ended and s.completed is False
        pending += not began
        kind = s.service
        if kind in seen:
            flags = seen[kind]
            flags[0], flags[1] = 1.0, max(flags[1], float(began))
            flags[2] = max(flags[2], float(finished))
            if not began:
                waiting[kind] = max(waiting[kind], wait)
    row[ix["services_offered"]] = float(offered)
    row[ix["services_completed"]] = float(completed)
    row[ix["services_pending"]] = float(pending)
    row[ix["services_not_completed"]] = float(dropped)
    row[ix["longest_wait_days"]] = longest
    row[ix["long_waits"]] = float(long_waits)
    for service, prefix in (("parenting_programme", "parenting"), ("counselling", "counselling")):
        flags = seen[service]
        row[ix[f"{prefix}_offered"]], row[ix[f"{prefix}_started"]], row[ix[f"{prefix}_completed"]] = flags
        row[ix[f"{prefix}_days_waiting"]] = waiting[service]


def _partner_features(row: list[float], e: Episode, as_of: dt.date) -> None:
    if e.agencies is None:
        return
    ix = _INDEX
    involved: set[str] = set()
    at_plans: set[str] = set()
    strategy: dict[dt.date, set[str]] = {}
    for a in e.agencies:
        if a.date > as_of:
            continue
        agency = a.agency
        involved.add(agency)
        forum = a.forum
        if forum == "plan_meeting":
            at_plans.add(agency)
        elif forum == "strategy_discussion":
            strategy.setdefault(a.date, set()).add(agency)
    row[ix["partner_agencies"]] = float(len(involved))
    row[ix["health_involved"]] = float("health" in involved)
    row[ix["education_involved"]] = float("education" in involved)
    row[ix["plan_meeting_agencies"]] = float(len(at_plans))
    row[ix["strategy_discussions"]] = float(len(strategy))
    row[ix["police_only_strategy"]] = float(any(agencies == {"police"} for agencies in strategy.values()))


def _visit_features(row: list[float], e: Episode, as_of: dt.date) -> None:
    if e.visits is None:
        return
    ix = _INDEX
    last: dt.date | None = None
    recent = seen = known = 0
    horizon = as_of.toordinal() - 90
    horizon_day = dt.date.fromordinal(horizon)
    for v in e.visits:
        day = v.date
        if day > as_of:
            continue
        if last is None or day > last:
            last = day
        if day > horizon_day:
            recent += 1
            if v.child_seen is not None:
                known += 1
                seen += v.child_seen
    row[ix["visits_90d"]] = float(recent)
    # No visit yet: the days since the episode began, which is how long the child has gone unvisited.
    row[ix["days_since_visit"]] = _days(as_of, last if last is not None else e.referral_date)
    row[ix["child_seen_share_90d"]] = seen / known if known else NAN


def _progress_features(row: list[float], e: Episode, as_of: dt.date) -> None:
    if e.plan_reviews is None:
        return
    ix = _INDEX
    reviews = sorted((r for r in e.plan_reviews if r.date <= as_of), key=lambda r: r.date)
    row[ix["plan_reviews"]] = float(len(reviews))
    if reviews:
        first, latest = reviews[0], reviews[-1]
        row[ix["goals_met_share"]] = latest.goals_met / latest.goals_set
        row[ix["goals_met_change"]] = latest.goals_met / latest.goals_set - first.goals_met / first.goals_set


def _child_features(row: list[float], record: ChildRecord, as_of: dt.date) -> None:
    ix = _INDEX
    born = record.birth_date or record.expected_birth_date
    row[ix["age_years"]] = _days(as_of, born) / _YEAR if born else NAN
    row[ix["sex"]] = _CATEGORY_CODES["sex"][record.sex]
    if record.disabilities:
        row[ix["disability"]] = float(any(d != "NONE" for d in record.disabilities))


_EXTENSION_GROUPS = {
    "services": (FeatureGroup.SERVICES, _service_features),
    "agencies": (FeatureGroup.PARTNERS, _partner_features),
    "visits": (FeatureGroup.VISITS, _visit_features),
    "plan_reviews": (FeatureGroup.PROGRESS, _progress_features),
}
_GROUP_COLUMNS = {group: [j for j, f in enumerate(FEATURES) if f.group == group] for group in FeatureGroup}


@dataclass(slots=True)
class _EditedEpisode:
    """What the extension features read of an episode, one list replaced."""

    referral_date: dt.date
    services: Any
    agencies: Any
    visits: Any
    plan_reviews: Any


def edited_row(row: Sequence[float], episode: Episode, as_of: dt.date, field: str, items: Sequence[Any]) -> list[float]:
    """The feature row of a case had its open episode's extension list ``field`` been ``items``: that list's
    columns worked out again by the same code, every other column kept (no other feature reads that list)."""
    group, fill = _EXTENSION_GROUPS[field]
    out = list(row)
    for j in _GROUP_COLUMNS[group]:
        out[j] = NAN
    edited = _EditedEpisode(episode.referral_date, episode.services, episode.agencies, episode.visits,
                            episode.plan_reviews)  # fmt: skip
    setattr(edited, field, list(items))
    fill(out, edited, as_of)  # type: ignore[arg-type]  # the fields the extension features read
    return out


def _ensure_sequence(as_of: dt.date | Sequence[dt.date], n: int) -> Sequence[dt.date]:
    if isinstance(as_of, dt.date):
        return [as_of] * n
    if len(as_of) != n:
        raise ValueError(f"as_of has {len(as_of)} dates for {n} records")
    return as_of


@dataclass
class FeatureRows:
    """Rows built for a batch or a slice of it (what a worker process sends back): the model input as a float
    matrix (categoricals as their codes in the specification's order, NaN where missing) and who and when."""

    matrix: np.ndarray[Any, np.dtype[np.float64]]
    child_ids: list[str] = field(default_factory=list)
    referral_dates: list[dt.date] = field(default_factory=list)
    as_of: list[dt.date] = field(default_factory=list)
    in_scope: list[bool] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each row's record: its index in the batch given
    episodes: list[int] = field(default_factory=list)  # each row's open episode: its index in the record

    def __len__(self) -> int:
        return len(self.positions)


def _rows(records: Sequence[ChildRecord], dates: Sequence[dt.date], offset: int = 0) -> FeatureRows:
    width = len(FEATURE_NAMES)
    matrix = np.full((len(records), width), np.nan)
    keep = np.zeros(len(records), dtype=bool)
    block = FeatureRows(matrix)
    for n, (record, when) in enumerate(zip(records, dates, strict=True)):
        index = current_episode(record, when)
        if index is None:
            continue
        episode = record.episodes[index]
        row = [NAN] * width
        _child_features(row, record, when)
        block.in_scope.append(_episode_features(row, episode, when))
        _history_features(row, record.episodes[:index], episode, when)
        _service_features(row, episode, when)
        _partner_features(row, episode, when)
        _visit_features(row, episode, when)
        _progress_features(row, episode, when)
        matrix[n] = row
        keep[n] = True
        block.child_ids.append(record.la_child_id)
        block.referral_dates.append(episode.referral_date)
        block.as_of.append(when)
        block.groups.append(_GROUP_CODE[record.ethnicity])
        block.positions.append(offset + n)
        block.episodes.append(index)
    block.matrix = matrix[keep]
    return block


# The batch a forked worker reads its slice of: inherited through fork, never pickled.
_FORKED: tuple[Sequence[ChildRecord], Sequence[dt.date]] | None = None
PARALLEL_FROM = 50_000  # smaller batches are not worth the processes


def _rows_of_slice(bounds: tuple[int, int]) -> FeatureRows:
    if _FORKED is None:
        raise RuntimeError("no batch was handed to this worker")
    records, dates = _FORKED
    start, stop = bounds
    return _rows(records[start:stop], dates[start:stop], offset=start)


def _rows_in_processes(records: Sequence[ChildRecord], dates: Sequence[dt.date], workers: int) -> list[FeatureRows]:
    global _FORKED
    step = -(-len(records) // (workers * 4))
    bounds = [(start, min(start + step, len(records))) for start in range(0, len(records), step)]
    _FORKED = (records, dates)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_rows_of_slice, bounds))
    finally:
        _FORKED = None


def _frame(blocks: Sequence[FeatureRows]) -> pd.DataFrame:
    matrix = np.concatenate([b.matrix for b in blocks]) if blocks else np.empty((0, len(FEATURE_NAMES)))
    columns: dict[str, object] = {
        "la_child_id": pd.array([i for b in blocks for i in b.child_ids], dtype="string"),
        "episode_referral_date": pd.Series([d for b in blocks for d in b.referral_dates], dtype="object"),
        "as_of": pd.Series([d for b in blocks for d in b.as_of], dtype="object"),
        "in_scope": np.array([x for b in blocks for x in b.in_scope], dtype=bool),
        "ethnic_group": pd.Categorical.from_codes(
            [g for b in blocks for g in b.groups], dtype=pd.CategoricalDtype(list(_ETHNIC_GROUPS))
        ),
    }
    for i, spec in enumerate(FEATURES):
        values = matrix[:, i]
        if spec.kind == "categorical":
            codes = np.where(np.isnan(values), -1, values).astype(np.int64)
            columns[spec.name] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(spec.categories)))
        else:
            columns[spec.name] = values
    return pd.DataFrame(columns)


def build_features(
    records: Sequence[ChildRecord], as_of: dt.date | Sequence[dt.date], *, workers: int = 1
) -> pd.DataFrame:
    """One row per record with an episode open on ``as_of`` (one date for all, or one per record).

    Columns: ``KEY_COLUMNS`` (who and when, never model inputs) then ``FEATURE_NAMES`` in specification order:
    numeric and binary features as float64 (NaN where unknown), categoricals as pandas categoricals with the
    specification's categories. ``workers`` > 1 splits a large batch (``PARALLEL_FROM`` records or more) across
    forked processes, for batch jobs; the result is the same. A server keeps the default of one.
    """
    return _frame(_blocks(records, as_of, workers=workers))


def _blocks(records: Sequence[ChildRecord], as_of: dt.date | Sequence[dt.date], *, workers: int) -> list[FeatureRows]:
    dates = _ensure_sequence(as_of, len(records))
    with collector_paused():
        if workers > 1 and len(records) >= PARALLEL_FROM:
            return _rows_in_processes(records, dates, workers)
        return [_rows(records, dates)]


def feature_rows(
    records: Sequence[ChildRecord], as_of: dt.date | Sequence[dt.date], *, workers: int = 1
) -> FeatureRows:
    """The rows of ``build_features`` without the DataFrame, for the scoring hot path (same values, same order)."""
    blocks = _blocks(records, as_of, workers=workers)
    if len(blocks) == 1:
        return blocks[0]
    return FeatureRows(
        np.concatenate([b.matrix for b in blocks]),
        [i for b in blocks for i in b.child_ids],
        [d for b in blocks for d in b.referral_dates],
        [d for b in blocks for d in b.as_of],
        [x for b in blocks for x in b.in_scope],
        [g for b in blocks for g in b.groups],
        [p for b in blocks for p in b.positions],
        [e for b in blocks for e in b.episodes],
    )
