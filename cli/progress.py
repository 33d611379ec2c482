"""Staged progress for a person at a terminal: each stage's number, what it does, an estimate of how long, the time
so far, and what it made. Written to standard error with rich; nothing at all when standard error is not a terminal
(a pipe, a log file, CI) or with ``--quiet``, so the JSON summaries on standard output stay the only output.

The estimate is what the stage took on an idle 2-core machine per unit of work (``RATES``), scaled by how busy the
machine is now (the one-minute load average per core), so a slow machine is told it will be slow.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["RATES", "Progress", "estimate_seconds", "quiet_libraries"]

# Seconds per unit of work on an idle 2-core machine (measured with the default cohort; see README). Generate and
# train: a fresh clone's first `make serve` on 2026-11-30 at 21:14 UTC, other work paused: 14 s and 40 s for
# 40,000 children.
RATES = {
    "generate": 0.00035,  # per child
    "train": 0.001,  # per child of the cohort trained on
    "ingest": 0.0004,  # per child
    "features": 0.0005,  # per child
    "score": 0.004,  # per case
    "monitor": 0.002,  # per score
}


def _busy_factor() -> float:
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return max(1.0, (load + 1.0) / max(os.cpu_count() or 1, 1))


def estimate_seconds(job: str, units: float) -> float:
    """How long ``units`` of ``job`` should take on this machine now."""
    return RATES[job] * units * _busy_factor()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.1f} min"


def quiet_libraries() -> None:
    """Silence the libraries' own chatter that is not the user's business (MLflow's artifact download bars, its
    database set-up, environment and serialisation notes): the steps and their results are reported by this module
    instead. MLflow's errors still show."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow sets its own loggers' level when it is first imported, from this variable (INFO by default): setting
    # the level alone before that import is undone by it. Processes started from this one inherit it too.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in ("mlflow", "alembic"):  # where MLflow is already imported
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"mlflow(\..*)?$")  # its serialisation and environment notes


class Progress:
    """The stages of one job; ``with progress.stage(...) as done: ...; done("40,000 children")``."""

    def __init__(self, job: str, *, stages: int, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.job, self.stages = job, stages
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self._number = 0

    def say(self, text: str) -> None:
        """A line for the person at the terminal (nothing when not at one)."""
        if self.enabled:
            from rich.console import Console

            Console(file=self.stream, highlight=False).print(text)

    @contextmanager
    def stage(self, what: str, *, estimate_s: float | None = None) -> Iterator[_Done]:
        """One stage: a live line with a spinner, the time so far and the estimate, then what it made."""
        self._number += 1
        done = _Done()
        label = f"[{self._number}/{self.stages}] {what}"
        if not self.enabled:
            yield done
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=self.stream, highlight=False)
        guess = f" (about {_duration(estimate_s)})" if estimate_s else ""
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if estimate_s:
            columns.append(BarColumn(bar_width=24))
        columns.append(TimeElapsedColumn())
        started = time.monotonic()
        stop = threading.Event()
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label + guess, total=estimate_s or None)

            def tick() -> None:  # the bar follows the clock against the estimate, never claiming to be done
                while not stop.wait(0.5):
                    if estimate_s:
                        bar.update(task, completed=min(time.monotonic() - started, 0.95 * estimate_s))

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
            try:
                yield done
            finally:
                stop.set()
                ticker.join()
        took = _duration(time.monotonic() - started)
        made = f": {done.result}" if done.result else ""
        console.print(f"[green]✓[/green] {label} done in {took}{made}")


class _Done:
    """What a stage made, for its closing line."""

    def __init__(self) -> None:
        self.result = ""

    def __call__(self, result: str) -> None:
        self.result = result
