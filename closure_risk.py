"""The ``closure-risk`` command line: one entry point, a subcommand per job.

Each subcommand imports its package only when it runs, so ``closure-risk --help`` stays instant. Summaries go to
standard output as one JSON object; errors go to standard error as one line, with a non-zero exit code. Nothing
printed names a child.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2
EXIT_INPUT = 3


def _ingest(args: argparse.Namespace) -> int:
    from features.cin_xml import IngestError
    from features.ingest import ingest, write_problems_csv, write_records_jsonl

    try:
        result = ingest(args.paths, extension=args.extension)
    except IngestError as exc:
        print(f"closure-risk ingest: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.problems is not None:
        write_problems_csv(result.problems, args.problems)
    if args.out is not None:
        write_records_jsonl(result.records, args.out)
    print(json.dumps(result.summary(), sort_keys=True))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from training.synthetic import generate_cohort

    if args.children < 1:
        print("closure-risk generate: --children must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.end < args.start:
        print(f"closure-risk generate: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return EXIT_USAGE
    summary = generate_cohort(
        children=args.children,
        seed=args.seed,
        start=args.start,
        end=args.end,
        out=args.out,
        workers=args.workers,
    )
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
        summary = train(args.data, get_settings())
    except (IngestError, FileNotFoundError, ValueError) as exc:
        print(f"closure-risk train: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(summary, sort_keys=True, default=str))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the process's)."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
