"""Element paths of ChildRecord validation errors, in census element names."""

from __future__ import annotations

import datetime as dt

import pytest

from features.census import element_path


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("birth_date",), "ChildIdentifiers/PersonBirthDate"),
        (("disabilities",), "ChildCharacteristics/Disabilities"),
        (("episodes",), "CINdetails"),
        (("episodes", 1, "referral_date"), "CINdetails[referral_date=2021-01-01]/CINreferralDate"),
        (
            ("episodes", 0, "assessments", 0, "authorisation_date"),
            "CINdetails[referral_date=2020-04-01]/Assessments[1]/AssessmentAuthorisationDate",
        ),
        (
            ("episodes", 0, "assessments", 1, "factors"),
            "CINdetails[referral_date=2020-04-01]/Assessments[2]/FactorsIdentifiedAtAssessment",
        ),
        (
            ("episodes", 0, "protection_plans", 0, "review_dates", 2),
            "CINdetails[referral_date=2020-04-01]/ChildProtectionPlans[1]/Reviews/CPPreviewDate[3]",
        ),
        (
            ("episodes", 0, "section47s", 0, "icpc_date"),
            "CINdetails[referral_date=2020-04-01]/Section47[1]/DateOfInitialCPC",
        ),
        (("episodes", 1, "services", 0, "end_date"), "CINdetails[referral_date=2021-01-01]/services[1]/end_date"),
    ],
)
def test_element_path_names_census_elements(loc: tuple[str | int, ...], path: str) -> None:
    assert element_path(loc, [dt.date(2020, 4, 1), dt.date(2021, 1, 1)]) == path
