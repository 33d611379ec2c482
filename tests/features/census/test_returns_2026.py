"""2026 returns: the pre-proceedings block is read into the record and written back; other unknown elements warn."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from features import ChildRecord, record_as_of, write_census_return
from features.census import read_census_return
from features.codes import PreProceedingsOutcome
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

RETURNS = Path(__file__).parent / "returns"
BLOCK = (
    "<PreProceedingsandFGDM><PPStartDate>{start}</PPStartDate><ReviewMeetingsCount>{count}</ReviewMeetingsCount>"
    "<PPOutcome>{outcome}</PPOutcome></PreProceedingsandFGDM>"
)


def test_ingest_reads_the_pre_proceedings_block_of_a_2026_return() -> None:
    result = ingest([RETURNS / "cin_2026_pre_proceedings.xml"])
    assert [r.la_child_id for r in result.records] == ["PP0001", "PP0002"]
    block = result.records[0].episodes[0].pre_proceedings[0]
    assert block.start_date == dt.date(2025, 9, 1)
    assert (block.fgdm_meeting_offered, block.fgdm_meeting_facilitated) == (True, True)
    assert (block.review_meetings, block.outcome) == (3, PreProceedingsOutcome.A)
    assert block.letter_initiating_proceedings_date == dt.date(2026, 2, 3)
    assert result.records[1].episodes[0].pre_proceedings[0].step_decision_date is None
    # an element no schema lists is a warning: the child is kept and the data officer told where it is
    assert [(p.la_child_id, p.path, p.rule, p.severity) for p in result.problems] == [
        ("PP0002", "Child[2]/CINdetails[1]/LocalExtraDate", "unknown_element", "warning")
    ]
    assert result.summary()["children_with_problems"] == 0


def test_the_pre_proceedings_block_round_trips_through_the_writer(tmp_path: Path) -> None:
    records = ingest([RETURNS / "cin_2026_pre_proceedings.xml"]).records
    out = tmp_path / "cin_2026.xml"
    assert write_census_return(records, collection_year=2026, out=out) == 2
    assert b"<PreProceedingsandFGDM>" in out.read_bytes()
    again = ingest([out])
    assert again.problems == []
    assert again.records == records


def test_a_pre_proceedings_date_before_the_referral_is_an_error_at_its_element(tmp_path: Path) -> None:
    episode = episode_xml("2025-05-01", after_nfa=BLOCK.format(start="2025-04-01", count=1, outcome="B"))
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1", episode), child_xml("C2"), year=2026), encoding="utf-8")
    result = ingest([path])
    assert [r.la_child_id for r in result.records] == ["C2"]
    assert [(p.la_child_id, p.rule, p.severity) for p in result.problems] == [("C1", "before_referral", "error")]
    assert "PreProceedingsandFGDM[1]/PPStartDate" in result.problems[0].path


def test_a_bad_pre_proceedings_value_is_reported_with_its_path(tmp_path: Path) -> None:
    episode = episode_xml("2025-05-01", after_nfa=BLOCK.format(start="2025-06-01", count="-1", outcome="Z"))
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1", episode), year=2026), encoding="utf-8")
    ret = read_census_return(path)
    assert ret.children == []
    assert {(p.path, p.rule) for p in ret.problems} == {
        ("Child[1]/CINdetails[1]/PreProceedingsandFGDM[1]/ReviewMeetingsCount", "invalid_integer"),
        ("Child[1]/CINdetails[1]/PreProceedingsandFGDM[1]/PPOutcome", "invalid_code"),
    }


def test_the_pre_proceedings_block_as_it_stood_knows_nothing_of_later_events() -> None:
    record = ingest([RETURNS / "cin_2026_pre_proceedings.xml"]).records[0]
    before = record_as_of(record, dt.date(2025, 8, 31))
    assert before is not None
    assert before.episodes[0].pre_proceedings == []
    during = record_as_of(record, dt.date(2025, 10, 1))
    assert during is not None
    block = during.episodes[0].pre_proceedings[0]
    assert (block.start_date, block.initial_meeting_date, block.step_decision_date) == (
        dt.date(2025, 9, 1),
        dt.date(2025, 9, 17),
        None,
    )
    assert (block.fgdm_meeting_offered, block.fgdm_meeting_facilitated, block.review_meetings, block.outcome) == (
        True,
        None,
        None,
        None,
    )
    assert record_as_of(record, dt.date(2026, 3, 31)) == record
    assert isinstance(ChildRecord.model_validate(record.model_dump()), ChildRecord)
