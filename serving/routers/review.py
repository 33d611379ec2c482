"""``/v1/ui/review``: the review of decisions, for leads: agreement and overrides by band, team and group, closures
of high-band cases, and what-if factors that changed just before a closure (``audit.review``).

A lead is a manager whose key serves every team (``audit.access.ALL_TEAMS``); admins see the page too. It counts
every team's decisions, so a manager of one team is refused (403): the figures would show other teams' cases."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from audit import is_lead
from audit.review import WHAT_IF_WINDOW_DAYS, review_from_store
from features import Role
from serving.decision_form import GROUNDS
from serving.deps import SettingsDep, StoreDep
from serving.report import percent
from serving.ui import PAGE_RESPONSES, Viewer, render_page, signed_in

__all__ = ["require_lead_page", "router"]

router = APIRouter()
_DIMENSIONS = {"band": "Band", "team": "Team", "sex": "Sex", "disability": "Disability", "ethnic_group": "Ethnic group"}


def require_lead_page(request: Request, store: StoreDep, settings: SettingsDep) -> Viewer:
    """A signed-in lead or admin; anyone else is sent to sign in (303) or refused (403, a page saying why)."""
    viewer = signed_in(request, store, settings)
    if is_lead(viewer.key):
        return viewer
    if viewer.key.role == Role.MANAGER:
        message = (
            "The review of decisions is for leads: it counts every team's decisions. This key serves one team; "
            "ask for a lead's key (a manager key of all teams) to see it."
        )
    else:
        message = f"The review of decisions is for leads and admins; this key's role is {viewer.key.role}."
    raise HTTPException(status.HTTP_403_FORBIDDEN, message)


LeadPage = Annotated[Viewer, Depends(require_lead_page)]


def _percent(value: float | None) -> str:
    return "none" if value is None else percent(value) if 0.01 <= value <= 0.99 else f"{value * 100:.0f}%"


@router.get(
    "/v1/ui/review",
    response_class=HTMLResponse,
    tags=["pages"],
    summary="The review of decisions, for leads (all-teams managers) and admins: whether the estimate is weighed "
    "or deferred to",
    responses=PAGE_RESPONSES,
)
def review_page(
    request: Request,
    viewer: LeadPage,
    store: StoreDep,
    since: Annotated[dt.date | None, Query(description="only decisions made on or after this date")] = None,
) -> HTMLResponse:
    summary = review_from_store(store, since=since)
    return render_page(
        request, "review.html", viewer=viewer, s=summary, since=since, grounds=GROUNDS, dimension_labels=_DIMENSIONS,
        percent_of=_percent, window=WHAT_IF_WINDOW_DAYS,
    )  # fmt: skip
