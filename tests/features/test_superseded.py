"""An error only in a copy a later return supersedes is a warning, and the later copy is used (issue 16)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from features.ingest import IngestResult
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml


def _assessment(start: str) -> str:
    return f"<Assessments><AssessmentActualStartDate>{start}</AssessmentActualStartDate></Assessments>"


OPEN_BAD_DATE = episode_xml("2023-05-01", modules=_assessment("2023-13-01"))  # not a date: the reader rejects it
OPEN_BEFORE_REFERRAL = episode_xml("2023-05-01", modules=_assessment("2023-04-01"))  # a record rule breaks
CLOSED_FIXED = episode_xml("2023-05-01", closure="2024-02-01", reason="RC7", modules=_assessment("2023-05-02"))
EARLIER = episode_xml("2021-01-04", closure="2021-06-01", reason="RC7")  # only in the first return


def _run(tmp_path: Path, *returns: tuple[int, str]) -> IngestResult:
    paths = []
    for year, children in returns:
        path = tmp_path / f"cin_{year}.xml"
        path.write_text(census_xml(children, year=year), encoding="utf-8")
        paths.append(path)
    return ingest(paths)


def _found(result: IngestResult) -> list[tuple[str, str, str, str]]:
    return [(p.source, p.path, p.rule, p.severity) for p in result.problems]


def test_a_value_the_reader_rejects_in_a_superseded_copy_is_a_warning(tmp_path: Path) -> None:
    result = _run(tmp_path, (2024, child_xml("C1", EARLIER, OPEN_BAD_DATE)), (2025, child_xml("C1", CLOSED_FIXED)))
    assert _found(result) == [
        ("cin_2024.xml", "Child[1]/CINdetails[2]/Assessments[1]/AssessmentActualStartDate", "invalid_date", "warning")
    ]
    assert result.problems[0].message.endswith(
        "(in a superseded copy: cin_2025.xml gives this episode again, and its copy is used)"
    )
    [record] = result.records
    # the later copy wins; the episode only the rejected copy gave is linked too
    assert [(e.referral_date, e.closure_date) for e in record.episodes] == [
        (dt.date(2021, 1, 4), dt.date(2021, 6, 1)),
        (dt.date(2023, 5, 1), dt.date(2024, 2, 1)),
    ]
    assert result.summary()["child_elements_dropped"] == 0


def test_a_record_rule_broken_only_in_a_superseded_copy_is_a_warning(tmp_path: Path) -> None:
    result = _run(tmp_path, (2024, child_xml("C1", OPEN_BEFORE_REFERRAL)), (2025, child_xml("C1", CLOSED_FIXED)))
    assert _found(result) == [
        ("cin_2024.xml", "Child[1]/CINdetails[1]/Assessments[1]/AssessmentActualStartDate", "before_referral",
         "warning")
    ]  # fmt: skip
    assert "cin_2025.xml gives this episode again without it" in result.problems[0].message
    [record] = result.records
    assert record.episodes[0].assessments[0].start_date == dt.date(2023, 5, 2)


def test_an_error_the_later_copy_repeats_is_an_error_once(tmp_path: Path) -> None:
    still_bad = episode_xml("2023-05-01", closure="2024-02-01", reason="RC7", modules=_assessment("2023-04-01"))
    result = _run(tmp_path, (2024, child_xml("C1", OPEN_BEFORE_REFERRAL)), (2025, child_xml("C1", still_bad)))
    assert _found(result) == [
        ("cin_2025.xml", "Child[1]/CINdetails[1]/Assessments[1]/AssessmentActualStartDate", "before_referral", "error")
    ]
    assert result.records == []


def test_an_error_in_an_episode_no_later_return_gives_still_drops_the_child(tmp_path: Path) -> None:
    bad_earlier = episode_xml("2021-01-04", closure="2021-06-01", reason="XX")
    result = _run(tmp_path, (2024, child_xml("C1", bad_earlier, OPEN_BAD_DATE)), (2025, child_xml("C1", CLOSED_FIXED)))
    assert {(p.path, p.rule, p.severity) for p in result.problems} == {
        ("Child[1]/CINdetails[1]/ReasonForClosure", "invalid_code", "error"),
        ("Child[1]/CINdetails[2]/Assessments[1]/AssessmentActualStartDate", "invalid_date", "warning"),
    }
    assert result.records == []


def test_a_characteristic_the_later_return_gives_again_supersedes_a_bad_one(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        (2024, child_xml("C1", EARLIER, episode_xml("2023-05-01"), ethnicity="ZZZZ")),
        (2025, child_xml("C1", CLOSED_FIXED)),
    )
    assert _found(result) == [("cin_2024.xml", "Child[1]/ChildCharacteristics/Ethnicity", "invalid_code", "warning")]
    assert "cin_2025.xml gives this child again" in result.problems[0].message
    [record] = result.records
    assert len(record.episodes) == 2


def test_a_later_copy_never_supersedes_an_earlier_duplicate_id(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        (2024, child_xml("C1", episode_xml("2023-05-01")) + child_xml("C1", EARLIER)),
        (2025, child_xml("C1", CLOSED_FIXED)),
    )
    assert ("cin_2024.xml", "Child[2]/ChildIdentifiers/LAchildID", "duplicate_child", "error") in _found(result)
    assert result.records == []
