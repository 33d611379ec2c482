"""``closure-risk score`` on one machine: case records (JSON lines, Parquet) to explained scores, in forked workers."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batch.records import parquet_records, parse_records
from features.batching import collector_paused
from features.columnar import RecordFile, is_parquet, open_record_file
from models import BATCH_FIELDS, RiskModel, assess

__all__ = ["LocalScoreSummary", "encode_row", "score_file"]

# The job, inherited by forked worker processes (never pickled): (model, input, as_of, reasons, Parquet file or None).
_JOB: tuple[RiskModel, Path, dt.date, int | None, RecordFile | None] | None = None
_CHUNK_BYTES = 8 << 20  # about 2,000 records a chunk
_Unit = tuple[int, int] | int  # a byte range of JSON lines, or a row group of Parquet


@dataclass(frozen=True)
class LocalScoreSummary:
    out: Path
    model_version: str
    as_of: dt.date
    scored: int
    no_open_episode: int
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)  # line (or row) number and errors, in order
    seconds: float = 0.0
    input_format: str = "jsonl"
    validated_on_read: bool = True  # False only for a Parquet file marked validated by these rules (read as it is)


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


def encode_row(row: dict[str, Any]) -> bytes:
    """One output line's JSON (dates as ISO dates), with orjson as the API's answers: about a tenth of the CPU of
    the standard library's encoder, which was a sixth of a case's cost in a batch (``benchmarks/README.md``)."""
    return orjson.dumps(row)


def _read(unit: _Unit) -> tuple[list[Any], list[Any], int]:
    """The records of one unit of the input, its invalid ones, and how many lines (or rows) it held."""
    if _JOB is None:
        raise RuntimeError("no scoring job was handed to this process")
    path, file = _JOB[1], _JOB[4]
    if isinstance(unit, int):
        if file is None:
            raise RuntimeError("a row group of a file that is not Parquet")
        records, invalid = parquet_records(file, unit)
        return records, invalid, len(records) + len(invalid)
    with path.open("rb") as source:
        source.seek(unit[0])
        lines = source.read(unit[1] - unit[0]).splitlines()
    records, invalid = parse_records(lines)
    return records, invalid, len(lines)


def _score_chunk(unit: _Unit) -> tuple[bytes, int, int, int, list[dict[str, Any]]]:
    """Score one unit: (output lines, input lines or rows, scored, not open, invalid ones numbered in the unit)."""
    if _JOB is None:
        raise RuntimeError("no scoring job was handed to this process")
    model, _, as_of, top, file = _JOB
    with collector_paused():
        records, invalid, held = _read(unit)
        assessed = assess(model, records, as_of, what_ifs=False)
        out = [encode_row(a.to_row(top=top, fields=BATCH_FIELDS)) for a in assessed.assessments]
    text = b"\n".join(out) + b"\n" if out else b""
    where = "line" if file is None else "row"
    bad = [{where: i.index + 1, "errors": i.errors} for i in invalid]
    return text, held, len(assessed.assessments), len(assessed.not_open), bad


class _Inline:
    """A one-process stand-in for ProcessPoolExecutor (``workers=1``)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[[_Unit], Any], items: Iterable[_Unit]) -> Iterator[Any]:
        return map(fn, items)


def score_file(
    model: RiskModel, source: Path, out: Path, *, as_of: dt.date, top: int | None = 5, workers: int = 1
) -> LocalScoreSummary:
    """Score every record of ``source`` as of ``as_of`` into ``out`` (JSON lines, input order).

    ``source`` is JSON lines, or Parquet (by its name or its first bytes): a Parquet file that ``closure-risk ingest
    --parquet`` marked validated by these census rules is read straight into records, any other is checked record by
    record as JSON lines are (``features.columnar.RecordFileError`` for one that cannot be read). The input is cut
    into byte ranges (or row groups) that forked worker processes read and score side by side with
    ``models.assess`` (no record crosses a pipe); their output is written in input order, to a file beside ``out``
    renamed onto it once complete. Invalid records are counted and described by line (or row) number and rule, never
    by value.
    """
    global _JOB
    file = open_record_file(source) if is_parquet(source) else None
    units: list[_Unit] = list(range(file.row_groups)) if file is not None else list(_chunks(source))
    model.explainer  # noqa: B018 (built once, before the workers fork)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    scored = not_open = before = 0
    invalid: list[dict[str, Any]] = []
    where = "line" if file is None else "row"
    _JOB = (model, source, as_of, top, file)
    try:
        with partial.open("wb") as sink, ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork")
        ) if workers > 1 else _Inline() as pool:  # fmt: skip
            for text, held, n_scored, n_not_open, bad in pool.map(_score_chunk, units):
                sink.write(text)
                scored += n_scored
                not_open += n_not_open
                invalid.extend({**b, where: b[where] + before} for b in bad)
                before += held
        partial.replace(out)
    finally:
        _JOB = None
        partial.unlink(missing_ok=True)
    return LocalScoreSummary(out=out, model_version=model.version, as_of=as_of, scored=scored,
                             no_open_episode=not_open, invalid_lines=invalid,
                             seconds=time.perf_counter() - started, input_format="jsonl" if file is None else "parquet",
                             validated_on_read=file is None or not file.validated)  # fmt: skip
