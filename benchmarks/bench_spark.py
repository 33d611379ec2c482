"""Batch scoring on Spark (``local[1]``, ``local[2]``) against the single-process scorer, on the same cases.

The cases are the records with an episode open on the last census date of a generated authority (``make data``),
repeated under distinct child ids up to ``--cases`` (1,000,000 by default) and written as JSON lines, in files of
``--chunk`` lines. Every path reads those files, validates each record, builds its point-in-time features, scores
and explains it, and writes the score with its top five reasons:

- the baseline, one process: ``closure-risk score`` on each file in turn (in files, because one call keeps every
  score it makes in memory, about 30 KB a case with its 69 reasons: a million at once would not fit);
- Spark: ``score_with_spark`` (what ``closure-risk score --engine spark`` runs) on the whole folder, on ``local[1]``
  and ``local[2]``; the session's start-up is timed apart from the job.

Prints the figures and the ratios (single process / Spark, local[1] / local[2]) as one JSON object.

``--compare-udf RUNS`` also measures, on the same files and the first master, the engine's path (``score_with_spark``)
against the registered model through ``mlflow.pyfunc.spark_udf`` (the bundle registered in a temporary MLflow store;
a ``mapInPandas`` step validates the records and builds their features with the same code, then the UDF scores and
explains them), alternately, each ``RUNS`` times in one session: wall milliseconds per case, with the machine's load
average before each run (the first run of each also starts its Python workers, so the summary leaves it out). CPU per
case of the whole process tree (driver, JVM, Python workers, read from ``/proc``) was tried and dropped: processes
ending between the two readings were not all counted, and it came out negative for some runs. The UDF path writes
less (no out-of-distribution flags, no ordered reasons with labels and values), so where it is slower, the engine's
path is the faster one for the same output a fortiori. ``--udf-only`` skips every other measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from closure_risk import main as closure_risk

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

DEFAULT_CASES = 1_000_000


def prepare(data: Path, folder: Path, *, cases: int, chunk: int, trained: tuple[Path, dt.date] | None = None
            ) -> tuple[Path, Path, dt.date, int]:  # fmt: skip
    """(bundle, folder of JSON-lines files, as-of date, distinct open cases); ``trained``: a saved bundle and its
    data end, instead of training one."""
    from features import current_episode, ingest

    if trained is None:
        from training import load_training_frame
        from training.fit import fit_bundle
        from training.settings import SearchSpace
        from training.split import split_by_time

        built = load_training_frame(data)
        as_of = dt.date.fromisoformat(str(built.summary["data_end"]))
        split = split_by_time(built.frame, data_end=as_of)
        bundle = folder / "bundle"
        fit_bundle(split, seed=1, search=SearchSpace()).model().save(bundle)
    else:
        bundle, as_of = trained
    records = ingest(sorted(data.glob("*.xml")), extension=data / "extension.jsonl").records
    distinct = [r for r in records if current_episode(r, as_of) is not None]
    lines = []
    for record in distinct:
        text = record.model_dump_json(exclude_none=True)
        key = json.dumps({"la_child_id": record.la_child_id}, separators=(",", ":"))[1:-1]
        if text.count(key) != 1:
            raise ValueError("a record's child id appears more than once in its JSON")
        lines.append((text, key, record.la_child_id))
    inputs = folder / "cases"
    inputs.mkdir()
    for start in range(0, cases, chunk):
        with (inputs / f"cases-{start // chunk:05d}.jsonl").open("w", encoding="utf-8") as out:
            for n in range(start, min(start + chunk, cases)):
                text, key, child = lines[n % len(lines)]
                copy = json.dumps({"la_child_id": f"{child}-{n // len(lines)}"}, separators=(",", ":"))[1:-1]
                out.write(text.replace(key, copy) + "\n")
    return bundle, inputs, as_of, len(distinct)


def single_process(inputs: Path, bundle: Path, as_of: dt.date, out: Path) -> tuple[float, int]:
    """Seconds and cases scored by ``closure-risk score`` over every file in turn."""
    out.mkdir()
    scored = 0
    started = time.perf_counter()
    for path in sorted(inputs.glob("*.jsonl")):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = closure_risk(["score", str(path), "--out", str(out / path.name), "--as-of", as_of.isoformat(),
                                 "--model", str(bundle)])  # fmt: skip
        if code != 0:
            raise RuntimeError(f"closure-risk score failed on {path.name}")
        scored += int(json.loads(printed.getvalue())["scored"])
    return time.perf_counter() - started, scored


def executor_cpu_ms(inputs: Path, bundle: Path, as_of: dt.date, *, sample: int = 5_000) -> dict[str, float]:
    """CPU milliseconds per case of what each Spark task runs (``score_texts``) and of its validation step alone,
    on the first ``sample`` cases: the per-core cost, whatever else the machine is doing."""
    from batch.spark import score_texts
    from features.decode import record_decoder
    from models import RiskModel

    lines = next(iter(sorted(inputs.glob("*.jsonl")))).read_text(encoding="utf-8").splitlines()[:sample]
    model = RiskModel.load(bundle)
    decode = record_decoder().decode  # what score_texts reads records with
    started = time.process_time()
    for line in lines:
        decode(line)
    validate = time.process_time() - started
    started = time.process_time()
    score_texts(model, lines, as_of=as_of, top=5)
    whole = time.process_time() - started
    per_case = 1e3 / len(lines)
    return {"score_texts": round(whole * per_case, 2), "of_which_validation": round(validate * per_case, 2)}


def spark(master: str, inputs: Path, bundle: Path, as_of: dt.date, out: Path) -> dict[str, object]:
    """Start-up and job seconds of ``score_with_spark`` on ``master``."""
    from batch.spark import score_with_spark, spark_session
    from models import RiskModel

    started = time.perf_counter()
    session, _ = spark_session(master, {"spark.driver.memory": "2g", "spark.ui.enabled": "false"})
    session.range(1).count()  # the JVM and the session are up
    startup = time.perf_counter() - started
    try:
        started = time.perf_counter()
        summary = score_with_spark(session, input_path=str(inputs), output=str(out), model=RiskModel.load(bundle),
                                   as_of=as_of)  # fmt: skip
        job = time.perf_counter() - started
    finally:
        session.stop()
    return {"startup_s": round(startup, 1), "job_s": round(job, 1), "cases_per_s": round(summary.scored / job),
            "scored": summary.scored, "partitions": summary.partitions}  # fmt: skip


def _tree_cpu(command: list[str], *, grace_s: float = 120.0) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the whole process tree, and stdout of ``command``.

    This process becomes a child subreaper (Linux ``prctl``), so every descendant (the JVM, Spark's Python daemon and
    workers) is reaped either by its parent or, orphaned, by this process; either way its CPU ends up in this
    process's ``RUSAGE_CHILDREN``, which is read before and after. Descendants still running ``grace_s`` after the
    command ends are an error (their CPU would be missed)."""
    import ctypes
    import resource
    import subprocess

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    deadline = time.monotonic() + grace_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no descendant left
        if pid == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"descendants of {command[3:5]} still run {grace_s} s after it ended")
            time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def tree_cpu_per_case(inputs: Path, bundle: Path, as_of: dt.date, work: Path, *, master: str) -> dict[str, object]:
    """CPU per case of the whole process tree: ``closure-risk score`` in one process against ``--engine spark`` on
    ``master``, each a fresh command on the first input file (start-up, model load and writing included)."""
    import sys

    first = next(iter(sorted(inputs.glob("*.jsonl"))))
    base = [
        sys.executable,
        "-m",
        "closure_risk",
        "--quiet",
        "score",
        "--as-of",
        as_of.isoformat(),
        "--model",
        str(bundle),
    ]
    runs = {
        "single_process": [*base, str(first), "--out", str(work / "cpu-single.jsonl")],
        f"spark_{master}": [*base, "--engine", "spark", "--master", master, "--input", str(first), "--output",
                            str(work / "cpu-spark"), "--conf", "spark.ui.enabled=false"],
    }  # fmt: skip
    figures: dict[str, object] = {"cases_file": first.name}
    per_case = {}
    for name, command in runs.items():
        load = [round(x, 2) for x in os.getloadavg()]
        wall, cpu, out = _tree_cpu(command)
        scored = int(json.loads(out)["scored"])
        per_case[name] = cpu / scored * 1e3
        figures[name] = {"scored": scored, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                         "cpu_ms_per_case": round(per_case[name], 3), "load_average_before": load}  # fmt: skip
    figures[f"cpu_per_case_spark_{master} / single_process"] = round(
        per_case[f"spark_{master}"] / per_case["single_process"], 2
    )
    figures["target_ratio"] = 1.2
    return figures


