"""The run's figures are drawn in a side process while the model is registered: what it writes arrives, and what
goes wrong there is raised in the run, not lost."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from training.run_log import _aside


def test_aside_work_is_done_when_the_body_ends(tmp_path: Path) -> None:
    target = tmp_path / "figure.txt"

    def draw() -> None:
        target.write_text(str(os.getpid()), encoding="utf-8")

    with _aside(draw):
        pass
    assert target.exists()
    if (os.cpu_count() or 1) > 1:  # drawn in another process where the machine has the cores for it
        assert target.read_text(encoding="utf-8") != str(os.getpid())


def _fail() -> None:
    raise ValueError("no such column: probability")


def test_aside_failure_is_raised_with_its_traceback() -> None:
    with pytest.raises(RuntimeError, match="drawing the run's figures failed") as raised, _aside(_fail):
        pass
    assert "no such column: probability" in str(raised.value)
    assert "_fail" in str(raised.value)  # the side process's own traceback, not only its message


def test_aside_body_failure_wins_and_leaves_no_process() -> None:
    def slow() -> None:
        time.sleep(60)

    with pytest.raises(KeyError), _aside(slow):
        raise KeyError("registration failed")
    assert not [p for p in multiprocessing.active_children() if p.name == "ccr-figures"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with one core the work runs in this process")
def test_aside_process_that_dies_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="exit code"), _aside(lambda: os._exit(3)):
        pass


def test_aside_that_hangs_is_stopped_and_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from training import run_log

    monkeypatch.setattr(run_log, "ASIDE_TIMEOUT_S", 1)

    def hang() -> None:
        time.sleep(60)

    with pytest.raises(RuntimeError, match="did not finish within 1 s"), _aside(hang):
        pass
    assert not [p for p in multiprocessing.active_children() if p.name == "ccr-figures"]
