"""Batch scoring: ``closure-risk score`` over 1,000,000 open cases, from records to explained scores on disk.

Builds the model the training pipeline registers (the default cohort, ``data/synthetic``, the pipeline's seed) and
saves its bundle; takes the cases open at the end of the data, writes them in the form ``closure-risk ingest
--out`` writes (one child record per line), repeated to ``--cases`` lines, and runs the real command on the file:
read and validate every record, point-in-time features, calibrated score, exact TreeSHAP explanation, top 5
reasons, one JSON line per case written to disk. Baselines in the same run: the issue's target (1,000,000 cases in
60 s on this 2-core machine) and the same command with one process on a tenth of the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 60.0
TARGET_CASES = 1_000_000


def _run(source: Path, out: Path, bundle: Path, as_of: dt.date, workers: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "closure_risk", "score", str(source), "--out", str(out), "--as-of",
               as_of.isoformat(), "--model", str(bundle), "--workers", str(workers)]  # fmt: skip
    started = time.perf_counter()
    summary: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    summary["wall_s"] = round(time.perf_counter() - started, 2)  # with the interpreter's start and the model load
    summary["output_mb"] = round(out.stat().st_size / 1e6, 1)
    return summary


def _steps(model: Any, lines: list[bytes], as_of: dt.date, cases: int = 10_000) -> dict[str, float]:
    """Where a case's time goes, in this process, on ``cases`` of the records: read, score, write."""
    from features import ChildRecord
    from features.batching import collector_paused
    from models import BATCH_FIELDS, assess

    sample = [lines[i % len(lines)] for i in range(cases)]
    model.explainer  # noqa: B018 (built when a model loads, not per batch)
    with collector_paused():  # as the command runs (this process's heap holds the whole training frame)
        started = time.perf_counter()
        records = [ChildRecord.model_validate_json(line) for line in sample]
        validated = time.perf_counter()
        assessed = assess(model, records, as_of, what_ifs=False)
        scored = time.perf_counter()
        for a in assessed.assessments:
            json.dumps(a.to_row(top=5, fields=BATCH_FIELDS), default=str)
        written = time.perf_counter()
    return {
        "validate_record": round((validated - started) / cases * 1e6, 1),
        "features_score_explain": round((scored - validated) / cases * 1e6, 1),
        "json_line": round((written - scored) / cases * 1e6, 1),
        "record_bytes": round(sum(map(len, sample)) / cases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--cases", type=int, default=TARGET_CASES)
    parser.add_argument("--workers", type=int, default=2, help="processes (one per core here)")
    args = parser.parse_args()

    from features import current_episode, ingest
    from training import load_training_frame
    from training.fit import fit_bundle
    from training.settings import TrainingSettings
    from training.split import split_by_time

    built = load_training_frame(args.data)
    as_of = dt.date.fromisoformat(str(built.summary["data_end"]))
    settings = TrainingSettings()
    seed = settings.seed
    model = fit_bundle(split_by_time(built.frame, data_end=as_of, seed=seed), seed=seed, search=settings.search).model()
    records = ingest(sorted(args.data.glob("cin_*.xml")), extension=args.data / "extension.jsonl").records
    lines = [r.model_dump_json(exclude_none=True).encode() + b"\n" for r in records if current_episode(r, as_of)]
    with tempfile.TemporaryDirectory(prefix="ccr-bench-score-") as tmp:
        folder = Path(tmp)
        bundle = folder / "bundle"
        model.save(bundle)
        source, sample = folder / "cases.jsonl", folder / "sample.jsonl"
        with source.open("wb") as out, sample.open("wb") as part:
            for i in range(args.cases):
                out.write(lines[i % len(lines)])
                if i < args.cases // 10:
                    part.write(lines[i % len(lines)])
        print(f"{args.cases:,} cases ({len(lines):,} distinct open cases repeated), "
              f"{source.stat().st_size / 1e9:.2f} GB", flush=True)  # fmt: skip
        steps = _steps(model, lines, as_of)
        print(json.dumps({"microseconds_per_case_in_one_process": steps}), flush=True)
        full = _run(source, folder / "scores.jsonl", bundle, as_of, args.workers)
        print(json.dumps({"full": full}), flush=True)
        one = _run(sample, folder / "sample-scores.jsonl", bundle, as_of, 1)
    per_second = full["cases_per_second"]
    result = {
        "cases": full["scored"],
        "workers": args.workers,
        "seconds": full["seconds"],
        "wall_s": full["wall_s"],
        "cases_per_second": per_second,
        "output_mb": full["output_mb"],
        "baseline_one_process": {
            "cases": one["scored"],
            "seconds": one["seconds"],
            "cases_per_second": one["cases_per_second"],
        },
        "ratio_to_one_process": round(per_second / one["cases_per_second"], 2),
        "microseconds_per_case_in_one_process": steps,
        "target": {"cases": TARGET_CASES, "seconds": TARGET_S},
        "seconds_for_target_cases": round(TARGET_CASES / per_second, 1),
        "ratio_to_target": round(TARGET_CASES / per_second / TARGET_S, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
