"""The CIN census writer: round trip through the reader, schema validity, determinism, the year's children."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from features import ChildRecord, record_as_of, write_census_return, write_extension_jsonl
from features.census import read_census_return
from tests.features.shares import ingest
from tests.strategies import child_records, collection_year

record_lists = st.lists(child_records(), min_size=1, max_size=4, unique_by=lambda r: r.la_child_id)


def _years_with_open_episodes(records: list[ChildRecord], last_year: int) -> list[int]:
    years: set[int] = set()
    for record in records:
        for e in record.episodes:
            end = collection_year(e.closure_date) if e.closure_date is not None else last_year
            years.update(range(collection_year(e.referral_date), min(end, last_year) + 1))
    return sorted(years)


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
