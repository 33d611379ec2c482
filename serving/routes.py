"""The API's routes: thin; the work is in ``models`` (scoring, explanations) and ``serving.store`` (the audit)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from features import EXTENSION_FIELDS, ChildRecord, ethnic_group
from models import CaseScore, score_records, what_could_change_many
from models.registry import load_model_uri, model_card
from serving.deps import (
    CallerDep,
    ModelDep,
    ModelHolder,
    PseudonymDep,
    SettingsDep,
    StoreDep,
    require,
)
from serving.metrics import ServiceMetrics
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    DecisionRequest,
    DecisionResponse,
    ModelFacts,
    ReasonOut,
    ScoreRequest,
    ScoreResponse,
    StoredScore,
    WhatIfOut,
)
from serving.store import ApiKey, DecisionExists, DecisionRow, ScoreNotFound, ScoreRow, StoreError

__all__ = ["router"]

router = APIRouter()
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key, or one that is not valid or has been revoked"},
    403: {"description": "the key's role may not do this"},
}
_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "the body could not be read (it is not UTF-8 text)"}}
_SCORING: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    **_BODY,
    413: {"description": "the body is larger than the limit, or the batch has more cases than the limit"},
    503: {"description": "the audit store could not record the score, so none is returned"},
}
System = Annotated[ApiKey, Depends(require("system"))]
Manager = Annotated[ApiKey, Depends(require("manager"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]
Anyone = CallerDep
ReasonsParam = Annotated[Literal["top", "all"], Query(description="`all` returns every feature's contribution")]


def _shown(value: str, limit: int = 80) -> str:
    """A caller's value quoted for a message: control characters escaped, long values cut."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given and len(given) <= 100 and given.isprintable() else uuid.uuid4().hex


def _warnings(score: CaseScore, record: ChildRecord) -> list[str]:
    out = []
    if not score.in_scope:
        out.append("Outside the neglect population the model is reported on: scored, but read it with care.")
    if score.out_of_distribution:
        out.append("Unlike the closed cases the model learned from: the score is less reliable.")
    episode = next(e for e in record.episodes if e.referral_date == score.episode_referral_date)
    missing = [name.replace("_", " ") for name in EXTENSION_FIELDS if getattr(episode, name) is None]
    if missing:
        out.append(f"Not recorded in the case file, so the score goes without it: {', '.join(missing)}.")
    return out


def _response(score: CaseScore, row: ScoreRow, reasons: int | None) -> ScoreResponse:
    return ScoreResponse(
        score_id=row.id,
        request_id=row.request_id,
        model_name=row.model_name,
        model_version=row.model_version,
        as_of=score.as_of,
        episode_referral_date=score.episode_referral_date,
        probability=score.probability,
        band=score.band,  # type: ignore[arg-type]
        band_observed_rate=score.band_observed_rate,
        in_scope=score.in_scope,
        out_of_distribution=bool(score.out_of_distribution),
        out_of_distribution_reasons=score.out_of_distribution,
        warnings=row.warnings or [],
        base_value=score.base_value,
        raw_score=score.raw_score,
        reasons=[ReasonOut(**r.as_dict()) for r in score.top(reasons)],  # type: ignore[arg-type]
    )


