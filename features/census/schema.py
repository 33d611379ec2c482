"""The CIN census return's elements, each stated once: the reader, the writer and the element paths derive from it.

Each element has its place in the tree (the group it sits in, repeated or not, required or not), the kind of value
it holds, the record field it maps to, and its order (the 2025-26 schema's, which the writer follows). A group
without a field gives its values to the record it sits in (``ChildIdentifiers`` to the child); a ``ListOf`` is a
container of one repeated value element read into a list. Older years' spellings of an element (``GenderCurrent``
before ``Sex``) are read into the same field and never written; ``0/1`` or ``true/false`` is the ``BOOLEAN`` type's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from features.census.values import BOOLEAN, CHILD_ID, DATE, GENDER_CURRENT, INTEGER, TEXT, YEAR, ValueType, codes
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

__all__ = [
    "CHILD",
    "CHILDREN",
    "COLLECTION",
    "HEADER",
    "MESSAGE",
    "Element",
    "Group",
    "Ignored",
    "Leaf",
    "ListOf",
    "locate",
]


@dataclass(frozen=True, slots=True)
class Leaf:
    """An element holding one value of ``type``, read into ``field``; ``older`` are earlier years' spellings."""

    tag: str
    field: str
    type: ValueType
    required: bool = False
    older: tuple[tuple[str, ValueType], ...] = ()


@dataclass(frozen=True, slots=True)
class ListOf:
    """A container of one repeated value element (``Disabilities/Disability``), read into a list in ``field``."""

    tag: str
    field: str
    item: str
    type: ValueType
    required: bool = False


@dataclass(frozen=True, slots=True)
class Ignored:
    """An element read past and not stored: identifiers the service does not need."""

    tag: str


@dataclass(frozen=True, slots=True)
class Group:
    """An element holding others, in order; without a ``field`` its values belong to the record it sits in."""

    tag: str
    field: str | None
    elements: tuple[Element, ...]
    required: bool = False
    repeated: bool = False


Element: TypeAlias = Leaf | ListOf | Ignored | Group


def locate(group: Group, field: str, *inner: str) -> tuple[tuple[str, ...], Leaf | ListOf | Group]:
    """The element of ``field`` in ``group`` (of each ``inner`` field in turn within it), and the tags leading to it.

    Groups without a field of their own are passed through. Raises KeyError when no element gives the field.
    """
    for element in group.elements:
        if isinstance(element, Ignored):
            continue
        if element.field == field:
            if not inner:
                return (element.tag,), element
            if not isinstance(element, Group):
                break
            tags, found = locate(element, *inner)
            return (element.tag, *tags), found
        if isinstance(element, Group) and element.field is None:
            try:
                tags, found = locate(element, field, *inner)
            except KeyError:
                continue
            return (element.tag, *tags), found
    raise KeyError(f"{group.tag} has no element for {'.'.join((field, *inner))}")


COLLECTION: Final = "CIN"  # what a CIN return's header gives as its Collection

# The header is read leniently (only Collection, Year and ReferenceDate are looked at) and written whole.
HEADER: Final = Group("Header", None, elements=(
    Group("CollectionDetails", None, elements=(
        Leaf("Collection",                   "collection",           TEXT),
        Leaf("Year",                         "collection_year",      YEAR),
        Leaf("ReferenceDate",                "reference_date",       DATE),
    )),
    Group("Source", None, elements=(  # the schema allows several; one is written
        Leaf("SourceLevel",                  "source_level",         TEXT),
        Leaf("LEA",                          "lea",                  TEXT),
        Leaf("SoftwareCode",                 "software_code",        TEXT),
        Leaf("Release",                      "release",              TEXT),
        Leaf("SerialNo",                     "serial_no",            TEXT),
        Leaf("DateTime",                     "date_time",            TEXT),
    )),
))  # fmt: skip

