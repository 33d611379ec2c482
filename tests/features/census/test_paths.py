"""Element paths of ChildRecord validation errors, in census element names."""

from __future__ import annotations

import pytest

from features.census import element_path


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("birth_date",), "Child[4]/ChildIdentifiers/PersonBirthDate"),
        (("disabilities",), "Child[4]/ChildCharacteristics/Disabilities"),
        (("episodes",), "Child[4]/CINdetails"),
        (("episodes", 1, "referral_date"), "Child[4]/CINdetails[1]/CINreferralDate"),
        (
            ("episodes", 0, "assessments", 0, "authorisation_date"),
            "Child[2]/CINdetails[3]/Assessments[1]/AssessmentAuthorisationDate",
        ),
        (
            ("episodes", 0, "assessments", 1, "factors"),
            "Child[2]/CINdetails[3]/Assessments[2]/FactorsIdentifiedAtAssessment",
        ),
        (
            ("episodes", 0, "protection_plans", 0, "review_dates", 2),
            "Child[2]/CINdetails[3]/ChildProtectionPlans[1]/Reviews/CPPreviewDate[3]",
        ),
        (
            ("episodes", 0, "section47s", 0, "icpc_date"),
            "Child[2]/CINdetails[3]/Section47[1]/DateOfInitialCPC",
        ),
        (("episodes", 1, "services", 0, "end_date"), "Child[4]/CINdetails[1]/services[1]/end_date"),
    ],
)
def test_element_path_names_census_elements(loc: tuple[str | int, ...], path: str) -> None:
    # the first episode comes from an earlier return, where the child was Child[2] (issue 16: one path style)
    assert element_path(loc, child="Child[4]", episodes=["Child[2]/CINdetails[3]", "Child[4]/CINdetails[1]"]) == path


def test_element_path_counts_episodes_from_one_without_their_elements() -> None:
    assert element_path(("episodes", 1, "referral_date"), child="Child[7]") == "Child[7]/CINdetails[2]/CINreferralDate"
