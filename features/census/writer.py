"""Writing a CIN census return: deterministic, byte for byte, in the schema table's element order.

Each element the table lists is written where its field has a value (a list, where it has any items), indented two
spaces per level; elements read past and older spellings are never written.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from features.census.schema import CHILD, CHILDREN, COLLECTION, HEADER, MESSAGE, Group, Ignored, Leaf, ListOf
from features.census.values import ValueType
from features.record import ChildRecord, Episode, record_as_of

__all__ = ["SOFTWARE_CODE", "WRITER_RELEASE", "census_child", "write_census_elements", "write_census_return"]

SOFTWARE_CODE: Final = "case-closure-risk"
WRITER_RELEASE: Final = "1"
_XML_INVALID: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LEA: Final = re.compile(r"\d{3}")

_Add = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class ReturnHeader:
    """The header's values, named as the schema table's header fields."""

    collection_year: int
    reference_date: dt.date
    lea: str
    date_time: str
    collection: str = COLLECTION
    source_level: str = "L"
    software_code: str = SOFTWARE_CODE
    release: str = WRITER_RELEASE
    serial_no: str = "001"


def _header(collection_year: int, reference_date: dt.date, lea: str) -> ReturnHeader:
    """A fixed time of day, so the output depends only on the arguments."""
    return ReturnHeader(collection_year, reference_date, lea, date_time=f"{collection_year}-04-01T00:00:00")


# --- how each element is written, compiled once from the schema table -----------------------------------------


def _writes(value_type: ValueType, tag: str) -> Callable[[Any], str]:
    if value_type.write is None:
        raise TypeError(f"{tag}: {value_type.name} values are read, never written")
    return value_type.write


@dataclass(frozen=True, slots=True)
class _Value:
    """Written by the group it sits in, when its field is set."""

    field: str
    start: str
    end: str
    write: Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class _List:
    field: str
    start: str
    end: str
    item_start: str
    item_end: str
    write: Callable[[Any], str]

    def put(self, obj: Any, add: _Add) -> None:
        values = getattr(obj, self.field)
        if values:
            add(self.start)
            for value in values:
                add(f"{self.item_start}{self.write(value)}{self.item_end}")
            add(self.end)


@dataclass(frozen=True, slots=True)
class _Group:
    field: str | None  # None: the group's fields are its parent's
    repeated: bool
    start: str
    end: str
    parts: tuple[_Value | _List | _Group, ...]

    def put(self, obj: Any, add: _Add) -> None:
        if self.field is None:
            self.put_one(obj, add)
            return
        value = getattr(obj, self.field)
        if not self.repeated:
            if value is not None:
                self.put_one(value, add)
            return
        for item in value or ():
            self.put_one(item, add)

    def put_one(self, obj: Any, add: _Add) -> None:
        add(self.start)
        for part in self.parts:
            if isinstance(part, _Value):  # most parts: written here, saving a call per element of every child
                value = getattr(obj, part.field)
                if value is not None:
                    add(f"{part.start}{part.write(value)}{part.end}")
            else:
                part.put(obj, add)
        add(self.end)


def _start(tag: str, depth: int) -> str:
    return f"{'  ' * depth}<{tag}>\n"


def _end(tag: str, depth: int) -> str:
    return f"{'  ' * depth}</{tag}>\n"


def _compile(group: Group, depth: int) -> _Group:
    parts: list[_Value | _List | _Group] = []
    inner = "  " * (depth + 1)
    for element in group.elements:
        if isinstance(element, Ignored):
            continue
        if isinstance(element, Leaf):
            write = _writes(element.type, element.tag)
            parts.append(_Value(element.field, f"{inner}<{element.tag}>", f"</{element.tag}>\n", write))
        elif isinstance(element, ListOf):
            write = _writes(element.type, element.item)
            item_start, item_end = f"{inner}  <{element.item}>", f"</{element.item}>\n"
            start, end = _start(element.tag, depth + 1), _end(element.tag, depth + 1)
            parts.append(_List(element.field, start, end, item_start, item_end, write))
        else:
            parts.append(_compile(element, depth + 1))
    return _Group(group.field, group.repeated, _start(group.tag, depth), _end(group.tag, depth), tuple(parts))


_HEADER: Final = _compile(HEADER, 1)
_CHILD: Final = _compile(CHILD, 2)
_CLOSING: Final = _end(CHILDREN.tag, 1) + _end(MESSAGE.tag, 0)


def _opening(header: ReturnHeader) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', _start(MESSAGE.tag, 0)]
    _HEADER.put(header, out.append)
    out.append(_start(CHILDREN.tag, 1))
    return "".join(out)


def _in_year(episode: Episode, start: dt.date, end: dt.date) -> bool:
    return episode.referral_date <= end and (episode.closure_date is None or episode.closure_date >= start)


def census_child(record: ChildRecord, *, collection_year: int) -> str | None:
    """The ``<Child>`` element of collection year Y's return for one record, or None when it has no episode open
    in the year: the child as it stood on 31 March Y, with just those episodes."""
    start, reference_date = dt.date(collection_year - 1, 4, 1), dt.date(collection_year, 3, 31)
    if not any(_in_year(e, start, reference_date) for e in record.episodes):
        return None
    if _XML_INVALID.search(record.la_child_id):
        raise ValueError(f"LAchildID {record.la_child_id!r} holds a character XML cannot carry")
    as_of = record_as_of(record, reference_date)
    assert as_of is not None  # an episode in the year was referred on or before its end
    in_year = [e for e in as_of.episodes if _in_year(e, start, reference_date)]
    if len(in_year) < len(as_of.episodes):
        as_of = as_of.model_copy(update={"episodes": in_year})
    parts: list[str] = []
    _CHILD.put(as_of, parts.append)
    return "".join(parts)


def write_census_elements(children: Iterable[str], *, collection_year: int, out: Path, lea: str = "999") -> int:
    """Write a return from its ``<Child>`` elements (each made by :func:`census_child` for the same year), in the
    order given; return how many. Written to a partial file renamed into place only when complete. Raises
    ValueError when there are none (the schema requires at least one Child) and leaves ``out`` untouched."""
    if not _LEA.fullmatch(lea):
        raise ValueError(f"lea must be a three-digit local authority code, not {lea!r}")
    reference_date = dt.date(collection_year, 3, 31)
    partial = out.with_name(out.name + ".partial")
    written = 0
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            stream.write(_opening(_header(collection_year, reference_date, lea)))
            batch: list[str] = []
            for child in children:
                batch.append(child)
                written += 1
                if written % 1000 == 0:
                    stream.write("".join(batch))
                    batch.clear()
            stream.write("".join(batch))
            stream.write(_CLOSING)
        if written == 0:
            raise ValueError(
                f"no child has an episode open in collection year {collection_year} "
                "(the schema requires at least one Child)"
            )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def write_census_return(records: Iterable[ChildRecord], *, collection_year: int, out: Path, lea: str = "999") -> int:
    """Write the return for collection year Y (1 April Y-1 to 31 March Y); return how many children it holds.

    Every child with an episode open at some point in the year is written as it stood on 31 March Y, with just
    those episodes, in the 2025-26 schema's element order. Extension fields are not census data and are not
    written. The output depends only on the records and arguments, byte for byte. Raises ValueError when no
    child qualifies (the schema requires at least one Child) and leaves ``out`` untouched.
    """
    elements = (census_child(record, collection_year=collection_year) for record in records)
    return write_census_elements(
        (element for element in elements if element is not None), collection_year=collection_year, out=out, lea=lea
    )
