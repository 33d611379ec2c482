"""Ingesting several returns and the extension: linking, the later return winning, problems and outputs."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
from pathlib import Path

import pytest

from features import ChildRecord, IngestError, Problem, ServiceType
from features.codes import ClosureReason, Ethnicity
from features.ingest import IngestResult, write_problems_csv, write_records_jsonl
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

OPEN = episode_xml("2023-05-01")
CLOSED = episode_xml("2023-05-01", closure="2024-02-01", reason="RC7")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _two_returns(folder: Path) -> tuple[Path, Path]:
    """2023 return: the episode open, child WBRI; 2024 return: the same episode closed, child AIND."""
    earlier = _write(folder, "cin_2023.xml", census_xml(child_xml("C1", OPEN), year=2024))
    later = _write(folder, "cin_2024.xml", census_xml(child_xml("C1", CLOSED, ethnicity="AIND"), year=2025))
    return earlier, later


def _besides_the_change(result: IngestResult) -> list[Problem]:
    """The problems other than the warning that _two_returns' child changed its ethnicity."""
    return [p for p in result.problems if p.rule != "characteristic_changed"]


def _jsonl(folder: Path, *lines: object) -> Path:
    path = folder / "extension.jsonl"
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines), encoding="utf-8")
    return path


# --- linking ------------------------------------------------------------------------------------------------


def test_ingest_later_return_wins_for_a_repeated_episode(tmp_path: Path) -> None:
    result = ingest(list(_two_returns(tmp_path)))
    # the change is said, not silent (issue 16)
    assert [(p.source, p.path, p.rule, p.severity) for p in result.problems] == [
        ("cin_2024.xml", "Child[1]/ChildCharacteristics/Ethnicity", "characteristic_changed", "warning")
    ]
    assert (
        result.problems[0].message == "Ethnicity is AIND here but was WBRI in cin_2023.xml; the later return's is used"
    )
    [record] = result.records
    [episode] = record.episodes
    assert (episode.closure_date, episode.closure_reason) == (dt.date(2024, 2, 1), ClosureReason.RC7)
    assert record.ethnicity is Ethnicity.AIND  # characteristics from the latest return too


def test_ingest_orders_returns_by_reference_date_not_argument_order(tmp_path: Path) -> None:
    earlier, later = _two_returns(tmp_path)
    [record] = ingest([later, earlier]).records
    assert record.episodes[0].closure_date == dt.date(2024, 2, 1)
    assert record.ethnicity is Ethnicity.AIND


def test_ingest_uses_argument_order_when_a_header_is_missing(tmp_path: Path) -> None:
    closed = _write(tmp_path, "a.xml", census_xml(child_xml("C1", CLOSED), year=None))
    still_open = _write(tmp_path, "b.xml", census_xml(child_xml("C1", OPEN), year=2030))
    assert ingest([closed, still_open]).records[0].episodes[0].closure_date is None
    assert ingest([still_open, closed]).records[0].episodes[0].closure_date == dt.date(2024, 2, 1)


def test_ingest_links_episodes_of_one_child_across_returns(tmp_path: Path) -> None:
    first = _write(tmp_path, "cin_2023.xml", census_xml(child_xml("C1", CLOSED), child_xml("C2"), year=2024))
    second = _write(
        tmp_path, "cin_2025.xml", census_xml(child_xml("C1", episode_xml("2024-09-01", source="6")), year=2025)
    )
    result = ingest([first, second])
    assert [r.la_child_id for r in result.records] == ["C1", "C2"]
    assert [e.referral_date for e in result.records[0].episodes] == [dt.date(2023, 5, 1), dt.date(2024, 9, 1)]
    assert result.data_end == dt.date(2025, 3, 31)
    assert result.summary() == {
        "files": 2,
        "partial": False,
        "files_unusable": 0,
        "files_partly_read": 0,
        "data_end": "2025-03-31",
        "children": 2,
        "episodes": 3,
        "open_episodes": 2,
        "problems": 1,
        "warnings": 1,
        "children_with_problems": 0,
        # C2's episode is open in the 2023 return and C2 is not in the 2025 one (issue 16: warned, kept open)
        "problems_by_rule": {"open_episode_missing": 1},
        "child_elements": 3,
        "child_elements_kept": 3,
        "child_elements_dropped": 0,
        "returns": [
            {"file": "cin_2023.xml", "child_elements": 2, "kept": 2, "dropped": 0},
            {"file": "cin_2025.xml", "child_elements": 1, "kept": 1, "dropped": 0},
        ],
    }


