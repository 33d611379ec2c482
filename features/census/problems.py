"""What goes wrong reading a return: the whole file (:class:`IngestError`) or one child or field (:class:`Problem`).

Rule names for problems found while reading live here; record rules keep the names ``features.record`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from features.census.dfe import DfeRule, dfe_rule

__all__ = [
    "DUPLICATE_CHILD",
    "DUPLICATE_ELEMENT",
    "DUPLICATE_EPISODE",
    "ID_LOOKS_NUMERIC",
    "INVALID_BOOLEAN",
    "INVALID_CODE",
    "INVALID_DATE",
    "INVALID_ID",
    "INVALID_INTEGER",
    "MAX_PROBLEMS_PER_CHILD",
    "MAX_STRAY_PROBLEMS",
    "MISSING_ELEMENT",
    "NOT_A_VALUE",
    "NOT_WELL_FORMED",
    "RULE_NAMES",
    "TOO_MANY_PROBLEMS",
    "UNEXPECTED_TEXT",
    "UNKNOWN_ELEMENT",
    "WARNING_RULES",
    "YEAR_MISMATCH",
    "IngestError",
    "Problem",
    "Severity",
    "severity_of",
]

INVALID_DATE: Final = "invalid_date"
INVALID_CODE: Final = "invalid_code"
INVALID_BOOLEAN: Final = "invalid_boolean"
INVALID_INTEGER: Final = "invalid_integer"
INVALID_ID: Final = "invalid_id"
MISSING_ELEMENT: Final = "missing_element"
DUPLICATE_ELEMENT: Final = "duplicate_element"
UNKNOWN_ELEMENT: Final = "unknown_element"
YEAR_MISMATCH: Final = "year_reference_date_mismatch"
ID_LOOKS_NUMERIC: Final = "id_looks_numeric"  # 244301.0: a spreadsheet made a number of it
NOT_WELL_FORMED: Final = "not_well_formed"  # the XML parser stopped in a child or between children
NOT_A_VALUE: Final = "not_a_value"  # a value element holding elements: its value is lost
UNEXPECTED_TEXT: Final = "unexpected_text"
DUPLICATE_CHILD: Final = "duplicate_child"
DUPLICATE_EPISODE: Final = "duplicate_episode"
TOO_MANY_PROBLEMS: Final = "too_many_problems"
# pydantic's own error types, renamed to the reader's rule names; record rules keep their names.
RULE_NAMES: Final = {
    "missing": "missing_element",
    "date_type": "invalid_date",
    "date_parsing": "invalid_date",
    "date_from_datetime_parsing": "invalid_date",
    "date_from_datetime_inexact": "invalid_date",
    "enum": "invalid_code",
    "bool_type": "invalid_boolean",
    "bool_parsing": "invalid_boolean",
    "int_type": "invalid_integer",
    "int_parsing": "invalid_integer",
    "int_from_float": "invalid_integer",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "string_too_short": "invalid_id",
    "string_too_long": "invalid_id",
    "string_pattern_mismatch": "invalid_id",
    "extra_forbidden": "unknown_field",
    "json_invalid": "invalid_json",
}
# Problems are listed one by one up to these counts, then summed up in one more: a small hostile file of a million
# stray elements would otherwise become a million problem rows (memory and a problems file many times its size).
MAX_PROBLEMS_PER_CHILD: Final = 100
MAX_STRAY_PROBLEMS: Final = 1000


# Rules whose problems keep the child: an element the schema does not know loses nothing the record holds (a newer
# return's block, a misspelt optional element), so the data officer is told and the child is still used.
WARNING_RULES: Final = frozenset({UNKNOWN_ELEMENT, YEAR_MISMATCH, ID_LOOKS_NUMERIC})


class Severity(StrEnum):
    """``error`` leaves the child out; ``warning`` keeps it and tells the data officer."""

    ERROR = "error"
    WARNING = "warning"


def severity_of(rule: str) -> Severity:
    return Severity.WARNING if rule in WARNING_RULES else Severity.ERROR


class IngestError(Exception):
    """A whole file is unusable; the message names the file and says why."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a child (or a line, or a header field) could not be used as it stands."""

    source: str
    la_child_id: str | None
    path: str
    rule: str
    message: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def dfe_rule(self) -> DfeRule | None:
        """The DfE validation rule this problem breaks (number and the DfE's message), where there is one."""
        return dfe_rule(self.rule, self.path)
