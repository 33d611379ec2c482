"""``/v1/scores/{score_id}``: a stored score, and the manager's decisions on it."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, HTTPException, status

from audit import Annotation, DecisionExists, DecisionReview, DecisionRow, ScoreNotFound, ScoreRow
from serving.deps import AUTH_RESPONSES, BODY_RESPONSES, Manager, SettingsDep, StoreDep, shown
from serving.routers.scoring import ReasonsParam
from serving.schemas import (
    AnnotationOut,
    DecisionRequest,
    DecisionResponse,
    DecisionReviewIn,
    ReasonOut,
    StoredScore,
    WhatIfOut,
)

__all__ = ["annotation_out", "decision_out", "router"]

router = APIRouter(prefix="/v1/scores", tags=["audit"])
_NOT_FOUND = {**AUTH_RESPONSES, 404: {"description": "no such score"}}


def decision_out(row: DecisionRow, review: DecisionReview | None) -> DecisionResponse:
    return DecisionResponse(
        decision_id=row.id,
        score_id=row.score_id,
        decision=row.decision,
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.created_at,
        supersedes=row.supersedes,
        review=DecisionReviewIn.model_validate(dataclasses.asdict(review)) if review is not None else None,
    )


def annotation_out(row: Annotation) -> AnnotationOut:
    return AnnotationOut(
        annotation_id=row.id, score_id=row.score_id, annotated_at=row.created_at, annotated_by=row.annotated_by,
        wrong_inputs=row.wrong_inputs, note=row.note, rescored_as=row.rescored_as,
    )  # fmt: skip


def _decisions(store: StoreDep, score_id: str) -> list[DecisionResponse]:
    rows = store.decisions(score_id)
    reviews = store.reviews([d.id for d in rows])
    return [decision_out(d, reviews.get(d.id)) for d in rows]


def _stored(store: StoreDep, score_id: str) -> ScoreRow:
    row = store.get_score(score_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}")
    return row


@router.get("/{score_id}", response_model=StoredScore, summary="A stored score", responses=_NOT_FOUND)
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
        band=row.band,
        in_scope=row.in_scope,
        out_of_distribution_reasons=row.out_of_distribution,
        base_value=row.base_value,
        raw_score=row.raw_score,
        reasons=[ReasonOut.model_validate(r) for r in listed],
        features=row.features,
        warnings=row.warnings,
        what_ifs=[WhatIfOut.model_validate(w) for w in row.what_ifs] if row.what_ifs is not None else None,
        decisions=_decisions(store, score_id),
        annotations=[annotation_out(a) for a in store.annotations([score_id]).get(score_id, [])],
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
    reviews = store.reviews([row.id])
    return decision_out(row, reviews.get(row.id))


@router.get(
    "/{score_id}/decision",
    response_model=list[DecisionResponse],
    summary="The decisions on a score, oldest first",
    responses=_NOT_FOUND,
)
def decision_history(score_id: str, caller: Manager, store: StoreDep) -> list[DecisionResponse]:
    _stored(store, score_id)
    return _decisions(store, score_id)
