"""The manager's pages: sign-in, the queue of scored open cases, the explanation report and the decision form."""

from __future__ import annotations

import datetime as dt
import hmac
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

import audit
from audit import ApiKey, DecisionExists, QueueSort, ReadKind, ScoreNotFound, UiSession, chain_summary, visible_teams
from features import Agreement, Decision, Role
from features.numbers import in_words, percent, percent_points
from models import RiskModel
from models.registry import load_model_uri
from serving.decision_form import GROUNDS, open_seconds, opened_stamp, review_from_form
from serving.deps import SettingsDep, StoreDep, get_model, readable_score
from serving.honesty import honesty_view
from serving.queue_params import (
    SORT_LABELS,
    BandFilter,
    DecisionFilter,
    PageParam,
    QueuePage,
    ReferenceFilter,
    SortParam,
    queue_url,
)
from serving.report import build_report, format_value
from serving.schemas import hidden_characters
from serving.security import security_event

__all__ = [
    "PAGE_RESPONSES",
    "SESSION_COOKIE",
    "STATIC",
    "ManagerPage",
    "Viewer",
    "is_page",
    "render_error",
    "render_invalid",
    "render_page",
    "router",
    "signed_in",
]

SESSION_COOKIE = "ccr_session"
STATIC = Path(__file__).resolve().with_name("static")
_TEMPLATES = Path(__file__).resolve().with_name("templates")
_MODEL_CACHE = 4  # older model versions kept loaded for their reports

router = APIRouter()
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    percent=percent,
    in_words=in_words,
    percent_points=percent_points,
    decision_labels={d.value: d.label for d in Decision},
    format_value=format_value,
    agreement_labels={a.value: a.label for a in Agreement},
    agreements=[a.value for a in Agreement],
    grounds=GROUNDS,
    is_lead=lambda viewer: viewer is not None and audit.is_lead(viewer.key),  # the review of decisions: leads only
)

_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_REFUSED = {"content": {"text/html": {}}, "description": "the key's role may not do this, or the form is stale"}
_INVALID = {"content": {"text/html": {}}, "description": "a parameter or form field is not valid: the page says which"}
_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "the page"},
    303: {"description": "not signed in: to the sign-in page"},
    403: _REFUSED,
    422: _INVALID,
}


class Viewer:
    """Who is looking at a page: a manager's key, and the page session if it came by cookie."""

    def __init__(self, key: ApiKey, session: UiSession | None) -> None:
        self.key, self.session = key, session


def _render(request: Request, template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


_TITLES = {401: "Sign in first", 403: "Not allowed", 404: "Not found", 409: "Already decided", 422: "Check the form"}


def is_page(request: Request) -> bool:
    """A request for one of the HTML pages (their refusals are pages too)."""
    path = request.url.path
    return path.startswith("/v1/ui/") or (
        path.startswith("/v1/scores/") and (path.endswith(("/report", "/report.pdf")))
    )


def render_invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
    """A page's invalid parameter or form field, as a page that names it."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'not valid')}"
        for error in exc.errors()
    )
    return _render(request, "error.html", 422, title=_TITLES[422], message=problems, viewer=None)


def render_error(request: Request, exc: HTTPException) -> HTMLResponse:
    title = _TITLES.get(exc.status_code, "Something went wrong")
    response = _render(request, "error.html", exc.status_code, title=title, message=str(exc.detail), viewer=None)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _local_path(target: str | None) -> str:
    """Only a path on this site is followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/v1/ui/queue"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/v1/ui/queue"


def _viewer(request: Request, store: StoreDep, settings: SettingsDep) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = store.verify_session(token, idle_s=settings.session_idle_minutes * 60)
        if session is not None:
            return Viewer(session.key, session)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        key = store.verify_key(credentials.strip())
        if key is not None:
            return Viewer(key, None)
    return None


def signed_in(request: Request, store: StoreDep, settings: SettingsDep) -> Viewer:
    """Whoever is signed in (a page session or a bearer key, any role); no one: to the sign-in page (303)."""
    if (viewer := _viewer(request, store, settings)) is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first",
                            headers={"Location": f"/v1/ui/login?next={quote(target, safe='')}"})  # fmt: skip
    return viewer


