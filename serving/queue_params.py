"""The queue page's query parameters: filters whose "any" is the empty value a form sends, the order, the page."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BeforeValidator, StringConstraints

from audit import QueueSort
from features import Band, Decision
from serving.schemas import CASE_REFERENCE_MAX, CASE_REFERENCE_PATTERN

__all__ = ["BandFilter", "DecisionFilter", "PageParam", "ReferenceFilter", "SortParam"]


def _blank_is_any(value: object) -> object:
    """A form's "any" option sends an empty value: it means no filter (the schema says so too)."""
    return None if value == "" else value


Blank = Literal[""]  # documented beside each filter's values: what the form sends for "any"
BandFilter = Annotated[Band | Blank | None, BeforeValidator(_blank_is_any), Query(description="only this band")]
DecisionFilter = Annotated[
    Decision | Literal["undecided"] | Blank | None,
    BeforeValidator(_blank_is_any),
    Query(description="only cases whose latest decision is this (or undecided)"),
]
ReferenceFilter = Annotated[
    Annotated[str, StringConstraints(max_length=CASE_REFERENCE_MAX, pattern=CASE_REFERENCE_PATTERN)] | Blank | None,
    BeforeValidator(_blank_is_any),
    Query(description="only the case with this reference from the calling system"),
]
SortParam = Annotated[QueueSort, Query(description="order: risk, scored (newest first) or days_open (longest first)")]
PageParam = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