def test_ingest_reports_rules_broken_only_once_linked(tmp_path: Path) -> None:
    first = _write(tmp_path, "cin_2023.xml", census_xml(child_xml("C1", CLOSED), year=2024))
    overlapping = episode_xml("2023-12-01", closure="2024-03-01", reason="RC7")
    second = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", overlapping), year=2024))
    result = ingest([first, second])
    assert result.records == []
    [problem] = result.problems
    assert (problem.source, problem.la_child_id, problem.rule) == ("cin_2024.xml", "C1", "episodes_overlap")
    # one path style (issue 16): the element in the return the episode comes from, counted from 1
    assert problem.path == "Child[1]/CINdetails[1]/CINreferralDate"


def test_ingest_names_the_episode_by_its_element_for_a_record_rule(tmp_path: Path) -> None:
    late_authorisation = episode_xml(
        "2020-04-01",
        closure="2020-06-01",
        reason="RC8",
        modules="<Assessments><AssessmentActualStartDate>2020-04-02</AssessmentActualStartDate>"
        "<AssessmentAuthorisationDate>2020-07-01</AssessmentAuthorisationDate></Assessments>",
    )
    path = _write(tmp_path, "cin_2021.xml", census_xml(child_xml("C9", late_authorisation), year=2021))
    [problem] = ingest([path]).problems
    assert (problem.la_child_id, problem.rule) == ("C9", "after_closure")
    assert problem.path == "Child[1]/CINdetails[1]/Assessments[1]/AssessmentAuthorisationDate"


# --- one broken child ---------------------------------------------------------------------------------------


def test_ingest_keeps_good_children_and_reports_a_broken_one(tmp_path: Path) -> None:
    broken = child_xml("C2", episode_xml("2023-06-31"))
    nfa_with_plan = child_xml(
        "C4",
        episode_xml("2023-06-01", nfa="true", modules="<CINPlanDates><CINPlanStartDate>2023-06-02</CINPlanStartDate>"
                    "</CINPlanDates>"),
    )  # fmt: skip
    path = _write(tmp_path, "cin.xml", census_xml(child_xml("C1"), broken, child_xml("C3"), nfa_with_plan))
    result = ingest([path])
    assert [r.la_child_id for r in result.records] == ["C1", "C3"]
    assert [(p.source, p.la_child_id, p.path, p.rule) for p in result.problems] == [
        ("cin.xml", "C2", "Child[2]/CINdetails[1]/CINreferralDate", "invalid_date"),
        ("cin.xml", "C4", "Child[4]/CINdetails[1]/CINPlanDates", "nfa_with_activity"),
    ]
    summary = result.summary()
    assert (summary["children"], summary["children_with_problems"], summary["problems"]) == (2, 2, 2)
    assert summary["problems_by_rule"] == {"invalid_date": 1, "nfa_with_activity": 1}


def test_ingest_rejects_a_child_broken_in_any_return(tmp_path: Path) -> None:
    bad = episode_xml("2022-05-01", source="XX", closure="2022-09-01", reason="RC7")  # no later return gives it
    earlier = _write(tmp_path, "cin_2023.xml", census_xml(child_xml("C1", bad), year=2023))
    later = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", OPEN), year=2024))
    result = ingest([earlier, later])
    assert result.records == []
    assert [(p.source, p.rule) for p in result.problems] == [("cin_2023.xml", "invalid_code")]


def test_ingest_keeps_a_child_whose_broken_episode_a_later_return_gives_again(tmp_path: Path) -> None:
    # rejected until issue 16: the later return's copy of the episode is the one used, so it wins
    earlier = _write(tmp_path, "cin_2023.xml", census_xml(child_xml("C1", episode_xml(source="XX")), year=2023))
    later = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", OPEN), year=2024))
    result = ingest([earlier, later])
    assert [r.la_child_id for r in result.records] == ["C1"]
    assert [(p.source, p.rule, p.severity) for p in result.problems] == [("cin_2023.xml", "invalid_code", "warning")]


def test_ingest_goes_on_past_an_unusable_file_among_good_ones(tmp_path: Path) -> None:
    # raised until issue 16, and the good files were lost with it
    good = _write(tmp_path, "good.xml", census_xml(child_xml()))
    bad = _write(tmp_path, "bad.xml", "LAchildID,Sex\nC1,M\n")
    result = ingest([good, bad])
    assert [r.la_child_id for r in result.records] == ["C1"]
    assert [(p.source, p.rule) for p in result.problems] == [("bad.xml", "unusable_file")]
    assert "not an XML document" in result.problems[0].message
    assert (result.partial, result.unusable_files) == (True, ["bad.xml"])


# --- extension ----------------------------------------------------------------------------------------------


def test_ingest_joins_the_extension_into_its_episode(tmp_path: Path) -> None:
    returns = list(_two_returns(tmp_path))
    service = {"service": "parenting_programme", "referred_date": "2023-06-01", "start_date": "2023-07-01"}
    extension = _jsonl(
        tmp_path, {"la_child_id": "C1", "referral_date": "2023-05-01", "services": [service], "visits": []}
    )
    result = ingest(returns, extension=extension)
    assert _besides_the_change(result) == []
    episode = result.records[0].episodes[0]
    assert episode.services is not None
    assert episode.services[0].service is ServiceType.PARENTING_PROGRAMME
    assert episode.visits == []
    assert episode.agencies is None
    assert episode.plan_reviews is None


