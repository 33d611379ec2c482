"""A stored score as the API answers it: one shape for ``POST /v1/score`` and ``GET /v1/scores/{id}``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from audit import Annotation, DecisionReview, DecisionRow, ScoreRow
from features.numbers import probability_text
from models import RiskModel
from serving.schemas import AnnotationOut, DecisionResponse, DecisionReviewIn, ScoreResponse

__all__ = ["annotation_out", "decision_answer", "report_url", "score_answer", "score_answer_values"]


def report_url(score_id: str) -> str:
    return f"/v1/scores/{score_id}/report"


def decision_answer(row: DecisionRow, review: DecisionReview | None = None) -> DecisionResponse:
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


def _referral_date(row: ScoreRow) -> dt.date | None:
    days = row.features.get("days_open")  # days from the episode's referral to as_of
    return row.as_of - dt.timedelta(days=round(days)) if isinstance(days, int | float) else None


def score_answer_values(
    row: ScoreRow,
    *,
    top: int | None,
    model: RiskModel | None,
    decisions: Sequence[DecisionRow] = (),
    reviews: Mapping[str, DecisionReview] | None = None,
    annotations: Sequence[Annotation] = (),
    episode_referral_date: dt.date | None = None,
) -> dict[str, object]:
    """``score_answer``'s fields as plain values, in ``ScoreResponse``'s order: the scoring fast path encodes them
    once as they are; ``score_answer`` validates them into the documented model."""
    bands = model.bands if model is not None and model.version == row.model_version else None
    return {
        "score_id": row.id,
        "request_id": row.request_id,
        "created_at": row.created_at,
        "caller": row.caller,
        "model_name": row.model_name,
        "model_version": row.model_version,
        "case_id": row.case_id,
        "case_reference": row.case_reference,
        "report_url": report_url(row.id),
        "as_of": row.as_of,
        "episode_referral_date": episode_referral_date or _referral_date(row),
        "probability": row.probability,
        "probability_in_words": probability_text(row.probability),
        "band": row.band,
        "band_observed_rate": bands.observed_rate.get(row.band) if bands is not None else None,
        "in_scope": row.in_scope,
        "out_of_distribution": bool(row.out_of_distribution),
        "out_of_distribution_reasons": list(row.out_of_distribution),
        "warnings": list(row.warnings or []),
        "base_value": row.base_value,
        "raw_score": row.raw_score,
        "reasons": row.reasons[:top],
        "features": row.features,
        "what_ifs": row.what_ifs,
        "decisions": [decision_answer(d, (reviews or {}).get(d.id)).model_dump() for d in decisions],
        "annotations": [annotation_out(a).model_dump() for a in annotations],
    }


def score_answer(
    row: ScoreRow,
    *,
    top: int | None,
    model: RiskModel | None,
    decisions: Sequence[DecisionRow] = (),
    reviews: Mapping[str, DecisionReview] | None = None,
    annotations: Sequence[Annotation] = (),
    episode_referral_date: dt.date | None = None,
) -> ScoreResponse:
    """The answer about ``row``, its first ``top`` reasons (all for None); ``model`` is the served model, whose
    band rate is given when it made the score."""
    return ScoreResponse.model_validate(
        score_answer_values(
            row,
            top=top,
            model=model,
            decisions=decisions,
            reviews=reviews,
            annotations=annotations,
            episode_referral_date=episode_referral_date,
        )
    )
