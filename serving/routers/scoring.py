"""``POST /v1/score`` and ``/v1/score/batch``: validate, ``models.assess``, store, respond."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from audit import ApiKey, AuditStore, Pseudonymiser, ScoreRow, StoreError, serves_all_teams
from features import ChildRecord, Role
from features.decode import FastDecoder
from models import Assessment, RiskModel, assess
from serving.answers import score_answer_values
from serving.auth import MODEL_GENERATION
from serving.deps import (
    AUTH_RESPONSES,
    BODY_RESPONSES,
    ModelDep,
    PseudonymDep,
    ScoringCaller,
    SettingsDep,
    StoreDep,
    SystemForTeam,
)
from serving.metrics import ServiceMetrics
from serving.reloads import ModelHolder
from serving.schemas import BatchRequest, BatchResponse, ScoreRequest, ScoreResponse
from serving.settings import ServingSettings

__all__ = ["ReasonsParam", "ScoringRoute", "router", "score_and_store"]

Scope = MutableMapping[str, Any]

_SCORING: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    **BODY_RESPONSES,
    413: {"description": "the body is larger than the limit, or the batch has more cases than the limit"},
    503: {"description": "the audit store could not record the score, so none is returned"},
}
ReasonsParam = Annotated[Literal["top", "all"], Query(description="`all` returns every feature's contribution")]
# The audit row keeps everything an assessment holds, every reason included (the band as the member itself).
_STORED = ("model_name", "model_version", "as_of", "probability", "raw_score", "base_value", "in_scope",
           "out_of_distribution", "features", "reasons", "what_ifs", "warnings", "ethnic_group")  # fmt: skip


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given and len(given) <= 100 and given.isprintable() else uuid.uuid4().hex


def _loc(cases: list[Any], i: int, *path: str) -> list[str | int]:
    return ["body", *path] if len(cases) == 1 else ["body", "cases", i, *path]


def _refuse(cases: list[Any], indices: list[int], field: tuple[str, ...], kind: str,
            message: Callable[[int], str]) -> None:  # fmt: skip
    if indices:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": _loc(cases, i, *field), "type": kind, "msg": message(i)} for i in indices],
        )


def _audit_row(a: Assessment, *, row_id: str, now: dt.datetime, caller: ApiKey, request_id: str, case_id: str,
               case_reference: str | None, team: str | None) -> ScoreRow:  # fmt: skip
    return ScoreRow(id=row_id, created_at=now, caller=caller.name, caller_key=caller.id, request_id=request_id,
                    case_id=case_id, case_reference=case_reference, band=a.band, team=team,
                    **a.to_row(fields=_STORED))  # fmt: skip


def _assessed_rows(
    cases: list[tuple[ChildRecord, dt.date | None, str | None]],
    *,
    model: RiskModel,
    pseudonyms: Pseudonymiser,
    caller: ApiKey,
    team: str | None,
    request_id: str,
) -> tuple[list[Assessment], list[ScoreRow]]:
    """Assess the cases and build their audit rows; 422 for a date after today or a case with no open episode."""
    today = dt.date.today()
    dates = [as_of or today for _, as_of, _ in cases]
    future = [i for i, d in enumerate(dates) if d > today]
    _refuse(cases, future, ("as_of",), "as_of_in_future", lambda i: f"as_of {dates[i]} is after today ({today})")
    assessed = assess(model, [record for record, _, _ in cases], dates)
    _refuse(cases, assessed.not_open, ("record", "episodes"), "no_open_episode",
            lambda i: f"no episode of this record is open on {dates[i]}: only an open case can be scored")  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    rows = [
        _audit_row(
            a,
            row_id=uuid.uuid4().hex,
            now=now,
            caller=caller,
            request_id=request_id,
            case_id=pseudonyms.case_id(a.la_child_id, a.episode_referral_date),
            case_reference=reference,
            team=team,
        )
        for a, (_, _, reference) in zip(assessed.assessments, cases, strict=True)  # all open: refused otherwise
    ]
    return assessed.assessments, rows


def _answer(a: Assessment, row: ScoreRow, top: int | None, model: RiskModel) -> dict[str, object]:
    return score_answer_values(row, top=top, model=model, episode_referral_date=a.episode_referral_date)


def _counted(metrics: ServiceMetrics, assessments: list[Assessment]) -> None:
    for a in assessments:
        metrics.scores.labels(band=a.band.value).inc()
        metrics.probability.observe(a.probability)


def _not_stored() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "the audit store could not record the score, so none is returned; try again",
    )


def _score(
    cases: list[ScoreRequest],
    *,
    model: ModelDep,
    store: StoreDep,
    pseudonyms: PseudonymDep,
    caller: ScoringCaller,
    request: Request,
    top: int | None,
) -> list[ScoreResponse]:
    triples = [(case.record, case.as_of, case.case_reference) for case in cases]
    assessments, rows = _assessed_rows(
        triples,
        model=model,
        pseudonyms=pseudonyms,
        caller=caller.key,
        team=caller.team,
        request_id=_request_id(request),
    )
    try:
        store.save_scores(rows)  # committed before anything is returned
    except StoreError as exc:
        raise _not_stored() from exc
    _counted(request.app.state.metrics, assessments)
    # One shape whether posted or read: the answer shows what was stored (reasons, warnings worked out once).
    return [ScoreResponse.model_validate(_answer(a, row, top, model)) for a, row in zip(assessments, rows, strict=True)]


# --- the fast path: one coroutine, the key checked before the body, msgspec, one JSON encode ------------------------

_REQUESTS = FastDecoder(ScoreRequest)
_BATCHES = FastDecoder(BatchRequest)
_JSON = (b"application/json", b"application/json; charset=utf-8")


def _reasons_wanted(scope: Scope) -> str | None:
    """``top`` or ``all`` from the query string, or None when it is anything the documented path must judge."""
    query: bytes = scope.get("query_string", b"")
    if not query:
        return "top"
    if query in (b"reasons=top", b"reasons=all"):
        return query[8:].decode()
    return None


async def _score_fast(request: Request, *, batch: bool) -> Response | None:
    """The answer of the fast path, or None to hand the request to the documented one (FastAPI and pydantic),
    which then judges it exactly as before: anything unusual (another content type, another query, a body the fast
    decoder does not accept, a caller the gate did not check) goes there."""
    scope = request.scope
    caller: ApiKey | None = scope.get("state", {}).get("caller")
    reasons = _reasons_wanted(scope)
    if caller is None or reasons is None or caller.role != Role.SYSTEM:
        return None
    content_type = next((v for n, v in scope["headers"] if n == b"content-type"), b"").lower()
    if content_type not in _JSON:
        return None
    body = await request.body()
    decoded = (_BATCHES if batch else _REQUESTS).decode_fast(body)
    if decoded is None:
        return None
    state = request.app.state
    settings: ServingSettings = state.settings
    cases = decoded.cases if batch else [decoded]
    if batch and len(cases) > settings.batch_limit:
        return None
    holder: ModelHolder = state.models
    generation: int = scope.get("state", {}).get(MODEL_GENERATION, 0)  # read with the key (``serving.auth``)
    model = holder.model
    if holder.behind(generation):  # a reload was recorded since this worker's model: load it, off the event loop
        model = await run_in_threadpool(holder.follow, generation, state.store, model_uri=settings.model_uri)
    # No ?team= here (that query takes the documented path): the key's own team, none for an all-teams key, as
    # ``serving.deps.get_scoring_caller`` records it.
    team = None if caller.team is None or serves_all_teams(caller) else caller.team
    assessments, rows = _assessed_rows([(case.record, case.as_of, case.case_reference) for case in cases], model=model,
                                       pseudonyms=state.pseudonymiser, caller=caller, team=team,
                                       request_id=_request_id(request))  # fmt: skip
    store: AuditStore = state.store
    try:
        await store.save_scores_async(rows)  # committed before anything is returned
    except StoreError as exc:
        raise _not_stored() from exc
    _counted(state.metrics, assessments)
    top = None if reasons == "all" else settings.top_reasons
    answers = [_answer(a, row, top, model) for a, row in zip(assessments, rows, strict=True)]
    content = {"request_id": rows[0].request_id, "scores": answers} if batch else answers[0]
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), media_type="application/json")


class ScoringRoute(APIRoute):
    """A scoring route: documented (OpenAPI, validation, errors) by its FastAPI endpoint, served by the fast path
    whenever it accepts the request, by the endpoint otherwise."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        documented = super().get_route_handler()
        batch = self.path.endswith("/batch")

        async def handler(request: Request) -> Response:
            fast = await _score_fast(request, batch=batch)
            return fast if fast is not None else await documented(request)

        return handler


