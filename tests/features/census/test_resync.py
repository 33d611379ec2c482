"""A broken return is a problem, not the end: children before a break, and after it from the next Child, are kept."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closure_risk import EXIT_PARTIAL, main
from features.census import read_census_return
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml

RETURNS = Path(__file__).parent / "returns"
IDS = ("C1", "C2", "C3", "C4")


def _return(pretty: bool = False) -> bytes:
    text = census_xml(*(child_xml(child_id) for child_id in IDS))
    return (text.replace("><", ">\n    <") if pretty else text).encode()


def _break(content: bytes, kind: str) -> bytes:
    """The kind of break real returns show, in C2."""
    in_c2 = content.index(b"<LAchildID>C2") + len(b"<LAchildID>C")
    if kind == "truncated":
        return content[: content.index(b"</Child>", in_c2) - 20]
    insert = {
        "windows-1252": b"\xe9",  # an e-acute typed in a spreadsheet, the file not re-encoded
        "nul": b"\x00",
        "ampersand": b" & ",
        "broken-tag": b"<Sex>F</Sexx>",
    }[kind]
    return content[:in_c2] + insert + content[in_c2:]


@pytest.mark.parametrize("pretty", [False, True], ids=["one-line", "indented"])
@pytest.mark.parametrize("kind", ["windows-1252", "nul", "ampersand", "broken-tag"])
def test_a_break_in_one_child_loses_that_child_only(tmp_path: Path, kind: str, pretty: bool) -> None:
    path = tmp_path / "cin.xml"
    path.write_bytes(_break(_return(pretty), kind))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1", "C3", "C4"]
    assert ret.partial
    broken = [p for p in ret.problems if p.path == "Child[2]"]
    assert [(p.rule, p.severity) for p in broken] == [("not_well_formed", "error")]
    assert "reading went on from Child[3]" in ret.problems[-1].message
    assert all(p.rule == "not_well_formed" for p in ret.problems)


def test_a_windows_1252_byte_says_how_to_fix_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_bytes(_break(_return(pretty=True), "windows-1252"))
    message = read_census_return(path).problems[-1].message
    assert "not UTF-8" in message
    assert "re-save it as UTF-8" in message
    assert 'encoding="windows-1252"' in message
    content = path.read_bytes()
    line = content[: content.index(b"\xe9")].count(b"\n") + 1
    assert f"(line {line})" in message  # the file's own line


def test_a_truncated_file_keeps_the_children_before_the_break(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_bytes(_break(_return(), "truncated"))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1"]
    assert [(p.la_child_id, p.path) for p in ret.problems] == [("C2", "Child[2]"), (None, "line 2")]
    assert ret.problems[-1].message.endswith("nothing after it could be read")


def test_a_declared_encoding_is_kept_when_reading_on(tmp_path: Path) -> None:
    text = census_xml(child_xml("Zoë"), child_xml("C2"), child_xml("Anaïs"))
    text = text.replace('encoding="UTF-8"', 'encoding="windows-1252"').replace("<LAchildID>C2", "<LAchildID>C&2")
    path = tmp_path / "cin.xml"
    path.write_bytes(text.encode("cp1252"))
    assert [c.la_child_id for c in read_census_return(path).children] == ["Zoë", "Anaïs"]


def test_a_break_in_a_real_shaped_2026_return(tmp_path: Path) -> None:
    content = (RETURNS / "cin_2026_pre_proceedings.xml").read_bytes()
    path = tmp_path / "cin_2026.xml"
    path.write_bytes(content.replace(b"<PPOutcome>A</PPOutcome>", b"<PPOutcome>A & B</PPOutcome>"))
    result = ingest([path])
    assert [r.la_child_id for r in result.records] == ["PP0002"]
    assert ("PP0001", "Child[1]", "not_well_formed") in {(p.la_child_id, p.path, p.rule) for p in result.problems}
    assert result.partly_read_files == ["cin_2026.xml"]


def _three_returns(tmp_path: Path) -> list[Path]:
    paths = []
    for year, ids in ((2023, ("A1", "A2")), (2024, ("B1", "B2", "B3")), (2025, ("C1", "C2"))):
        path = tmp_path / f"cin_{year}.xml"
        path.write_text(census_xml(*(child_xml(i) for i in ids), year=year), encoding="utf-8")
        paths.append(path)
    broken = paths[1].read_bytes().replace(b"<LAchildID>B2", b"<LAchildID>B\x002")
    paths[1].write_bytes(broken)
    return paths


def test_three_returns_with_one_broken_write_everything_that_can_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems, out = tmp_path / "problems.csv", tmp_path / "records.jsonl"
    paths = _three_returns(tmp_path)
    args = ["ingest", *map(str, paths), "--problems", str(problems), "--out", str(out)]
    assert main(args) == EXIT_PARTIAL
    summary = json.loads(capsys.readouterr().out)
    assert (summary["partial"], summary["files_partly_read"], summary["files_unusable"]) == (True, 1, 0)
    kept = [json.loads(line)["la_child_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept == ["A1", "A2", "B1", "B3", "C1", "C2"]
    with problems.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert {(r["source"], r["path"], r["rule"]) for r in rows if r["severity"] == "error"} == {
        ("cin_2024.xml", "Child[2]", "not_well_formed"),
        ("cin_2024.xml", "line 2", "not_well_formed"),
    }
    assert summary["children"] + summary["children_with_problems"] == 7


def test_an_unusable_return_among_three_is_a_problem_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _three_returns(tmp_path)
    paths[1].write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["ingest", *map(str, paths)]) == EXIT_PARTIAL
    summary = json.loads(capsys.readouterr().out)
    assert (summary["children"], summary["files_unusable"], summary["problems_by_rule"]["unusable_file"]) == (4, 1, 1)


DANGEROUS = [b"&", b"\x00", b"\xe9", b"\x92", b"<", b"</x>", b"<Child>", b"]]>", b"\xff\xfe"]


@settings(max_examples=80, deadline=None)
@given(
    broken=st.integers(0, len(IDS) - 1),
    at=st.floats(0, 1, exclude_max=True),
    insert=st.lists(st.sampled_from(DANGEROUS), min_size=1, max_size=3),
    pretty=st.booleans(),
)
def test_mutating_one_childs_bytes_never_loses_another_child(
    broken: int, at: float, insert: list[bytes], pretty: bool
) -> None:
    content = _return(pretty)
    start = content.index(b"<Child>", content.index(f"<LAchildID>{IDS[broken]}<".encode()) - 40)
    end = content.index(b"</Child>", start) + len(b"</Child>")
    offset = start + int(at * (end - start))
    mutated = content[:offset] + b"".join(insert) + content[offset:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cin.xml"
        path.write_bytes(mutated)
        result = ingest([path])
    kept = {r.la_child_id for r in result.records}
    others = set(IDS) - {IDS[broken]}
    assert others <= kept, (mutated, result.problems)
