"""The kinds of value a census element holds: how its text is read, and how the writer spells the value.

Reading takes the text already stripped and raises ValueError saying why it is not acceptable; the element's tag is
passed in for the messages that name it. Booleans are read as ``0/1`` or ``true/false`` (both spellings occur in
2017-2026 returns) and written as ``0/1``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final
from xml.sax.saxutils import escape

from features.census.problems import INVALID_BOOLEAN, INVALID_CODE, INVALID_DATE, INVALID_ID, INVALID_INTEGER
from features.codes import Sex, sex_from_gender_current

__all__ = ["BOOLEAN", "CHILD_ID", "DATE", "GENDER_CURRENT", "INTEGER", "TEXT", "YEAR", "ValueType", "codes", "show"]


@dataclass(frozen=True, slots=True)
class ValueType:
    """How one kind of value is read from an element's text and written back; ``rule`` names a bad text's problem.

    ``write`` is None for a spelling that is only read (an older year's), never written.
    """

    name: str
    rule: str
    read: Callable[[str, str], Any]
    write: Callable[[Any], str] | None


def show(text: str, limit: int = 40) -> str:
    """The text as it may appear in a message: quoted, and cut short when long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _read_date(text: str, tag: str) -> dt.date:
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        raise ValueError(f"{show(text)} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{show(text)} is not a date (YYYY-MM-DD)") from None


_BOOLEANS: Final = {"0": False, "1": True, "false": False, "true": True}


def _read_boolean(text: str, tag: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"{show(text)} is not a boolean (0, 1, true or false)") from None


def _read_integer(text: str, tag: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ValueError(f"{show(text)} is not a whole number")
    return int(text)


def _read_year(text: str, tag: str) -> int:
    if len(text) == 4 and text.isascii() and text.isdigit() and text != "0000":
        return int(text)
    raise ValueError(f"{show(text)} is not a year")


_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def _read_child_id(text: str, tag: str) -> str:
    if not text:
        raise ValueError(f"{tag} is empty")
    if len(text) > 100 or _CONTROL.search(text):
        raise ValueError(f"{tag} {show(text)} is longer than 100 characters or holds control characters")
    return text


def _read_gender_current(text: str, tag: str) -> Sex:
    try:
        return sex_from_gender_current(text)
    except KeyError:
        raise ValueError(f"{show(text)} is not a {tag} code (1, 2, 0 or 9)") from None


def _read_text(text: str, tag: str) -> str:
    return text


def _write_boolean(value: bool) -> str:
    return "1" if value else "0"


def codes(code_list: type[StrEnum]) -> ValueType:
    """One of the codes of a census code list, read into its member."""
    members = {str(code): code for code in code_list}
    allowed = ", ".join(members)

    def read(text: str, tag: str) -> StrEnum:
        try:
            return members[text]
        except KeyError:
            raise ValueError(f"{show(text)} is not one of the {tag} codes: {allowed}") from None

    return ValueType(f"{code_list.__name__} code", INVALID_CODE, read, attrgetter("value"))


DATE: Final = ValueType("date", INVALID_DATE, _read_date, dt.date.isoformat)
BOOLEAN: Final = ValueType("boolean", INVALID_BOOLEAN, _read_boolean, _write_boolean)
INTEGER: Final = ValueType("whole number", INVALID_INTEGER, _read_integer, str)
YEAR: Final = ValueType("year", INVALID_INTEGER, _read_year, str)
CHILD_ID: Final = ValueType("child id", INVALID_ID, _read_child_id, escape)
TEXT: Final = ValueType("text", INVALID_CODE, _read_text, escape)  # any text is read: the rule is never given
# Sex as returns before 2024-25 give it: 1 male, 2 female, 0 not known, 9 not specified.
GENDER_CURRENT: Final = ValueType("GenderCurrent code", INVALID_CODE, _read_gender_current, None)
