"""The case record: one child's CIN census history, with the case-management extension on each episode.

Defined once and used by the XML reader, the synthetic generator, the training loader and the API body.
Field names are the JSON form; the census element each field comes from is given in its description.
Validation enforces the census rules that matter for modelling. Each violation is reported at the path of the
offending field, with the rule as the error type, so a 422, a problem list and a test all name the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Final

from pydantic import Field, ValidationInfo, field_validator, model_validator

from features.codes import (
    AbuseCategory,
    AssessmentFactor,
    ClosureReason,
    Disability,
    Ethnicity,
    PreProceedingsOutcome,
    PrimaryNeed,
    ReferralSource,
    Sex,
)
from features.extension import AgencyInvolvement, PlanReview, Service, Visit
from features.validation import Loc, RecordModel, Violation, check_order, rules_wanted

__all__ = [
    "Assessment",
    "CINPlan",
    "ChildRecord",
    "Episode",
    "PreProceedings",
    "ProtectionPlan",
    "Section47",
    "record_as_of",
]


# --- census modules --------------------------------------------------------------------------------


class Assessment(RecordModel):
    """A child and family assessment (census ``Assessments``)."""

    start_date: dt.date = Field(description="AssessmentActualStartDate")
    internal_review_date: dt.date | None = Field(default=None, description="AssessmentInternalReviewDate")
    authorisation_date: dt.date | None = Field(
        default=None, description="AssessmentAuthorisationDate: the assessment is complete on this date"
    )
    factors: list[AssessmentFactor] = Field(
        default_factory=list, description="FactorsIdentifiedAtAssessment/AssessmentFactors"
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Assessment:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("Assessment")
        check_order(v, ("start_date", self.start_date), ("internal_review_date", self.internal_review_date))
        check_order(v, ("start_date", self.start_date), ("authorisation_date", self.authorisation_date))
        if AssessmentFactor.F21 in self.factors and len(self.factors) > 1:
            v.add(("factors",), "factor_21_alone", "factor 21 (no factors identified) must stand alone", "21")
        if len(set(self.factors)) != len(self.factors):
            v.add(("factors",), "duplicate_code", "a factor is listed more than once", None)
        return v


class CINPlan(RecordModel):
    """A child in need plan (census ``CINPlanDates``)."""

    start_date: dt.date = Field(description="CINPlanStartDate")
    end_date: dt.date | None = Field(default=None, description="CINPlanEndDate")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> CINPlan:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("CINPlan")
        check_order(v, ("start_date", self.start_date), ("end_date", self.end_date))
        return v


class Section47(RecordModel):
    """A section 47 enquiry (census ``Section47``)."""

    start_date: dt.date = Field(description="S47ActualStartDate")
    icpc_target_date: dt.date | None = Field(default=None, description="InitialCPCtarget")
    icpc_date: dt.date | None = Field(default=None, description="DateOfInitialCPC")
    icpc_not_required: bool = Field(description="ICPCnotRequired")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Section47:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("Section47")
        check_order(v, ("start_date", self.start_date), ("icpc_date", self.icpc_date))
        if self.icpc_not_required and self.icpc_date is not None:
            v.add(
                ("icpc_date",),
                "icpc_not_required",
                "icpc_date is set but icpc_not_required is true",
                self.icpc_date,
            )
        return v


class ProtectionPlan(RecordModel):
    """A child protection plan (census ``ChildProtectionPlans``)."""

    start_date: dt.date = Field(description="CPPstartDate")
    end_date: dt.date | None = Field(default=None, description="CPPendDate")
    initial_category: AbuseCategory = Field(description="InitialCategoryOfAbuse")
    latest_category: AbuseCategory = Field(description="LatestCategoryOfAbuse")
    previous_plans: Annotated[int, Field(ge=0, le=99)] = Field(description="NumberOfPreviousCPP")
    review_dates: list[dt.date] = Field(default_factory=list, description="Reviews/CPPreviewDate")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ProtectionPlan:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("ProtectionPlan")
        check_order(v, ("start_date", self.start_date), ("end_date", self.end_date))
        for i, review in enumerate(self.review_dates):
            if review < self.start_date or (self.end_date is not None and review > self.end_date):
                v.add(
                    ("review_dates", i),
                    "review_outside_plan",
                    f"review_dates[{i}] ({review}) is outside the plan's dates",
                    review,
                )
        return v


class PreProceedings(RecordModel):
    """Pre-proceedings and family group decision making (census ``PreProceedingsandFGDM``, 2026 returns on).

    Every element is optional; the block's dates lie inside the episode like its other events.
    """

    start_date: dt.date | None = Field(default=None, description="PPStartDate")
    letter_before_proceedings_date: dt.date | None = Field(default=None, description="LBPSentDate")
    fgdm_meeting_offered: bool | None = Field(default=None, description="FGDMMeetingOffer")
    fgdm_meeting_facilitated: bool | None = Field(default=None, description="FGDMMeetingFac")
    initial_meeting_date: dt.date | None = Field(default=None, description="InitialPPMeetingDate")
    review_meetings: Annotated[int, Field(ge=0, le=999)] | None = Field(default=None, description="ReviewMeetingsCount")
    step_decision_date: dt.date | None = Field(default=None, description="StepDecisionDate")
    outcome: PreProceedingsOutcome | None = Field(default=None, description="PPOutcome")
    court_application_date: dt.date | None = Field(default=None, description="CourtAppDate")
    letter_initiating_proceedings_date: dt.date | None = Field(default=None, description="LetterInitCPDate")


PRE_PROCEEDINGS_DATES = ("start_date", "letter_before_proceedings_date", "initial_meeting_date", "step_decision_date",
                         "court_application_date", "letter_initiating_proceedings_date")  # fmt: skip
_BEFORE_BIRTH: Final = dt.timedelta(days=280)  # DfE rule 8606: a referral at most 280 days before birth


# --- episode and child -----------------------------------------------------------------------------

_CLOSED_AFTER_ASSESSMENT = frozenset({ClosureReason.RC8, ClosureReason.RC9})


class Episode(RecordModel):
    """One episode of need (census ``CINdetails``), with its case-management extension."""

    referral_date: dt.date = Field(description="CINreferralDate")
    referral_source: ReferralSource = Field(description="ReferralSource")
    primary_need: PrimaryNeed | None = Field(default=None, description="PrimaryNeedCode")
    closure_date: dt.date | None = Field(default=None, description="CINclosureDate")
    closure_reason: ClosureReason | None = Field(default=None, description="ReasonForClosure")
    initial_cpc_date: dt.date | None = Field(default=None, description="DateOfInitialCPC")
    referral_nfa: bool = Field(description="ReferralNFA: the referral led to no further action")
    assessments: list[Assessment] = Field(default_factory=list)
    cin_plans: list[CINPlan] = Field(default_factory=list)
    section47s: list[Section47] = Field(default_factory=list)
    protection_plans: list[ProtectionPlan] = Field(default_factory=list)
    pre_proceedings: list[PreProceedings] = Field(
        default_factory=list, description="PreProceedingsandFGDM (2026 returns on)"
    )
    services: list[Service] | None = Field(default=None, description="extension; null when not recorded")
    agencies: list[AgencyInvolvement] | None = Field(default=None, description="extension; null when not recorded")
    visits: list[Visit] | None = Field(default=None, description="extension; null when not recorded")
    plan_reviews: list[PlanReview] | None = Field(default=None, description="extension; null when not recorded")
    missing_from_return: dt.date | None = Field(
        default=None,
        description="not a census element: the ReferenceDate of a later return that should hold this open episode "
        "and does not (set by ingestion; the episode is kept open and its score is flagged)",
    )

    @property
    def is_open(self) -> bool:
        return self.closure_date is None

    def dated_events(self) -> Iterator[tuple[Loc, dt.date]]:
        """Every date in the episode after the referral, with its location."""
        if self.closure_date is not None:
            yield ("closure_date",), self.closure_date
        if self.initial_cpc_date is not None:
            yield ("initial_cpc_date",), self.initial_cpc_date
        for i, a in enumerate(self.assessments):
            yield ("assessments", i, "start_date"), a.start_date
            if a.internal_review_date is not None:
                yield ("assessments", i, "internal_review_date"), a.internal_review_date
            if a.authorisation_date is not None:
                yield ("assessments", i, "authorisation_date"), a.authorisation_date
        for i, p in enumerate(self.cin_plans):
            yield ("cin_plans", i, "start_date"), p.start_date
            if p.end_date is not None:
                yield ("cin_plans", i, "end_date"), p.end_date
        for i, s in enumerate(self.section47s):
            yield ("section47s", i, "start_date"), s.start_date
            if s.icpc_date is not None:
                yield ("section47s", i, "icpc_date"), s.icpc_date
        for i, c in enumerate(self.protection_plans):
            yield ("protection_plans", i, "start_date"), c.start_date
            if c.end_date is not None:
                yield ("protection_plans", i, "end_date"), c.end_date
        for i, pp in enumerate(self.pre_proceedings):
            for name in PRE_PROCEEDINGS_DATES:
                value = getattr(pp, name)
                if value is not None:
                    yield ("pre_proceedings", i, name), value
        for i, sv in enumerate(self.services or ()):
            for name in ("referred_date", "start_date", "end_date"):
                value = getattr(sv, name)
                if value is not None:
                    yield ("services", i, name), value
        for i, involvement in enumerate(self.agencies or ()):
            yield ("agencies", i, "date"), involvement.date
        for i, visit in enumerate(self.visits or ()):
            yield ("visits", i, "date"), visit.date
        for i, review in enumerate(self.plan_reviews or ()):
            yield ("plan_reviews", i, "date"), review.date

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Episode:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("Episode")
        if (self.closure_date is None) != (self.closure_reason is None):
            present, absent = (
                ("closure_date", "closure_reason")
                if self.closure_reason is None
                else ("closure_reason", "closure_date")
            )
            v.add((absent,), "closure_incomplete", f"{present} is set but {absent} is not", None)
        events = list(self.dated_events())
        future = self.referral_date > dt.date.today() and any(w < self.referral_date for _, w in events)  # no cascade
        if future:
            v.add(("referral_date",), "referral_in_future", "referral_date is after today", self.referral_date)
        for loc, when in () if future else events:  # the readable path is built only for a violation
            if when < self.referral_date:
                v.add(
                    loc,
                    "before_referral",
                    f"{_dotted(loc)} ({when}) is before referral_date ({self.referral_date})",
                    when,
                )
            elif self.closure_date is not None and when > self.closure_date:
                v.add(
                    loc, "after_closure", f"{_dotted(loc)} ({when}) is after closure_date ({self.closure_date})", when
                )
        if self.closure_date is not None:
            plan_ends = [("cin_plans", i, p.end_date) for i, p in enumerate(self.cin_plans)]
            plan_ends += [("protection_plans", i, c.end_date) for i, c in enumerate(self.protection_plans)]
            for name, i, end_date in plan_ends:
                if end_date is None:
                    v.add(
                        (name, i, "end_date"),
                        "open_plan_on_closed_episode",
                        f"{name}[{i}] has no end_date but the episode is closed",
                        None,
                    )
        if self.referral_nfa:
            for name in ("assessments", "cin_plans", "section47s", "protection_plans"):
                if getattr(self, name):
                    v.add((name,), "nfa_with_activity", f"referral_nfa is true but the episode has {name}", None)
        if self.closure_reason in _CLOSED_AFTER_ASSESSMENT:
            for name in ("cin_plans", "protection_plans"):
                if getattr(self, name):
                    v.add(
                        (name,),
                        "plan_on_closure_after_assessment",
                        f"closure_reason {self.closure_reason} (closed after assessment) but the episode has {name}",
                        None,
                    )
        return v


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class ChildRecord(RecordModel):
    """One child's linked case record: characteristics and every known episode, oldest first."""

    la_child_id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f]+$",
        description="LAchildID (pseudonymise before use)",
    )
    birth_date: dt.date | None = Field(default=None, description="PersonBirthDate")
    expected_birth_date: dt.date | None = Field(
        default=None, description="ExpectedPersonBirthDate, for an unborn child"
    )
    sex: Sex = Field(description="Sex (GenderCurrent before 2024-25)")
    ethnicity: Ethnicity = Field(description="Ethnicity: audit only, never a model input")
    disabilities: list[Disability] = Field(default_factory=list, description="Disabilities/Disability")
    episodes: list[Episode] = Field(min_length=1, max_length=200, description="CINdetails, oldest first")

    @field_validator("episodes")
    @classmethod
    def _sort_episodes(cls, episodes: list[Episode]) -> list[Episode]:
        return sorted(episodes, key=lambda e: e.referral_date)

    @property
    def open_episode(self) -> Episode | None:
        last = self.episodes[-1]
        return last if last.is_open else None

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ChildRecord:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("ChildRecord")
        if self.birth_date is None and self.expected_birth_date is None:
            v.add(
                ("birth_date",),
                "birth_date_missing",
                "neither birth_date nor expected_birth_date is set",
                None,
            )
        if Disability.NONE in self.disabilities and len(self.disabilities) > 1:
            v.add(("disabilities",), "disability_none_alone", "disability NONE must stand alone", "NONE")
        if len(set(self.disabilities)) != len(self.disabilities):
            v.add(("disabilities",), "duplicate_code", "a disability is listed more than once", None)
        open_count = 0
        born = self.birth_date or self.expected_birth_date
        for i, episode in enumerate(self.episodes):
            open_count += episode.is_open
            if born is not None and born - episode.referral_date > _BEFORE_BIRTH:  # no date arithmetic to overflow
                v.add(("episodes", i, "referral_date"), "referral_before_birth",
                      f"referral_date ({episode.referral_date}) is more than 280 days before the birth date ({born}); "
                      "DfE rule 8606", episode.referral_date)  # fmt: skip
            if i == 0:
                continue
            before = self.episodes[i - 1]
            if episode.referral_date == before.referral_date:
                v.add(
                    ("episodes", i, "referral_date"),
                    "duplicate_episode",
                    f"episodes[{i}] has the referral_date of episodes[{i - 1}] ({episode.referral_date})",
                    episode.referral_date,
                )
            elif before.closure_date is None or episode.referral_date < before.closure_date:
                ended = "is still open" if before.closure_date is None else f"closed {before.closure_date}"
                v.add(
                    ("episodes", i, "referral_date"),
                    "episodes_overlap",
                    f"episodes[{i}].referral_date ({episode.referral_date}) falls inside episodes[{i - 1}], "
                    f"which {ended}",
                    episode.referral_date,
                )
        if open_count > 1:
            v.add(
                ("episodes",),
                "multiple_open_episodes",
                f"{open_count} episodes are open; at most one may be",
                open_count,
            )
        return v


