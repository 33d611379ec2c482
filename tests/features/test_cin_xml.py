"""The CIN census XML reader and writer: round trip, schema validity, variants and problem reporting."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from features.cin_xml import (
    IngestError,
    Problem,
    element_path,
    read_census_header,
    read_census_return,
    write_census_return,
)
from features.codes import Sex
from features.ingest import ingest, write_extension_jsonl
from features.record import ChildRecord, record_as_of
from tests.strategies import census_xml, child_records, child_xml, collection_year, episode_xml

record_lists = st.lists(child_records(), min_size=1, max_size=4, unique_by=lambda r: r.la_child_id)


def _years_with_open_episodes(records: list[ChildRecord], last_year: int) -> list[int]:
    years: set[int] = set()
    for record in records:
        for e in record.episodes:
            end = collection_year(e.closure_date) if e.closure_date is not None else last_year
            years.update(range(collection_year(e.referral_date), min(end, last_year) + 1))
    return sorted(years)


def _read(tmp_path: Path, text: str, name: str = "cin.xml") -> tuple[list[Problem], list[dict[str, object]]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    ret = read_census_return(path)
    return ret.problems, [c.fields for c in ret.children]


# --- writer and round trip ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(records=record_lists)
def test_write_census_return_round_trips_through_ingest(records: list[ChildRecord]) -> None:
    last_year = max(collection_year(e.referral_date) for r in records for e in r.episodes)
    as_of = dt.date(last_year, 3, 31)
    expected = sorted((record_as_of(r, as_of) for r in records), key=lambda r: r.la_child_id if r else "")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for year in _years_with_open_episodes(records, last_year):
            path = Path(folder) / f"cin_{year}.xml"
            assert write_census_return(records, collection_year=year, out=path) >= 1
            paths.append(path)
        extension = Path(folder) / "extension.jsonl"
        write_extension_jsonl([r for r in expected if r is not None], extension)
        result = ingest(paths[::-1], extension=extension)  # reversed: the reference dates decide, not the order
    assert result.problems == []
    assert [r.model_dump() for r in result.records] == [r.model_dump() for r in expected if r is not None]


@settings(max_examples=15, deadline=None)
@given(records=record_lists, year=st.integers(2013, 2026))
def test_write_census_return_validates_against_2025_and_2026_schemas(
    shared_reference: Path, records: list[ChildRecord], year: int
) -> None:
    schemas = [
        etree.XMLSchema(etree.parse(shared_reference / "cin-census" / "schema" / f"CIN_schema_{y}.xsd"))
        for y in (2025, 2026)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cin.xml"
        try:
            write_census_return(records, collection_year=year, out=path)
        except ValueError:
            assert not path.exists()
            return
        document = etree.parse(str(path))
    for schema in schemas:
        assert schema.validate(document), schema.error_log


def _sample_records() -> list[ChildRecord]:
    closed = {
        "referral_date": dt.date(2022, 6, 1),
        "referral_source": "2A",
        "closure_date": dt.date(2022, 9, 1),
        "closure_reason": "RC8",
        "referral_nfa": False,
        "assessments": [{"start_date": dt.date(2022, 6, 2), "authorisation_date": dt.date(2022, 7, 1)}],
    }
    later = {
        "referral_date": dt.date(2024, 5, 1),
        "referral_source": "6",
        "referral_nfa": False,
        "assessments": [{"start_date": dt.date(2024, 5, 3), "authorisation_date": dt.date(2025, 6, 1)}],
        "services": [{"service": "counselling", "referred_date": dt.date(2024, 5, 10)}],
    }
    return [
        ChildRecord.model_validate(
            {"la_child_id": "B&2", "birth_date": dt.date(2012, 1, 1), "sex": "M", "ethnicity": "WBRI",
             "episodes": [closed, later]}
        ),
        ChildRecord.model_validate(
            {"la_child_id": "A<1>", "expected_birth_date": dt.date(2024, 8, 1), "sex": "U", "ethnicity": "NOBT",
             "episodes": [{**later, "referral_date": dt.date(2024, 4, 1)}]}
        ),
    ]  # fmt: skip


def test_write_census_return_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    records = _sample_records()
    first, second = tmp_path / "a.xml", tmp_path / "b.xml"
    write_census_return(records, collection_year=2025, out=first)
    write_census_return(iter(records), collection_year=2025, out=second)
    assert first.read_bytes() == second.read_bytes()
    assert b"<DateTime>2025-04-01T00:00:00</DateTime>" in first.read_bytes()


def test_write_census_return_keeps_only_episodes_open_in_the_year(tmp_path: Path) -> None:
    out = tmp_path / "cin_2025.xml"
    assert write_census_return(_sample_records(), collection_year=2025, out=out) == 2
    ret = read_census_return(out)
    assert ret.reference_date == dt.date(2025, 3, 31)
    assert ret.collection_year == 2025
    by_id = {c.la_child_id: c.fields for c in ret.children}
    assert set(by_id) == {"A<1>", "B&2"}
    episodes = by_id["B&2"]["episodes"]
    assert isinstance(episodes, list)
    assert [e["referral_date"] for e in episodes] == [dt.date(2024, 5, 1)]
    # as it stood on 31 March 2025: the assessment authorised in June 2025 is not yet authorised
    assert episodes[0]["assessments"] == [{"start_date": dt.date(2024, 5, 3)}]
    assert b"counselling" not in out.read_bytes()  # the extension is not census data


def test_write_census_return_refuses_a_year_without_children(tmp_path: Path) -> None:
    out = tmp_path / "cin_2015.xml"
    with pytest.raises(ValueError, match="no child has an episode open in collection year 2015"):
        write_census_return(_sample_records(), collection_year=2015, out=out)
    assert list(tmp_path.iterdir()) == []


def test_write_census_return_refuses_a_malformed_lea(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="three-digit"):
        write_census_return(_sample_records(), collection_year=2025, out=tmp_path / "x.xml", lea="12")


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


def test_read_census_header_reads_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1"), year=2021, reference_date="2021-03-30"), encoding="utf-8")
    header = read_census_header(path)
    assert (header.collection_year, header.reference_date) == (2021, dt.date(2021, 3, 30))
    assert header.children == []
    assert header.child_elements == 0


def test_read_census_header_of_a_return_without_one_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1"), year=None), encoding="utf-8")
    header = read_census_header(path)
    assert (header.collection_year, header.reference_date, header.problems) == (None, None, [])


def test_read_census_return_reports_a_bad_reference_date_and_falls_back_to_the_year(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1"), year=2022, reference_date="2022-31-03"), encoding="utf-8")
    ret = read_census_return(path)
    assert ret.reference_date == dt.date(2022, 3, 31)
    assert [c.la_child_id for c in ret.children] == ["C1"]  # a header problem names no child
    assert [(p.la_child_id, p.path, p.rule) for p in ret.problems] == [
        (None, "Header/CollectionDetails/ReferenceDate", "invalid_date")
    ]


def test_read_census_return_refuses_another_collection(tmp_path: Path) -> None:
    path = tmp_path / "cla.xml"
    path.write_text(census_xml(child_xml()).replace("<Collection>CIN<", "<Collection>CLA<"), encoding="utf-8")
    with pytest.raises(IngestError, match=r"cla\.xml: not a CIN return: the header's Collection is 'CLA'"):
        read_census_return(path)


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
