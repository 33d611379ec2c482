"""Batch scoring: ``closure-risk score`` over 1,000,000 open cases, from records to explained scores on disk.

Builds the model the training pipeline registers (the default cohort, ``data/synthetic``, the pipeline's seed) and
saves its bundle; takes the cases open at the end of the data and writes them, repeated to ``--cases``, twice: as
``closure-risk ingest --out`` writes them (one child record per JSON line, validated again as it is read) and as
``closure-risk ingest --parquet`` writes them (validated Parquet, read straight into records). Then runs the real
command on each file with ``--workers``: read the records, point-in-time features, calibrated score, exact TreeSHAP
explanation, top 5 reasons, one JSON line per case written to disk. It prints, for each input, the seconds, cases
per second, CPU per case (the command and its workers, from the operating system's accounting of child processes,
start-up and model load included), the machine's load average beside it, and the ratio to the issue's target
(1,000,000 cases in 60 s from JSON lines, in 25 s from validated Parquet, on this 2-core machine); the two outputs
must be byte-identical. ``--baseline`` adds the same command in one process on a tenth of the JSON lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_CASES = 1_000_000
TARGET_S = {"jsonl": 60.0, "parquet": 25.0}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(source: Path, out: Path, bundle: Path, as_of: dt.date, workers: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "closure_risk", "--quiet", "score", str(source), "--out", str(out), "--as-of",
               as_of.isoformat(), "--model", str(bundle), "--workers", str(workers)]  # fmt: skip
    load_before = _load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    summary: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    summary["wall_s"] = round(time.perf_counter() - started, 2)  # with the interpreter's start and the model load
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and its (waited-for) workers
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary["cpu_s"] = round(cpu, 2)
    summary["cpu_us_per_case"] = round(cpu / max(summary["scored"], 1) * 1e6, 1)
    summary["load_average_before"], summary["load_average_after"] = load_before, _load()
    summary["output_mb"] = round(out.stat().st_size / 1e6, 1)
    return summary


def _steps(model: Any, lines: list[bytes], parquet: Path, as_of: dt.date, cases: int = 10_000) -> dict[str, float]:
    """Where a case's CPU goes, in this process, on ``cases`` of the records: read (either way), score, write."""
    from batch.local import encode_row
    from features.batching import collector_paused
    from features.columnar import open_record_file, read_validated
    from features.decode import record_decoder
    from models import BATCH_FIELDS, assess

    sample = [lines[i % len(lines)] for i in range(cases)]
    decode = record_decoder().decode
    found = open_record_file(parquet)
    model.explainer  # noqa: B018 (built when a model loads, not per batch)
    with collector_paused():  # as the command runs
        started = time.process_time()
        records = [decode(line) for line in sample]
        decoded = time.process_time()
        from_parquet: list[Any] = []
        group = 0
        while len(from_parquet) < cases and group < found.row_groups:
            from_parquet.extend(read_validated(found, group))
            group += 1
        read = time.process_time()
        assessed = assess(model, records, as_of, what_ifs=False)
        scored = time.process_time()
        for a in assessed.assessments:
            encode_row(a.to_row(top=5, fields=BATCH_FIELDS))
        written = time.process_time()
    return {
        "read_json_line": round((decoded - started) / cases * 1e6, 1),
        "read_validated_parquet": round((read - decoded) / len(from_parquet) * 1e6, 1),
        "features_score_explain": round((scored - read) / cases * 1e6, 1),
        "json_line_out": round((written - scored) / max(len(assessed.assessments), 1) * 1e6, 1),
        "record_bytes": round(sum(map(len, sample)) / cases),
    }