def _udf_features(batches: Iterator[pd.DataFrame], *, as_of: dt.date) -> Iterator[pd.DataFrame]:
    """The UDF path's first step: each record validated and its point-in-time features built by the engine's own
    code (``parse_records``, ``feature_rows``), as columns the registered model takes (categories as strings)."""
    import numpy as np
    import pandas as pd

    from batch.records import parse_records
    from features import FEATURES, feature_rows

    for batch in batches:
        records, _ = parse_records(batch["value"].tolist())
        rows = feature_rows(records, as_of)
        columns: dict[str, Any] = {"la_child_id": [records[i].la_child_id for i in rows.positions]}
        for j, spec in enumerate(FEATURES):
            values = rows.matrix[:, j]
            if spec.kind == "categorical":
                columns[spec.name] = [None if np.isnan(v) else spec.categories[int(v)] for v in values.tolist()]
            else:
                columns[spec.name] = values
        yield pd.DataFrame(columns)


def compare_udf(master: str, inputs: Path, bundle: Path, as_of: dt.date, work: Path, *, runs: int) -> dict[str, object]:
    """The engine's ``mapInPandas`` path against ``spark_udf`` of the registered model, alternately, ``runs`` each."""
    import functools

    import mlflow
    from pyspark.sql import functions as f

    from batch.spark import score_with_spark, spark_session
    from features import FEATURES
    from models import RiskModel, registry

    model = RiskModel.load(bundle)
    registry.configure_tracking(
        f"sqlite:///{work}/mlflow.db", experiment="bench", artifact_location=str(work / "mlruns")
    )
    with registry.start_run("bench spark_udf"):
        uri = registry.log_and_register(model).model_uri
    session, _ = spark_session(master, {"spark.driver.memory": "2g", "spark.ui.enabled": "false"})
    measured: dict[str, list[dict[str, float]]] = {"engine_mapInPandas": [], "spark_udf": []}
    try:
        udf = mlflow.pyfunc.spark_udf(session, uri, env_manager="local")
        schema = ", ".join(
            ["la_child_id string"] + [f"{s.name} {'string' if s.kind == 'categorical' else 'double'}" for s in FEATURES]
        )
        session.range(1).count()
        for run in range(runs):
            for path in ("engine_mapInPandas", "spark_udf"):
                out = str(work / f"{path}-{run}")
                load = os.getloadavg()[0]
                started = time.perf_counter()
                if path == "engine_mapInPandas":
                    scored = score_with_spark(
                        session, input_path=str(inputs), output=out, model=model, as_of=as_of
                    ).scored
                else:
                    records = session.read.text(str(inputs))
                    if records.rdd.getNumPartitions() < session.sparkContext.defaultParallelism:
                        records = records.repartition(session.sparkContext.defaultParallelism)
                    features = records.mapInPandas(functools.partial(_udf_features, as_of=as_of), schema)
                    inputs_struct = f.struct(*[features[s.name] for s in FEATURES])  # one struct: type-hinted model
                    explained = features.select("la_child_id", udf(inputs_struct).alias("score"))
                    explained.select("la_child_id", "score.*").write.mode("overwrite").parquet(out)
                    scored = session.read.parquet(out).count()
                seconds = time.perf_counter() - started
                measured[path].append({"ms_per_case": round(1e3 * seconds / scored, 3), "s": round(seconds, 1),
                                       "scored": scored, "load_before": round(load, 2)})  # fmt: skip
    finally:
        session.stop()
    summary: dict[str, object] = {"master": master, "runs": measured}
    for path, rows in measured.items():
        warm = [r["ms_per_case"] for r in rows[1:]] or [rows[0]["ms_per_case"]]  # the first run starts the workers
        summary[f"{path}_ms_per_case_warm"] = {"mean": round(sum(warm) / len(warm), 3), "worst": max(warm)}
    engine = summary["engine_mapInPandas_ms_per_case_warm"]["mean"]  # type: ignore[index]
    summary["spark_udf / engine ms per case"] = round(summary["spark_udf_ms_per_case_warm"]["mean"] / engine, 2)  # type: ignore[index]
    return summary