# --- point in time ---------------------------------------------------------------------------------


def _on_or_before(value: dt.date | None, as_of: dt.date) -> dt.date | None:
    return value if value is not None and value <= as_of else None


def _assessment_as_of(a: Assessment, as_of: dt.date) -> Assessment:
    authorised = _on_or_before(a.authorisation_date, as_of)
    return a.model_copy(
        update={
            "internal_review_date": _on_or_before(a.internal_review_date, as_of),
            "authorisation_date": authorised,
            # Factors are identified at the end of the assessment: unknown until it is authorised.
            "factors": a.factors if authorised is not None else [],
        }
    )


def _service_as_of(s: Service, as_of: dt.date) -> Service:
    ended = _on_or_before(s.end_date, as_of)
    return s.model_copy(
        update={
            "start_date": _on_or_before(s.start_date, as_of),
            "end_date": ended,
            "completed": s.completed if ended is not None else None,
        }
    )


def _pre_proceedings_as_of(pp: PreProceedings, as_of: dt.date) -> PreProceedings | None:
    """The block as known on ``as_of``: None before its first date; outcome, facilitation and the count of review
    meetings are known once the step decision is; the offer of a meeting once the letter is sent."""
    dates = [d for d in (getattr(pp, name) for name in PRE_PROCEEDINGS_DATES) if d is not None]
    if dates and min(dates) > as_of:
        return None
    update: dict[str, object] = {name: _on_or_before(getattr(pp, name), as_of) for name in PRE_PROCEEDINGS_DATES}
    if update["step_decision_date"] is None:
        update |= {"outcome": None, "fgdm_meeting_facilitated": None, "review_meetings": None}
    if update["letter_before_proceedings_date"] is None:
        update["fgdm_meeting_offered"] = None
    return pp.model_copy(update=update)


