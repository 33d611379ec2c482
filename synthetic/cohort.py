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
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from sklearn.metrics import roc_auc_score

from features import ChildRecord, record_as_of, write_census_return, write_extension_jsonl
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
    if end < start:
        raise ValueError(f"end year {end} is before start year {start}")
    if children < 1:
        raise ValueError("children must be at least 1")
    window = Window(
        start=start, end=end, referral_age_shift_years=referral_age_shift_years, biases=biases or PlantedBiases()
    )
    workers = workers or os.cpu_count() or 1
    kept: list[_Kept] = []
    next_index = 0
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and children > _CHUNK else None
    try:
        while len(kept) < children:
            # About nine in ten simulated children appear in a return; ask for a little more than is missing.
            wanted = int((children - len(kept)) * 1.15) + 16
            chunks = [(seed, range(i, min(i + _CHUNK, next_index + wanted)), window)
                      for i in range(next_index, next_index + wanted, _CHUNK)]  # fmt: skip
            next_index += wanted
            parts = pool.map(_simulate_chunk, chunks) if pool else map(_simulate_chunk, chunks)
            for part in parts:
                kept.extend(part)
    finally:
        if pool is not None:
            pool.shutdown()
    kept = kept[:children]
    return Cohort(records=[r for r, _ in kept], truth=[t for _, rows in kept for t in rows], window=window)


def _write_truth(cohort: Cohort, path: Path) -> None:
    last_complete = cohort.window.data_end - dt.timedelta(days=FOLLOW_UP_DAYS)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([
            "la_child_id", "referral_date", "closure_date", "closure_reason", "age_at_closure",
            "true_probability", "follow_up_complete", "rereferred_within_365", "next_referral_date",
        ])  # fmt: skip
        for t in sorted(cohort.truth, key=lambda t: (t.la_child_id, t.referral_date)):
            complete = t.closure_date <= last_complete
            writer.writerow([
                t.la_child_id, t.referral_date.isoformat(), t.closure_date.isoformat(), t.closure_reason,
                f"{t.age_at_closure:.3f}", f"{t.true_probability:.6f}", int(complete),
                int(t.rereferred_within_365) if complete else "",
                t.next_referral_date.isoformat() if t.next_referral_date and complete else "",
            ])  # fmt: skip


def eligible_truth(cohort: Cohort) -> list[TruthRow]:
    """Closures that count for the label: RC7-RC9, under 17 at closure, a full year of follow-up in the data."""
    last_complete = cohort.window.data_end - dt.timedelta(days=FOLLOW_UP_DAYS)
    return [
        t for t in cohort.truth
        if t.closure_reason in ("RC7", "RC8", "RC9") and t.age_at_closure < 17 and t.closure_date <= last_complete
    ]  # fmt: skip


def cohort_figures(cohort: Cohort) -> dict[str, object]:
    """The figures the cohort is calibrated on, computed from the data as written (and the truth)."""
    start, end = cohort.window.data_start, cohort.window.data_end
    eligible = eligible_truth(cohort)
    outcomes = [t.rereferred_within_365 for t in eligible]
    factors: Counter[str] = Counter()
    with_factors = 0
    categories: Counter[str] = Counter()
    plans = subsequent = 0
    closed = short = long = 0
    referrals = rereferrals = nfa = 0
    for record in cohort.records:
        previous_referral: dt.date | None = None
        for e in record.episodes:
            if start <= e.referral_date <= end:
                referrals += 1
                nfa += e.referral_nfa
                recent = previous_referral is not None and (e.referral_date - previous_referral).days <= 365
                rereferrals += recent
            previous_referral = e.referral_date
            if e.closure_date is not None and start <= e.closure_date <= end:
                closed += 1
                days = (e.closure_date - e.referral_date).days
                short += days <= 91
                long += days > 730
            for a in e.assessments:
                if a.authorisation_date and start <= a.authorisation_date <= end and a.factors != ["21"]:
                    with_factors += 1
                    factors.update(a.factors)
            for c in e.protection_plans:
                if start <= c.start_date <= end:
                    plans += 1
                    subsequent += c.previous_plans > 0
                    categories[str(c.initial_category)] += 1

    def share(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    return {
        "eligible_closures": len(eligible),
        "rereferral_after_closure_rate": share(sum(outcomes), len(outcomes)),
        "oracle_auc": round(float(roc_auc_score(outcomes, [t.true_probability for t in eligible])), 4)
        if 0 < sum(outcomes) < len(outcomes) else None,
        "referrals": referrals,
        "rereferral_rate_of_referrals": share(rereferrals, referrals),
        "nfa_rate_of_referrals": share(nfa, referrals),
        "closed_episodes": closed,
        "closed_within_3_months": share(short, closed),
        "closed_after_2_years": share(long, closed),
        "assessments_with_factors": with_factors,
        "factor_prevalence": {code: share(factors[code], with_factors)
                              for code in ("4B", "3B", "17A", "16A", "1B", "2B", "4A", "18C", "20")},
        "protection_plans": plans,
        "protection_plan_category_share": {k: share(v, plans) for k, v in sorted(categories.items())},
        "protection_plans_subsequent": share(subsequent, plans),
    }  # fmt: skip


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
    """Simulate a cohort and write its returns, extension, truth file and manifest to ``out``."""
    cohort = simulate_cohort(
        children=children,
        seed=seed,
        start=start,
        end=end,
        workers=workers,
        referral_age_shift_years=referral_age_shift_years,
        biases=biases,
    )
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for year in range(start, end + 1):
        path = out / f"cin_{year}.xml"
        write_census_return(cohort.records, collection_year=year, out=path)
        files.append(path.name)
    write_extension_jsonl(cohort.records, out / "extension.jsonl")
    _write_truth(cohort, out / "truth.csv")
    files += ["extension.jsonl", "truth.csv", "manifest.json"]
    figures = cohort_figures(cohort)
    summary = CohortSummary(
        out=out,
        children=len(cohort.records),
        episodes=sum(len(r.episodes) for r in cohort.records),
        open_episodes=sum(r.open_episode is not None for r in cohort.records),
        files=files,
        figures=figures,
    )
    manifest = {
        "generator": "case-closure-risk synthetic local authority",
        "parameters": {"children": children, "seed": seed, "start": start, "end": end}
        | ({"referral_age_shift_years": referral_age_shift_years} if referral_age_shift_years else {})
        | ({"planted_biases": biases.describe()} if biases is not None and biases.active else {}),
        "data_window": {
            "start": cohort.window.data_start.isoformat(),
            "end": cohort.window.data_end.isoformat(),
        },
        **{k: v for k, v in asdict(summary).items() if k not in ("out", "files")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary
