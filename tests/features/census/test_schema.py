"""The census is stated once: a round trip over the schema table through the writer, the reader and element_path.

Every element the writer writes is one the table lists, written as its type spells it; the reader reads it back at
the same path into the same field, and reports a bad value there at the path element_path gives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from features import ChildRecord, write_census_return
from features.census import element_path, read_census_return
from features.census.schema import CHILD, CHILDREN, MESSAGE, Group, Ignored, Leaf, ListOf
from features.census.values import ValueType

Loc = tuple[str | int, ...]

# Every census field filled, one item in every list, in a return for 2023-24 (the episode closed in the year).
FULL_RECORD = ChildRecord.model_validate(
    {"la_child_id": "C&1", "birth_date": "2015-06-01", "expected_birth_date": "2015-06-10", "sex": "F",
     "ethnicity": "WBRI", "disabilities": ["AUT"],
     "episodes": [{
         "referral_date": "2023-05-01", "referral_source": "1A", "primary_need": "N1", "closure_date": "2024-02-01",
         "closure_reason": "RC1", "initial_cpc_date": "2023-06-15", "referral_nfa": False,
         "assessments": [{"start_date": "2023-05-02", "internal_review_date": "2023-05-20",
                          "authorisation_date": "2023-06-01", "factors": ["16A"]}],
         "cin_plans": [{"start_date": "2023-06-02", "end_date": "2023-07-01"}],
         "section47s": [{"start_date": "2023-05-10", "icpc_target_date": "2023-06-10", "icpc_date": "2023-06-15",
                         "icpc_not_required": False}],
         "protection_plans": [{"start_date": "2023-06-15", "end_date": "2024-01-15", "initial_category": "NEG",
                               "latest_category": "EMO", "previous_plans": 2, "review_dates": ["2023-09-15"]}],
         "pre_proceedings": [{"start_date": "2023-07-01", "letter_before_proceedings_date": "2023-07-03",
                              "fgdm_meeting_offered": True, "fgdm_meeting_facilitated": False,
                              "initial_meeting_date": "2023-07-20", "review_meetings": 2,
                              "step_decision_date": "2023-11-01", "outcome": "B",
                              "court_application_date": "2023-11-10",
                              "letter_initiating_proceedings_date": "2023-11-12"}],
     }]}
)  # fmt: skip


def _value_elements(group: Group, tags: tuple[str, ...] = (), loc: Loc = ()) -> Iterator[tuple[str, Loc, ValueType]]:
    """Each value element the table lists under ``group`` (current spellings): its tag path, record location, type.

    A repeated group or a list is taken at its first item.
    """
    for element in group.elements:
        if isinstance(element, Ignored):
            continue
        at = (*tags, element.tag)
        if isinstance(element, Leaf):
            yield "/".join(at), (*loc, element.field), element.type
        elif isinstance(element, ListOf):
            yield "/".join((*at, element.item)), (*loc, element.field, 0), element.type
        elif element.field is None:
            yield from _value_elements(element, at, loc)
        else:
            yield from _value_elements(element, at, (*loc, element.field, *((0,) if element.repeated else ())))


def _at(value: Any, loc: Loc) -> Any:
    for key in loc:
        value = value[key] if isinstance(key, int) or isinstance(value, dict) else getattr(value, key)
    return value


def _leaf_paths(document: Any) -> set[str]:
    """Tag paths from the root of every element that holds no element."""
    tree = document.getroottree()
    return {
        "/".join(part.split("[")[0] for part in tree.getpath(el).strip("/").split("/")[1:])
        for el in document.iter()
        if len(el) == 0
    }


def _disagreements(written: bytes, tmp_path: Path) -> list[str]:
    """Where a written return and the schema table disagree; an empty list when the table is the only statement."""
    found: list[str] = []
    document = etree.fromstring(written, etree.XMLParser(resolve_entities=False, no_network=True))
    table = {path for path, _, _ in _value_elements(MESSAGE)}
    written_paths = _leaf_paths(document)
    found += [f"written, not in the table: {p}" for p in sorted(written_paths - table)]
    found += [f"in the table, not written: {p}" for p in sorted(table - written_paths)]
    source = tmp_path / "written.xml"
    source.write_bytes(written)
    read = read_census_return(source)
    found += [f"the reader reports {p.rule} at {p.path}" for p in read.problems]
    child = document.find(f"{CHILDREN.tag}/{CHILD.tag}")
    if child is None or not read.children:
        return found
    fields = read.children[0].fields
    for path, loc, value_type in _value_elements(CHILD):
        el = child.find(path)
        if el is None:
            continue  # reported above
        expected = _at(FULL_RECORD, loc)
        if value_type.write is None or etree.fromstring(f"<v>{value_type.write(expected)}</v>").text != el.text:
            found.append(f"{path}: written as {el.text!r}, which the table's {value_type.name} does not write")
        if _at(fields, loc) != expected:
            found.append(f"{path}: read back as {_at(fields, loc)!r}, not {expected!r}")
        # A value that is not acceptable is reported at the path element_path gives its field, under its type's rule.
        text, el.text = el.text, ""
        source.write_bytes(etree.tostring(document))
        el.text = text
        problems = [(p.path, p.rule) for p in read_census_return(source).problems if p.is_error]
        expected_problem = (element_path(loc, child=f"{CHILD.tag}[1]"), value_type.rule)
        if problems != [expected_problem]:
            found.append(f"{path}: an empty value is reported as {problems}, not {[expected_problem]}")
    return found


def _written(tmp_path: Path) -> bytes:
    out = tmp_path / "cin_2024.xml"
    assert write_census_return([FULL_RECORD], collection_year=2024, out=out) == 1
    return out.read_bytes()


def test_schema_table_round_trips_through_writer_reader_and_paths(tmp_path: Path) -> None:
    written = _written(tmp_path)
    assert _disagreements(written, tmp_path) == []
    read = read_census_return(tmp_path / "cin_2024.xml")
    assert (read.collection_year, read.reference_date) == (2024, dt.date(2024, 3, 31))
    assert ChildRecord.model_validate(read.children[0].fields) == FULL_RECORD


def test_schema_round_trip_catches_an_element_stated_twice(tmp_path: Path) -> None:
    """The check above can fail: a writer spelling an element or a value its own way is caught."""
    written = _written(tmp_path)
    renamed = written.replace(b"CPPendDate>", b"CPPEndDate>")
    assert _disagreements(renamed, tmp_path) == [
        "written, not in the table: Children/Child/CINdetails/ChildProtectionPlans/CPPEndDate",
        "in the table, not written: Children/Child/CINdetails/ChildProtectionPlans/CPPendDate",
        "the reader reports unknown_element at Child[1]/CINdetails[1]/ChildProtectionPlans[1]/CPPEndDate",
    ]
    spelt = written.replace(b"<ICPCnotRequired>0<", b"<ICPCnotRequired>false<")
    assert _disagreements(spelt, tmp_path) == [
        "CINdetails/Section47/ICPCnotRequired: written as 'false', which the table's boolean does not write"
    ]
    moved = written.replace(b"<LAchildID>", b"<UPN>A123456789012</UPN><LAchildID>")
    assert _disagreements(moved, tmp_path) == ["written, not in the table: Children/Child/ChildIdentifiers/UPN"]