def test_ingest_reports_an_unmatched_extension_line_and_keeps_the_record(tmp_path: Path) -> None:
    extension = _jsonl(
        tmp_path,
        {"la_child_id": "C1", "referral_date": "2022-01-01", "visits": []},
        {"la_child_id": "NOBODY", "referral_date": "2023-05-01", "visits": []},
    )
    result = ingest(list(_two_returns(tmp_path)), extension=extension)
    assert [r.la_child_id for r in result.records] == ["C1"]
    assert [(p.source, p.la_child_id, p.path, p.rule) for p in _besides_the_change(result)] == [
        ("extension.jsonl", "C1", "line 1", "extension_unmatched"),
        ("extension.jsonl", "NOBODY", "line 2", "extension_unmatched"),
    ]


def test_ingest_reports_bad_extension_lines_and_reads_on(tmp_path: Path) -> None:
    c2 = _write(tmp_path, "cin_c2.xml", census_xml(child_xml("C2"), child_xml("C3"), year=2024))
    extension = _jsonl(
        tmp_path,
        "{not json",
        {"la_child_id": "C2", "referral_date": "2023-05-01", "visits": [{"date": "2023-13-01"}]},
        "",
        {"la_child_id": "C3", "referral_date": "2023-05-01", "visits": [{"date": "2023-06-01", "child_seen": True}]},
        {"la_child_id": "C3", "referral_date": "2023-05-01", "visits": []},
    )
    result = ingest([c2], extension=extension)
    assert result.records == []
    assert [(p.la_child_id, p.path, p.rule) for p in result.problems] == [
        (None, "line 1", "invalid_json"),
        ("C2", "line 2/visits[1]/date", "invalid_date"),
        ("C3", "line 5", "duplicate_extension"),
    ]


def test_ingest_reports_an_extension_rule_at_its_line(tmp_path: Path) -> None:
    returns = list(_two_returns(tmp_path))
    extension = _jsonl(
        tmp_path, {"la_child_id": "C1", "referral_date": "2023-05-01", "visits": [{"date": "2024-05-01"}]}
    )
    result = ingest(returns, extension=extension)
    assert result.records == []
    assert [(p.source, p.path, p.rule) for p in _besides_the_change(result)] == [
        ("extension.jsonl", "line 1/visits[1]/date", "after_closure")
    ]


def test_ingest_refuses_a_missing_extension_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot be read"):
        ingest(list(_two_returns(tmp_path)), extension=tmp_path / "absent.jsonl")


# --- outputs ------------------------------------------------------------------------------------------------


def test_write_problems_csv_writes_one_row_per_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, "cin.xml", census_xml(child_xml("C,1", episode_xml(source="XX")), child_xml(" ")))
    result = ingest([path])
    out = tmp_path / "problems.csv"
    write_problems_csv(result.problems, out)
    with out.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["la_child_id"], r["rule"]) for r in rows] == [("C,1", "invalid_code"), ("", "invalid_id")]
    # severity, added for issue 16: an error left the child out, a warning kept it
    assert list(rows[0]) == ["source", "la_child_id", "path", "rule", "message", "severity", "dfe_rule",
                             "dfe_message"]  # fmt: skip
    assert [r["severity"] for r in rows] == ["error", "error"]
    # the DfE rule where one exists (an invalid ReferralSource breaks 8866), empty where none does
    assert [(r["dfe_rule"], r["dfe_message"]) for r in rows] == [
        ("8866", "Source of Referral is missing or an invalid code"),
        ("", ""),
    ]


def test_write_records_jsonl_reads_back_as_the_same_records(tmp_path: Path) -> None:
    result = ingest(list(_two_returns(tmp_path)))
    out = tmp_path / "records.jsonl"
    write_records_jsonl(result.records, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [ChildRecord.model_validate_json(line) for line in lines] == result.records
    assert "null" not in lines[0]


def test_ingest_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    assert gc.isenabled()
    ingest(list(_two_returns(tmp_path)))
    assert gc.isenabled()
    gc.disable()
    try:
        ingest(list(_two_returns(tmp_path)))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ingest_counts_children_without_an_id_among_those_with_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, "cin.xml", census_xml(child_xml(""), child_xml("C1"), child_xml("\t")))
    summary = ingest([path]).summary()
    assert (summary["children"], summary["children_with_problems"], summary["problems"]) == (1, 2, 2)


def test_ingest_result_summary_is_json_serialisable(tmp_path: Path) -> None:
    result: IngestResult = ingest(list(_two_returns(tmp_path)))
    assert json.loads(json.dumps(result.summary()))["children"] == 1
