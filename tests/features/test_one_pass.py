"""Every problem of a child in one pass: reader-level, record and episode rules together, across returns."""

from __future__ import annotations

from pathlib import Path

from features import ingest
from features.checking import check_record
from tests.strategies import census_xml, child_xml, episode_xml

_S47 = (
    "<Section47><S47ActualStartDate>2023-05-02</S47ActualStartDate><DateOfInitialCPC>2023-05-20</DateOfInitialCPC>"
    "<ICPCnotRequired>true</ICPCnotRequired></Section47>"
)
_PLAN = (
    "<ChildProtectionPlans><CPPstartDate>2023-06-01</CPPstartDate><InitialCategoryOfAbuse>NEG"
    "</InitialCategoryOfAbuse><LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse>"
    "<NumberOfPreviousCPP>{previous}</NumberOfPreviousCPP></ChildProtectionPlans>"
)
_ASSESSMENT = (
    "<Assessments><AssessmentActualStartDate>2023-04-20</AssessmentActualStartDate>"
    "<AssessmentAuthorisationDate>2023-04-10</AssessmentAuthorisationDate></Assessments>"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _every_level(previous: str) -> str:
    """A child breaking rules at every level: child, episode, assessment, Section47, and a reader-level one."""
    episode = episode_xml(
        "2023-05-01",
        nfa="1",
        modules=_ASSESSMENT + _S47,
        after_nfa=_PLAN.format(previous=previous) + "stray words",
    )
    return child_xml("C1", episode, birth=None, disabilities=("NONE", "AUT"))


def test_a_child_with_problems_at_every_level_gets_them_all_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, "cin.xml", census_xml(_every_level("-1"), child_xml("C2")))
    result = ingest([path])
    assert [r.la_child_id for r in result.records] == ["C2"]
    found = {(p.path, p.rule) for p in result.problems}
    assert found == {
        # read by the reader
        ("Child[1]/CINdetails[1]", "unexpected_text"),
        ("Child[1]/CINdetails[1]/ChildProtectionPlans[1]/NumberOfPreviousCPP", "invalid_integer"),
        # the record's rules, which a reader-level problem used to hide
        ("Child[1]/ChildIdentifiers/PersonBirthDate", "birth_date_missing"),
        ("Child[1]/ChildCharacteristics/Disabilities", "disability_none_alone"),
        # the episode's, which a Section47 or an assessment rule used to hide
        ("Child[1]/CINdetails[1]/Assessments", "nfa_with_activity"),
        ("Child[1]/CINdetails[1]/Section47", "nfa_with_activity"),
        ("Child[1]/CINdetails[1]/Assessments[1]/AssessmentActualStartDate", "before_referral"),
        ("Child[1]/CINdetails[1]/Assessments[1]/AssessmentAuthorisationDate", "before_referral"),
        # the blocks' own
        ("Child[1]/CINdetails[1]/Assessments[1]/AssessmentAuthorisationDate", "date_order"),
        ("Child[1]/CINdetails[1]/Section47[1]/DateOfInitialCPC", "icpc_not_required"),
    }
    assert {p.la_child_id for p in result.problems} == {"C1"}
    assert result.summary()["children_with_problems"] == 1


def test_record_rules_of_a_child_read_cleanly_are_all_reported(tmp_path: Path) -> None:
    """No reader-level problem: pydantic would stop at the Section47 and assessment rules."""
    path = _write(tmp_path, "cin.xml", census_xml(_every_level("1").replace("stray words", "")))
    rules = sorted(p.rule for p in ingest([path]).problems)
    assert rules == [
        "before_referral",
        "before_referral",
        "birth_date_missing",
        "date_order",
        "disability_none_alone",
        "icpc_not_required",
        "nfa_with_activity",
        "nfa_with_activity",
        "nfa_with_activity",  # the protection plan is read this time
    ]


def test_a_problem_in_one_return_hides_none_in_another(tmp_path: Path) -> None:
    first = _write(
        tmp_path, "cin_2023.xml", census_xml(child_xml("C1", episode_xml("2022-05-01", source="ZZ")), year=2023)
    )
    nfa_with_plan = episode_xml(
        "2023-06-01", nfa="1", modules="<CINPlanDates><CINPlanStartDate>2023-06-02</CINPlanStartDate></CINPlanDates>"
    )
    second = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", nfa_with_plan), year=2024))
    result = ingest([first, second])
    assert result.records == []
    assert [(p.source, p.path, p.rule) for p in result.problems] == [
        ("cin_2023.xml", "Child[1]/CINdetails[1]/ReferralSource", "invalid_code"),
        ("cin_2024.xml", "Child[1]/CINdetails[1]/CINPlanDates", "nfa_with_activity"),
    ]


def test_check_record_reports_rules_at_the_index_as_given_when_an_item_is_set_aside() -> None:
    plan = {"start_date": "2023-06-01", "initial_category": "NEG", "latest_category": "NEG"}  # no previous_plans
    data = {
        "la_child_id": "C1", "birth_date": "2015-01-01", "sex": "F", "ethnicity": "WBRI",
        "episodes": [{
            "referral_date": "2023-05-01", "referral_source": "1A", "referral_nfa": False,
            "protection_plans": [plan, {**plan, "previous_plans": 0, "end_date": "2023-05-20"}],
        }],
    }  # fmt: skip
    record, errors = check_record(data)
    assert record is None
    assert [(e["type"], e["loc"]) for e in errors] == [
        ("missing", ("episodes", 0, "protection_plans", 0, "previous_plans")),
        ("date_order", ("episodes", 0, "protection_plans", 1, "end_date")),  # index 1 as given, though 0 is left out
    ]
