"""The frozen pydantic base of the record models, and the collector of their rule violations.

A violation is raised as a pydantic error whose type is the rule's name, at the location of the offending field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["Loc", "RecordModel", "Violation", "check_order"]

Loc = tuple[str | int, ...]


class Violation:
    """Collects rule violations of one object and raises them together, each at its own location."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.errors: list[InitErrorDetails] = []

    def add(self, loc: Loc, rule: str, message: str, value: Any) -> None:
        self.errors.append(InitErrorDetails(type=PydanticCustomError(rule, message), loc=loc, input=_jsonable(value)))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError.from_exception_data(self.title, self.errors)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def check_order(v: Violation, earlier: tuple[str, dt.date | None], later: tuple[str, dt.date | None]) -> None:
    """Add a ``date_order`` violation when both dates are given and the later one is before the earlier one."""
    (first_name, first), (second_name, second) = earlier, later
    if first is not None and second is not None and second < first:
        v.add(
            (second_name,),
            "date_order",
            f"{second_name} ({second}) is before {first_name} ({first})",
            second,
        )


class RecordModel(BaseModel):
    """Frozen, strict about unknown fields, and stripping whitespace from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