def _engine_figures(masters: list[str], inputs: Path, bundle: Path, as_of: dt.date, work: Path) -> dict[str, object]:
    """The single-process baseline, the executor's CPU per case and the engine on each master, with the ratios."""
    single_s, single_scored = single_process(inputs, bundle, as_of, work / "single")
    figures: dict[str, object] = {
        "executor_cpu_ms_per_case": executor_cpu_ms(inputs, bundle, as_of),
        "single_process": {"s": round(single_s, 1), "cases_per_s": round(single_scored / single_s),
                           "scored": single_scored},
    }  # fmt: skip
    for master in masters:
        measured = spark(master, inputs, bundle, as_of, work / f"spark-{master}")
        if measured["scored"] != single_scored:
            raise RuntimeError(f"Spark on {master} scored {measured['scored']} cases, one process {single_scored}")
        figures[master] = measured
    for master in masters:
        job_s = float(figures[master]["job_s"])  # type: ignore[index]
        figures[f"single_process_s / {master}_job_s"] = round(single_s / job_s, 2)
    if {"local[1]", "local[2]"} <= set(masters):
        one, two = (float(figures[m]["job_s"]) for m in ("local[1]", "local[2]"))  # type: ignore[index]
        figures["local[1]_job_s / local[2]_job_s"] = round(one / two, 2)
    return figures


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="a generated authority")
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES)
    parser.add_argument("--chunk", type=int, default=20_000, help="cases per input file")
    parser.add_argument("--masters", default="local[1],local[2]", help="Spark masters to measure, comma-separated")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--compare-udf", type=int, default=0, metavar="RUNS", help="also time spark_udf, RUNS times")
    parser.add_argument("--udf-only", action="store_true", help="only the spark_udf comparison")
    parser.add_argument("--tree-cpu", metavar="MASTER", default=None,
                        help="only the CPU per case of the whole process tree: one process against Spark on MASTER "
                        "(the first input file of --chunk cases)")  # fmt: skip
    parser.add_argument("--bundle", type=Path, default=None, help="a saved bundle instead of training one (--as-of)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="with --bundle: its data end")
    args = parser.parse_args()
    if (args.bundle is None) != (args.as_of is None):
        parser.error("--bundle and --as-of go together")
    work = args.work or Path(tempfile.mkdtemp(prefix="ccr-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        trained = (args.bundle, args.as_of) if args.bundle is not None else None
        bundle, inputs, as_of, distinct = prepare(args.data, work, cases=args.cases, chunk=args.chunk, trained=trained)
        prepare_s = time.perf_counter() - started
        masters = args.masters.split(",")
        figures: dict[str, object] = {
            "cases": args.cases,
            "distinct_cases": distinct,
            "as_of": as_of.isoformat(),
            "input_mb": round(sum(p.stat().st_size for p in inputs.iterdir()) / 1e6),
            "prepare_s": round(prepare_s, 1),
        }
        if args.tree_cpu:
            figures["tree_cpu"] = tree_cpu_per_case(inputs, bundle, as_of, work, master=args.tree_cpu)
        elif not args.udf_only:
            figures.update(_engine_figures(masters, inputs, bundle, as_of, work))
        if args.compare_udf or args.udf_only:
            figures["spark_udf_comparison"] = compare_udf(
                masters[0], inputs, bundle, as_of, work / "udf", runs=max(args.compare_udf, 1)
            )
        print(json.dumps(figures, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