def _score(
    cases: list[ScoreRequest],
    *,
    model: ModelDep,
    store: StoreDep,
    pseudonyms: PseudonymDep,
    caller: ApiKey,
    request: Request,
    reasons: int | None,
) -> list[ScoreResponse]:
    today = dt.date.today()
    dates = [case.as_of or today for case in cases]
    future = [i for i, d in enumerate(dates) if d > today]
    if future:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": _loc(cases, i, "as_of"),
                    "type": "as_of_in_future",
                    "msg": f"as_of {dates[i]} is after today ({today})",
                }
                for i in future
            ],
        )
    records = [case.record for case in cases]
    scores, missing = score_records(model, records, dates)
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": _loc(cases, i, "record", "episodes"),
                    "type": "no_open_episode",
                    "msg": f"no episode of this record is open on {dates[i]}: only an open case can be scored",
                }
                for i in missing
            ],
        )
    # Stored with the score so the manager's report can show them later without keeping the record itself.
    what_ifs = what_could_change_many(model, records, [s.as_of for s in scores], scores)
    warnings = [_warnings(s, r) for s, r in zip(scores, records, strict=True)]
    request_id = _request_id(request)
    now = dt.datetime.now(dt.UTC)
    name, version = str(model.metadata.get("name")), model.version
    rows = [
        ScoreRow(
            id=uuid.uuid4().hex,
            created_at=now,
            caller=caller.name,
            request_id=request_id,
            model_name=name,
            model_version=version,
            case_id=pseudonyms.case_id(s.la_child_id, s.episode_referral_date),
            as_of=s.as_of,
            probability=s.probability,
            band=s.band,
            raw_score=s.raw_score,
            base_value=s.base_value,
            in_scope=s.in_scope,
            out_of_distribution=s.out_of_distribution,
            features=s.features,
            reasons=[r.as_dict() for r in s.reasons],
            what_ifs=[w.as_dict() for w in changes],
            warnings=warned,
            ethnic_group=ethnic_group(record.ethnicity).value,
        )
        for s, record, changes, warned in zip(scores, records, what_ifs, warnings, strict=True)
    ]
    try:
        store.save_scores(rows)  # committed before anything is returned
    except StoreError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the audit store could not record the score, so none is returned; try again",
        ) from exc
    metrics: ServiceMetrics = request.app.state.metrics
    for s in scores:
        metrics.scores.labels(band=s.band).inc()
        metrics.probability.observe(s.probability)
    return [_response(s, row, reasons) for s, row in zip(scores, rows, strict=True)]


def _loc(cases: list[ScoreRequest], i: int, *path: str) -> list[str | int]:
    return ["body", *path] if len(cases) == 1 else ["body", "cases", i, *path]


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    tags=["scoring"],
    summary="Score, explain and record one open case",
    responses=_SCORING,
)
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
    limit = None if reasons == "all" else settings.top_reasons
    return _score(
        [body], model=model, store=store, pseudonyms=pseudonyms, caller=caller, request=request, reasons=limit
    )[0]


@router.post(
    "/v1/score/batch",
    response_model=BatchResponse,
    tags=["scoring"],
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
    limit = None if reasons == "all" else settings.top_reasons
    scores = _score(
        body.cases, model=model, store=store, pseudonyms=pseudonyms, caller=caller, request=request, reasons=limit
    )
    return BatchResponse(request_id=scores[0].request_id, scores=scores)


def _decision(row: DecisionRow) -> DecisionResponse:
    return DecisionResponse(
        decision_id=row.id,
        score_id=row.score_id,
        decision=row.decision,  # type: ignore[arg-type]
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.created_at,
        supersedes=row.supersedes,
    )


def _stored(store: StoreDep, score_id: str) -> ScoreRow:
    row = store.get_score(score_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {_shown(score_id)}")
    return row


@router.get(
    "/v1/scores/{score_id}",
    response_model=StoredScore,
    tags=["audit"],
    summary="A stored score",
    responses={**_AUTH, 404: {"description": "no such score"}},
)
def get_score(
    score_id: str, caller: Manager, store: StoreDep, settings: SettingsDep, reasons: ReasonsParam = "all"
) -> StoredScore:
    row = _stored(store, score_id)
    listed = row.reasons if reasons == "all" else row.reasons[: settings.top_reasons]
    return StoredScore(
        score_id=row.id,
        request_id=row.request_id,
        created_at=row.created_at,
        caller=row.caller,
        model_name=row.model_name,
        model_version=row.model_version,
        case_id=row.case_id,
        as_of=row.as_of,
        probability=row.probability,
        band=row.band,  # type: ignore[arg-type]
        in_scope=row.in_scope,
        out_of_distribution_reasons=row.out_of_distribution,
        base_value=row.base_value,
        raw_score=row.raw_score,
        reasons=[ReasonOut(**r) for r in listed],  # type: ignore[arg-type]
        features=row.features,
        warnings=row.warnings,
        what_ifs=[WhatIfOut(**w) for w in row.what_ifs] if row.what_ifs is not None else None,  # type: ignore[arg-type]
        decisions=[_decision(d) for d in store.decisions(score_id)],
    )


@router.post(
    "/v1/scores/{score_id}/decision",
    response_model=DecisionResponse,
    status_code=201,
    tags=["audit"],
    summary="Record the manager's decision on a score",
    responses={**_AUTH, **_BODY, 404: {"description": "no such score"}, 409: {"description": "already decided"}},
)
def record_decision(score_id: str, body: DecisionRequest, caller: Manager, store: StoreDep) -> DecisionResponse:
    """One decision per score; a later one must say `supersede: true`, and the history is kept."""
    try:
        row = store.record_decision(
            score_id=score_id,
            decided_by=caller.name,
            decision=body.decision.value,
            reason=body.reason,
            supersede=body.supersede,
        )
    except ScoreNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {_shown(score_id)}") from exc
    except DecisionExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this score already has a decision: send supersede=true to replace it"
        ) from exc
    return _decision(row)


@router.get(
    "/v1/scores/{score_id}/decision",
    response_model=list[DecisionResponse],
    tags=["audit"],
    summary="The decisions on a score, oldest first",
    responses={**_AUTH, 404: {"description": "no such score"}},
)
def decision_history(score_id: str, caller: Manager, store: StoreDep) -> list[DecisionResponse]:
    _stored(store, score_id)
    return [_decision(d) for d in store.decisions(score_id)]


@router.get("/v1/model", response_model=ModelFacts, tags=["model"], summary="The model being served", responses=_AUTH)
def model_facts(caller: Anyone, model: ModelDep) -> ModelFacts:
    metrics: dict[str, Any] = model.metadata.get("test_metrics") or {}
    return ModelFacts(
        name=str(model.metadata.get("name")),
        version=model.version,
        data_end=model.metadata.get("data_end"),
        test_metrics=metrics,
        bands=model.bands.to_dict(),
        features=model.feature_spec,
        model_card=model_card(model),
    )


@router.post(
    "/v1/admin/reload",
    tags=["admin"],
    summary="Load the current champion; requests in flight finish",
    responses=_AUTH,
)
def reload_model(caller: Admin, request: Request, settings: SettingsDep) -> dict[str, str]:
    model = load_model_uri(settings.model_uri)  # loaded before the swap: requests keep being served meanwhile
    holder: ModelHolder = request.app.state.models
    previous = holder.swap(model)
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.serving(str(model.metadata.get("name")), model.version)
    return {"previous_version": previous.version, "version": model.version}


@router.post(
    "/v1/admin/keys", status_code=201, tags=["admin"], summary="Create an API key (shown once)", responses=_AUTH
)
def create_key(
    caller: Admin,
    store: StoreDep,
    name: Annotated[str, Query(min_length=1, max_length=100)],
    role: Annotated[Literal["system", "manager", "admin"], Query()],
) -> dict[str, str]:
    plaintext, key = store.create_key(name=name, role=role)
    return {"id": key.id, "name": key.name, "role": key.role, "key": plaintext}


@router.get("/v1/admin/keys", tags=["admin"], summary="API keys (never the keys themselves)", responses=_AUTH)
def list_keys(caller: Admin, store: StoreDep) -> list[dict[str, str | None]]:
    return [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in store.list_keys()
    ]


@router.delete(
    "/v1/admin/keys/{key_id}",
    status_code=204,
    tags=["admin"],
    summary="Revoke an API key",
    responses={**_AUTH, 404: {"description": "no such key"}},
)
def revoke_key(key_id: str, caller: Admin, store: StoreDep) -> Response:
    if not store.revoke_key(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key with id {_shown(key_id)}")
    return Response(status_code=204)


@router.get("/healthz", tags=["operations"], summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Ready: a model is loaded and the audit store answers",
    responses={503: {"description": "not ready"}},
)
def readyz(request: Request, store: StoreDep) -> dict[str, str]:
    holder: ModelHolder | None = getattr(request.app.state, "models", None)
    if holder is None or not store.ping():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "not ready: no model loaded or no audit store")
    return {"status": "ready", "model_version": holder.model.version}


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response, responses=_AUTH)
def metrics(caller: Anyone, request: Request) -> Response:
    registry: ServiceMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
