"""The ``closure-risk`` command line: one entry point, a subcommand per job, each importing its room when it runs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE, EXIT_INPUT, EXIT_PARTIAL = 2, 3, 4  # EXIT_PARTIAL: some input could not be read; the rest was
CLI = "command line"  # who created or revoked a key from here


def _ingest(args: argparse.Namespace) -> int:
    from features import IngestError, ingest, write_problems_csv, write_records_jsonl

    try:
        result = ingest(args.paths, extension=args.extension)
        if len(result.unusable_files) == len(args.paths):  # nothing could be read: say why for each file
            raise IngestError("\n".join(f"{p.source}: {p.message}" for p in result.problems))
    except IngestError as exc:
        print(f"closure-risk ingest: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.problems is not None:
        write_problems_csv(result.problems, args.problems)
    if args.out is not None:
        write_records_jsonl(result.records, args.out)
    print(json.dumps(result.summary(), sort_keys=True))
    return EXIT_PARTIAL if result.partial else 0


def _generate(args: argparse.Namespace) -> int:
    from synthetic import generate_cohort

    if args.children < 1:
        print("closure-risk generate: --children must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.end < args.start:
        print(f"closure-risk generate: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return EXIT_USAGE
    summary = generate_cohort(children=args.children, seed=args.seed, start=args.start, end=args.end, out=args.out,
                              workers=args.workers)  # fmt: skip
    print(
        json.dumps(
            {
                "out": str(summary.out),
                "children": summary.children,
                "episodes": summary.episodes,
                "open_episodes": summary.open_episodes,
                "files": summary.files,
                "figures": summary.figures,
            },
            sort_keys=True,
        )
    )
    return 0


def _features(args: argparse.Namespace) -> int:
    from features import IngestError
    from training import load_training_frame

    try:
        built = load_training_frame(args.data)
    except (IngestError, FileNotFoundError, ValueError) as exc:
        print(f"closure-risk features: {exc}", file=sys.stderr)
        return EXIT_INPUT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    built.frame.to_parquet(args.out, index=False)
    print(json.dumps({"out": str(args.out), **built.summary}, sort_keys=True))
    return 0


def _train(args: argparse.Namespace) -> int:
    from features import IngestError
    from training.pipeline import champion_or_none, train
    from training.settings import get_settings

    if args.if_no_champion:
        champion = champion_or_none(get_settings())
        if champion is not None:
            print(json.dumps({"trained": False, "reason": "a champion exists", "champion": champion}))
            return 0
    try:
        report = train(args.data, get_settings())
    except (IngestError, FileNotFoundError, ValueError) as exc:
        print(f"closure-risk train: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(report.summary(), sort_keys=True, default=str))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from training.pipeline import promote
    from training.settings import get_settings

    try:
        summary = promote(args.version, reason=args.reason, settings=get_settings())
    except ValueError as exc:
        print(f"closure-risk promote: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary, sort_keys=True))
    return 0


DEFAULT_DATA = Path("data/synthetic")
DEFAULT_COHORT = {"children": 40_000, "seed": 20250331, "start": 2016, "end": 2025}


def _ensure_champion(data: Path) -> None:
    """On a fresh clone: generate the default synthetic authority if absent, then train, if no champion exists."""
    from training.pipeline import champion_or_none, train
    from training.settings import get_settings as training_settings

    settings = training_settings()
    if champion_or_none(settings) is not None:
        return
    if not (data / "manifest.json").exists():
        from synthetic import generate_cohort

        print(f"closure-risk serve: no champion model and no data: generating {data} first", file=sys.stderr)
        generate_cohort(out=data, **DEFAULT_COHORT)
    print("closure-risk serve: no champion model: training one", file=sys.stderr)
    report = train(data, settings)
    print(json.dumps({"trained": report.version, "promoted": report.promoted, "test": report.test}))
    if not report.promoted:
        raise SystemExit("closure-risk serve: the trained model did not pass the promotion gate; see its reasons")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from audit import AuditStore
    from features import Role
    from serving.settings import get_settings

    settings = get_settings()
    if settings.model_uri == "models:/case-closure-risk@champion":
        _ensure_champion(args.data)
    store = AuditStore(settings.database_url)
    store.migrate()
    if not store.list_keys():
        print("Development keys, shown once (keep them; `closure-risk keys create` makes more):")
        for role in Role:
            plaintext, _ = store.create_key(name=f"development-{role}", role=role, created_by=CLI)
            print(f"  {role:8s} {plaintext}")
    store.close()
    print(f"Serving on http://{args.host}:{args.port} (API description: /docs)", flush=True)
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from audit import AuditStore
    from serving.settings import get_settings

    store = AuditStore(get_settings().database_url)
    store.migrate()
    try:
        if args.keys_command == "create":
            try:
                plaintext, key = store.create_key(name=args.name, role=args.role, created_by=CLI)
            except ValueError as exc:
                print(f"closure-risk keys create: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(json.dumps({"id": key.id, "name": key.name, "role": key.role, "key": plaintext}))
        elif args.keys_command == "list":
            for k in store.list_keys():
                print(json.dumps({n: v.isoformat() if isinstance(v, dt.datetime) else v for n, v in vars(k).items()}))
        elif not store.revoke_key(args.id, revoked_by=CLI):
            print(f"closure-risk keys revoke: no key {args.id}", file=sys.stderr)
            return EXIT_INPUT
    finally:
        store.close()
    return 0


def _audit(args: argparse.Namespace) -> int:
    from audit.trail import run_audit_command
    from serving.settings import get_settings

    return run_audit_command(args.action, get_settings().database_url, out=args.out)


def _score(args: argparse.Namespace) -> int:
    from batch.local import score_file
    from models.registry import load_model_uri, use_store
    from serving.settings import get_settings

    settings = get_settings()
    use_store(settings.tracking_uri)
    model = load_model_uri(args.model or settings.model_uri)
    summary = score_file(model, args.input, args.out, as_of=args.as_of or dt.date.today(),
                         top=None if args.reasons == "all" else 5, workers=max(args.workers, 1))  # fmt: skip
    print(
        json.dumps(
            {
                "out": str(summary.out),
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


def _monitor(args: argparse.Namespace) -> int:
    from audit import StoreError
    from features import IngestError
    from monitoring import MonitoringError, get_settings, monitor

    try:
        summary = monitor(args.returns, settings=get_settings(), extension=args.extension, since=args.since)
    except (IngestError, MonitoringError, StoreError, FileNotFoundError) as exc:
        print(f"closure-risk monitor: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(summary, sort_keys=True, default=str))
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
        use_store(settings.tracking_uri)
        model = load_model_uri(args.model or settings.model_uri)
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


def _spark_conf(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text} is not KEY=VALUE")
    return text


def _date(text: str) -> dt.date:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def _role(text: str) -> Any:
    from features import Role

    try:
        return Role(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a role: {', '.join(Role)}") from None


def _year(text: str) -> int:
    year = int(text)
    if not 2000 <= year <= 2100:
        raise argparse.ArgumentTypeError(f"{text} is not a census collection year (2000-2100)")
    return year


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closure-risk",
        description="Score open child-neglect cases on the risk of re-referral within 12 months of closure.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest",
        help="read CIN census XML returns (+ extension), link them per child, report problems",
        description="Read one or many annual CIN census returns (2017-2026 schema variants), link the years "
        "into one history per child, join the case-management extension and print a JSON summary. A child "
        "with problems is reported, never silently dropped; the file goes on.",
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="CIN census XML returns")
    ingest.add_argument("--extension", type=Path, help="case-management extension (JSON lines)")
    ingest.add_argument("--problems", type=Path, help="write every problem here as CSV")
    ingest.add_argument("--out", type=Path, help="write the linked records here, one child per line (JSON)")
    ingest.set_defaults(handler=_ingest)

    generate = commands.add_parser(
        "generate",
        help="simulate a synthetic local authority and write its census returns, extension and truth",
        description="Simulate children's histories in one local authority and write one CIN census return "
        "per collection year, the extension file, the truth file and a manifest. Same seed, same bytes.",
    )
    generate.add_argument(
        "--children", type=int, required=True, help="children in the returns (simulated until this many appear)"
    )
    generate.add_argument("--seed", type=int, required=True, help="random seed")
    generate.add_argument("--start", type=_year, required=True, help="first collection year (return of 31 March)")
    generate.add_argument("--end", type=_year, required=True, help="last collection year")
    generate.add_argument("--out", type=Path, required=True, help="output folder")
    generate.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    generate.set_defaults(handler=_generate)

    features = commands.add_parser(
        "features",
        help="label every eligible closure and build its point-in-time features (the training frame)",
        description="Ingest a data folder (CIN census returns, optional extension.jsonl and truth.csv), label "
        "every eligible closure (RC7-RC9, under 17, a full year observed; later ones censored) and write its "
        "features as of its closure date, with the child id and closure date for splitting, as Parquet.",
    )
    features.add_argument("--data", type=Path, required=True, help="folder of returns (+ extension, truth)")
    features.add_argument("--out", type=Path, required=True, help="training frame to write (.parquet)")
    features.set_defaults(handler=_features)

    train = commands.add_parser(
        "train",
        help="train, evaluate, audit and register a model version; promote it if it passes the gate",
        description="From a data folder of census returns (+ extension, truth) to a registered MLflow model "
        "version: time split, LightGBM search, calibration, evaluation with bootstrap intervals, fairness audit, "
        "model card and transparency record. The version gets alias 'challenger', and 'champion' if it passes "
        "the promotion gate. Tracks to CCR_TRACKING_URI or MLFLOW_TRACKING_URI (default sqlite:///mlflow.db).",
    )
    train.add_argument("--data", type=Path, required=True, help="folder of returns (+ extension, truth)")
    train.add_argument("--if-no-champion", action="store_true", help="train only when no champion is registered")
    train.set_defaults(handler=_train)

    promote = commands.add_parser(
        "promote",
        help="make a registered version champion by a person's decision (the override is recorded)",
        description="Point the 'champion' alias at VERSION whatever the gate said; the reason, who and when are "
        "recorded as tags on the version.",
    )
    promote.add_argument("version", help="registered version number")
    promote.add_argument("--reason", required=True, help="why the gate is overridden")
    promote.set_defaults(handler=_promote)

    serve = commands.add_parser(
        "serve",
        help="run the scoring API (trains a model first on a fresh clone)",
        description="Run the FastAPI service (settings from CCR_* variables; see .env.example). With the default "
        "model URI and no champion yet, it first generates the synthetic authority (if absent) and trains. On an "
        "empty audit store it prints one development key per role, once.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder used to train on a fresh clone")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="create, list or revoke API keys", description="API keys of the service.")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, type=_role, help="the key's role: system, manager or admin")
    create.add_argument("--name", required=True, help="who or what uses the key (shown in the audit)")
    keys_commands.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id")
    keys.set_defaults(handler=_keys)

    trail = commands.add_parser("audit", help="verify the audit trail's hash chain, or export its head")
    trail.add_argument("action", choices=["verify", "head"], help="verify every row, or write the chain's head")
    trail.add_argument("--out", type=Path, default=Path("audit-head.json"), help="head: the file to write")
    trail.set_defaults(handler=_audit)

    score = commands.add_parser(
        "score",
        help="score many cases offline through the same bundle (no HTTP), for nightly runs",
        description="Score every record of a JSON-lines file (one child per line, as `ingest --out` writes) as "
        "of a date, with explanations, and write one JSON line per open case. Invalid lines are listed, not fatal.",
    )
    score.add_argument("input", type=Path, metavar="FILE.jsonl", nargs="?")
    score.add_argument("--out", type=Path)
    score.add_argument("--as-of", type=_date, default=None, help="score as of this date (default: today)")
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
        type=_spark_conf,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spark: a Spark setting, e.g. spark.driver.memory=4g (repeatable)",
    )
    score.set_defaults(handler=_score_command)

    monitor = commands.add_parser(
        "monitor",
        help="join newer census returns to past scores: realised rates, calibration, fairness, drift",
        description="Ingest newer CIN census returns, join them to the audit store's scores by pseudonymous case id "
        "(the service's key), apply the training label rules (pending outcomes never count as 0) and, per registered "
        "model version, log a monitoring run to MLflow and write a self-contained HTML report (CCR_REPORT_DIR). "
        "Uses the service's settings: CCR_DATABASE_URL, CCR_PSEUDONYM_KEY_FILE, CCR_TRACKING_URI.",
    )
    monitor.add_argument("--returns", nargs="+", type=Path, required=True, metavar="PATH", help="CIN census returns")
    monitor.add_argument("--extension", type=Path, default=None, help="case-management extension (JSON lines)")
    monitor.add_argument("--since", type=_date, default=None, help="only scores as of this date or later")
    monitor.set_defaults(handler=_monitor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the process's).

    Each subcommand imports its package only when it runs, so ``closure-risk --help`` stays instant. Summaries go to
    standard output as one JSON object; errors go to standard error as one line, with a non-zero exit code. Nothing
    printed names a child.
    """
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
