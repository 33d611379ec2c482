"""Generate a large synthetic authority and ingest it back; print the times against the issue's budgets.

Run with ``make bench`` (or ``python -m benchmarks.bench_synthetic --children 100000``). The budgets are the
named baselines: 120 s to generate 100,000 children, 60 s to ingest them back, on a 2-core machine. Printed
ratios are time / budget (below 1 is inside the budget).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from features import ingest
from synthetic import generate_cohort

GENERATE_BUDGET_S = 120.0
INGEST_BUDGET_S = 60.0
BUDGET_CHILDREN = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=BUDGET_CHILDREN)
    parser.add_argument("--seed", type=int, default=20250331)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    scale = args.children / BUDGET_CHILDREN
    with tempfile.TemporaryDirectory(prefix="ccr-bench-") as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        summary = generate_cohort(
            children=args.children, seed=args.seed, start=2016, end=2025, out=out, workers=args.workers
        )
        generate_s = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        started = time.perf_counter()
        result = ingest(sorted(out.glob("cin_*.xml")), extension=out / "extension.jsonl")
        ingest_s = time.perf_counter() - started
    figures = {
        "children": summary.children,
        "episodes": summary.episodes,
        "output_mb": round(size_mb, 1),
        "cores": os.cpu_count(),
        "generate_s": round(generate_s, 1),
        "generate_budget_s": round(GENERATE_BUDGET_S * scale, 1),
        "generate_ratio_to_budget": round(generate_s / (GENERATE_BUDGET_S * scale), 2),
        "ingest_s": round(ingest_s, 1),
        "ingest_budget_s": round(INGEST_BUDGET_S * scale, 1),
        "ingest_ratio_to_budget": round(ingest_s / (INGEST_BUDGET_S * scale), 2),
        "ingest_children_per_s": round(len(result.records) / ingest_s),
        "ingest_problems": len(result.problems),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
