"""Point-in-time features for 1,000,000 open cases, against the issue's 30-second budget.

Open cases come from a generated authority, taken at monthly dates over its last three years (so the cases vary
in age, history and progress), and repeated to the requested number. Two baselines are measured in the same run:
the budget (1,000,000 cases in 30 s on this 2-core machine) and the same function called one case at a time
(as a naive per-request path would), on a sample; and the batch path in one process, on a tenth of the cases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time

from features import ChildRecord, build_features, current_episode
from synthetic.cohort import simulate_cohort

BUDGET_S = 30.0
BUDGET_CASES = 1_000_000


def open_cases(records: list[ChildRecord], end: dt.date, months: int) -> tuple[list[ChildRecord], list[dt.date]]:
    cases: list[ChildRecord] = []
    dates: list[dt.date] = []
    for m in range(months):
        day = end - dt.timedelta(days=30 * m)
        for record in records:
            if current_episode(record, day) is not None:
                cases.append(record)
                dates.append(day)
    return cases, dates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=BUDGET_CASES)
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--single-sample", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cohort = simulate_cohort(children=args.children, seed=3, start=2019, end=2025)
    distinct, distinct_dates = open_cases(cohort.records, cohort.window.data_end, months=36)
    repeats = -(-args.cases // len(distinct))
    cases = (distinct * repeats)[: args.cases]
    dates = (distinct_dates * repeats)[: args.cases]

    started = time.perf_counter()
    frame = build_features(cases, dates, workers=args.workers)
    batch_s = time.perf_counter() - started
    started = time.perf_counter()
    one_process = build_features(cases[: args.cases // 10], dates[: args.cases // 10])
    one_process_rate = len(one_process) / (time.perf_counter() - started)

    sample = args.single_sample
    started = time.perf_counter()
    for record, day in zip(cases[:sample], dates[:sample], strict=True):
        build_features([record], day)
    single_s = time.perf_counter() - started

    batch_rate = len(frame) / batch_s
    single_rate = sample / single_s
    budget = BUDGET_S * args.cases / BUDGET_CASES
    print(json.dumps({
        "cases": len(frame),
        "distinct_cases": len(distinct),
        "features": frame.shape[1],
        "batch_s": round(batch_s, 1),
        "batch_cases_per_s": round(batch_rate),
        "workers": args.workers,
        "one_process_cases_per_s": round(one_process_rate),
        "budget_s": budget,
        "batch_ratio_to_budget": round(batch_s / budget, 2),
        "one_at_a_time_cases_per_s": round(single_rate),
        "batch_speedup_over_one_at_a_time": round(batch_rate / single_rate, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
