"""The monitoring subcommand: newer returns joined to past scores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.common import EXIT_INPUT, date
from cli.progress import Progress


def _monitor(args: argparse.Namespace) -> int:
    from audit import StoreError
    from features import IngestError
    from monitoring import MonitoringError, get_settings, monitor

    progress = Progress("monitor", stages=1, quiet=args.quiet)
    try:
        with progress.stage("joining later returns to past scores") as done:
            summary = monitor(args.returns, settings=get_settings(), extension=args.extension, since=args.since)
            done("report written")
    except (IngestError, MonitoringError, StoreError, FileNotFoundError) as exc:
        print(f"closure-risk monitor: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    monitor.add_argument("--since", type=date, default=None, help="only scores as of this date or later")
    monitor.set_defaults(handler=_monitor)
