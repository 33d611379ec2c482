"""``/v1/admin/subject`` and ``/v1/admin/scores/{score_id}/annotations``: a data subject's records, and a score
marked as based on wrong input (and scored again on the corrected record). For the data protection officer: admin
keys only, and every export and annotation is a security event (never with the child's identifier)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request, Response, status

from audit import ScoreNotFound
from audit.subject import SubjectExport, export_subject
from serving.deps import (
    AUTH_RESPONSES,
    BODY_RESPONSES,
    Admin,
    ModelDep,
    PseudonymDep,
    ScoringCaller,
    SettingsDep,
    StoreDep,
    shown,
)
from serving.routers.scores import annotation_out
from serving.routers.scoring import score_and_store
from serving.schemas import AnnotationOut, AnnotationRequest, SubjectExportOut, SubjectRequest
from serving.security import security_event
from serving.subject import subject_pdf

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["data rights"])
_SUBJECT = {**AUTH_RESPONSES, **BODY_RESPONSES, 422: {"description": "the identifier or birth date is not valid"}}


def _export(body: SubjectRequest, store: StoreDep, pseudonyms: PseudonymDep, caller: Admin, form: str) -> SubjectExport:
    today = dt.date.today()
    if body.birth_date is not None and body.birth_date > today + dt.timedelta(days=280):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", "birth_date"], "type": "birth_date_in_future",
              "msg": f"birth_date {body.birth_date} is more than 280 days after today"}],
        )  # fmt: skip
    export = export_subject(store, pseudonyms, body.la_child_id, birth_date=body.birth_date, today=today)
    security_event("subject_exported", by=caller.id, form=form, scores=str(len(export.scores)))
    return export


@router.post(
    "/subject",
    response_model=SubjectExportOut,
    summary="Every score about a child, with its inputs, reasons, what-ifs, decisions and annotations (JSON)",
    responses=_SUBJECT,
)
def subject_json(body: SubjectRequest, caller: Admin, store: StoreDep, pseudonyms: PseudonymDep) -> SubjectExportOut:
    """For a subject access request. The store keeps no child's identifier: the child's case ids are worked out
    with the pseudonym key for every referral date the child could have had, and only those are read. The body
    carries the identifier, so it never appears in a URL or an access log."""
    export = _export(body, store, pseudonyms, caller, "json")
    return SubjectExportOut.model_validate(export.as_json())


@router.post(
    "/subject.pdf",
    summary="The same export as a readable PDF",
    responses={**_SUBJECT, 200: {"content": {"application/pdf": {}}, "description": "the export"}},
    response_class=Response,
)
def subject_document(body: SubjectRequest, caller: Admin, store: StoreDep, pseudonyms: PseudonymDep) -> Response:
    export = _export(body, store, pseudonyms, caller, "pdf")
    return Response(
        subject_pdf(export),
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="subject-access.pdf"', "Cache-Control": "no-store"},
    )


@router.post(
    "/scores/{score_id}/annotations",
    response_model=AnnotationOut,
    status_code=201,
    summary="Mark a score as based on wrong input; with the corrected record, score it again",
    responses={**AUTH_RESPONSES, **BODY_RESPONSES, 404: {"description": "no such score"}},
)
def annotate(
    score_id: str,
    body: AnnotationRequest,
    request: Request,
    caller: Admin,
    store: StoreDep,
    model: ModelDep,
    pseudonyms: PseudonymDep,
    settings: SettingsDep,
) -> AnnotationOut:
    """The score is never changed: an annotation row is appended to the audit chain. With ``rescore``, the corrected
    record is scored by the served model (stored like any score, asked for by this admin key) and the annotation
    names that score as the one replacing it."""
    original = store.get_score(score_id)
    if original is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}")
    rescored = None
    if body.rescore is not None:  # for the team the wrong score was made for
        team = ScoringCaller(caller, original.team)
        (rescored,) = score_and_store(
            [body.rescore], model=model, store=store, pseudonyms=pseudonyms, caller=team, request=request,
            top=settings.top_reasons,
        )  # fmt: skip
    try:
        row = store.annotate_score(
            score_id,
            annotated_by=caller.name,
            annotated_by_key=caller.id,
            wrong_inputs=[name.strip() for name in body.wrong_inputs],
            note=body.note,
            rescored_as=rescored.score_id if rescored is not None else None,
        )
    except ScoreNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score with id {shown(score_id)}") from exc
    security_event("score_annotated", by=caller.id, score_id=score_id, rescored=str(rescored is not None))
    return annotation_out(row).model_copy(update={"rescored": rescored})
