"""The DfE CIN census validation rule a problem corresponds to, by its number and the DfE's own message.

Taken from the DfE's validation rules as published for the 2022-23 to 2025-26 collections (the rule numbers and
messages the sector's open-source CIN validator implements). A problem is matched on its rule and the element it is
at (the last one or two tags of its path); a problem with no match has no DfE rule number, and none is made up: the
reader's own checks (a value that is not a date, stray text, an element the schema does not know) and the model's
own rules (a review outside its plan, pre-proceedings dates, the extension) have none. Where the DfE rule is a query
(its number ends in Q) the DfE asks for a reason rather than a fix.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["DfeRule", "dfe_rule"]


class DfeRule(NamedTuple):
    number: str
    message: str


_M: Final = {  # the DfE's messages, by rule number
    "100": "Reference Date is incorrect",
    "1103": "The assessment start date cannot be before the referral date",
    "1104": "The date of the initial child protection conference cannot be before the referral date",
    "1105": "The child protection plan start date cannot be before the referral date",
    "2889": "The S47 start date cannot be before the referral date.",
    "2990": "Activity is recorded against a case marked as 'Case closed after assessment, no further action' or "
    "'case closed after assessment, referred to early help'.",
    "4000": "CIN Plan details provided for a referral with no further action",
    "4010": "CIN Plan start date is missing or out of data collection period",
    "4011": "CIN Plan End Date earlier than Start Date",
    "4015": "The CIN Plan start date cannot be before the referral date",
    "4180": "Sex must be provided and equal M, F, or U",
    "4220": "Ethnicity is missing or invalid (see Ethnicity table)",
    "8500": "LA Child ID missing",
    "8510": "More than one child record with the same LA Child ID",
    "8525Q": "Either Date of Birth or Expected Date of Birth must be provided (but not both)",
    "8540": "Child's disability is missing or invalid (see Disability table)",
    "8565": "Activity shown after a case has been closed",
    "8568": "RNFA flag is missing or invalid",
    "8590": "Child does not have a recorded CIN episode.",
    "8600": "Child referral date missing or after data collection period",
    "8606": "Child referral date is more than 40 weeks before DOB or expected DOB",
    "8608": "Assessment Start Date cannot be later than its End Date",
    "8615": "Section 47 Enquiry Start Date must be present and cannot be later than the date of the initial Child "
    "Protection Conference",
    "8630": "CIN Closure Date is before CIN Referral Date for the same CIN episode",
    "8640": "CIN Reason for closure code invalid (see Reason for Closure table in CIN Census code set)",
    "8650": "Primary Need Code invalid (see Primary Need table in CIN census code set)",
    "8720": "Child Protection Plan Start Date missing or out of data collection period",
    "8730": "Total Number of previous Child Protection Plans missing",
    "8790": "Disability information includes both None and other values",
    "8794": "Child has two or more disabilities with the same code",
    "8805": "A CIN case cannot have a CIN closure date without a Reason for Closure",
    "8810": "A CIN case cannot have a Reason for Closure without a CIN Closure Date",
    "8815": "More than one open CIN Details episode (a module with no CIN Closure Date) has been provided for this "
    "child and case is not a referral with no further action.",
    "8820": "The dates on the CIN episodes for this child overlap",
    "8831": "Activity is recorded against a case marked as a referral with no further action",
    "8832": "Child Protection details provided for a referral with no further action.",
    "8866": "Source of Referral is missing or an invalid code",
    "8869": "The assessment factors code \u201c21\u201d cannot be used in conjunction with any other assessment "
    "factors.",
    "8898": "The assessment has more than one parental or child factors with the same code",
    "8905": "Initial Category of Abuse code missing or invalid (see Category of Abuse table in CIN Census code set)",
    "8910": "Latest Category of Abuse code missing or invalid (see Category of Abuse table in CIN Census code set)",
    "8925": "Child Protection Plan End Date earlier than Start Date",
}

_ACTIVITY: Final = ("AssessmentActualStartDate", "AssessmentAuthorisationDate", "S47ActualStartDate",
                    "DateOfInitialCPC", "CPPendDate", "CINPlanStartDate", "CINPlanEndDate")  # fmt: skip
_CODED: Final = {"ReferralSource": "8866", "PrimaryNeedCode": "8650", "ReasonForClosure": "8640",
                 "InitialCategoryOfAbuse": "8905", "LatestCategoryOfAbuse": "8910", "Ethnicity": "4220",
                 "Disability": "8540", "Sex": "4180", "GenderCurrent": "4180"}  # fmt: skip
_REQUIRED: Final = {"LAchildID": "8500", "CINreferralDate": "8600", "ReferralSource": "8866", "Ethnicity": "4220",
                    "Sex": "4180", "ReferralNFA": "8568", "NumberOfPreviousCPP": "8730", "CPPstartDate": "8720",
                    "S47ActualStartDate": "8615", "InitialCategoryOfAbuse": "8905", "LatestCategoryOfAbuse": "8910",
                    "CINPlanStartDate": "4010", "CINdetails": "8590"}  # fmt: skip

# (rule, element) -> DfE rule number; the element is the path's last tag, or its last two as Parent/Tag
_RULES: Final[dict[tuple[str, str], str]] = {
    ("referral_before_birth", "CINreferralDate"): "8606",
    ("referral_after_reference_date", "CINreferralDate"): "8600",
    ("year_reference_date_mismatch", "Year"): "100",
    ("before_referral", "AssessmentActualStartDate"): "1103",
    ("before_referral", "DateOfInitialCPC"): "1104",
    ("before_referral", "CPPstartDate"): "1105",
    ("before_referral", "S47ActualStartDate"): "2889",
    ("before_referral", "CINPlanStartDate"): "4015",
    ("before_referral", "CINclosureDate"): "8630",
    **{("after_closure", tag): "8565" for tag in _ACTIVITY},
    ("date_order", "AssessmentAuthorisationDate"): "8608",
    ("date_order", "CINPlanEndDate"): "4011",
    ("date_order", "CPPendDate"): "8925",
    ("date_order", "Section47/DateOfInitialCPC"): "8615",
    ("factor_21_alone", "FactorsIdentifiedAtAssessment"): "8869",
    ("duplicate_code", "FactorsIdentifiedAtAssessment"): "8898",
    ("duplicate_code", "Disabilities"): "8794",
    ("disability_none_alone", "Disabilities"): "8790",
    ("closure_incomplete", "ReasonForClosure"): "8805",  # a closure date without a reason
    ("closure_incomplete", "CINclosureDate"): "8810",  # a reason without a closure date
    ("nfa_with_activity", "CINPlanDates"): "4000",
    ("nfa_with_activity", "ChildProtectionPlans"): "8832",
    ("nfa_with_activity", "Assessments"): "8831",
    ("nfa_with_activity", "Section47"): "8831",
    ("plan_on_closure_after_assessment", "CINPlanDates"): "2990",
    ("plan_on_closure_after_assessment", "ChildProtectionPlans"): "2990",
    ("episodes_overlap", "CINreferralDate"): "8820",
    ("duplicate_episode", "CINreferralDate"): "8820",
    ("multiple_open_episodes", "CINdetails"): "8815",
    ("birth_date_missing", "PersonBirthDate"): "8525Q",
    ("duplicate_child", "LAchildID"): "8510",
    ("invalid_boolean", "ReferralNFA"): "8568",
    **{("invalid_code", tag): number for tag, number in _CODED.items()},
    **{("missing_element", tag): number for tag, number in _REQUIRED.items()},
}
_INDEX: Final = re.compile(r"\[\d+\]")


def dfe_rule(rule: str, path: str) -> DfeRule | None:
    """The DfE rule a problem of ``rule`` at ``path`` breaks, or None where there is none (or none is known)."""
    tags = _INDEX.sub("", path).split("/")
    for element in ("/".join(tags[-2:]), tags[-1]):
        number = _RULES.get((rule, element))
        if number is not None:
            return DfeRule(number, _M[number])
    return None
