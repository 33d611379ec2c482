"""Generate a synthetic authority and write it as a local authority's own data would arrive.

Output folder:
- ``cin_YYYY.xml``: one CIN census return per collection year (valid against the 2025 and 2026 schemas);
- ``extension.jsonl``: the case-management extension, one line per episode that has one;
- ``truth.csv``: every RC7-RC9 closure in the data window with its true probability of re-referral within 365 days and
  the realised outcome (``follow_up_complete`` false where the data end too soon to see it);
- ``manifest.json``: the parameters and the calibration figures of this cohort.
Same seed and parameters, same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sklearn.metrics import roc_auc_score

from features import ChildRecord, census_child, extension_lines, record_as_of, write_census_elements
from synthetic.biases import PlantedBiases
from synthetic.simulate import TruthRow, Window, simulate_children

__all__ = ["Cohort", "CohortSummary", "cohort_figures", "generate_cohort", "simulate_cohort"]

FOLLOW_UP_DAYS = 365
_CHUNK = 2_000


@dataclass
class Cohort:
    records: list[ChildRecord]  # as they stand at the end of the data
    truth: list[TruthRow]  # closures inside the data window
    window: Window


@dataclass(frozen=True)
class CohortSummary:
    out: Path
    children: int
    episodes: int
    open_episodes: int
    files: list[str]
    figures: dict[str, object]


_Kept = tuple[ChildRecord, list[TruthRow]]
_T = TypeVar("_T")


def _simulate_chunk(args: tuple[int, Sequence[int], Window]) -> list[_Kept]:
    """Simulate children by index; keep those a return shows, with their closures inside the data window."""
    seed, indices, window = args
    kept: list[_Kept] = []
    data_start, data_end = window.data_start, window.data_end
    for child in simulate_children(seed, indices, window):
        as_of_end = record_as_of(child.record, data_end)
        if as_of_end is None:
            continue
        # A return holds the episodes open at some point in its year: earlier ones are history the data never
        # shows (they still shaped the child's true risk).
        shown = [e for e in as_of_end.episodes if e.closure_date is None or e.closure_date >= data_start]
        if not shown:
            continue
        truth = [t for t in child.truth if data_start <= t.closure_date <= data_end]
        kept.append((as_of_end.model_copy(update={"episodes": shown}), truth))
    return kept


def simulate_cohort(
    *,
    children: int,
    seed: int,
    start: int,
    end: int,
    workers: int | None = None,
    referral_age_shift_years: float = 0.0,
    biases: PlantedBiases | None = None,
) -> Cohort:
    """Simulate until ``children`` children appear in the returns of ``start``..``end``; keep the first by index.

    ``referral_age_shift_years`` (0: the calibrated authority) moves every child's age at first referral;
    ``biases`` plants biases in one group each (``biases.py``; none by default).

    Children are simulated in fixed chunks of indices and the first ``children`` kept are taken in index order,
    so the cohort is the same whatever the number of workers.
    """
    window = _window(children, start, end, referral_age_shift_years, biases)
    kept = _run_chunks(_simulate_chunk, (window,), children=children, seed=seed, workers=workers)
    return Cohort(records=[r for r, _ in kept], truth=[t for _, rows in kept for t in rows], window=window)


def _window(
    children: int, start: int, end: int, referral_age_shift_years: float, biases: PlantedBiases | None
) -> Window:
    if end < start:
        raise ValueError(f"end year {end} is before start year {start}")
    if children < 1:
        raise ValueError("children must be at least 1")
    return Window(
        start=start, end=end, referral_age_shift_years=referral_age_shift_years, biases=biases or PlantedBiases()
    )


def _run_chunks(
    work: Callable[[tuple[Any, ...]], list[_T]],
    extra: tuple[Any, ...],
    *,
    children: int,
    seed: int,
    workers: int | None,
) -> list[_T]:
    """Run ``work`` over fixed chunks of child indices (in worker processes when there are several chunks) until
    ``children`` items are kept; return the first ``children`` in index order, whatever the number of workers."""
    workers = workers or os.cpu_count() or 1
    kept: list[_T] = []
    next_index = 0
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and children > _CHUNK else None
    try:
        while len(kept) < children:
            # About nine in ten simulated children appear in a return; ask for a little more than is missing.
            wanted = int((children - len(kept)) * 1.15) + 16
            chunks = [(seed, range(i, min(i + _CHUNK, next_index + wanted)), *extra)
                      for i in range(next_index, next_index + wanted, _CHUNK)]  # fmt: skip
            next_index += wanted
            parts = pool.map(work, chunks) if pool else map(work, chunks)
            for part in parts:
                kept.extend(part)
    finally:
        if pool is not None:
            pool.shutdown()
    return kept[:children]


@dataclass(frozen=True, slots=True)
class _Rendered:
    """One kept child as the files hold it, rendered where it was simulated: its ``<Child>`` element in each year's
    return (None where it is absent), its extension lines, its closures and what the figures count."""

    elements: tuple[str | None, ...]
    extension: str
    truth: list[TruthRow]
    counts: _Counts


def _render_chunk(args: tuple[int, Sequence[int], Window]) -> list[_Rendered]:
    """Simulate a chunk and render each kept child for the files, so only text crosses between processes."""
    seed, indices, window = args
    rendered = []
    for record, truth in _simulate_chunk((seed, indices, window)):
        counts = _Counts()
        counts.add_record(record, window.data_start, window.data_end)
        years = range(window.start, window.end + 1)
        elements = tuple(census_child(record, collection_year=year) for year in years)
        rendered.append(_Rendered(elements, "".join(extension_lines(record)), truth, counts))
    return rendered


def _write_truth(truth: Sequence[TruthRow], window: Window, path: Path) -> None:
    last_complete = window.data_end - dt.timedelta(days=FOLLOW_UP_DAYS)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([
            "la_child_id", "referral_date", "closure_date", "closure_reason", "age_at_closure",
            "true_probability", "follow_up_complete", "rereferred_within_365", "next_referral_date",
        ])  # fmt: skip
        for t in sorted(truth, key=lambda t: (t.la_child_id, t.referral_date)):
            complete = t.closure_date <= last_complete
            writer.writerow([
                t.la_child_id, t.referral_date.isoformat(), t.closure_date.isoformat(), t.closure_reason,
                f"{t.age_at_closure:.3f}", f"{t.true_probability:.6f}", int(complete),
                int(t.rereferred_within_365) if complete else "",
                t.next_referral_date.isoformat() if t.next_referral_date and complete else "",
            ])  # fmt: skip


def eligible_truth(cohort: Cohort) -> list[TruthRow]:
    """Closures that count for the label: RC7-RC9, under 17 at closure, a full year of follow-up in the data."""
    return _eligible(cohort.truth, cohort.window)


def _eligible(truth: Sequence[TruthRow], window: Window) -> list[TruthRow]:
    last_complete = window.data_end - dt.timedelta(days=FOLLOW_UP_DAYS)
    return [
        t for t in truth
        if t.closure_reason in ("RC7", "RC8", "RC9") and t.age_at_closure < 17 and t.closure_date <= last_complete
    ]  # fmt: skip


@dataclass
class _Counts:
    """What the calibration figures count in the records, summed over children (so chunks can be added up)."""

    referrals: int = 0
    rereferrals: int = 0
    nfa: int = 0
    closed: int = 0
    short: int = 0
    long: int = 0
    with_factors: int = 0
    plans: int = 0
    subsequent: int = 0
    episodes: int = 0
    open_episodes: int = 0
    factors: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    def add_record(self, record: ChildRecord, start: dt.date, end: dt.date) -> None:
        self.episodes += len(record.episodes)
        self.open_episodes += record.open_episode is not None
        previous_referral: dt.date | None = None
        for e in record.episodes:
            if start <= e.referral_date <= end:
                self.referrals += 1
                self.nfa += e.referral_nfa
                recent = previous_referral is not None and (e.referral_date - previous_referral).days <= 365
                self.rereferrals += recent
            previous_referral = e.referral_date
            if e.closure_date is not None and start <= e.closure_date <= end:
                self.closed += 1
                days = (e.closure_date - e.referral_date).days
                self.short += days <= 91
                self.long += days > 730
            for a in e.assessments:
                if a.authorisation_date and start <= a.authorisation_date <= end and a.factors != ["21"]:
                    self.with_factors += 1
                    self.factors.update(a.factors)
            for c in e.protection_plans:
                if start <= c.start_date <= end:
                    self.plans += 1
                    self.subsequent += c.previous_plans > 0
                    self.categories[str(c.initial_category)] += 1

    def __iadd__(self, other: _Counts) -> _Counts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def _figures(counts: _Counts, truth: Sequence[TruthRow], window: Window) -> dict[str, object]:
    eligible = _eligible(truth, window)
    outcomes = [t.rereferred_within_365 for t in eligible]

    def share(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    c = counts
    return {
        "eligible_closures": len(eligible),
        "rereferral_after_closure_rate": share(sum(outcomes), len(outcomes)),
        "oracle_auc": round(float(roc_auc_score(outcomes, [t.true_probability for t in eligible])), 4)
        if 0 < sum(outcomes) < len(outcomes) else None,
        "referrals": c.referrals,
        "rereferral_rate_of_referrals": share(c.rereferrals, c.referrals),
        "nfa_rate_of_referrals": share(c.nfa, c.referrals),
        "closed_episodes": c.closed,
        "closed_within_3_months": share(c.short, c.closed),
        "closed_after_2_years": share(c.long, c.closed),
        "assessments_with_factors": c.with_factors,
        "factor_prevalence": {code: share(c.factors[code], c.with_factors)
                              for code in ("4B", "3B", "17A", "16A", "1B", "2B", "4A", "18C", "20")},
        "protection_plans": c.plans,
        "protection_plan_category_share": {k: share(v, c.plans) for k, v in sorted(c.categories.items())},
        "protection_plans_subsequent": share(c.subsequent, c.plans),
    }  # fmt: skip


def cohort_figures(cohort: Cohort) -> dict[str, object]:
    """The figures the cohort is calibrated on, computed from the data as written (and the truth)."""
    counts = _Counts()
    for record in cohort.records:
        counts.add_record(record, cohort.window.data_start, cohort.window.data_end)
    return _figures(counts, cohort.truth, cohort.window)


def generate_cohort(
    *,
    children: int,
    seed: int,
    start: int,
    end: int,
    out: Path,
    workers: int | None = None,
    referral_age_shift_years: float = 0.0,
    biases: PlantedBiases | None = None,
) -> CohortSummary:
    """Simulate a cohort and write its returns, extension, truth file and manifest to ``out``.

    The same files, byte for byte, as writing :func:`simulate_cohort`'s records; each child is rendered in the
    process that simulated it, so the writing is shared between workers and no record is copied between them.
    """
    window = _window(children, start, end, referral_age_shift_years, biases)
    kept = _run_chunks(_render_chunk, (window,), children=children, seed=seed, workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, year in enumerate(range(start, end + 1)):
        path = out / f"cin_{year}.xml"
        elements = (element for child in kept if (element := child.elements[i]) is not None)
        write_census_elements(elements, collection_year=year, out=path)
        files.append(path.name)
    with (out / "extension.jsonl").open("w", encoding="utf-8", newline="\n") as extension:
        extension.writelines(child.extension for child in kept)
    truth = [t for child in kept for t in child.truth]
    _write_truth(truth, window, out / "truth.csv")
    files += ["extension.jsonl", "truth.csv", "manifest.json"]
    counts = _Counts()
    for child in kept:
        counts += child.counts
    summary = CohortSummary(
        out=out,
        children=len(kept),
        episodes=counts.episodes,
        open_episodes=counts.open_episodes,
        files=files,
        figures=_figures(counts, truth, window),
    )
    manifest = {
        "generator": "case-closure-risk synthetic local authority",
        "parameters": {"children": children, "seed": seed, "start": start, "end": end}
        | ({"referral_age_shift_years": referral_age_shift_years} if referral_age_shift_years else {})
        | ({"planted_biases": biases.describe()} if biases is not None and biases.active else {}),
        "data_window": {
            "start": window.data_start.isoformat(),
            "end": window.data_end.isoformat(),
        },
        **{k: v for k, v in asdict(summary).items() if k not in ("out", "files")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary
