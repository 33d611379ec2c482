"""``/v1/scores/{score_id}``: a stored score, and the manager's decisions on it. A manager reads and decides on the
scores of the key's team only (another team's score answers 404), and every read is recorded (``score_reads``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from audit import DecisionExists, DecisionRow, ReadKind, ScoreNotFound
from serving.deps import AUTH_RESPONSES, BODY_RESPONSES, Manager, SettingsDep, StoreDep, readable_score, shown
from serving.routers.scoring import ReasonsParam
from serving.schemas import DecisionRequest, DecisionResponse, ReasonOut, StoredScore, WhatIfOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/scores", tags=["audit"])
_NOT_FOUND = {**AUTH_RESPONSES, 404: {"description": "no such score, or another team's"}}


def _decision(row: DecisionRow) -> DecisionResponse:
    return DecisionResponse(
        decision_id=row.id,
        score_id=row.score_id,
        decision=row.decision,
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.created_at,
        supersedes=row.supersedes,
    )


@router.get("/{score_id}", response_model=StoredScore, summary="A stored score", responses=_NOT_FOUND)
def get_score(
    score_id: str, caller: Manager, store: StoreDep, settings: SettingsDep, reasons: ReasonsParam = "all"
) -> StoredScore:
    row = readable_score(store, caller, score_id, what=ReadKind.SCORE)
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
        band=row.band,
        in_scope=row.in_scope,
        out_of_distribution_reasons=row.out_of_distribution,
        base_value=row.base_value,
        raw_score=row.raw_score,
        reasons=[ReasonOut.model_validate(r) for r in listed],
        features=row.features,
        warnings=row.warnings,
        what_ifs=[WhatIfOut.model_validate(w) for w in row.what_ifs] if row.what_ifs is not None else None,
        decisions=[_decision(d) for d in store.decisions(score_id)],
    )


@router.post(
    "/{score_id}/decision",
    response_model=DecisionResponse,
    status_code=201,
    summary="Record the manager's decision on a score",
    responses={**_NOT_FOUND, **BODY_RESPONSES, 409: {"description": "already decided"}},
)
def record_decision(score_id: str, body: DecisionRequest, caller: Manager, store: StoreDep) -> DecisionResponse:
    """One decision per score; a later one must say `supersede: true`, and the history is kept."""
    readable_score(store, caller, score_id, what=None)
    try:
        row = store.record_decision(
            score_id=score_id,
            decided_by=caller.name,
            decided_by_key=caller.id,
            decision=body.decision,
            reason=body.reason,
            supersede=body.supersede,
        )
    except ScoreNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}") from exc
    except DecisionExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this score already has a decision: send supersede=true to replace it"
        ) from exc
    return _decision(row)


@router.get(
    "/{score_id}/decision",
    response_model=list[DecisionResponse],
    summary="The decisions on a score, oldest first",
    responses=_NOT_FOUND,
)
def decision_history(score_id: str, caller: Manager, store: StoreDep) -> list[DecisionResponse]:
    readable_score(store, caller, score_id, what=ReadKind.DECISIONS)
    return [_decision(d) for d in store.decisions(score_id)]
