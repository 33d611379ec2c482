"""Element paths for rule violations found after linking: a ChildRecord location in census element names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

__all__ = ["element_path"]


# field -> (element path, sub-map for the element's own fields, item element for a list of values)
_PathMap = Mapping[str, tuple[str, "_PathMap | None", str | None]]

_ASSESSMENT_PATHS: _PathMap = {
    "start_date": ("AssessmentActualStartDate", None, None),
    "internal_review_date": ("AssessmentInternalReviewDate", None, None),
    "authorisation_date": ("AssessmentAuthorisationDate", None, None),
    "factors": ("FactorsIdentifiedAtAssessment", None, "AssessmentFactors"),
}
_CIN_PLAN_PATHS: _PathMap = {
    "start_date": ("CINPlanStartDate", None, None),
    "end_date": ("CINPlanEndDate", None, None),
}
_SECTION47_PATHS: _PathMap = {
    "start_date": ("S47ActualStartDate", None, None),
    "icpc_target_date": ("InitialCPCtarget", None, None),
    "icpc_date": ("DateOfInitialCPC", None, None),
    "icpc_not_required": ("ICPCnotRequired", None, None),
}
_PROTECTION_PLAN_PATHS: _PathMap = {
    "start_date": ("CPPstartDate", None, None),
    "end_date": ("CPPendDate", None, None),
    "initial_category": ("InitialCategoryOfAbuse", None, None),
    "latest_category": ("LatestCategoryOfAbuse", None, None),
    "previous_plans": ("NumberOfPreviousCPP", None, None),
    "review_dates": ("Reviews", None, "CPPreviewDate"),
}
_EPISODE_PATHS: _PathMap = {
    "referral_date": ("CINreferralDate", None, None),
    "referral_source": ("ReferralSource", None, None),
    "primary_need": ("PrimaryNeedCode", None, None),
    "closure_date": ("CINclosureDate", None, None),
    "closure_reason": ("ReasonForClosure", None, None),
    "initial_cpc_date": ("DateOfInitialCPC", None, None),
    "referral_nfa": ("ReferralNFA", None, None),
    "assessments": ("Assessments", _ASSESSMENT_PATHS, None),
    "cin_plans": ("CINPlanDates", _CIN_PLAN_PATHS, None),
    "section47s": ("Section47", _SECTION47_PATHS, None),
    "protection_plans": ("ChildProtectionPlans", _PROTECTION_PLAN_PATHS, None),
}
_CHILD_PATHS: _PathMap = {
    "la_child_id": ("ChildIdentifiers/LAchildID", None, None),
    "birth_date": ("ChildIdentifiers/PersonBirthDate", None, None),
    "expected_birth_date": ("ChildIdentifiers/ExpectedPersonBirthDate", None, None),
    "sex": ("ChildIdentifiers/Sex", None, None),
    "ethnicity": ("ChildCharacteristics/Ethnicity", None, None),
    "disabilities": ("ChildCharacteristics/Disabilities", None, "Disability"),
}


def _walk(loc: Sequence[str | int], paths: _PathMap | None) -> list[str]:
    """Translate a pydantic location into element names (unmapped names pass through); indices are 1-based."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        i += 1
        if isinstance(key, int):
            if parts:
                parts[-1] += f"[{key + 1}]"
            else:
                parts.append(f"[{key + 1}]")
            continue
        entry = paths.get(key) if paths is not None else None
        if entry is None:
            parts.append(key)
            paths = None
            continue
        element, paths, item = entry
        parts.append(element)
        if item is not None and i < len(loc) and isinstance(loc[i], int):
            parts.append(f"{item}[{int(loc[i]) + 1}]")
            i += 1
    return parts


def element_path(loc: Sequence[str | int], referral_dates: Sequence[dt.date | None]) -> str:
    """The element path of a ChildRecord validation error; an episode is named by its referral date.

    ``referral_dates`` are those of the episodes in the order they were validated (oldest first).
    """
    if not loc:
        return "Child"
    if loc[0] != "episodes":
        return "/".join(_walk(loc, _CHILD_PATHS))
    if len(loc) == 1 or not isinstance(loc[1], int):
        return "/".join(["CINdetails", *_walk(loc[1:], None)])
    index = loc[1]
    referral = referral_dates[index] if 0 <= index < len(referral_dates) else None
    head = f"CINdetails[referral_date={referral.isoformat()}]" if referral else f"CINdetails[{index + 1}]"
    return "/".join([head, *_walk(loc[2:], _EPISODE_PATHS)])
