"""Case records from lines of JSON: every good one, and each bad line's problems (never its values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from features import ChildRecord
from features.decode import record_decoder

__all__ = ["InvalidLine", "parse_records"]


@dataclass(frozen=True, slots=True)
class InvalidLine:
    index: int  # the line's position in the lines given
    errors: list[dict[str, str]]  # each: path, rule, message (pydantic's own words: no input value)


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
            errors = [{"path": ".".join(map(str, e["loc"])), "rule": e["type"], "message": e["msg"]}
                      for e in exc.errors(include_input=False, include_url=False)]  # fmt: skip
            invalid.append(InvalidLine(index, errors))
    return records, invalid
