"""``/v1/scores/{score_id}``: a stored score, and the manager's decisions on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from audit import ApiKey, DecisionExists, ScoreNotFound, ScoreRow
from features import Role
from serving.answers import decision_answer, score_answer
from serving.deps import AUTH_RESPONSES, BODY_RESPONSES, Manager, ModelDep, SettingsDep, StoreDep, require, shown
from serving.routers.scoring import ReasonsParam
from serving.schemas import DecisionRequest, DecisionResponse, ScoreResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/scores", tags=["audit"])
_NOT_FOUND = {**AUTH_RESPONSES, 404: {"description": "no such score"}}
# A manager reads any score; the system that made a score may read it back (its own, by the key that made it).
Reader = Annotated[ApiKey, Depends(require(Role.MANAGER, Role.SYSTEM))]


def _stored(store: StoreDep, score_id: str) -> ScoreRow:
    row = store.get_score(score_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}")
    return row


@router.get(
    "/{score_id}",
    response_model=ScoreResponse,
    summary="A stored score, in the shape its POST answered (a system key reads back only the scores it made)",
    responses=_NOT_FOUND,
)
def get_score(
    score_id: str,
    caller: Reader,
    store: StoreDep,
    model: ModelDep,
    settings: SettingsDep,
    reasons: ReasonsParam = "all",
) -> ScoreResponse:
    row = _stored(store, score_id)
    if caller.role == Role.SYSTEM and row.caller_key != caller.id:  # the same answer as for no score at all
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}")
    top = None if reasons == "all" else settings.top_reasons
    return score_answer(row, top=top, model=model, decisions=store.decisions(score_id))


@router.post(
    "/{score_id}/decision",
    response_model=DecisionResponse,
    status_code=201,
    summary="Record the manager's decision on a score",
    responses={**_NOT_FOUND, **BODY_RESPONSES, 409: {"description": "already decided"}},
)
def record_decision(score_id: str, body: DecisionRequest, caller: Manager, store: StoreDep) -> DecisionResponse:
    """One decision per score; a later one must say `supersede: true`, and the history is kept."""
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
    return decision_answer(row)


@router.get(
    "/{score_id}/decision",
    response_model=list[DecisionResponse],
    summary="The decisions on a score, oldest first",
    responses=_NOT_FOUND,
)
def decision_history(score_id: str, caller: Manager, store: StoreDep) -> list[DecisionResponse]:
    _stored(store, score_id)
    return [decision_answer(d) for d in store.decisions(score_id)]