def require_manager_page(request: Request, store: StoreDep, settings: SettingsDep) -> Viewer:
    """A signed-in manager; anyone else is sent to sign in (303) or refused (403).

    The pages are server-rendered HTML (Jinja2, autoescaped), no JavaScript. Signing in uses the same API keys as the
    API: a manager's key posted to the login form opens a session kept in the audit store (the cookie holds a random
    token, the store its SHA-256 digest), so revoking the key ends its sessions too. The cookie is HttpOnly, Secure
    and SameSite=Strict, and every form post also carries the session's CSRF token. A session unused for
    ``CCR_SESSION_IDLE_MINUTES`` ends. The report also answers a manager's bearer key, so a case-management system can
    link to it. A manager sees the key's team's cases only, and every page that shows a score is recorded as read.
    """
    viewer = signed_in(request, store, settings)
    if viewer.key.role != Role.MANAGER:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this page needs a key with role manager; this key's role is {viewer.key.role}",
        )
    return viewer


ManagerPage = Annotated[Viewer, Depends(require_manager_page)]
render_page = _render  # for the pages of other routers (``serving.routers.review``)
PAGE_RESPONSES = _PAGE_RESPONSES


def _check_form(request: Request, viewer: Viewer, csrf: str) -> UiSession:
    """A form post must come from a signed-in session, from this site, with that session's CSRF token."""
    origin = request.headers.get("origin")
    # "null": the browser withholds the origin (the pages send Referrer-Policy: no-referrer); the token still decides.
    if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form was posted from another site")
    if viewer.session is None or not hmac.compare_digest(viewer.session.csrf_token.encode(), csrf.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form's session token is missing or stale: reload the page")
    return viewer.session


def _model_for(request: Request, version: str) -> RiskModel | None:
    """The model version that made a score: the served one, or an older registered version (kept a while)."""
    served = get_model(request)  # this worker's, once it has followed the latest reload
    if served.version == version:
        return served
    if not version.isdigit():  # a local bundle that is no longer served cannot be found again
        return None
    cache: OrderedDict[str, RiskModel] | None = getattr(request.app.state, "report_models", None)
    if cache is None:
        cache = request.app.state.report_models = OrderedDict()
    if version in cache:
        return cache[version]
    name = served.name
    try:
        model = load_model_uri(f"models:/{name}/{version}")
    except Exception:  # any registry failure: the report says the facts are unavailable, and the next one retries
        return None
    cache[version] = model
    while len(cache) > _MODEL_CACHE:
        cache.popitem(last=False)
    return model


@router.get(
    "/v1/ui/login",
    response_class=HTMLResponse,
    tags=["pages"],
    summary="Sign-in page",
    responses={200: _HTML, 422: _INVALID},
)
def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> HTMLResponse:
    return _render(request, "login.html", next=_local_path(next), error=None)


@router.post(
    "/v1/ui/login",
    tags=["pages"],
    summary="Sign in with a manager's API key: sets the session cookie",
    responses={
        303: {"description": "signed in: to the page asked for"},
        401: {**_HTML, "description": "the key is not valid or has been revoked"},
        403: {**_HTML, "description": "the key is not a manager's"},
        422: _INVALID,
    },
    response_class=Response,
)
def login(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    api_key: Annotated[str, Form(max_length=200)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    target = _local_path(next)
    key = store.verify_key(api_key.strip())
    if key is None:
        security_event("sign_in_refused", reason="unknown or revoked key")
        return _render(request, "login.html", 401, next=target, error="That key is not valid or has been revoked.")
    if key.role != Role.MANAGER:
        security_event("sign_in_refused", reason="not a manager's key", key_id=key.id)
        error = f"This key's role is {key.role}: the pages are for managers. Use a manager's key."
        return _render(request, "login.html", 403, next=target, error=error)
    lifetime = int(settings.session_hours * 3600)
    token, _ = store.create_session(key, lifetime_s=lifetime)
    security_event("signed_in", key_id=key.id)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=lifetime,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post(
    "/v1/ui/logout",
    tags=["pages"],
    summary="Sign out: ends the page session",
    responses={
        303: {"description": "signed out (or not signed in): to the sign-in page"},
        403: _REFUSED,
        422: _INVALID,
    },
    response_class=Response,
)
def logout(
    request: Request, viewer: ManagerPage, store: StoreDep, csrf: Annotated[str, Form(max_length=200)]
) -> Response:
    _check_form(request, viewer, csrf)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        store.end_session(token)
    response = RedirectResponse("/v1/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get(
    "/v1/ui/queue",
    response_class=HTMLResponse,
    tags=["pages"],
    summary="The latest score of each scored open case, a page at a time, highest risk first unless sorted otherwise",
    responses=_PAGE_RESPONSES,
)
def queue_page(
    request: Request,
    viewer: ManagerPage,
    store: StoreDep,
    settings: SettingsDep,
    band: BandFilter = None,
    decision: DecisionFilter = None,
    reference: ReferenceFilter = None,
    sort: SortParam = QueueSort.RISK,
    page: PageParam = 1,
) -> HTMLResponse:
    band, decision, reference = band or None, decision or None, reference or None  # "" never arrives: see Blank
    store.record_read(key_id=viewer.key.id, what=ReadKind.QUEUE)
    size = settings.queue_limit
    rows, total = store.queue(
        band=band,
        decision=decision,
        case_reference=reference,
        sort=sort,
        limit=size,
        offset=(page - 1) * size,
        teams=visible_teams(viewer.key),
    )
    pages = max(1, -(-total // size))
    filters = {"band": band, "decision": decision, "reference": reference, "sort": sort if sort != "risk" else None}
    where = QueuePage(
        number=page,
        pages=pages,
        first=(page - 1) * size + 1 if rows else 0,
        last=(page - 1) * size + len(rows),
        previous_url=queue_url(filters, min(page - 1, pages)) if page > 1 else None,
        next_url=queue_url(filters, page + 1) if page < pages else None,
    )
    return _render(
        request,
        "queue.html",
        viewer=viewer,
        rows=rows,
        total=total,
        band=band,
        decision=decision,
        reference=reference,
        sort=sort,
        where=where,
        decisions=[d.value for d in Decision],
        sorts=SORT_LABELS,
    )


def _report_response(
    request: Request,
    viewer: Viewer,
    store: StoreDep,
    score_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    what: ReadKind = ReadKind.REPORT,
) -> HTMLResponse:
    row = readable_score(store, viewer.key, score_id, what=what)
    model = _model_for(request, row.model_version)
    report = build_report(row, store.decisions(score_id), model, case_decisions=store.case_decisions(row.case_id))
    session = viewer.session
    return _render(
        request,
        "report.html",
        status_code,
        viewer=viewer,
        report=report,
        error=error,
        today=dt.date.today(),
        decisions=[d.value for d in Decision],
        audit_chain=chain_summary(store.chain_report),
        reviews=store.reviews([d.id for d in report.decisions]),
        honesty=honesty_view(row, model),
        opened=opened_stamp(session.csrf_token) if session is not None else "",
    )


@router.get(
    "/v1/scores/{score_id}/report",
    response_class=HTMLResponse,
    tags=["pages"],
    summary="The manager's explanation report of a stored score (printable)",
    responses={**_PAGE_RESPONSES, 404: {**_HTML, "description": "no such score"}},
)
def report_page(score_id: str, request: Request, viewer: ManagerPage, store: StoreDep) -> HTMLResponse:
    return _report_response(request, viewer, store, score_id)


def _local_assets() -> Any:
    """WeasyPrint's fetcher for the report: the pages' own stylesheet from disk, and nothing from any network."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class LocalAssets(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
            prefix = "/v1/ui/static/"
            path = urlsplit(url).path
            if path.startswith(prefix):
                asset = (STATIC / path.removeprefix(prefix)).resolve()
                if asset.is_relative_to(STATIC) and asset.suffix == ".css" and asset.is_file():
                    return URLFetcherResponse(url, body=asset.read_bytes(), headers={"Content-Type": "text/css"})
            raise ValueError(f"the report fetches only its own stylesheet, not {url}")

    return LocalAssets(fail_on_errors=True)


@router.get(
    "/v1/scores/{score_id}/report.pdf",
    tags=["pages"],
    summary="The manager's explanation report as a PDF for the case file (the page's print layout, A4)",
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the report"},
        303: {"description": "not signed in: to the sign-in page"},
        403: _REFUSED,
        404: {**_HTML, "description": "no such score"},
        422: _INVALID,
    },
    response_class=Response,
)
def report_pdf(score_id: str, request: Request, viewer: ManagerPage, store: StoreDep) -> Response:
    from weasyprint import HTML  # imported here: loading Pango is not worth it for a service that never prints

    page = _report_response(request, viewer, store, score_id, what=ReadKind.REPORT_PDF)
    base = str(request.base_url)
    pdf = HTML(string=bytes(page.body).decode("utf-8"), base_url=base, url_fetcher=_local_assets()).write_pdf()
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="closure-risk-report-{score_id}.pdf"'},
    )


@router.post(
    "/v1/ui/scores/{score_id}/decision",
    tags=["pages"],
    summary="The report's decision form: records the decision, then shows the report again",
    responses={
        303: {"description": "recorded (or not signed in: to the sign-in page)"},
        403: _REFUSED,
        404: {**_HTML, "description": "no such score"},
        409: {**_HTML, "description": "a decision was recorded meanwhile: the report shows it"},
        422: {**_HTML, "description": "no decision chosen or no reason given: the report says so"},
    },
    response_class=Response,
)
def decision_form(
    score_id: str,
    request: Request,
    viewer: ManagerPage,
    store: StoreDep,
    csrf: Annotated[str, Form(max_length=200)],
    decision: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    supersede: Annotated[bool, Form()] = False,
    agreement: Annotated[str, Form(max_length=40)] = "",
    child_voice: Annotated[bool, Form()] = False,
    family_strengths: Annotated[bool, Form()] = False,
    partner_views: Annotated[bool, Form()] = False,
    multi_agency: Annotated[bool, Form()] = False,
    grounds: Annotated[str, Form(max_length=4000)] = "",
    opened: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = _check_form(request, viewer, csrf)
    readable_score(store, viewer.key, score_id, what=None)  # another team's score: 404, nothing recorded
    ticked = {"child_voice": child_voice, "family_strengths": family_strengths, "partner_views": partner_views,
              "multi_agency": multi_agency}  # fmt: skip
    review = review_from_form(agreement=agreement, ticked=ticked, grounds=grounds,
                              open_s=open_seconds(session.csrf_token, opened))  # fmt: skip
    if isinstance(review, str):
        return _report_response(request, viewer, store, score_id, error=review, status_code=422)
    if decision not in set(Decision):
        return _report_response(request, viewer, store, score_id, error="Choose a decision.", status_code=422)
    if len(reason.strip()) < 3:
        error = "Give the reason for the decision."
        return _report_response(request, viewer, store, score_id, error=error, status_code=422)
    if hidden_characters(reason):
        error = "The reason holds control or bidirectional characters: type it again without them."
        return _report_response(request, viewer, store, score_id, error=error, status_code=422)
    try:
        store.record_decision(
            score_id=score_id,
            decided_by=viewer.key.name,
            decided_by_key=viewer.key.id,
            decision=Decision(decision),
            reason=reason.strip(),
            supersede=supersede,
            review=review,
        )
    except ScoreNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score {score_id}") from exc
    except DecisionExists:
        error = "Someone recorded a decision on this score meanwhile: it is shown below. Replace it if you mean to."
        return _report_response(request, viewer, store, score_id, error=error, status_code=409)
    return RedirectResponse(f"/v1/scores/{score_id}/report#decision", status_code=status.HTTP_303_SEE_OTHER)