def _figures(kind: str, run: dict[str, Any]) -> dict[str, Any]:
    per_second = run["cases_per_second"]
    return {
        "input": kind,
        "cases": run["scored"],
        "seconds": run["seconds"],
        "wall_s": run["wall_s"],
        "cases_per_second": per_second,
        "cpu_us_per_case": run["cpu_us_per_case"],
        "cpu_us_per_case_after_startup": run["cpu_us_per_case_after_startup"],
        "load_average_before": run["load_average_before"],
        "load_average_after": run["load_average_after"],
        "target_seconds": TARGET_S[kind],
        "seconds_for_target_cases": round(TARGET_CASES / per_second, 1),
        "ratio_to_target": round(TARGET_CASES / per_second / TARGET_S[kind], 2),
        # what 2 free cores would need at this CPU per case (start-up apart), against the target
        "cpu_bound_seconds_on_2_free_cores": round(TARGET_CASES * run["cpu_us_per_case_after_startup"] / 1e6 / 2, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--cases", type=int, default=TARGET_CASES)
    parser.add_argument("--workers", type=int, default=2, help="processes (one per core here)")
    parser.add_argument("--bundle", type=Path, default=None, help="a saved bundle to use instead of training one")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="with --bundle: its data end")
    parser.add_argument("--work", type=Path, default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--baseline", action="store_true", help="also one process on a tenth of the JSON lines")
    args = parser.parse_args()

    import pyarrow as pa

    from features import current_episode, ingest
    from features.columnar import records_table, write_records_parquet
    from models import RiskModel

    records = ingest(sorted(args.data.glob("cin_*.xml")), extension=args.data / "extension.jsonl").records
    as_of = max(e.referral_date for r in records for e in r.episodes)
    if args.bundle is None:
        from training import load_training_frame
        from training.fit import fit_bundle
        from training.settings import TrainingSettings
        from training.split import split_by_time

        built = load_training_frame(args.data)
        as_of = dt.date.fromisoformat(str(built.summary["data_end"]))
        settings = TrainingSettings()
        split = split_by_time(built.frame, data_end=as_of, seed=settings.seed)
        model = fit_bundle(split, seed=settings.seed, search=settings.search).model()
    else:
        model = RiskModel.load(args.bundle)
        data_end = args.as_of or model.metadata.data_end
        if data_end is None:
            parser.error("--bundle needs --as-of: the bundle does not say where its data ends")
        as_of = dt.date.fromisoformat(str(data_end))
    open_records = [r for r in records if current_episode(r, as_of) is not None]
    lines = [r.model_dump_json(exclude_none=True).encode() + b"\n" for r in open_records]
    with tempfile.TemporaryDirectory(prefix="ccr-bench-score-", dir=args.work) as tmp:
        folder = Path(tmp)
        bundle = folder / "bundle"
        model.save(bundle)
        source, parquet, sample = folder / "cases.jsonl", folder / "cases.parquet", folder / "sample.jsonl"
        with source.open("wb") as out, sample.open("wb") as part:
            for i in range(args.cases):
                out.write(lines[i % len(lines)])
                if i < args.cases // 10:
                    part.write(lines[i % len(lines)])
        distinct = records_table(open_records)
        whole, rest = divmod(args.cases, len(open_records))
        write_records_parquet(pa.concat_tables([distinct] * whole + [distinct.slice(0, rest)]), parquet)
        sizes = f"JSON lines {source.stat().st_size / 1e9:.2f} GB, Parquet {parquet.stat().st_size / 1e9:.3f} GB"
        print(f"{args.cases:,} cases ({len(lines):,} distinct open cases repeated): {sizes}", flush=True)
        steps = _steps(model, lines, parquet, as_of)
        print(json.dumps({"cpu_microseconds_per_case_in_one_process": steps}), flush=True)
        few = folder / "few.jsonl"  # start-up, imports and the model's load: the fixed CPU of each run
        few.write_bytes(b"".join(lines[:100]))
        startup = _run(few, folder / "scores-few.jsonl", bundle, as_of, args.workers)
        print(json.dumps({"startup_100_cases": startup}), flush=True)
        runs = {}
        for kind, path in (("jsonl", source), ("parquet", parquet)):
            runs[kind] = _run(path, folder / f"scores-{kind}.jsonl", bundle, as_of, args.workers)
            runs[kind]["cpu_us_per_case_after_startup"] = round(
                (runs[kind]["cpu_s"] - startup["cpu_s"]) / max(runs[kind]["scored"] - 100, 1) * 1e6, 1
            )
            print(json.dumps({kind: runs[kind]}), flush=True)
        identical = filecmp.cmp(folder / "scores-jsonl.jsonl", folder / "scores-parquet.jsonl", shallow=False)
        one = _run(sample, folder / "sample-scores.jsonl", bundle, as_of, 1) if args.baseline else None
    result: dict[str, Any] = {
        "workers": args.workers,
        "outputs_byte_identical": identical,
        "jsonl": _figures("jsonl", runs["jsonl"]),
        "parquet": _figures("parquet", runs["parquet"]),
        "parquet_speed_over_jsonl": round(runs["parquet"]["cases_per_second"] / runs["jsonl"]["cases_per_second"], 2),
        "cpu_per_case_parquet_over_jsonl": round(
            runs["parquet"]["cpu_us_per_case"] / runs["jsonl"]["cpu_us_per_case"], 2
        ),
        "cpu_microseconds_per_case_in_one_process": steps,
    }
    if one is not None:
        result["baseline_one_process_jsonl"] = {k: one[k] for k in ("scored", "seconds", "cases_per_second")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
