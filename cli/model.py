"""The model subcommands: train, evaluate and register a version; promote one by a person's decision."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from cli.common import EXIT_INPUT, EXIT_USAGE
from cli.progress import Progress, estimate_seconds, quiet_libraries


def _train_estimate(data: Path) -> float | None:
    """From the data folder's manifest (children simulated), when it has one."""
    try:
        children = json.loads((data / "manifest.json").read_text(encoding="utf-8")).get("children")
    except (OSError, ValueError):
        return None
    return estimate_seconds("train", float(children)) if isinstance(children, int | float) else None


def _train(args: argparse.Namespace) -> int:
    from features import IngestError
    from training.pipeline import champion_or_none, train
    from training.settings import get_settings

    settings = get_settings()
    if args.deployed_since is not None:
        settings = settings.model_copy(update={"deployed_since": args.deployed_since})
    if args.if_no_champion:
        champion = champion_or_none(settings)
        if champion is not None:
            print(json.dumps({"trained": False, "reason": "a champion exists", "champion": champion}))
            return 0
    quiet_libraries()
    progress = Progress("train", stages=1, quiet=args.quiet)
    try:
        with progress.stage(f"training, evaluating and registering a model on {args.data}",
                            estimate_s=_train_estimate(args.data)) as done:  # fmt: skip
            report = train(args.data, settings)
            done(f"version {report.version}, {'promoted to champion' if report.promoted else 'not promoted'}")
    except (IngestError, FileNotFoundError, ValueError) as exc:
        print(f"closure-risk train: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(report.summary(), sort_keys=True, default=str))
    if report.promoted:
        _say_reload(f"version {report.version} is the champion now")
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _say_reload(what: str) -> None:
    """A running service keeps the model it loaded: say so where a person reads it (not in the JSON summary)."""
    print(
        f"closure-risk: {what}. A running service keeps serving its model until it reloads: run "
        "`closure-risk reload` (with an admin key in CCR_ADMIN_KEY) or restart it.",
        file=sys.stderr,
    )


def _promote(args: argparse.Namespace) -> int:
    from training.pipeline import promote
    from training.settings import get_settings

    try:
        summary = promote(args.version, reason=args.reason, settings=get_settings())
    except ValueError as exc:
        print(f"closure-risk promote: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary, sort_keys=True))
    _say_reload(f"version {args.version} is the champion now")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    train.add_argument(
        "--deployed-since",
        type=_date,
        metavar="YYYY-MM-DD",
        help="the day the tool came into use (overrides the policy's [deployment] date and CCR_DEPLOYED_SINCE): the "
        "closures decided before it are the pre-deployment hold-out every new version is judged on",
    )
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