router = APIRouter(prefix="/v1/score", tags=["scoring"], route_class=ScoringRoute)


score_and_store = _score  # also scores a corrected record for an annotation (``serving.routers.rights``)


@router.post("", response_model=ScoreResponse, summary="Score, explain and record one open case", responses=_SCORING)
def score_case(
    body: ScoreRequest,
    request: Request,
    caller: SystemForTeam,
    model: ModelDep,
    store: StoreDep,
    pseudonyms: PseudonymDep,
    settings: SettingsDep,
    reasons: ReasonsParam = "top",
) -> ScoreResponse:
    """The calibrated probability that the child is referred again within 365 days if the case closes on `as_of`,
    its band, and the reasons (exact TreeSHAP contributions). The score is stored before it is returned."""
    top = None if reasons == "all" else settings.top_reasons
    return _score([body], model=model, store=store, pseudonyms=pseudonyms, caller=caller, request=request, top=top)[0]


@router.post(
    "/batch",
    response_model=BatchResponse,
    summary="Score, explain and record up to the batch limit of open cases",
    responses=_SCORING,
)
def score_batch(
    body: BatchRequest,
    request: Request,
    caller: SystemForTeam,
    model: ModelDep,
    store: StoreDep,
    pseudonyms: PseudonymDep,
    settings: SettingsDep,
    reasons: ReasonsParam = "top",
) -> BatchResponse:
    """All cases are scored and stored together, or none is (one transaction)."""
    if len(body.cases) > settings.batch_limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"{len(body.cases)} cases: the batch limit is {settings.batch_limit}"
        )
    top = None if reasons == "all" else settings.top_reasons
    scores = _score(
        body.cases, model=model, store=store, pseudonyms=pseudonyms, caller=caller, request=request, top=top
    )
    return BatchResponse(request_id=scores[0].request_id, scores=scores)
