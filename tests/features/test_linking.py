"""Linking years with warnings: what a later return changes is said, never silent (multi-year pairs per case)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from features.ingest import IngestResult
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

OPEN = episode_xml("2023-05-01")
CLOSED = episode_xml("2023-05-01", closure="2024-02-01", reason="RC7")


def _run(tmp_path: Path, *returns: tuple[int, str]) -> IngestResult:
    paths = []
    for year, children in returns:
        path = tmp_path / f"cin_{year}.xml"
        path.write_text(census_xml(children, year=year), encoding="utf-8")
        paths.append(path)
    return ingest(paths)


def _found(result: IngestResult) -> list[tuple[str, str, str, str]]:
    return [(p.source, p.path, p.rule, p.severity) for p in result.problems]


def test_a_birth_date_moved_ten_years_and_a_changed_sex_are_warned(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        (2024, child_xml("C1", OPEN)),
        (2025, child_xml("C1", CLOSED, birth="2005-06-01", sex="<Sex>M</Sex>", disabilities=["AUT"])),
    )
    assert [r.la_child_id for r in result.records] == ["C1"]
    assert _found(result) == [
        ("cin_2025.xml", "Child[1]/ChildIdentifiers/PersonBirthDate", "characteristic_changed", "warning"),
        ("cin_2025.xml", "Child[1]/ChildIdentifiers/Sex", "characteristic_changed", "warning"),
        ("cin_2025.xml", "Child[1]/ChildCharacteristics/Disabilities", "characteristic_changed", "warning"),
    ]
    assert "was 2015-06-01 in cin_2024.xml" in result.problems[0].message


def test_an_earlier_expected_birth_date_is_kept(tmp_path: Path) -> None:
    expected = "<ExpectedPersonBirthDate>2023-09-01</ExpectedPersonBirthDate>"
    result = _run(
        tmp_path,
        (2024, child_xml("C1", OPEN, birth=None, identifiers_extra=expected)),
        (2025, child_xml("C1", CLOSED, birth="2023-08-28")),
    )
    [record] = result.records
    assert (record.birth_date, record.expected_birth_date) == (dt.date(2023, 8, 28), dt.date(2023, 9, 1))
    assert result.problems == []  # born since: not a change


def test_an_open_episode_missing_from_a_later_return_is_kept_open_and_warned(tmp_path: Path) -> None:
    later_episode = episode_xml("2024-09-01", closure="2024-10-01", reason="RC8", nfa="1")
    result = _run(
        tmp_path, (2024, child_xml("C1", OPEN) + child_xml("C2", OPEN)), (2025, child_xml("C1", later_episode))
    )
    # C1: kept open, its 2023 episode now holds the later referral, an overlap the data officer must resolve
    assert {r.la_child_id for r in result.records} == {"C2"}
    rules = {(p.source, p.la_child_id, p.path, p.rule) for p in result.problems}
    assert ("cin_2024.xml", "C1", "Child[1]/CINdetails[1]/CINclosureDate", "open_episode_missing") in rules
    assert ("cin_2024.xml", "C2", "Child[2]/CINdetails[1]/CINclosureDate", "open_episode_missing") in rules
    [c2] = result.records
    assert c2.open_episode is not None  # kept open, and marked for the score's warning with the return missing it
    assert c2.open_episode.missing_from_return == dt.date(2025, 3, 31)


def test_an_open_episode_every_return_holds_is_not_marked(tmp_path: Path) -> None:
    result = _run(tmp_path, (2024, child_xml("C1", OPEN)), (2025, child_xml("C1", OPEN)))
    [record] = result.records
    assert record.open_episode is not None
    assert record.open_episode.missing_from_return is None
    assert result.problems == []


def test_a_referral_date_corrected_by_a_day_is_one_episode(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        (2024, child_xml("C1", OPEN)),
        (2025, child_xml("C1", episode_xml("2023-05-02", closure="2024-02-01", reason="RC7"))),
    )
    [record] = result.records
    assert [e.referral_date for e in record.episodes] == [dt.date(2023, 5, 2)]
    assert _found(result) == [
        ("cin_2025.xml", "Child[1]/CINdetails[1]/CINreferralDate", "referral_date_corrected", "warning")
    ]
    assert "2023-05-01 in cin_2024.xml" in result.problems[0].message


def test_a_closed_earlier_episode_is_not_taken_for_a_correction(tmp_path: Path) -> None:
    closed_early = episode_xml("2023-02-01", closure="2023-03-01", reason="RC8", nfa="1")
    result = _run(tmp_path, (2023, child_xml("C1", closed_early)), (2024, child_xml("C1", episode_xml("2023-03-20"))))
    [record] = result.records
    assert len(record.episodes) == 2
    assert result.problems == []


def test_a_referral_long_before_birth_breaks_rule_8606(tmp_path: Path) -> None:
    result = _run(tmp_path, (2024, child_xml("C1", episode_xml("1998-05-01", closure="1998-06-01", reason="RC8",
                                                                nfa="1"), OPEN)))  # fmt: skip
    assert result.records == []
    assert [(p.path, p.rule) for p in result.problems] == [
        ("Child[1]/CINdetails[1]/CINreferralDate", "referral_before_birth")
    ]
    assert "8606" in result.problems[0].message


def test_the_header_and_dates_a_return_should_not_give_are_warned(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    text = census_xml(child_xml("244301.0"), child_xml("C2", episode_xml("2024-05-01")), year=2024)
    path.write_text(text.replace("<ReferenceDate>2024-03-31<", "<ReferenceDate>2025-03-31<"), encoding="utf-8")
    result = ingest([path])
    assert {r.la_child_id for r in result.records} == {"244301.0", "C2"}  # warnings keep the children
    assert {(p.path, p.rule) for p in result.problems} == {
        ("Header/CollectionDetails/Year", "year_reference_date_mismatch"),
        ("Child[1]/ChildIdentifiers/LAchildID", "id_looks_numeric"),
    }
    text = census_xml(child_xml("C2", episode_xml("2024-05-01")), year=2024)
    path.write_text(text, encoding="utf-8")
    assert _found(ingest([path])) == [
        ("cin.xml", "Child[1]/CINdetails[1]/CINreferralDate", "referral_after_reference_date", "warning")
    ]


def test_an_open_episode_is_flagged_by_the_first_return_missing_it_and_warned_once(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        (2024, child_xml("C1", OPEN) + child_xml("C2", OPEN)),
        (2025, child_xml("C1", OPEN)),  # C2 absent: its open episode should be here
        (2026, child_xml("C1", OPEN)),
    )
    assert [(p.la_child_id, p.rule, p.message.split(" and missing from ")[1][:12]) for p in result.problems] == [
        ("C2", "open_episode_missing", "cin_2025.xml")
    ]
    c2 = next(r for r in result.records if r.la_child_id == "C2")
    assert c2.open_episode is not None
    assert c2.open_episode.missing_from_return == dt.date(2025, 3, 31)
