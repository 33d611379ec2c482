"""Hostile and broken input: refused with IngestError and a clear message, or read into records and problems."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from features import ChildRecord, IngestError, IngestResult
from features.census import read_census_return
from features.census.problems import MAX_PROBLEMS_PER_CHILD, MAX_STRAY_PROBLEMS, TOO_MANY_PROBLEMS, UNKNOWN_ELEMENT
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

# Three levels of ten: 1,000 copies if anything expanded it; small enough that even a mistake cannot hang the run.
BILLION_LAUGHS = (
    """<?xml version="1.0"?>
<!DOCTYPE Message [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Message><Children>"""
    + child_xml("&lol3;").replace("&amp;lol3;", "&lol3;")
    + "</Children></Message>\n"
)

EXTERNAL_ENTITY = (
    """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Message [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Message><Children>"""
    + child_xml("&secret;").replace("&amp;secret;", "&secret;")
    + "</Children></Message>\n"
)

DTD_REFUSED = "DTD and entity declarations are not allowed"
# Mutated returns per run: a few hundred in `make test`, thousands in `make fuzz`.
XML_FUZZ_EXAMPLES = int(os.environ.get("CCR_XML_FUZZ_EXAMPLES", "300"))


def _file(tmp_path: Path, content: str | bytes, name: str = "hostile.xml") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(EXTERNAL_ENTITY, id="external-entity"),
        pytest.param('<!DOCTYPE Message SYSTEM "http://example.invalid/cin.dtd">\n<Message/>', id="external-dtd"),
        pytest.param("<!-- a comment first -->\n<!DOCTYPE Message []><Message/>", id="after-comment"),
        pytest.param(EXTERNAL_ENTITY.encode("utf-16"), id="utf-16"),
    ],
)
def test_read_census_return_refuses_dtd_and_entities(tmp_path: Path, content: str | bytes) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(IngestError, match=DTD_REFUSED) as raised:
        read_census_return(path)
    assert str(path) in str(raised.value)


def test_ingest_refuses_an_external_entity_without_reading_it(tmp_path: Path) -> None:
    # since issue 16 an unusable return is a problem of the run, not the end of it
    result = ingest([_file(tmp_path, EXTERNAL_ENTITY)])
    [problem] = result.problems
    assert (problem.rule, result.partial, result.records) == ("unusable_file", True, [])
    assert re.search(DTD_REFUSED, problem.message)
    assert "root:" not in problem.message  # nothing of /etc/passwd leaks into the message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b"  \n\t ", "the file is empty", id="blank"),
        pytest.param(b"LAchildID,Sex\nC1,M\n", "not an XML document", id="csv"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not an XML document", id="binary"),
        pytest.param(b'<?xml version="1.0"?>', "ends before any element", id="declaration-only"),
        pytest.param(b"<Foo><Children/></Foo>", "the root element is <Foo>, not <Message>", id="wrong-root"),
        pytest.param(b'<Message xmlns="urn:x"><Children/></Message>', "not <Message>", id="namespaced-root"),
        pytest.param(b"<Message><Header/></Message>", "<Message> has no <Children>", id="no-children"),
    ],
)
def test_read_census_return_refuses_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(IngestError, match=message) as raised:
        read_census_return(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"<Message><Children><Child>&xxe;</Child></Children></Message>", id="entity-ref"),
        pytest.param(b"<Message><Children></Message>", id="mismatched-tags"),
    ],
)
def test_a_file_that_is_not_well_formed_is_read_as_far_as_it_goes(tmp_path: Path, content: bytes) -> None:
    # was refused whole until issue 16: now the break is a problem and the file is partly read
    ret = read_census_return(_file(tmp_path, content))
    assert ret.partial
    assert ret.children == []
    assert {p.rule for p in ret.problems} == {"not_well_formed"}
    assert all("not well-formed XML (line 1)" in p.message for p in ret.problems)


def test_read_census_return_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"absent\.xml: cannot be read"):
        read_census_return(tmp_path / "absent.xml")


def test_read_census_return_reads_a_utf16_return(tmp_path: Path) -> None:
    text = census_xml(child_xml("Zoë")).replace('encoding="UTF-8"', 'encoding="UTF-16"')
    ret = read_census_return(_file(tmp_path, text.encode("utf-16")))
    assert [c.la_child_id for c in ret.children] == ["Zoë"]


# --- mutations of a valid return ------------------------------------------------------------------------------

_MODULES = (
    "<Assessments><AssessmentActualStartDate>2023-05-02</AssessmentActualStartDate>"
    "<AssessmentAuthorisationDate>2023-06-01</AssessmentAuthorisationDate><FactorsIdentifiedAtAssessment>"
    "<AssessmentFactors>16A</AssessmentFactors><AssessmentFactors>4B</AssessmentFactors>"
    "</FactorsIdentifiedAtAssessment></Assessments>"
    "<Section47><S47ActualStartDate>2023-05-03</S47ActualStartDate><ICPCnotRequired>false</ICPCnotRequired>"
    "</Section47>"
)
_PLAN = (
    "<ChildProtectionPlans><CPPstartDate>2023-06-10</CPPstartDate><CPPendDate>2023-09-01</CPPendDate>"
    "<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>EMO</LatestCategoryOfAbuse>"
    "<NumberOfPreviousCPP>1</NumberOfPreviousCPP><Reviews><CPPreviewDate>2023-08-01</CPPreviewDate></Reviews>"
    "</ChildProtectionPlans>"
)
VALID_RETURN = census_xml(
    child_xml("C1", episode_xml("2023-05-01", closure="2023-10-01", reason="RC7", modules=_MODULES, after_nfa=_PLAN)),
    child_xml("C2", episode_xml("2022-01-01", closure="2022-02-01", reason="RC8", nfa="1"), episode_xml("2023-04-02")),
    child_xml("C3", sex="<GenderCurrent>2</GenderCurrent>", disabilities=["AUT", "HEAR"], birth=None,
              identifiers_extra="<ExpectedPersonBirthDate>2024-01-15</ExpectedPersonBirthDate>"),
)  # fmt: skip
_TAGS = ["Child", "CINdetails", "LAchildID", "Sex", "CINreferralDate", "Assessments", "ReferralNFA", "Bogus"]
_XML_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n "), max_size=12
)

# Values of the wrong type or out of range for whatever element they land in.
_WRONG_VALUES = st.sampled_from(
    ["99999999999999999999", "-1", "1e3", "1.5", "0x1F", "2023-02-30", "2023-13-01", "31/03/2024", "yes", "TRUE ",
     "\u0661\u0662\u0663", "\uff11\uff12", "NaN", "\u202e2024-03-31", "-0", "", " "]
)  # fmt: skip
_HUGE_VALUES = st.builds(lambda ch, n: ch * n, st.sampled_from("9xé-<&"), st.integers(1_000, 200_000))

element_mutations = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 999)),
    st.tuples(st.just("duplicate"), st.integers(0, 999)),
    st.tuples(st.just("swap"), st.integers(0, 999)),
    st.tuples(st.just("text"), st.integers(0, 999), _XML_TEXT),
    st.tuples(st.just("tail"), st.integers(0, 999), _XML_TEXT),
    st.tuples(st.just("rename"), st.integers(0, 999), st.sampled_from(_TAGS)),
    st.tuples(st.just("text"), st.integers(0, 999), _WRONG_VALUES),
    st.tuples(st.just("text"), st.integers(0, 999), _HUGE_VALUES),
    st.tuples(st.just("attribute"), st.integers(0, 999), _XML_TEXT),
)
# How the mutated document is written: its declared encoding, and whether the bytes agree with the declaration.
ENCODINGS = ("UTF-8", "UTF-16", "UTF-16-LE-no-BOM", "ISO-8859-1", "windows-1252", "UTF-8-BOM", "latin-1-as-UTF-8")
byte_mutations = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 5000)),
    st.tuples(st.just("insert"), st.integers(0, 5000), st.binary(min_size=1, max_size=4)),
)


def _mutate(document: Any, mutation: tuple[Any, ...]) -> None:
    kind, index = mutation[0], mutation[1]
    elements = list(document.iter())[1:]  # never the root
    if not elements:
        return
    el = elements[index % len(elements)]
    parent = el.getparent()
    if kind == "drop":
        parent.remove(el)
    elif kind == "duplicate":
        el.addnext(copy.deepcopy(el))
    elif kind == "swap":
        following = el.getnext()
        if following is not None:
            following.addnext(el)
    elif kind == "text":
        el.text = mutation[2]
    elif kind == "tail":
        el.tail = mutation[2]
    elif kind == "attribute":
        el.set("note", mutation[2])
    else:
        el.tag = mutation[2]


def _check_every_child_accounted_for(content: bytes, result: IngestResult) -> None:
    document = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    kept = {r.la_child_id for r in result.records}
    reported = {p.la_child_id for p in result.problems if p.is_error}  # a warning keeps the child
    for position, child in enumerate(document.iterfind("Children/Child"), start=1):
        raw = (child.findtext("ChildIdentifiers/LAchildID") or "").strip()
        child_id = raw if 0 < len(raw) <= 100 else None  # an over-long id names no one: the position does
        if child_id is None:
            assert any(p.la_child_id is None and p.path.startswith(f"Child[{position}]/") for p in result.problems)
        else:
            assert (child_id in kept) != (child_id in reported), child_id


def _encoded(document: Any, encoding: str) -> bytes:
    if encoding == "UTF-8-BOM":
        return b"\xef\xbb\xbf" + etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    if encoding == "UTF-16-LE-no-BOM":
        text = etree.tostring(document, encoding="unicode")
        return ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16-le")
    if encoding == "latin-1-as-UTF-8":  # the declaration says UTF-8; the bytes are Latin-1 (é is one byte)
        text = etree.tostring(document, encoding="unicode")
        return ('<?xml version="1.0" encoding="UTF-8"?>' + text).encode("latin-1", errors="xmlcharrefreplace")
    written = etree.tostring(document, xml_declaration=True, encoding=encoding)
    assert isinstance(written, bytes)
    return written


@settings(max_examples=XML_FUZZ_EXAMPLES, deadline=None)
@given(
    mutations=st.lists(element_mutations, min_size=1, max_size=4),
    bytes_after=st.lists(byte_mutations, max_size=1),
    encoding=st.sampled_from(ENCODINGS),
)
def test_ingest_of_a_mutated_return_raises_nothing_but_ingest_error(
    mutations: list[tuple[Any, ...]], bytes_after: list[tuple[Any, ...]], encoding: str
) -> None:
    document = etree.fromstring(VALID_RETURN.encode())
    for mutation in mutations:
        _mutate(document, mutation)
    content = _encoded(document, encoding)
    for mutation in bytes_after:
        at = mutation[1] % (len(content) + 1)
        content = content[:at] if mutation[0] == "truncate" else content[:at] + mutation[2] + content[at:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.xml"
        path.write_bytes(content)
        try:
            result: IngestResult | IngestError = ingest([path])
        except IngestError as exc:
            result = exc
    if isinstance(result, IngestError):
        assert str(path) in str(result)  # a whole-file refusal names the file
        return
    assert all(isinstance(r, ChildRecord) for r in result.records)
    assert all(p.source == "mutated.xml" and p.rule and p.message for p in result.problems)
    if result.partial:  # not well-formed, or unusable: said so (test_resync.py checks what is kept)
        assert {"not_well_formed", "unusable_file"} & {p.rule for p in result.problems}
        return
    assert all(p.path for p in result.problems)
    _check_every_child_accounted_for(content, result)


def test_an_over_long_id_never_rejects_the_child_it_begins_with(tmp_path: Path) -> None:
    valid = "C" * 100
    path = _file(tmp_path, census_xml(child_xml(valid), child_xml(valid + "9")))
    result = ingest([path])
    assert [r.la_child_id for r in result.records] == [valid]
    assert [(p.la_child_id, p.path) for p in result.problems] == [(None, "Child[2]/ChildIdentifiers/LAchildID")]


def test_ingest_of_the_unmutated_return_keeps_every_child(tmp_path: Path) -> None:
    result = ingest([_file(tmp_path, VALID_RETURN)])
    assert result.problems == []
    assert [r.la_child_id for r in result.records] == ["C1", "C2", "C3"]


# --- large and deep files: refused by the parser's limits, quickly and without holding the file in memory --------


def test_read_census_return_refuses_deep_nesting_in_that_child_only(tmp_path: Path) -> None:
    depth = 100_000
    child = f"<Child>{'<a>' * depth}{'</a>' * depth}</Child>"
    path = _file(tmp_path, census_xml(child_xml("C1"), child, child_xml("C3")))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1", "C3"]
    assert ret.problems[0].path == "Child[2]"
    assert re.search(r"not well-formed XML .*[Ee]xcessive depth", ret.problems[0].message)


def test_nesting_within_the_limit_is_a_warning_on_that_child_only(tmp_path: Path) -> None:
    # An unknown element loses nothing the record holds: since issue 16 it warns and keeps the child.
    nested = "<Bogus>" * 200 + "</Bogus>" * 200
    path = _file(tmp_path, census_xml(child_xml("C1"), child_xml("C2").replace("</Child>", nested + "</Child>")))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1", "C2"]
    assert [(p.la_child_id, p.rule, p.severity) for p in ret.problems] == [("C2", UNKNOWN_ELEMENT, "warning")]


_MEASURE = """
import resource, sys
from pathlib import Path
from features.census import IngestError, read_census_return
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    ret = read_census_return(Path(sys.argv[1]))
    print(ret.problems[-1].message if ret.partial else "read")
except IngestError as exc:
    print(str(exc).splitlines()[0])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def _peak_growth_mib(path: Path) -> tuple[str, int]:
    """Read ``path`` in a fresh interpreter: the outcome's first line and its peak memory growth in MiB."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True, cwd=Path.cwd()
    ).stdout.splitlines()
    return out[0], int(out[1])


@pytest.mark.parametrize(
    ("where", "refusal"),
    [
        pytest.param("text", "Text node too long", id="64MiB-text-node"),
        pytest.param("attribute", "Buffer size limit exceeded|AttValue length too long", id="64MiB-attribute"),
    ],
)
def test_a_huge_value_is_refused_with_bounded_memory(tmp_path: Path, where: str, refusal: str) -> None:
    size_mib = 64
    head, tail = census_xml(child_xml("C1")).split("<LAchildID>C1</LAchildID>")
    path = tmp_path / "huge.xml"
    with path.open("w", encoding="utf-8") as out:
        out.write(head + ("<LAchildID>" if where == "text" else '<LAchildID note="'))
        for _ in range(size_mib):
            out.write("9" * (1 << 20))
        out.write(("" if where == "text" else '">C1') + "</LAchildID>" + tail)
    outcome, growth = _peak_growth_mib(path)
    assert "not well-formed XML" in outcome  # the child is reported; the file is read on past it (issue 16)
    assert re.search(refusal, outcome), outcome
    assert growth < size_mib / 2, f"reading a {size_mib} MiB value took {growth} MiB more memory"


def test_stray_elements_are_listed_up_to_a_limit_then_counted(tmp_path: Path) -> None:
    strays = 50_000
    path = _file(tmp_path, census_xml("<Bogus/>" * strays + child_xml("C1")))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1"]
    assert len(ret.problems) == MAX_STRAY_PROBLEMS + 1
    assert {p.rule for p in ret.problems[:-1]} == {UNKNOWN_ELEMENT}
    assert ret.problems[-1].rule == TOO_MANY_PROBLEMS
    assert f"{strays - MAX_STRAY_PROBLEMS} more elements" in ret.problems[-1].message


def test_a_child_with_many_problems_lists_the_first_and_counts_the_rest(tmp_path: Path) -> None:
    bad = 5_000
    path = _file(tmp_path, census_xml(child_xml("C1").replace("</Child>", "<Bogus/>" * bad + "</Child>")))
    ret = read_census_return(path)
    assert [c.la_child_id for c in ret.children] == ["C1"]  # unknown elements warn: the child is kept
    assert len(ret.problems) == MAX_PROBLEMS_PER_CHILD + 1
    assert {p.la_child_id for p in ret.problems} == {"C1"}
    assert {p.severity for p in ret.problems} == {"warning"}
    assert ret.problems[-1].rule == TOO_MANY_PROBLEMS
    assert f"{bad - MAX_PROBLEMS_PER_CHILD} more problems" in ret.problems[-1].message
    one_error = child_xml("C1", sex="<Sex>Z</Sex>").replace("</Child>", "<Bogus/>" * bad + "</Child>")
    ret = read_census_return(_file(tmp_path, census_xml(one_error)))
    assert ret.children == []
    assert ret.problems[-1].severity == "error"  # the problems not listed include the one that drops the child


def test_ingest_reads_a_large_return_child_by_child(tmp_path: Path) -> None:
    """20,000 children (about 7 MiB): every one kept; memory grows with the records kept, not the file."""
    children = 20_000
    one = child_xml("X")
    path = tmp_path / "large.xml"
    head, tail = census_xml("@").split("@")
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        for i in range(children):
            out.write(one.replace(">X<", f">C{i}<"))
        out.write(tail)
    result = ingest([path])
    assert len(result.records) == children
    assert result.problems == []
