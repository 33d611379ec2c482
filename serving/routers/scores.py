"""``/v1/scores/{score_id}``: a stored score, and the manager's decisions on it. A manager reads and decides on the
scores of the key's team only (another team's score answers 404), and every read is recorded (``score_reads``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from audit import ApiKey, DecisionExists, DecisionReview, ReadKind, ScoreNotFound, ScoreRow
from features import Role
from serving.answers import annotation_out, decision_answer, score_answer
from serving.deps import (
    AUTH_RESPONSES,
    BODY_RESPONSES,
    Manager,
    ModelDep,
    SettingsDep,
    StoreDep,
    readable_score,
    require,
    shown,
)
from serving.routers.scoring import ReasonsParam
from serving.schemas import DecisionRequest, DecisionResponse, ScoreResponse

__all__ = ["annotation_out", "router"]

router = APIRouter(prefix="/v1/scores", tags=["audit"])
_NOT_FOUND = {**AUTH_RESPONSES, 404: {"description": "no such score, or another team's"}}
# A manager reads the scores of the key's teams; the system that made a score may read it back (by the key that made
# it). Every read is chained before it is shown.
Reader = Annotated[ApiKey, Depends(require(Role.MANAGER, Role.SYSTEM))]


def _readable(store: StoreDep, caller: ApiKey, score_id: str, what: ReadKind) -> ScoreRow:
    if caller.role != Role.SYSTEM:
        return readable_score(store, caller, score_id, what=what)
    row = store.get_score(score_id)
    if row is None or row.caller_key != caller.id:  # the same answer as for no score at all
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score {shown(score_id)}")
    store.record_read(key_id=caller.id, what=what, score_id=row.id)
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
    row = _readable(store, caller, score_id, ReadKind.SCORE)
    top = None if reasons == "all" else settings.top_reasons
    decisions = store.decisions(score_id)
    reviews = store.reviews([d.id for d in decisions])
    annotations = store.annotations([score_id]).get(score_id, [])
    return score_answer(row, top=top, model=model, decisions=decisions, reviews=reviews, annotations=annotations)


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
            review=DecisionReview(**body.review.model_dump()) if body.review is not None else None,
        )
    except ScoreNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}") from exc
    except DecisionExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this score already has a decision: send supersede=true to replace it"
        ) from exc
    return decision_answer(row, store.reviews([row.id]).get(row.id))


@router.get(
    "/{score_id}/decision",
    response_model=list[DecisionResponse],
    summary="The decisions on a score, oldest first",
    responses=_NOT_FOUND,
)
def decision_history(score_id: str, caller: Manager, store: StoreDep) -> list[DecisionResponse]:
    readable_score(store, caller, score_id, what=ReadKind.DECISIONS)
    decisions = store.decisions(score_id)
    reviews = store.reviews([d.id for d in decisions])
    return [decision_answer(d, reviews.get(d.id)) for d in decisions]
