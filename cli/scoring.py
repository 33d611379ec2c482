"""The offline scoring subcommand: many cases through the same bundle, locally or on Spark."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from cli.common import EXIT_INPUT, EXIT_USAGE, date, spark_conf
from cli.progress import Progress


def _score(args: argparse.Namespace) -> int:
    from batch.local import score_file
    from features.columnar import RecordFileError, is_parquet, open_record_file
    from models.registry import load_model_uri, use_store
    from serving.settings import get_settings

    try:
        if is_parquet(args.input):  # before the model loads: a file that cannot be read is said at once
            found = open_record_file(args.input)
            if found.refusal is not None:
                print(f"closure-risk score: {found.refusal}: every record is validated as it is read",
                      file=sys.stderr)  # fmt: skip
        elif not args.input.is_file():
            raise RecordFileError(f"{args.input} is not a file")
    except RecordFileError as exc:
        print(f"closure-risk score: {exc}", file=sys.stderr)
        return EXIT_INPUT
    settings = get_settings()
    uri = args.model or settings.model_uri
    if uri.startswith("models:/"):  # a bundle folder needs no MLflow store, and must not create one where it runs
        use_store(settings.tracking_uri)
    model = load_model_uri(uri)
    progress = Progress("score", stages=1, quiet=args.quiet)
    try:
        with progress.stage(f"scoring {args.input} with model version {model.version}") as done:
            summary = score_file(model, args.input, args.out, as_of=args.as_of or dt.date.today(),
                                 top=None if args.reasons == "all" else 5, workers=max(args.workers, 1))  # fmt: skip
            done(f"{summary.scored:,} cases scored")
    except (RecordFileError, OSError) as exc:
        print(f"closure-risk score: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(
        json.dumps(
            {
                "out": str(summary.out),
                "input_format": summary.input_format,
                "validated_on_read": summary.validated_on_read,
                "model_version": summary.model_version,
                "as_of": summary.as_of.isoformat(),
                "scored": summary.scored,
                "no_open_episode": summary.no_open_episode,
                "invalid": len(summary.invalid_lines),
                "invalid_lines": summary.invalid_lines[:20],
                "workers": args.workers,
                "seconds": round(summary.seconds, 2),
                "cases_per_second": round(summary.scored / summary.seconds) if summary.seconds else None,
            }
        )
    )
    return 0


def _score_command(args: argparse.Namespace) -> int:
    """``closure-risk score``: the input and output as given, then the engine that runs it."""
    source = args.input_uri or (str(args.input) if args.input is not None else None)
    target = args.output or (str(args.out) if args.out is not None else None)
    if source is None or target is None:
        print("closure-risk score: give the input (FILE.jsonl or --input) and --out/--output", file=sys.stderr)
        return EXIT_USAGE
    if args.engine == "spark":
        return _score_spark(args, source, target)
    args.input, args.out = Path(source), Path(target)
    return _score(args)


def _score_spark(args: argparse.Namespace, source: str, target: str) -> int:
    import time

    from batch.spark import SparkUnavailableError, require_pyspark, score_with_spark, spark_session
    from models.registry import load_model_uri, use_store
    from serving.settings import get_settings

    conf = dict(item.split("=", 1) for item in args.conf)
    try:
        require_pyspark()
        started = time.perf_counter()
        spark, started_here = spark_session(args.master, conf)
    except SparkUnavailableError as exc:
        print(f"closure-risk score --engine spark: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from pyspark.errors import AnalysisException

    try:
        settings = get_settings()
        uri = args.model or settings.model_uri
        if uri.startswith("models:/"):  # as above: a bundle folder needs no MLflow store
            use_store(settings.tracking_uri)
        model = load_model_uri(uri)
        as_of = args.as_of or dt.date.today()
        summary = score_with_spark(spark, input_path=source, output=target, model=model, as_of=as_of,
                                   top=None if args.reasons == "all" else 5, fmt=args.input_format)  # fmt: skip
    except AnalysisException as exc:
        print(f"closure-risk score --engine spark: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        if started_here:
            spark.stop()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "out": summary.output,
                "engine": "spark",
                "master": summary.master,
                "model_version": summary.model_version,
                "as_of": summary.as_of.isoformat(),
                "scored": summary.scored,
                "no_open_episode": summary.no_open_episode,
                "invalid": summary.invalid,
                "invalid_examples": summary.invalid_examples,
                "partitions": summary.partitions,
                "seconds": round(seconds, 2),
                "cases_per_second": round(summary.scored / seconds) if seconds else None,
            }
        )
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = commands.add_parser(
        "score",
        help="score many cases offline through the same bundle (no HTTP), for nightly runs",
        description="Score every record of a JSON-lines file (one child per line, as `ingest --out` writes) or of a "
        "Parquet file (as `ingest --parquet` writes: read without checking again when marked validated by these "
        "census rules, checked record by record otherwise) as of a date, with explanations, and write one JSON line "
        "per open case. Invalid records are listed, not fatal.",
    )
    score.add_argument("input", type=Path, metavar="FILE", nargs="?", help="FILE.jsonl, or FILE.parquet")
    score.add_argument("--out", type=Path)
    score.add_argument("--as-of", type=date, default=None, help="score as of this date (default: today)")
    score.add_argument("--model", default=None, help="model URI or bundle folder (default: CCR_MODEL_URI)")
    score.add_argument("--reasons", choices=["top", "all"], default="top")
    score.add_argument("--workers", type=int, default=1, help="processes that score parts of the file side by side")
    score.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="local: this process, JSON lines out; spark: Spark (optional extra), Parquet by date out",
    )
    score.add_argument("--input", dest="input_uri", metavar="PATH", help="the input (a path or URI Spark reads)")
    score.add_argument(
        "--input-format",
        choices=["jsonl", "parquet"],
        default=None,
        help="spark: JSON lines or Parquet of records (default: parquet for *.parquet)",
    )
    score.add_argument("--output", metavar="PATH", help="the output (spark: a Parquet folder, partitioned by as_of)")
    score.add_argument("--master", default=None, help="spark: master URL (default: local[*], or spark-submit's)")
    score.add_argument(
        "--conf",
        type=spark_conf,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spark: a Spark setting, e.g. spark.driver.memory=4g (repeatable)",
    )
    score.set_defaults(handler=_score_command)
