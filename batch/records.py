"""Case records from lines of JSON or from Parquet: every good one, and each bad one's problems (never its values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import ValidationError

from features import ChildRecord
from features.columnar import RecordFile, read_rows, read_validated
from features.decode import record_decoder

__all__ = ["InvalidLine", "parquet_records", "parse_records"]


@dataclass(frozen=True, slots=True)
class InvalidLine:
    index: int  # the line's (or row's) position in the lines (or row group) given
    errors: list[dict[str, str]]  # each: path, rule, message (pydantic's own words: no input value)


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"path": ".".join(map(str, e["loc"])), "rule": e["type"], "message": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False)]  # fmt: skip


def parse_records(lines: Sequence[str | bytes]) -> tuple[list[ChildRecord], list[InvalidLine]]:
    """Validate each non-blank line as a ``ChildRecord``: the fast decoder, which hands anything it does not accept
    to pydantic (so a bad line's problems are pydantic's own words)."""
    records: list[ChildRecord] = []
    invalid: list[InvalidLine] = []
    decode = record_decoder().decode
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(decode(line))
        except ValidationError as exc:
            invalid.append(InvalidLine(index, _errors(exc)))
    return records, invalid


def _present(value: Any) -> Any:
    """A row without its nulls, at every depth: the form ``closure-risk ingest --out`` writes (missing left out)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value


def parquet_records(file: RecordFile, index: int) -> tuple[list[ChildRecord], list[InvalidLine]]:
    """Row group ``index`` of a Parquet file of records: built straight from its columns when the file is marked
    validated by these census rules; otherwise each row is checked exactly as a JSON line is (``parse_records``)."""
    if file.validated:
        return read_validated(file, index), []
    encode = msgspec.json.Encoder().encode
    return parse_records([encode(_present(row)) for row in read_rows(file, index)])
