"""The data subcommands: generate a synthetic authority, ingest returns, build the training frame."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.common import EXIT_INPUT, EXIT_PARTIAL, EXIT_USAGE, year
from cli.progress import Progress, estimate_seconds


def _ingest(args: argparse.Namespace) -> int:
    from features import IngestError, ingest, write_problems_csv, write_records_jsonl

    progress = Progress("ingest", stages=1, quiet=args.quiet)
    try:
        with progress.stage(f"reading {len(args.paths)} census return(s) and linking each child's years") as done:
            result = ingest(args.paths, extension=args.extension)
            done(f"{len(result.records):,} children, {len(result.problems):,} problems")
        if len(result.unusable_files) == len(args.paths):  # nothing could be read: say why for each file
            raise IngestError("\n".join(f"{p.source}: {p.message}" for p in result.problems))
    except IngestError as exc:
        print(f"closure-risk ingest: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.problems is not None:
        write_problems_csv(result.problems, args.problems)
    if args.out is not None:
        write_records_jsonl(result.records, args.out)
    if args.parquet is not None:
        from features.columnar import write_records_parquet  # pyarrow and numpy: only when Parquet is asked for

        write_records_parquet(result.records, args.parquet)
    print(json.dumps(result.summary(), sort_keys=True))
    return EXIT_PARTIAL if result.partial else 0


def _generate(args: argparse.Namespace) -> int:
    from synthetic import BIAS_KINDS, PlantedBiases, generate_cohort

    if args.children < 1:
        print("closure-risk generate: --children must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.end < args.start:
        print(f"closure-risk generate: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return EXIT_USAGE
    try:
        biases = PlantedBiases(**{kind: getattr(args, f"bias_{kind}") for kind in BIAS_KINDS})
    except ValueError as exc:
        print(f"closure-risk generate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress("generate", stages=1, quiet=args.quiet)
    what = f"simulating {args.children:,} children, collection years {args.start}-{args.end}"
    with progress.stage(what, estimate_s=estimate_seconds("generate", args.children)) as done:
        summary = generate_cohort(children=args.children, seed=args.seed, start=args.start, end=args.end,
                                  out=args.out, workers=args.workers, biases=biases)  # fmt: skip
        done(f"{summary.children:,} children, {summary.episodes:,} episodes, {len(summary.files)} files")
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

    progress = Progress("features", stages=1, quiet=args.quiet)
    try:
        with progress.stage(f"labelling closures and building their features from {args.data}") as done:
            built = load_training_frame(args.data)
            done(f"{len(built.frame):,} labelled closures")
    except (IngestError, FileNotFoundError, ValueError) as exc:
        print(f"closure-risk features: {exc}", file=sys.stderr)
        return EXIT_INPUT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    built.frame.to_parquet(args.out, index=False)
    print(json.dumps({"out": str(args.out), **built.summary}, sort_keys=True))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    ingest.add_argument(
        "--parquet",
        type=Path,
        metavar="OUT.parquet",
        help="write the linked records here as Parquet, marked validated by these census rules (score reads it fast)",
    )
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
    generate.add_argument("--start", type=year, required=True, help="first collection year (return of 31 March)")
    generate.add_argument("--end", type=year, required=True, help="last collection year")
    generate.add_argument("--out", type=Path, required=True, help="output folder")
    generate.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    # Planted biases (synthetic/biases.py), each off unless a group is named: a major ethnic group or a census code.
    for kind, what in (
        ("surveillance", "referred again more often for the same need (the extra referrals find no need)"),
        ("missing-extension", "case-management extension missing for 45%% of episodes, not 7%%"),
        ("elsewhere", "half of re-referrals happen in another authority, unseen here"),
        ("undermeasured", "true risk higher than the features show (+0.6 log-odds)"),
    ):
        generate.add_argument(f"--bias-{kind}", metavar="GROUP", default=None, help=f"plant a bias: GROUP is {what}")
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
