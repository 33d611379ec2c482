"""``POST /v1/score`` and ``/v1/score/batch``: validate, ``models.assess``, store, respond."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status

from audit import ApiKey, ScoreRow, StoreError
from models import Assessment, assess
from serving.deps import (
    AUTH_RESPONSES,
    BODY_RESPONSES,
    ModelDep,
    PseudonymDep,
    SettingsDep,
    StoreDep,
    System,
)
from serving.metrics import ServiceMetrics
from serving.schemas import BatchRequest, BatchResponse, ReasonOut, ScoreRequest, ScoreResponse

__all__ = ["ReasonsParam", "router", "score_and_store"]

router = APIRouter(prefix="/v1/score", tags=["scoring"])
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
_ANSWERED = ("model_name", "model_version", "as_of", "episode_referral_date", "probability", "band",
             "band_observed_rate", "in_scope", "base_value", "raw_score")  # fmt: skip


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given and len(given) <= 100 and given.isprintable() else uuid.uuid4().hex


def _loc(cases: list[ScoreRequest], i: int, *path: str) -> list[str | int]:
    return ["body", *path] if len(cases) == 1 else ["body", "cases", i, *path]


def _refuse(cases: list[ScoreRequest], indices: list[int], field: tuple[str, ...], kind: str,
            message: Callable[[int], str]) -> None:  # fmt: skip
    if indices:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": _loc(cases, i, *field), "type": kind, "msg": message(i)} for i in indices],
        )


def _audit_row(a: Assessment, *, row_id: str, now: dt.datetime, caller: ApiKey, request_id: str, case_id: str
               ) -> ScoreRow:  # fmt: skip
    return ScoreRow(id=row_id, created_at=now, caller=caller.name, caller_key=caller.id, request_id=request_id,
                    case_id=case_id, band=a.band, **a.to_row(fields=_STORED))  # fmt: skip


def _response(a: Assessment, row: ScoreRow, top: int | None) -> ScoreResponse:
    # The reasons and warnings were worked out once, for the audit row: the answer shows what was stored.
    return ScoreResponse(
        score_id=row.id,
        request_id=row.request_id,
        out_of_distribution=bool(a.out_of_distribution),
        out_of_distribution_reasons=list(a.out_of_distribution),
        reasons=[ReasonOut.model_validate(r) for r in row.reasons[:top]],
        warnings=row.warnings or [],
        **a.to_row(fields=_ANSWERED),
    )


def _score(
    cases: list[ScoreRequest],
    *,
    model: ModelDep,
    store: StoreDep,
    pseudonyms: PseudonymDep,
    caller: ApiKey,
    request: Request,
    top: int | None,
) -> list[ScoreResponse]:
    today = dt.date.today()
    dates = [case.as_of or today for case in cases]
    future = [i for i, d in enumerate(dates) if d > today]
    _refuse(cases, future, ("as_of",), "as_of_in_future", lambda i: f"as_of {dates[i]} is after today ({today})")
    assessed = assess(model, [case.record for case in cases], dates)
    _refuse(cases, assessed.not_open, ("record", "episodes"), "no_open_episode",
            lambda i: f"no episode of this record is open on {dates[i]}: only an open case can be scored")  # fmt: skip
    request_id = _request_id(request)
    now = dt.datetime.now(dt.UTC)
    rows = [
        _audit_row(
            a,
            row_id=uuid.uuid4().hex,
            now=now,
            caller=caller,
            request_id=request_id,
            case_id=pseudonyms.case_id(a.la_child_id, a.episode_referral_date),
        )
        for a in assessed.assessments
    ]
    try:
        store.save_scores(rows)  # committed before anything is returned
    except StoreError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the audit store could not record the score, so none is returned; try again",
        ) from exc
    metrics: ServiceMetrics = request.app.state.metrics
    for a in assessed.assessments:
        metrics.scores.labels(band=a.band.value).inc()
        metrics.probability.observe(a.probability)
    return [_response(a, row, top) for a, row in zip(assessed.assessments, rows, strict=True)]


score_and_store = _score  # also scores a corrected record for an annotation (``serving.routers.rights``)


@router.post("", response_model=ScoreResponse, summary="Score, explain and record one open case", responses=_SCORING)
def score_case(
    body: ScoreRequest,
    request: Request,
    caller: System,
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
    caller: System,
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
