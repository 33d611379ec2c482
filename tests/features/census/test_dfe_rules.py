"""Problems carry the DfE validation rule they break, by its real number and message; none is made up."""

from __future__ import annotations

from pathlib import Path

from features.census.dfe import _M, _RULES, dfe_rule
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

_ASSESSMENT = (
    "<Assessments><AssessmentActualStartDate>2023-04-02</AssessmentActualStartDate>"
    "<AssessmentAuthorisationDate>2023-04-01</AssessmentAuthorisationDate>"
    "<FactorsIdentifiedAtAssessment><AssessmentFactors>21</AssessmentFactors><AssessmentFactors>1A</AssessmentFactors>"
    "<AssessmentFactors>1A</AssessmentFactors></FactorsIdentifiedAtAssessment></Assessments>"
)


def test_a_child_with_problems_at_every_level_is_told_each_dfe_rule(tmp_path: Path) -> None:
    broken = episode_xml("2023-05-01", closure="2023-04-01", reason=None, modules=_ASSESSMENT, nfa="1")
    child = child_xml("C1", broken, episode_xml("2023-06-01", source="XX"), birth="2040-01-01",
                      disabilities=["NONE", "AUT", "AUT"])  # fmt: skip
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child, year=2024, reference_date="2023-03-31"), encoding="utf-8")
    found = {(p.rule, p.path): p.dfe_rule.number if p.dfe_rule else None for p in ingest([path]).problems}
    episode = "Child[1]/CINdetails[1]"
    assert found == {
        ("year_reference_date_mismatch", "Header/CollectionDetails/Year"): "100",
        ("invalid_code", "Child[1]/CINdetails[2]/ReferralSource"): "8866",
        ("disability_none_alone", "Child[1]/ChildCharacteristics/Disabilities"): "8790",
        ("duplicate_code", "Child[1]/ChildCharacteristics/Disabilities"): "8794",
        ("referral_before_birth", f"{episode}/CINreferralDate"): "8606",
        ("closure_incomplete", f"{episode}/ReasonForClosure"): "8805",
        ("before_referral", f"{episode}/CINclosureDate"): "8630",
        ("before_referral", f"{episode}/Assessments[1]/AssessmentActualStartDate"): "1103",
        ("before_referral", f"{episode}/Assessments[1]/AssessmentAuthorisationDate"): None,  # the DfE has no such rule
        ("nfa_with_activity", f"{episode}/Assessments"): "8831",
        ("date_order", f"{episode}/Assessments[1]/AssessmentAuthorisationDate"): "8608",
        ("factor_21_alone", f"{episode}/Assessments[1]/FactorsIdentifiedAtAssessment"): "8869",
        ("duplicate_code", f"{episode}/Assessments[1]/FactorsIdentifiedAtAssessment"): "8898",
    }


def test_dfe_rule_is_none_for_the_readers_own_checks() -> None:
    assert dfe_rule("unknown_element", "Child[1]/CINdetails[1]/Mystery") is None
    assert dfe_rule("invalid_date", "Child[1]/CINdetails[1]/CINreferralDate") is None
    review = "Child[1]/CINdetails[1]/ChildProtectionPlans[1]/Reviews/CPPreviewDate"
    assert dfe_rule("review_outside_plan", review) is None  # 8841 is only part of it: a review on the start date


def test_dfe_rule_matches_on_the_element_with_its_parent_where_it_must() -> None:
    s47 = dfe_rule("date_order", "Child[2]/CINdetails[1]/Section47[1]/DateOfInitialCPC")
    episode_level = dfe_rule("date_order", "Child[2]/CINdetails[1]/DateOfInitialCPC")
    assert s47 is not None
    assert s47.number == "8615"
    assert episode_level is None
    duplicate = dfe_rule("duplicate_child", "Child[3]/ChildIdentifiers/LAchildID")
    assert duplicate == ("8510", "More than one child record with the same LA Child ID")


def test_every_mapped_rule_number_has_the_dfe_message() -> None:
    assert set(_RULES.values()) <= set(_M)
    assert all(message.strip() for message in _M.values())
