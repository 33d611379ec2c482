"""``closure-risk score`` on one machine: JSON-lines case records to explained scores, in forked workers."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.records import parse_records
from features.batching import collector_paused
from models import BATCH_FIELDS, RiskModel, assess

__all__ = ["LocalScoreSummary", "score_file"]

# The job, inherited by forked worker processes (never pickled): (model, input, as_of, reasons).
_JOB: tuple[RiskModel, Path, dt.date, int | None] | None = None
_CHUNK_BYTES = 8 << 20  # about 2,000 records a chunk


@dataclass(frozen=True)
class LocalScoreSummary:
    out: Path
    model_version: str
    as_of: dt.date
    scored: int
    no_open_episode: int
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)  # line number and errors, in input order
    seconds: float = 0.0


def _chunks(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of the file, each ending at a line end, about _CHUNK_BYTES long."""
    size = path.stat().st_size
    bounds, start = [], 0
    with path.open("rb") as source:
        while start < size:
            source.seek(min(start + _CHUNK_BYTES, size))
            source.readline()
            end = min(source.tell(), size)
            bounds.append((start, end))
            start = end
    return bounds


def _iso(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


_JSON = json.JSONEncoder(default=_iso)  # one encoder: json.dumps with default= would build one per line


def _score_chunk(bounds: tuple[int, int]) -> tuple[bytes, int, int, int, list[dict[str, Any]]]:
    """Score one byte range: (output lines, input lines, scored, not open, invalid lines numbered in the chunk)."""
    if _JOB is None:
        raise RuntimeError("no scoring job was handed to this process")
    model, path, as_of, top = _JOB
    with path.open("rb") as source:
        source.seek(bounds[0])
        lines = source.read(bounds[1] - bounds[0]).splitlines()
    with collector_paused():
        records, invalid = parse_records(lines)
        assessed = assess(model, records, as_of, what_ifs=False)
        out = [_JSON.encode(a.to_row(top=top, fields=BATCH_FIELDS)) for a in assessed.assessments]
    text = ("\n".join(out) + "\n").encode("utf-8") if out else b""
    bad = [{"line": i.index + 1, "errors": i.errors} for i in invalid]
    return text, len(lines), len(assessed.assessments), len(assessed.not_open), bad


class _Inline:
    """A one-process stand-in for ProcessPoolExecutor (``workers=1``)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[[tuple[int, int]], Any], items: Iterable[tuple[int, int]]) -> Iterator[Any]:
        return map(fn, items)


def score_file(
    model: RiskModel, source: Path, out: Path, *, as_of: dt.date, top: int | None = 5, workers: int = 1
) -> LocalScoreSummary:
    """Score every record of ``source`` (JSON lines) as of ``as_of`` into ``out`` (JSON lines, input order).

    The file is cut into byte ranges that forked worker processes read and score side by side with ``models.assess`` (no
    record crosses a pipe); their output is written in input order. Invalid lines are counted and described by line
    number and rule, never by value.
    """
    global _JOB
    model.explainer  # noqa: B018 (built once, before the workers fork)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    scored = not_open = lines_before = 0
    invalid: list[dict[str, Any]] = []
    _JOB = (model, source, as_of, top)
    try:
        with out.open("wb") as sink, ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork")
        ) if workers > 1 else _Inline() as pool:  # fmt: skip
            for text, lines, n_scored, n_not_open, bad in pool.map(_score_chunk, _chunks(source)):
                sink.write(text)
                scored += n_scored
                not_open += n_not_open
                invalid.extend({**b, "line": b["line"] + lines_before} for b in bad)
                lines_before += lines
    finally:
        _JOB = None
    return LocalScoreSummary(out=out, model_version=model.version, as_of=as_of, scored=scored,
                             no_open_episode=not_open, invalid_lines=invalid,
                             seconds=time.perf_counter() - started)  # fmt: skip
