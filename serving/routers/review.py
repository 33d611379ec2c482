"""``/v1/ui/review``: the review of decisions, for leads: agreement and overrides by band, team and group, closures
of high-band cases, and what-if factors that changed just before a closure (``audit.review``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from audit.review import WHAT_IF_WINDOW_DAYS, review_from_store
from serving.decision_form import GROUNDS
from serving.deps import StoreDep
from serving.report import percent
from serving.ui import PAGE_RESPONSES, ManagerPage, render_page

__all__ = ["router"]

router = APIRouter()
_DIMENSIONS = {"band": "Band", "team": "Team", "sex": "Sex", "disability": "Disability", "ethnic_group": "Ethnic group"}


def _percent(value: float | None) -> str:
    return "none" if value is None else percent(value) if 0.01 <= value <= 0.99 else f"{value * 100:.0f}%"


@router.get(
    "/v1/ui/review",
    response_class=HTMLResponse,
    tags=["pages"],
    summary="The review of decisions: whether the estimate is weighed or deferred to",
    responses=PAGE_RESPONSES,
)
def review_page(
    request: Request,
    viewer: ManagerPage,
    store: StoreDep,
    since: Annotated[dt.date | None, Query(description="only decisions made on or after this date")] = None,
) -> HTMLResponse:
    summary = review_from_store(store, since=since)
    return render_page(
        request, "review.html", viewer=viewer, s=summary, since=since, grounds=GROUNDS, dimension_labels=_DIMENSIONS,
        percent_of=_percent, window=WHAT_IF_WINDOW_DAYS,
    )  # fmt: skip
