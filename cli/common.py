"""What every subcommand shares: exit codes, who acts from the command line, and argument types."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

EXIT_USAGE, EXIT_INPUT, EXIT_PARTIAL = 2, 3, 4  # EXIT_PARTIAL: some input could not be read; the rest was
CLI = "command line"  # who created or revoked a key from here


def spark_conf(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text} is not KEY=VALUE")
    return text


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def role(text: str) -> Any:
    from features import Role

    try:
        return Role(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a role: {', '.join(Role)}") from None


def year(text: str) -> int:
    year = int(text)
    if not 2000 <= year <= 2100:
        raise argparse.ArgumentTypeError(f"{text} is not a census collection year (2000-2100)")
    return year
