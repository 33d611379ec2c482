"""Reading a whole return: the header alone, a bad header, another collection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from features import IngestError
from features.census import read_census_header, read_census_return
from tests.strategies import census_xml, child_xml


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
