"""The frozen pydantic base of the record models, and the collector of their rule violations.

A violation is raised as a pydantic error whose type is the rule's name, at the location of the offending field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["STRUCTURE_ONLY", "Loc", "RecordModel", "Violation", "check_order", "rules_wanted"]

# Validation context: check types and shapes only, not the census rules. Used to find every rule a child breaks
# in one pass (pydantic runs an object's rules only when everything it holds is valid; see features.checking).
STRUCTURE_ONLY: Final = {"structure_only": True}


def rules_wanted(info: ValidationInfo) -> bool:
    """Whether an object's census rules run in this validation (they do, unless the context says otherwise)."""
    context = info.context
    return not (isinstance(context, dict) and context.get("structure_only"))


Loc = tuple[str | int, ...]


class Violation:
    """Collects rule violations of one object and raises them together, each at its own location."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.errors: list[InitErrorDetails] = []

    def add(self, loc: Loc, rule: str, message: str, value: Any) -> None:
        self.errors.append(InitErrorDetails(type=PydanticCustomError(rule, message), loc=loc, input=_jsonable(value)))

    def details(self, at: Loc = ()) -> list[InitErrorDetails]:
        """The violations, each located under ``at``."""
        return [{**error, "loc": (*at, *error["loc"])} for error in self.errors]

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