CHILD: Final = Group("Child", None, required=True, repeated=True, elements=(
    Group("ChildIdentifiers", None, required=True, elements=(
        Leaf("LAchildID",                    "la_child_id",          CHILD_ID,              required=True),
        Ignored("UPN"),
        Ignored("FormerUPN"),
        Ignored("UPNunknown"),
        Leaf("PersonBirthDate",              "birth_date",           DATE),
        Leaf("ExpectedPersonBirthDate",      "expected_birth_date",  DATE),
        Leaf("Sex",                          "sex",                  codes(Sex),            required=True,
             older=(("GenderCurrent", GENDER_CURRENT),)),  # until 2023-24
        Ignored("PersonDeathDate"),
    )),
    Group("ChildCharacteristics", None, required=True, elements=(
        Leaf("Ethnicity",                    "ethnicity",            codes(Ethnicity),      required=True),
        ListOf("Disabilities",               "disabilities",         "Disability",          codes(Disability)),
    )),
    Group("CINdetails", "episodes", required=True, repeated=True, elements=(
        Leaf("CINreferralDate",              "referral_date",        DATE,                  required=True),
        Leaf("ReferralSource",               "referral_source",      codes(ReferralSource), required=True),
        Leaf("PrimaryNeedCode",              "primary_need",         codes(PrimaryNeed)),
        Leaf("CINclosureDate",               "closure_date",         DATE),
        Leaf("ReasonForClosure",             "closure_reason",       codes(ClosureReason)),
        Leaf("DateOfInitialCPC",             "initial_cpc_date",     DATE),
        Group("Assessments", "assessments", repeated=True, elements=(
            Leaf("AssessmentActualStartDate",    "start_date",           DATE,              required=True),
            Leaf("AssessmentInternalReviewDate", "internal_review_date", DATE),
            Leaf("AssessmentAuthorisationDate",  "authorisation_date",   DATE),
            ListOf("FactorsIdentifiedAtAssessment", "factors", "AssessmentFactors", codes(AssessmentFactor)),
        )),
        Group("CINPlanDates", "cin_plans", repeated=True, elements=(
            Leaf("CINPlanStartDate",             "start_date",           DATE,              required=True),
            Leaf("CINPlanEndDate",               "end_date",             DATE),
        )),
        Group("Section47", "section47s", repeated=True, elements=(
            Leaf("S47ActualStartDate",           "start_date",           DATE,              required=True),
            Leaf("InitialCPCtarget",             "icpc_target_date",     DATE),
            Leaf("DateOfInitialCPC",             "icpc_date",            DATE),
            Leaf("ICPCnotRequired",              "icpc_not_required",    BOOLEAN,           required=True),
        )),
        Leaf("ReferralNFA",                  "referral_nfa",         BOOLEAN,               required=True),
        Group("ChildProtectionPlans", "protection_plans", repeated=True, elements=(
            Leaf("CPPstartDate",                 "start_date",           DATE,              required=True),
            Leaf("CPPendDate",                   "end_date",             DATE),
            Leaf("InitialCategoryOfAbuse",       "initial_category",     codes(AbuseCategory), required=True),
            Leaf("LatestCategoryOfAbuse",        "latest_category",      codes(AbuseCategory), required=True),
            Leaf("NumberOfPreviousCPP",          "previous_plans",       INTEGER,           required=True),
            ListOf("Reviews",                    "review_dates",         "CPPreviewDate",   DATE),
        )),
        # 2026 returns on; not in the reference schema here, element names as the sector's 2026 tools give them
        Group("PreProceedingsandFGDM", "pre_proceedings", repeated=True, elements=(
            Leaf("PPStartDate",                  "start_date",           DATE),
            Leaf("LBPSentDate",                  "letter_before_proceedings_date", DATE),
            Leaf("FGDMMeetingOffer",             "fgdm_meeting_offered", BOOLEAN),
            Leaf("FGDMMeetingFac",               "fgdm_meeting_facilitated", BOOLEAN),
            Leaf("InitialPPMeetingDate",         "initial_meeting_date", DATE),
            Leaf("ReviewMeetingsCount",          "review_meetings",      INTEGER),
            Leaf("StepDecisionDate",             "step_decision_date",   DATE),
            Leaf("PPOutcome",                    "outcome",              codes(PreProceedingsOutcome)),
            Leaf("CourtAppDate",                 "court_application_date", DATE),
            Leaf("LetterInitCPDate",             "letter_initiating_proceedings_date", DATE),
        )),
    )),
))  # fmt: skip

CHILDREN: Final = Group("Children", None, required=True, elements=(CHILD,))
MESSAGE: Final = Group("Message", None, elements=(HEADER, CHILDREN))
