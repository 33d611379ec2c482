"""Progress of long jobs: staged lines with counts and an estimate at a terminal (a pseudo-terminal here), and not a
byte of it when standard error is piped or with --quiet."""

from __future__ import annotations

import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATE = ["generate", "--children", "40", "--seed", "5", "--start", "2022", "--end", "2024", "--workers", "1"]


def _at_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the command line with standard error on a pseudo-terminal; standard output stays a pipe."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "closure_risk", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    ) as process:
        os.close(terminal)
        seen = bytearray()
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError as exc:  # the terminal closes when the process ends
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            seen += chunk
        out, _ = process.communicate(timeout=300)
    os.close(controller)
    return process.returncode, out.decode(), seen.decode("utf-8", "replace")


def test_generate_shows_its_stage_count_and_estimate_at_a_terminal(tmp_path: Path) -> None:
    code, out, terminal = _at_a_terminal([*GENERATE, "--out", str(tmp_path / "a")])
    assert code == 0, terminal
    assert "[1/1] simulating 40 children, collection years 2022-2024" in terminal
    assert "(about " in terminal  # the estimate
    assert "done in" in terminal
    assert " children, " in terminal.split("done in", 1)[1]  # what it made, counted
    assert out.strip().startswith("{")  # the JSON summary stays on standard output


def test_progress_is_silent_when_piped_or_quiet(tmp_path: Path) -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "closure_risk", *GENERATE, "--out", str(tmp_path / "b")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert piped.stderr == ""
    assert piped.stdout.strip().startswith("{")
    code, out, terminal = _at_a_terminal(["--quiet", *GENERATE, "--out", str(tmp_path / "c")])
    assert code == 0
    assert terminal == ""
    assert out == piped.stdout.replace(str(tmp_path / "b"), str(tmp_path / "c"))


def test_mlflow_stays_quiet_when_it_is_imported_after_the_libraries_are_quietened() -> None:
    # MLflow sets its loggers' level on its first import: a level set before that would be undone (a fresh clone's
    # first `make serve` printed MLflow's database set-up and environment notes through the progress lines).
    code = (
        "import logging; from cli.progress import quiet_libraries; quiet_libraries(); import mlflow; "
        "print(logging.getLogger('mlflow').getEffectiveLevel(), logging.getLogger('mlflow.store').isEnabledFor(20))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(40), "False"]  # ERROR; INFO lines are dropped
