"""The queue page's query parameters: filters whose "any" is the empty value a form sends, the order, the page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Query
from pydantic import BeforeValidator, StringConstraints

from audit import QueueSort
from features import Band, Decision
from serving.schemas import CASE_REFERENCE_MAX, CASE_REFERENCE_PATTERN

__all__ = [
    "SORT_LABELS",
    "BandFilter",
    "DecisionFilter",
    "PageParam",
    "QueuePage",
    "ReferenceFilter",
    "SortParam",
    "queue_url",
]


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


@dataclass(frozen=True)
class QueuePage:
    """Where this page of the queue sits: its rows' positions, the other pages' links."""

    number: int
    pages: int
    first: int  # position of the first row shown, from 1 (0: none)
    last: int
    previous_url: str | None
    next_url: str | None


def queue_url(filters: dict[str, str | None], page: int) -> str:
    kept = {name: value for name, value in filters.items() if value}
    return "/v1/ui/queue?" + urlencode({**kept, "page": page}) if page > 1 else "/v1/ui/queue?" + urlencode(kept)


SORT_LABELS = {
    QueueSort.RISK: "highest risk",
    QueueSort.SCORED: "most recently scored",
    QueueSort.DAYS_OPEN: "open longest",
}