def _episode_as_of(e: Episode, as_of: dt.date) -> Episode:
    if e.closure_date is not None and e.closure_date <= as_of:
        return e  # validation keeps every event of a closed episode on or before its closure
    return e.model_copy(
        update={
            "closure_date": None,
            "closure_reason": None,
            "initial_cpc_date": _on_or_before(e.initial_cpc_date, as_of),
            "assessments": [_assessment_as_of(a, as_of) for a in e.assessments if a.start_date <= as_of],
            "cin_plans": [
                p.model_copy(update={"end_date": _on_or_before(p.end_date, as_of)})
                for p in e.cin_plans
                if p.start_date <= as_of
            ],
            "section47s": [
                s.model_copy(update={"icpc_date": _on_or_before(s.icpc_date, as_of)})
                for s in e.section47s
                if s.start_date <= as_of
            ],
            "protection_plans": [
                c.model_copy(
                    update={
                        "end_date": _on_or_before(c.end_date, as_of),
                        "review_dates": [r for r in c.review_dates if r <= as_of],
                    }
                )
                for c in e.protection_plans
                if c.start_date <= as_of
            ],
            "pre_proceedings": [
                pp for pp in (_pre_proceedings_as_of(p, as_of) for p in e.pre_proceedings) if pp is not None
            ],
            "services": None
            if e.services is None
            else [_service_as_of(s, as_of) for s in e.services if s.referred_date <= as_of],
            "agencies": None if e.agencies is None else [a for a in e.agencies if a.date <= as_of],
            "visits": None if e.visits is None else [x for x in e.visits if x.date <= as_of],
            "plan_reviews": None if e.plan_reviews is None else [r for r in e.plan_reviews if r.date <= as_of],
        }
    )


def record_as_of(record: ChildRecord, as_of: dt.date) -> ChildRecord | None:
    """The record as it stood at the end of ``as_of``: every event dated after it is removed.

    Returns None when the child had not yet been referred. A closed episode stays whole (every event in it is
    on or before its closure); the episode open on ``as_of`` loses its later events and its closure.
    """
    episodes = [_episode_as_of(e, as_of) for e in record.episodes if e.referral_date <= as_of]
    if not episodes:
        return None
    return record.model_copy(update={"episodes": episodes})
