"""Reading Child elements: the schema variants, and problem reporting with element paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from features import Problem, Sex
from features.census import read_census_return
from tests.strategies import census_xml, child_xml, episode_xml


def _read(tmp_path: Path, text: str, name: str = "cin.xml") -> tuple[list[Problem], list[dict[str, object]]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    ret = read_census_return(path)
    return ret.problems, [c.fields for c in ret.children]


# --- schema variants ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "sex"), [("1", Sex.M), ("2", Sex.F), ("0", Sex.U), ("9", Sex.U), (" 2 ", Sex.F)])
def test_read_census_return_maps_gender_current(tmp_path: Path, code: str, sex: Sex) -> None:
    problems, children = _read(tmp_path, census_xml(child_xml("C1", sex=f"<GenderCurrent>{code}</GenderCurrent>")))
    assert problems == []
    assert children[0]["sex"] is sex


@pytest.mark.parametrize(("text", "value"), [("0", False), ("1", True), ("true", True), (" FALSE ", False)])
def test_read_census_return_accepts_both_boolean_spellings(tmp_path: Path, text: str, value: bool) -> None:
    problems, children = _read(tmp_path, census_xml(child_xml("C1", episode_xml(nfa=text))))
    assert problems == []
    assert children[0]["episodes"] == [
        {"referral_date": dt.date(2023, 5, 1), "referral_source": "1A", "primary_need": "N1", "referral_nfa": value}
    ]


def test_read_census_return_accepts_a_child_without_optional_modules(tmp_path: Path) -> None:
    problems, children = _read(
        tmp_path, census_xml(child_xml("C1", episode_xml(need=None), birth="2020-01-01"), year=None)
    )
    assert problems == []
    assert children == [
        {
            "la_child_id": "C1",
            "birth_date": dt.date(2020, 1, 1),
            "sex": Sex.F,
            "ethnicity": "WBRI",
            "episodes": [{"referral_date": dt.date(2023, 5, 1), "referral_source": "1A", "referral_nfa": False}],
        }
    ]


def test_read_census_return_strips_whitespace_and_ignores_identifiers_not_needed(tmp_path: Path) -> None:
    text = census_xml(
        "<Child>\n  <ChildIdentifiers>\n    <LAchildID>\n  C 1\t</LAchildID>\n    <UPN>A123456789012</UPN>\n"
        "    <UPNunknown>UN1</UPNunknown><PersonBirthDate> 2015-06-01 </PersonBirthDate><Sex> M </Sex>\n"
        "    <PersonDeathDate>2020-01-01</PersonDeathDate>\n  </ChildIdentifiers>\n"
        "  <ChildCharacteristics><Ethnicity>\tAIND\n</Ethnicity><Disabilities><Disability> AUT </Disability>"
        "</Disabilities></ChildCharacteristics>\n"
        + episode_xml(
            " 2023-05-01 ",
            source=" 3B ",
            closure="2023-08-01",
            reason=" RC7 ",
            modules="<Assessments><AssessmentActualStartDate>2023-05-02</AssessmentActualStartDate>"
            "<FactorsIdentifiedAtAssessment><AssessmentFactors> 16A </AssessmentFactors>"
            "</FactorsIdentifiedAtAssessment></Assessments>",
        )
        + "\n</Child>"
    )
    problems, children = _read(tmp_path, text)
    assert problems == []
    child = children[0]
    assert child["la_child_id"] == "C 1"
    assert child["sex"] is Sex.M
    assert child["disabilities"] == ["AUT"]
    assert set(child) == {"la_child_id", "birth_date", "sex", "ethnicity", "disabilities", "episodes"}  # no UPN
    assert "A123456789012" not in str(child)
    episode = child["episodes"][0]  # type: ignore[index]
    assert episode["closure_reason"] == "RC7"
    assert episode["assessments"][0]["factors"] == ["16A"]


# --- problems -----------------------------------------------------------------------------------------------


def test_read_census_return_reports_each_bad_value_with_its_path(tmp_path: Path) -> None:
    bad = child_xml(
        "BAD",
        episode_xml("2023-04-01", closure="2023-02-30", reason="RC7"),
        episode_xml(
            "2023-06-01",
            source="ZZ",
            nfa="maybe",
            modules="<Assessments><AssessmentActualStartDate>2023-06-02</AssessmentActualStartDate>"
            "<AssessmentAuthorisationDate>01/07/2023</AssessmentAuthorisationDate></Assessments>"
            "<CINPlanDates><CINPlanEndDate>2023-07-01</CINPlanEndDate></CINPlanDates>",
            after_nfa="<Colour>blue</Colour>",
        ),
        sex="<Sex>M</Sex><GenderCurrent>1</GenderCurrent>",
    )
    problems, children = _read(tmp_path, census_xml(child_xml("GOOD"), bad))
    assert [c["la_child_id"] for c in children] == ["GOOD"]
    found = {(p.la_child_id, p.path, p.rule) for p in problems}
    assert found == {
        ("BAD", "Child[2]/ChildIdentifiers/GenderCurrent", "duplicate_element"),
        ("BAD", "Child[2]/CINdetails[1]/CINclosureDate", "invalid_date"),
        ("BAD", "Child[2]/CINdetails[2]/ReferralSource", "invalid_code"),
        ("BAD", "Child[2]/CINdetails[2]/ReferralNFA", "invalid_boolean"),
        ("BAD", "Child[2]/CINdetails[2]/Assessments[1]/AssessmentAuthorisationDate", "invalid_date"),
        ("BAD", "Child[2]/CINdetails[2]/CINPlanDates[1]/CINPlanStartDate", "missing_element"),
        ("BAD", "Child[2]/CINdetails[2]/Colour", "unknown_element"),
    }
    assert all(p.source == "cin.xml" for p in problems)


def test_read_census_return_reports_a_child_without_an_id_by_position(tmp_path: Path) -> None:
    problems, children = _read(tmp_path, census_xml(child_xml("A"), child_xml("  "), child_xml("B")))
    assert [c["la_child_id"] for c in children] == ["A", "B"]
    assert [(p.la_child_id, p.path, p.rule) for p in problems] == [
        (None, "Child[2]/ChildIdentifiers/LAchildID", "invalid_id")
    ]


def test_read_census_return_reports_missing_sex_and_characteristics(tmp_path: Path) -> None:
    text = census_xml(
        "<Child><ChildIdentifiers><LAchildID>X</LAchildID><PersonBirthDate>2015-01-01</PersonBirthDate>"
        "</ChildIdentifiers>" + episode_xml() + "</Child>"
    )
    problems, children = _read(tmp_path, text)
    assert children == []
    assert {(p.path, p.rule) for p in problems} == {
        ("Child[1]/ChildIdentifiers/Sex", "missing_element"),
        ("Child[1]/ChildCharacteristics", "missing_element"),
    }


def test_read_census_return_reports_repeated_child_and_episode(tmp_path: Path) -> None:
    text = census_xml(
        child_xml("A"), child_xml("B", episode_xml("2023-05-01"), episode_xml("2023-05-01")), child_xml("A")
    )
    problems, children = _read(tmp_path, text)
    assert children == []
    assert {(p.la_child_id, p.path, p.rule) for p in problems} == {
        ("B", "Child[2]/CINdetails[2]/CINreferralDate", "duplicate_episode"),
        ("A", "Child[3]/ChildIdentifiers/LAchildID", "duplicate_child"),
    }


def test_read_census_return_reports_stray_text(tmp_path: Path) -> None:
    text = census_xml(child_xml("A", identifiers_extra="<UPNunknown>UN3</UPNunknown>PersonBirthDate"))
    problems, children = _read(tmp_path, text)
    assert children == []
    assert [(p.la_child_id, p.path, p.rule) for p in problems] == [
        ("A", "Child[1]/ChildIdentifiers", "unexpected_text")
    ]


def test_read_census_return_reads_an_empty_children_element(tmp_path: Path) -> None:
    problems, children = _read(tmp_path, census_xml())
    assert problems == []
    assert children == []
