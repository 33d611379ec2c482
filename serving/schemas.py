"""Request and response bodies of the API. The case record is the one model of ``features.record``."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features import Agreement, Band, ChildRecord, Decision

__all__ = [
    "CASE_REFERENCE_MAX",
    "CASE_REFERENCE_PATTERN",
    "AnnotationOut",
    "AnnotationRequest",
    "BatchRequest",
    "BatchResponse",
    "DecisionRequest",
    "DecisionResponse",
    "DecisionReviewIn",
    "ModelFacts",
    "ReasonOut",
    "ScoreRequest",
    "ScoreResponse",
    "SubjectExportOut",
    "SubjectRequest",
    "WhatIfOut",
    "hidden_characters",
]


# The calling system's own reference for a case: opaque to the service, so only its length and characters are
# checked (letters, digits and ``- _ . / : #``, single spaces between them: no control or invisible characters).
CASE_REFERENCE_MAX = 64
CASE_REFERENCE_PATTERN = r"^[A-Za-z0-9._:/#-]+( [A-Za-z0-9._:/#-]+)*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(_Body):
    record: ChildRecord = Field(description="the child's case record, exactly as `closure-risk ingest --out` writes it")
    as_of: dt.date | None = Field(default=None, description="score the case as it stood on this date (default: today)")
    case_reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=CASE_REFERENCE_MAX,
        pattern=CASE_REFERENCE_PATTERN,
        description="the calling system's own reference for the case, opaque to the service: stored sealed with the "
        "score's other inputs (a keyed index finds it; never kept in plain), echoed in every answer about it and "
        "searchable in the managers' queue (letters, digits, `- _ . / : #` and single spaces; at most 64 characters)",
    )


class BatchRequest(_Body):
    cases: list[ScoreRequest] = Field(min_length=1, description="up to the batch limit (default 1,000) cases")


class ReasonOut(BaseModel):
    feature: str
    label: str = Field(description="the feature in a manager's words")
    value: float | str | None = Field(description="the case's value; null where it was not recorded")
    contribution: float = Field(description="exact TreeSHAP contribution in log-odds")
    direction: Literal["raises", "lowers"]


def hidden_characters(text: str) -> list[str]:
    """The control and format characters (bidirectional overrides included) in ``text``, as ``U+XXXX``; line
    breaks and tabs are text."""
    return sorted({f"U+{ord(c):04X}" for c in text if c not in "\n\r\t" and unicodedata.category(c) in ("Cc", "Cf")})


class DecisionRequest(_Body):
    decision: Decision
    reason: str = Field(min_length=3, max_length=4000, description="why: kept beside the score (no control characters)")

    @field_validator("reason")
    @classmethod
    def _printable(cls, reason: str) -> str:
        hidden = hidden_characters(reason)
        if hidden:
            raise ValueError(f"the reason holds control or bidirectional characters ({', '.join(hidden)})")
        return reason

    supersede: bool = Field(default=False, description="replace the score's current decision explicitly")
    review: DecisionReviewIn | None = Field(
        default=None, description="how the decision was reached (the report's form always sends it)"
    )


class DecisionResponse(BaseModel):
    decision_id: str
    score_id: str
    decision: Decision
    reason: str
    decided_by: str
    decided_at: dt.datetime
    supersedes: str | None
    review: DecisionReviewIn | None = Field(default=None, description="how it was reached (null: not recorded)")


class WhatIfOut(BaseModel):
    change: str = Field(description="the change, in a manager's words")
    addresses: list[str] = Field(description="the features raising this case's risk that the change addresses")
    probability: float = Field(description="the model's estimate with the change")
    difference: float = Field(description="that estimate minus the score's probability")


class AnnotationOut(BaseModel):
    annotation_id: str
    score_id: str
    annotated_at: dt.datetime
    annotated_by: str
    wrong_inputs: list[str]
    note: str
    rescored_as: str | None = Field(description="the score made from the corrected record, if there is one")
    rescored: ScoreResponse | None = Field(default=None, description="that score, when it was made by this request")


class ScoreResponse(BaseModel):
    """A score, in one shape whether it was just made (``POST /v1/score``) or read back (``GET /v1/scores/{id}``):
    what the audit store keeps of it, with the model input values that reproduce it and its decisions."""

    score_id: str
    request_id: str
    created_at: dt.datetime
    caller: str = Field(description="name of the API key that asked for the score")
    model_name: str
    model_version: str
    case_id: str = Field(description="pseudonymous: the same child and episode always give the same id")
    case_reference: str | None = Field(description="the calling system's own reference for the case, as it was sent")
    report_url: str = Field(description="the manager's report of this score (a page; a manager's key or session)")
    as_of: dt.date
    episode_referral_date: dt.date | None = Field(
        description="the referral date of the episode scored (null where the record did not date it)"
    )
    probability: float = Field(description="calibrated probability of re-referral within 365 days of closure")
    probability_in_words: str = Field(
        description="the probability as the pages and the PDF give it, by the same rounding rule: `about 3 in 10 (27%)`"
    )
    band: Band
    band_observed_rate: float | None = Field(
        description="re-referral rate of past closures in this band (null when the model version is not served)"
    )
    in_scope: bool = Field(description="in the neglect population the model is reported on")
    out_of_distribution: bool
    out_of_distribution_reasons: list[str]
    warnings: list[str] = Field(description="what the caller was warned of (empty for scores stored before)")
    base_value: float = Field(description="log-odds before any feature: the reasons add up from here")
    raw_score: float = Field(description="log-odds before calibration = base_value + sum of all contributions")
    reasons: list[ReasonOut] = Field(description="largest contributions first; all of them with ?reasons=all")
    features: dict[str, float | str | None] = Field(description="the model's input values for the case")
    what_ifs: list[WhatIfOut] | None = Field(
        description="the model's estimate if one actionable thing pushing the risk up were different, worked out "
        "when the case was scored by re-scoring the changed record (estimates, not promises of cause and effect); "
        "null for scores stored before they were kept"
    )
    decisions: list[DecisionResponse] = Field(description="the managers' decisions on this score, oldest first")
    annotations: list[AnnotationOut] = Field(
        default_factory=list, description="marks that the score was based on wrong input (the score is never edited)"
    )


class BatchResponse(BaseModel):
    request_id: str
    scores: list[ScoreResponse]


class ModelFacts(BaseModel):
    name: str
    version: str
    data_end: str | None
    test_metrics: dict[str, dict[str, float]] = Field(
        description="this version on its own test year: each metric's value with its 95% interval (value, low, high)"
    )
    backtest_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="the headline figures: the rolling-origin backtest pooled over backtest_years, each closure "
        "predicted by the recipe fitted on the years before it (value, low, high); empty where the version has none",
    )
    backtest_years: list[int] = Field(default_factory=list, description="the collection years the backtest tested")
    bands: dict[str, object]
    features: list[dict[str, object]]
    model_card: str | None


def _printable(text: str, what: str) -> str:
    hidden = hidden_characters(text)
    if hidden:
        raise ValueError(f"{what} holds control or bidirectional characters ({', '.join(hidden)})")
    return text


class SubjectRequest(_Body):
    la_child_id: str = Field(min_length=1, max_length=100, description="the child's LAchildID, as in the census")
    birth_date: dt.date | None = Field(
        default=None, description="narrows the search to referral dates from 280 days before birth (optional)"
    )


class SubjectExportOut(BaseModel):
    subject: str = Field(description="the LAchildID asked about")
    searched_referral_dates: dict[str, dt.date]
    generated_at: dt.datetime
    notes: list[str]
    scores: list[dict[str, object]] = Field(
        description="every score about the child: its inputs, reasons, what-ifs, decisions with their reviews, and "
        "annotations"
    )


class AnnotationRequest(_Body):
    wrong_inputs: list[str] = Field(
        min_length=1, max_length=50, description="the model inputs (feature names) or record fields that were wrong"
    )
    note: str = Field(min_length=3, max_length=4000, description="what was wrong, and how it was found")
    rescore: ScoreRequest | None = Field(
        default=None, description="the corrected record: scored now, and named as the score that replaces this one"
    )

    @field_validator("wrong_inputs")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.strip() or len(name) > 100:
                raise ValueError("each wrong input is a field name of 1 to 100 characters")
            _printable(name, "a wrong input's name")
        return names

    @field_validator("note")
    @classmethod
    def _note(cls, note: str) -> str:
        return _printable(note, "the note")


class DecisionReviewIn(_Body):
    """How the decision was reached: kept with it, for the review of decisions."""

    agreement: Agreement = Field(description="the manager's view of the estimate: about right, higher or lower")
    child_voice: bool = Field(description="the child's wishes and feelings were heard")
    family_strengths: bool = Field(description="the family's strengths were weighed")
    partner_views: bool = Field(description="partner agencies' views were sought")
    multi_agency: bool = Field(description="a multi-agency discussion was held")
    grounds: str = Field(default="", max_length=4000, description="the grounds in the manager's words")
    report_open_s: float | None = Field(
        default=None, ge=0, le=7 * 24 * 3600, description="seconds the report was open before the decision"
    )

    @field_validator("grounds")
    @classmethod
    def _grounds(cls, grounds: str) -> str:
        return _printable(grounds, "the grounds")
