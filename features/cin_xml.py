"""CIN census XML: a safe, streaming reader for one annual return and a deterministic writer.

Reading accepts the 2017-2026 schema variants (``GenderCurrent`` 1/2/0/9 or ``Sex`` M/F/U; booleans
``0/1`` or ``true/false``; optional modules absent; whitespace around values). It never expands entities,
never reads a DTD and never touches the network: a file with a DOCTYPE is refused before the parser sees it.
Child elements are cleared as they are read, so memory stays bounded however long the file.

A file that cannot be used at all raises :class:`IngestError`. Otherwise every ``Child`` element ends up
either as a :class:`ParsedChild` (plain dicts shaped like :class:`~features.record.ChildRecord`, validated
later, once per linked child) or as one or more :class:`Problem` rows naming the child, the element path and
the rule. Policy:

- any problem in a child rejects that child (it is reported, never silently dropped);
- an element the schema does not know is a problem (``unknown_element``), as is stray text between elements
  (``unexpected_text``): a misspelt optional element would otherwise vanish without a trace;
- element order is not enforced and attributes are ignored: neither loses data;
- ``UPN``, ``FormerUPN``, ``UPNunknown`` and ``PersonDeathDate`` are read past and not stored;
- an empty container (``<FactorsIdentifiedAtAssessment/>``) is read as an empty list;
- problems are listed one by one up to 100 per child and 1,000 stray elements per file, then summed up in one more
  (``too_many_problems``), so a small hostile file cannot become millions of problem rows;
- a child whose LAchildID is over-long is named by its position only, never by a cut-down id (which could be another
  child's). Stray elements after the last Child stay in memory until ``</Children>`` (about 110 bytes each).

Element paths are XPath-like with 1-based indices:
``Child[12]/CINdetails[2]/Assessments[1]/AssessmentAuthorisationDate``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final
from xml.sax.saxutils import escape

from lxml import etree

from features.codes import (
    AbuseCategory,
    AssessmentFactor,
    ClosureReason,
    Disability,
    Ethnicity,
    PrimaryNeed,
    ReferralSource,
    Sex,
    sex_from_gender_current,
)
from features.record import ChildRecord, Episode, record_as_of

__all__ = [
    "CensusReturn",
    "IngestError",
    "ParsedChild",
    "Problem",
    "element_path",
    "read_census_header",
    "read_census_return",
    "write_census_return",
]

# Rule names for problems found while reading (record rules keep the names record.py gives them).
INVALID_DATE: Final = "invalid_date"
INVALID_CODE: Final = "invalid_code"
INVALID_BOOLEAN: Final = "invalid_boolean"
INVALID_INTEGER: Final = "invalid_integer"
INVALID_ID: Final = "invalid_id"
MISSING_ELEMENT: Final = "missing_element"
DUPLICATE_ELEMENT: Final = "duplicate_element"
UNKNOWN_ELEMENT: Final = "unknown_element"
UNEXPECTED_TEXT: Final = "unexpected_text"
DUPLICATE_CHILD: Final = "duplicate_child"
DUPLICATE_EPISODE: Final = "duplicate_episode"
TOO_MANY_PROBLEMS: Final = "too_many_problems"
# Problems are listed one by one up to these counts, then summed up in one more: a small hostile file of a million
# stray elements would otherwise become a million problem rows (memory and a problems file many times its size).
MAX_PROBLEMS_PER_CHILD: Final = 100
MAX_STRAY_PROBLEMS: Final = 1000


class IngestError(Exception):
    """A whole file is unusable; the message names the file and says why."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a child (or a line, or a header field) could not be used as it stands."""

    source: str
    la_child_id: str | None
    path: str
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedChild:
    """A child read without problems: ``fields`` is ChildRecord-shaped input, its ``episodes`` a list of dicts."""

    la_child_id: str
    position: int
    fields: dict[str, Any]


@dataclass(slots=True)
class CensusReturn:
    """What one file held: its header, the children read cleanly and the problems found."""

    source: str
    collection_year: int | None = None
    reference_date: dt.date | None = None
    children: list[ParsedChild] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    child_elements: int = 0
    stray_elements: int = 0  # elements in Message or Children that are not Header, Children or Child


# --- value converters: text (already stripped) -> value; ValueError when the text is not acceptable ---------


def _date(text: str) -> dt.date:
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        raise ValueError(f"{_show(text)} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_show(text)} is not a date (YYYY-MM-DD)") from None


_BOOLEANS: Final = {"0": False, "1": True, "false": False, "true": True}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"{_show(text)} is not a boolean (0, 1, true or false)") from None


def _integer(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ValueError(f"{_show(text)} is not a whole number")
    return int(text)


_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def _child_id(text: str) -> str:
    if not text:
        raise ValueError("LAchildID is empty")
    if len(text) > 100 or _CONTROL.search(text):
        raise ValueError(f"LAchildID {_show(text)} is longer than 100 characters or holds control characters")
    return text


def _code(codes: Iterable[str], element: str) -> Callable[[str], Any]:
    table = {str(c): c for c in codes}

    def convert(text: str) -> Any:
        try:
            return table[text]
        except KeyError:
            raise ValueError(f"{_show(text)} is not one of the {element} codes") from None

    return convert


def _gender_current(text: str) -> Sex:
    try:
        return sex_from_gender_current(text)
    except KeyError:
        raise ValueError(f"{_show(text)} is not a GenderCurrent code (1, 2, 0 or 9)") from None


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- element specification ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Leaf:
    name: str
    convert: Callable[[str], Any]
    rule: str
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class _Group:
    """A container element. ``merge``: its fields go into the parent; ``items``: it is a list of one leaf."""

    name: str
    elements: Mapping[str, _Leaf | _Group | None]
    required: bool = False
    repeated: bool = False
    merge: bool = False
    items: str | None = None
    one_of: tuple[str, tuple[str, ...]] | None = None  # (output name, tags): exactly one of the tags is required
    required_tags: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        required = tuple(tag for tag, spec in self.elements.items() if spec is not None and spec.required)
        object.__setattr__(self, "required_tags", required)


def _list_of(name: str, item_tag: str, item: _Leaf) -> _Group:
    return _Group(name, {item_tag: item}, items=item.name)


_IGNORED = None  # read past, not stored: identifiers we do not need
_UNKNOWN: Final = _Group("unknown", {})  # marks a tag the specification does not list

_CHILD_IDENTIFIERS = _Group(
    "identifiers",
    {
        "LAchildID": _Leaf("la_child_id", _child_id, INVALID_ID, required=True),
        "UPN": _IGNORED,
        "FormerUPN": _IGNORED,
        "UPNunknown": _IGNORED,
        "PersonBirthDate": _Leaf("birth_date", _date, INVALID_DATE),
        "ExpectedPersonBirthDate": _Leaf("expected_birth_date", _date, INVALID_DATE),
        "Sex": _Leaf("sex", _code(Sex, "Sex"), INVALID_CODE),
        "GenderCurrent": _Leaf("sex", _gender_current, INVALID_CODE),
        "PersonDeathDate": _IGNORED,
    },
    required=True,
    merge=True,
    one_of=("sex", ("Sex", "GenderCurrent")),
)
_CHILD_CHARACTERISTICS = _Group(
    "characteristics",
    {
        "Ethnicity": _Leaf("ethnicity", _code(Ethnicity, "Ethnicity"), INVALID_CODE, required=True),
        "Disabilities": _list_of(
            "disabilities",
            "Disability",
            _Leaf("disability", _code(Disability, "Disability"), INVALID_CODE, repeated=True),
        ),
    },
    required=True,
    merge=True,
)
_ASSESSMENT = _Group(
    "assessments",
    {
        "AssessmentActualStartDate": _Leaf("start_date", _date, INVALID_DATE, required=True),
        "AssessmentInternalReviewDate": _Leaf("internal_review_date", _date, INVALID_DATE),
        "AssessmentAuthorisationDate": _Leaf("authorisation_date", _date, INVALID_DATE),
        "FactorsIdentifiedAtAssessment": _list_of(
            "factors",
            "AssessmentFactors",
            _Leaf("factor", _code(AssessmentFactor, "AssessmentFactors"), INVALID_CODE, repeated=True),
        ),
    },
    repeated=True,
)
_CIN_PLAN = _Group(
    "cin_plans",
    {
        "CINPlanStartDate": _Leaf("start_date", _date, INVALID_DATE, required=True),
        "CINPlanEndDate": _Leaf("end_date", _date, INVALID_DATE),
    },
    repeated=True,
)
_SECTION47 = _Group(
    "section47s",
    {
        "S47ActualStartDate": _Leaf("start_date", _date, INVALID_DATE, required=True),
        "InitialCPCtarget": _Leaf("icpc_target_date", _date, INVALID_DATE),
        "DateOfInitialCPC": _Leaf("icpc_date", _date, INVALID_DATE),
        "ICPCnotRequired": _Leaf("icpc_not_required", _boolean, INVALID_BOOLEAN, required=True),
    },
    repeated=True,
)
_PROTECTION_PLAN = _Group(
    "protection_plans",
    {
        "CPPstartDate": _Leaf("start_date", _date, INVALID_DATE, required=True),
        "CPPendDate": _Leaf("end_date", _date, INVALID_DATE),
        "InitialCategoryOfAbuse": _Leaf(
            "initial_category", _code(AbuseCategory, "InitialCategoryOfAbuse"), INVALID_CODE, required=True
        ),
        "LatestCategoryOfAbuse": _Leaf(
            "latest_category", _code(AbuseCategory, "LatestCategoryOfAbuse"), INVALID_CODE, required=True
        ),
        "NumberOfPreviousCPP": _Leaf("previous_plans", _integer, INVALID_INTEGER, required=True),
        "Reviews": _list_of("review_dates", "CPPreviewDate", _Leaf("review", _date, INVALID_DATE, repeated=True)),
    },
    repeated=True,
)
_EPISODE = _Group(
    "episodes",
    {
        "CINreferralDate": _Leaf("referral_date", _date, INVALID_DATE, required=True),
        "ReferralSource": _Leaf(
            "referral_source", _code(ReferralSource, "ReferralSource"), INVALID_CODE, required=True
        ),
        "PrimaryNeedCode": _Leaf("primary_need", _code(PrimaryNeed, "PrimaryNeedCode"), INVALID_CODE),
        "CINclosureDate": _Leaf("closure_date", _date, INVALID_DATE),
        "ReasonForClosure": _Leaf("closure_reason", _code(ClosureReason, "ReasonForClosure"), INVALID_CODE),
        "DateOfInitialCPC": _Leaf("initial_cpc_date", _date, INVALID_DATE),
        "Assessments": _ASSESSMENT,
        "CINPlanDates": _CIN_PLAN,
        "Section47": _SECTION47,
        "ReferralNFA": _Leaf("referral_nfa", _boolean, INVALID_BOOLEAN, required=True),
        "ChildProtectionPlans": _PROTECTION_PLAN,
    },
    required=True,
    repeated=True,
)
_CHILD = _Group(
    "child",
    {
        "ChildIdentifiers": _CHILD_IDENTIFIERS,
        "ChildCharacteristics": _CHILD_CHARACTERISTICS,
        "CINdetails": _EPISODE,
    },
)

_Found = list[tuple[str, str, str]]  # (path, rule, message) for one child


def _stray(text: str | None) -> bool:
    return bool(text) and not text.isspace()  # type: ignore[union-attr]


def _read_group(el: Any, group: _Group, path: str, found: _Found, into: dict[str, Any]) -> None:
    """Read a container's elements into ``into`` as ``group`` says; record what is wrong in ``found``.

    This runs for every element of every return, so it stays plain: one pass, paths built only when needed.
    """
    text = el.text
    if text and not text.isspace():
        found.append((path, UNEXPECTED_TEXT, f"stray text {_show(text.strip())} in {el.tag}"))
    counts: dict[str, int] = {}
    given: dict[str, str] = {}  # output name -> the tag that gave it (Sex and GenderCurrent give the same)
    elements = group.elements
    for sub in el:
        tag = sub.tag
        tail = sub.tail
        if tail and not tail.isspace():
            found.append((path, UNEXPECTED_TEXT, f"stray text {_show(tail.strip())} after {tag}"))
        spec = elements.get(tag, _UNKNOWN)
        if spec is None:
            continue
        if spec is _UNKNOWN:
            found.append((f"{path}/{tag}", UNKNOWN_ELEMENT, f"{tag} is not an element of {el.tag}"))
            continue
        name = spec.name
        if spec.repeated:
            n = counts[tag] = counts.get(tag, 0) + 1
            sub_path = f"{path}/{tag}[{n}]"
        else:
            sub_path = ""
            earlier = given.get(name)
            if earlier is not None:
                why = f"{tag} appears more than once" if earlier == tag else f"both {earlier} and {tag} are given"
                found.append((f"{path}/{tag}", DUPLICATE_ELEMENT, why))
                continue
            given[name] = tag
        if isinstance(spec, _Leaf):
            value: Any = None
            if len(sub):
                found.append((sub_path or f"{path}/{tag}", UNKNOWN_ELEMENT, f"{tag} holds elements, not a value"))
            else:
                text = sub.text
                try:
                    value = spec.convert(text.strip() if text else "")
                except ValueError as exc:
                    found.append((sub_path or f"{path}/{tag}", spec.rule, f"{tag}: {exc}"))
        else:
            value = {}
            _read_group(sub, spec, sub_path or f"{path}/{tag}", found, value)
            if spec.items is not None:
                value = value.get(spec.items, [])
            elif spec.merge:
                into.update(value)
                continue
        if spec.repeated:
            if name in into:
                into[name].append(value)
            else:
                into[name] = [value]
        else:
            into[name] = value
    for tag in group.required_tags:
        if tag not in counts and tag not in given.values():
            found.append((f"{path}/{tag}", MISSING_ELEMENT, f"{tag} is required in {el.tag}"))
    if group.one_of is not None and group.one_of[0] not in given:
        tags = group.one_of[1]
        found.append((f"{path}/{tags[0]}", MISSING_ELEMENT, f"{' or '.join(tags)} is required in {el.tag}"))


def _read_child(el: Any, position: int) -> tuple[str | None, dict[str, Any], _Found]:
    path = f"Child[{position}]"
    fields: dict[str, Any] = {}
    found: _Found = []
    _read_group(el, _CHILD, path, found, fields)
    episodes = fields.get("episodes", [])
    seen: dict[dt.date, int] = {}
    for i, episode in enumerate(episodes, start=1):
        referral = episode.get("referral_date")
        if referral is None:
            continue
        if referral in seen:
            found.append(
                (
                    f"{path}/CINdetails[{i}]/CINreferralDate",
                    DUPLICATE_EPISODE,
                    f"CINdetails[{i}] has the referral date of CINdetails[{seen[referral]}] ({referral})",
                )
            )
        else:
            seen[referral] = i
    child_id = fields.get("la_child_id")
    if child_id is None:  # missing or invalid: name the child by its raw text if there is any ...
        raw = (el.findtext("ChildIdentifiers/LAchildID") or "").strip()
        # ... but never by a cut-down one: its first 100 characters may be another, valid child's id, which would
        # then be rejected with it. Over-long, the child is named by its position (the problem's path) alone.
        child_id = raw if 0 < len(raw) <= 100 else None
    return child_id, fields, found


# --- the file -----------------------------------------------------------------------------------------------

_PROLOG_LIMIT: Final = 1 << 20
_ROOT_NAME: Final = re.compile(r"[^\W\d][\w.:-]*")


class _NeedMoreError(Exception):
    """The prolog goes on past the bytes read so far."""


def _root_name(text: str, at_end: bool) -> str:
    """The root element's name, reading past the XML declaration, comments and processing instructions.

    Raises _NeedMoreError when ``text`` stops inside the prolog, ValueError when the prolog is not acceptable.
    """
    i, size = 0, len(text)
    while True:
        while i < size and text[i] in " \t\r\n":
            i += 1
        if i == size:
            if at_end:
                raise ValueError("the file is empty" if not text.strip() else "it ends before any element")
            raise _NeedMoreError
        if size - i < 4 and not at_end:
            raise _NeedMoreError  # too short to tell a comment from a declaration
        if text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            if end < 0:
                raise _NeedMoreError
            i = end + 3
        elif text.startswith("<?", i):
            end = text.find("?>", i + 2)
            if end < 0:
                raise _NeedMoreError
            i = end + 2
        elif text.startswith("<!", i):  # <!DOCTYPE, <!ENTITY or worse: nothing else may stand before the root
            raise ValueError(
                "refused: DTD and entity declarations are not allowed in a CIN return "
                f"(found {_show(text[i : i + 12])} before the root element)"
            )
        elif text.startswith("<", i):
            match = _ROOT_NAME.match(text, i + 1)
            if match is None:
                raise ValueError(f"not an XML document: {_show(text[i : i + 20])} where an element should start")
            if match.end() == size and not at_end:
                raise _NeedMoreError  # the name may go on in the next chunk
            return match.group()
        else:
            raise ValueError(f"not an XML document: it starts with {_show(text[i : i + 20])}")


def _sniff_root(path: Path, stream: IO[bytes]) -> str:
    """Read the prolog and return the root element's name; a DTD is refused before the XML parser sees it."""
    data = b""
    while True:
        chunk = stream.read(65536)
        data += chunk
        try:
            return _root_name(_decode_prolog(data), at_end=not chunk)
        except _NeedMoreError:
            if not chunk:
                raise IngestError(f"{path}: not an XML document: it ends before the root element") from None
            if len(data) > _PROLOG_LIMIT:
                raise IngestError(
                    f"{path}: not a CIN return: no root element in the first {_PROLOG_LIMIT} bytes"
                ) from None
        except ValueError as exc:
            raise IngestError(f"{path}: {exc}") from None


def _decode_prolog(data: bytes) -> str:
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="ignore")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("latin-1")  # markup is ASCII in every ASCII-compatible encoding


_HEADER_ELEMENTS: Final = frozenset({"CollectionDetails", "Source"})


def _read_header(path: Path, el: Any, ret: CensusReturn) -> None:
    for sub in el:
        if sub.tag not in _HEADER_ELEMENTS:
            ret.problems.append(
                Problem(
                    ret.source,
                    None,
                    f"Header/{sub.tag}",
                    UNKNOWN_ELEMENT,
                    f"{sub.tag} is not an element of Header",
                )
            )
    details = el.find("CollectionDetails")
    if details is None:
        return
    collection = (details.findtext("Collection") or "").strip()
    if collection and collection != "CIN":
        raise IngestError(f"{path}: not a CIN return: the header's Collection is {_show(collection)}")
    year = (details.findtext("Year") or "").strip()
    if year:
        if len(year) == 4 and year.isascii() and year.isdigit() and year != "0000":
            ret.collection_year = int(year)
        else:
            ret.problems.append(
                Problem(
                    ret.source,
                    None,
                    "Header/CollectionDetails/Year",
                    INVALID_INTEGER,
                    f"Year {_show(year)} is not a year",
                )
            )
    reference = (details.findtext("ReferenceDate") or "").strip()
    if reference:
        try:
            ret.reference_date = _date(reference)
        except ValueError as exc:
            ret.problems.append(
                Problem(ret.source, None, "Header/CollectionDetails/ReferenceDate", INVALID_DATE, str(exc))
            )
    if ret.reference_date is None and ret.collection_year is not None:
        ret.reference_date = dt.date(ret.collection_year, 3, 31)


def read_census_return(path: Path) -> CensusReturn:
    """Read one CIN census return. Raises IngestError when the file as a whole cannot be used."""
    ret = CensusReturn(source=path.name)
    with _opened(path) as stream:
        _parse(path, stream, ret)
    rejected = {p.la_child_id for p in ret.problems}
    if rejected:
        ret.children = [c for c in ret.children if c.la_child_id not in rejected]
    return ret


def read_census_header(path: Path) -> CensusReturn:
    """Only the header of a return (collection year, reference date), reading no further than it.

    Refuses the same unusable files as :func:`read_census_return` where the header shows it (a DTD, another
    root, another collection), so a run can check every file before the long read.
    """
    ret = CensusReturn(source=path.name)
    with _opened(path) as stream:
        try:
            for _, el in _events(stream, ("Header", "Child")):
                if el.tag == "Header" and el.getparent() is not None and el.getparent().getparent() is None:
                    _read_header(path, el, ret)
                    break
                el.clear(keep_tail=True)
        except etree.XMLSyntaxError as exc:
            raise IngestError(f"{path}: not well-formed XML (line {exc.lineno}): {exc.msg}") from None
        except etree.LxmlError as exc:
            raise IngestError(f"{path}: cannot be parsed: {exc}") from None
    return ret


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """The file, its prolog checked (no DTD, root <Message>) and rewound; OSError becomes IngestError."""
    try:
        with path.open("rb") as stream:
            root_name = _sniff_root(path, stream)
            if root_name != "Message":
                raise IngestError(f"{path}: not a CIN census return: the root element is <{root_name}>, not <Message>")
            stream.seek(0)
            yield stream
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _events(stream: IO[bytes], tags: tuple[str, ...]) -> Any:
    """End events for ``tags``: no entity expansion, no DTD, no network, libxml2's default size limits."""
    return etree.iterparse(
        stream,
        events=("end",),
        tag=tags,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _unknown(ret: CensusReturn, container: str, tag: str) -> None:
    ret.stray_elements += 1
    if ret.stray_elements > MAX_STRAY_PROBLEMS:
        return  # counted, and summed up once at the end of the file
    ret.problems.append(
        Problem(ret.source, None, f"{container}/{tag}", UNKNOWN_ELEMENT, f"{tag} is not an element of {container}")
    )


def _parse(path: Path, stream: IO[bytes], ret: CensusReturn) -> None:
    events = _events(stream, ("Message", "Header", "Children", "Child"))
    seen_ids: dict[str, int] = {}
    has_children = checked_doctype = False
    try:
        for _, el in events:
            if not checked_doctype:  # the prolog check already refused any DTD; this is belt and braces
                checked_doctype = True
                docinfo = el.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
                    raise IngestError(f"{path}: refused: DTD and entity declarations are not allowed")
            tag = el.tag
            parent = el.getparent()
            if tag == "Child":
                if parent is None or parent.tag != "Children" or not _is_top(parent):
                    continue  # misplaced: the element it sits in reports it as unknown
                ret.child_elements += 1
                _take_child(el, ret, seen_ids)
                el.clear(keep_tail=True)
                previous = el.getprevious()
                while previous is not None:  # processed children, or strays to report, keep memory bounded
                    if previous.tag != "Child":
                        _unknown(ret, "Children", previous.tag)
                    parent.remove(previous)
                    previous = el.getprevious()
            elif tag == "Children" and _is_top(el):
                has_children = True
                for other in el:
                    if other.tag != "Child":
                        _unknown(ret, "Children", other.tag)
            elif tag == "Header" and parent is not None and parent.getparent() is None:
                _read_header(path, el, ret)
            elif tag == "Message" and parent is None:
                for other in el:
                    if other.tag not in ("Header", "Children"):
                        _unknown(ret, "Message", other.tag)
    except etree.XMLSyntaxError as exc:
        raise IngestError(f"{path}: not well-formed XML (line {exc.lineno}): {exc.msg}") from None
    except etree.LxmlError as exc:
        raise IngestError(f"{path}: cannot be parsed: {exc}") from None
    root = events.root
    if root is None or root.tag != "Message":
        shown = "none" if root is None else f"<{root.tag}>"
        raise IngestError(f"{path}: not a CIN census return: the root element is {shown}, not <Message>")
    if not has_children:
        raise IngestError(f"{path}: not a CIN census return: <Message> has no <Children>")
    if ret.stray_elements > MAX_STRAY_PROBLEMS:
        more = ret.stray_elements - MAX_STRAY_PROBLEMS
        ret.problems.append(
            Problem(ret.source, None, "Children", TOO_MANY_PROBLEMS,
                    f"{more} more elements that are not Child, Header or Children are not listed one by one")
        )  # fmt: skip


def _is_top(children: Any) -> bool:
    """``children`` is a Children element directly under the root Message."""
    message = children.getparent()
    return message is not None and message.tag == "Message" and message.getparent() is None


def _take_child(el: Any, ret: CensusReturn, seen_ids: dict[str, int]) -> None:
    position = ret.child_elements
    child_id, fields, found = _read_child(el, position)
    if _stray(el.tail):
        ret.problems.append(
            Problem(ret.source, None, "Children", UNEXPECTED_TEXT, f"stray text after Child[{position}]")
        )
    if child_id is not None:
        first = seen_ids.setdefault(child_id, position)
        if first != position:
            found.append(
                (
                    f"Child[{position}]/ChildIdentifiers/LAchildID",
                    DUPLICATE_CHILD,
                    f"LAchildID {_show(child_id)} is also Child[{first}] in this return",
                )
            )
    if len(found) > MAX_PROBLEMS_PER_CHILD:
        more = len(found) - MAX_PROBLEMS_PER_CHILD
        del found[MAX_PROBLEMS_PER_CHILD:]
        found.append((f"Child[{position}]", TOO_MANY_PROBLEMS, f"{more} more problems in this child are not listed"))
    if found:
        ret.problems.extend(Problem(ret.source, child_id, p, rule, message) for p, rule, message in found)
    elif child_id is not None:
        ret.children.append(ParsedChild(child_id, position, fields))


# --- paths for rule violations found after linking ----------------------------------------------------------

# field -> (element path, sub-map for the element's own fields, item element for a list of values)
_PathMap = Mapping[str, tuple[str, "_PathMap | None", str | None]]

_ASSESSMENT_PATHS: _PathMap = {
    "start_date": ("AssessmentActualStartDate", None, None),
    "internal_review_date": ("AssessmentInternalReviewDate", None, None),
    "authorisation_date": ("AssessmentAuthorisationDate", None, None),
    "factors": ("FactorsIdentifiedAtAssessment", None, "AssessmentFactors"),
}
_CIN_PLAN_PATHS: _PathMap = {
    "start_date": ("CINPlanStartDate", None, None),
    "end_date": ("CINPlanEndDate", None, None),
}
_SECTION47_PATHS: _PathMap = {
    "start_date": ("S47ActualStartDate", None, None),
    "icpc_target_date": ("InitialCPCtarget", None, None),
    "icpc_date": ("DateOfInitialCPC", None, None),
    "icpc_not_required": ("ICPCnotRequired", None, None),
}
_PROTECTION_PLAN_PATHS: _PathMap = {
    "start_date": ("CPPstartDate", None, None),
    "end_date": ("CPPendDate", None, None),
    "initial_category": ("InitialCategoryOfAbuse", None, None),
    "latest_category": ("LatestCategoryOfAbuse", None, None),
    "previous_plans": ("NumberOfPreviousCPP", None, None),
    "review_dates": ("Reviews", None, "CPPreviewDate"),
}
_EPISODE_PATHS: _PathMap = {
    "referral_date": ("CINreferralDate", None, None),
    "referral_source": ("ReferralSource", None, None),
    "primary_need": ("PrimaryNeedCode", None, None),
    "closure_date": ("CINclosureDate", None, None),
    "closure_reason": ("ReasonForClosure", None, None),
    "initial_cpc_date": ("DateOfInitialCPC", None, None),
    "referral_nfa": ("ReferralNFA", None, None),
    "assessments": ("Assessments", _ASSESSMENT_PATHS, None),
    "cin_plans": ("CINPlanDates", _CIN_PLAN_PATHS, None),
    "section47s": ("Section47", _SECTION47_PATHS, None),
    "protection_plans": ("ChildProtectionPlans", _PROTECTION_PLAN_PATHS, None),
}
_CHILD_PATHS: _PathMap = {
    "la_child_id": ("ChildIdentifiers/LAchildID", None, None),
    "birth_date": ("ChildIdentifiers/PersonBirthDate", None, None),
    "expected_birth_date": ("ChildIdentifiers/ExpectedPersonBirthDate", None, None),
    "sex": ("ChildIdentifiers/Sex", None, None),
    "ethnicity": ("ChildCharacteristics/Ethnicity", None, None),
    "disabilities": ("ChildCharacteristics/Disabilities", None, "Disability"),
}


def _walk(loc: Sequence[str | int], paths: _PathMap | None) -> list[str]:
    """Translate a pydantic location into element names (unmapped names pass through); indices are 1-based."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        i += 1
        if isinstance(key, int):
            if parts:
                parts[-1] += f"[{key + 1}]"
            else:
                parts.append(f"[{key + 1}]")
            continue
        entry = paths.get(key) if paths is not None else None
        if entry is None:
            parts.append(key)
            paths = None
            continue
        element, paths, item = entry
        parts.append(element)
        if item is not None and i < len(loc) and isinstance(loc[i], int):
            parts.append(f"{item}[{int(loc[i]) + 1}]")
            i += 1
    return parts


def element_path(loc: Sequence[str | int], referral_dates: Sequence[dt.date | None]) -> str:
    """The element path of a ChildRecord validation error; an episode is named by its referral date.

    ``referral_dates`` are those of the episodes in the order they were validated (oldest first).
    """
    if not loc:
        return "Child"
    if loc[0] != "episodes":
        return "/".join(_walk(loc, _CHILD_PATHS))
    if len(loc) == 1 or not isinstance(loc[1], int):
        return "/".join(["CINdetails", *_walk(loc[1:], None)])
    index = loc[1]
    referral = referral_dates[index] if 0 <= index < len(referral_dates) else None
    head = f"CINdetails[referral_date={referral.isoformat()}]" if referral else f"CINdetails[{index + 1}]"
    return "/".join([head, *_walk(loc[2:], _EPISODE_PATHS)])


# --- writer -------------------------------------------------------------------------------------------------

SOFTWARE_CODE: Final = "case-closure-risk"
WRITER_RELEASE: Final = "1"
_XML_INVALID: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LEA: Final = re.compile(r"\d{3}")
_I5: Final = " " * 10
_I6: Final = " " * 12


def _in_year(episode: Episode, start: dt.date, end: dt.date) -> bool:
    return episode.referral_date <= end and (episode.closure_date is None or episode.closure_date >= start)


def _header(collection_year: int, reference_date: dt.date, lea: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Message>\n"
        "  <Header>\n"
        "    <CollectionDetails>\n"
        "      <Collection>CIN</Collection>\n"
        f"      <Year>{collection_year}</Year>\n"
        f"      <ReferenceDate>{reference_date.isoformat()}</ReferenceDate>\n"
        "    </CollectionDetails>\n"
        "    <Source>\n"
        "      <SourceLevel>L</SourceLevel>\n"
        f"      <LEA>{lea}</LEA>\n"
        f"      <SoftwareCode>{SOFTWARE_CODE}</SoftwareCode>\n"
        f"      <Release>{WRITER_RELEASE}</Release>\n"
        "      <SerialNo>001</SerialNo>\n"
        f"      <DateTime>{collection_year}-04-01T00:00:00</DateTime>\n"
        "    </Source>\n"
        "  </Header>\n"
        "  <Children>\n"
    )


def _child_xml(record: ChildRecord, episodes: Sequence[Episode]) -> str:
    """One Child element, in schema order; indentation is two spaces per level."""
    out: list[str] = []
    add = out.append
    add("    <Child>\n      <ChildIdentifiers>\n")
    add(f"        <LAchildID>{escape(record.la_child_id)}</LAchildID>\n")
    if record.birth_date is not None:
        add(f"        <PersonBirthDate>{record.birth_date}</PersonBirthDate>\n")
    if record.expected_birth_date is not None:
        add(f"        <ExpectedPersonBirthDate>{record.expected_birth_date}</ExpectedPersonBirthDate>\n")
    add(f"        <Sex>{record.sex.value}</Sex>\n      </ChildIdentifiers>\n")
    add(f"      <ChildCharacteristics>\n        <Ethnicity>{record.ethnicity.value}</Ethnicity>\n")
    if record.disabilities:
        add("        <Disabilities>\n")
        for disability in record.disabilities:
            add(f"          <Disability>{disability.value}</Disability>\n")
        add("        </Disabilities>\n")
    add("      </ChildCharacteristics>\n")
    for e in episodes:
        add(f"      <CINdetails>\n        <CINreferralDate>{e.referral_date}</CINreferralDate>\n")
        add(f"        <ReferralSource>{e.referral_source.value}</ReferralSource>\n")
        if e.primary_need is not None:
            add(f"        <PrimaryNeedCode>{e.primary_need.value}</PrimaryNeedCode>\n")
        if e.closure_date is not None:
            add(f"        <CINclosureDate>{e.closure_date}</CINclosureDate>\n")
        if e.closure_reason is not None:
            add(f"        <ReasonForClosure>{e.closure_reason.value}</ReasonForClosure>\n")
        if e.initial_cpc_date is not None:
            add(f"        <DateOfInitialCPC>{e.initial_cpc_date}</DateOfInitialCPC>\n")
        for a in e.assessments:
            add("        <Assessments>\n")
            add(f"{_I5}<AssessmentActualStartDate>{a.start_date}</AssessmentActualStartDate>\n")
            if a.internal_review_date is not None:
                add(f"{_I5}<AssessmentInternalReviewDate>{a.internal_review_date}</AssessmentInternalReviewDate>\n")
            if a.authorisation_date is not None:
                add(f"{_I5}<AssessmentAuthorisationDate>{a.authorisation_date}</AssessmentAuthorisationDate>\n")
            if a.factors:
                add(f"{_I5}<FactorsIdentifiedAtAssessment>\n")
                for factor in a.factors:
                    add(f"{_I6}<AssessmentFactors>{factor.value}</AssessmentFactors>\n")
                add(f"{_I5}</FactorsIdentifiedAtAssessment>\n")
            add("        </Assessments>\n")
        for p in e.cin_plans:
            add(f"        <CINPlanDates>\n{_I5}<CINPlanStartDate>{p.start_date}</CINPlanStartDate>\n")
            if p.end_date is not None:
                add(f"{_I5}<CINPlanEndDate>{p.end_date}</CINPlanEndDate>\n")
            add("        </CINPlanDates>\n")
        for s in e.section47s:
            add(f"        <Section47>\n{_I5}<S47ActualStartDate>{s.start_date}</S47ActualStartDate>\n")
            if s.icpc_target_date is not None:
                add(f"{_I5}<InitialCPCtarget>{s.icpc_target_date}</InitialCPCtarget>\n")
            if s.icpc_date is not None:
                add(f"{_I5}<DateOfInitialCPC>{s.icpc_date}</DateOfInitialCPC>\n")
            add(f"{_I5}<ICPCnotRequired>{int(s.icpc_not_required)}</ICPCnotRequired>\n        </Section47>\n")
        add(f"        <ReferralNFA>{int(e.referral_nfa)}</ReferralNFA>\n")
        for c in e.protection_plans:
            add(f"        <ChildProtectionPlans>\n{_I5}<CPPstartDate>{c.start_date}</CPPstartDate>\n")
            if c.end_date is not None:
                add(f"{_I5}<CPPendDate>{c.end_date}</CPPendDate>\n")
            add(f"{_I5}<InitialCategoryOfAbuse>{c.initial_category.value}</InitialCategoryOfAbuse>\n")
            add(f"{_I5}<LatestCategoryOfAbuse>{c.latest_category.value}</LatestCategoryOfAbuse>\n")
            add(f"{_I5}<NumberOfPreviousCPP>{c.previous_plans}</NumberOfPreviousCPP>\n")
            if c.review_dates:
                add(f"{_I5}<Reviews>\n")
                for review in c.review_dates:
                    add(f"{_I6}<CPPreviewDate>{review}</CPPreviewDate>\n")
                add(f"{_I5}</Reviews>\n")
            add("        </ChildProtectionPlans>\n")
        add("      </CINdetails>\n")
    add("    </Child>\n")
    return "".join(out)


def write_census_return(records: Iterable[ChildRecord], *, collection_year: int, out: Path, lea: str = "999") -> int:
    """Write the return for collection year Y (1 April Y-1 to 31 March Y); return how many children it holds.

    Every child with an episode open at some point in the year is written as it stood on 31 March Y, with just
    those episodes, in the 2025-26 schema's element order. Extension fields are not census data and are not
    written. The output depends only on the records and arguments, byte for byte. Raises ValueError when no
    child qualifies (the schema requires at least one Child) and leaves ``out`` untouched.
    """
    if not _LEA.fullmatch(lea):
        raise ValueError(f"lea must be a three-digit local authority code, not {lea!r}")
    start, reference_date = dt.date(collection_year - 1, 4, 1), dt.date(collection_year, 3, 31)
    partial = out.with_name(out.name + ".partial")
    written = 0
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            stream.write(_header(collection_year, reference_date, lea))
            batch: list[str] = []
            for record in records:
                if not any(_in_year(e, start, reference_date) for e in record.episodes):
                    continue
                if _XML_INVALID.search(record.la_child_id):
                    raise ValueError(f"LAchildID {record.la_child_id!r} holds a character XML cannot carry")
                as_of = record_as_of(record, reference_date)
                assert as_of is not None  # an episode in the year was referred on or before its end
                batch.append(_child_xml(as_of, [e for e in as_of.episodes if _in_year(e, start, reference_date)]))
                written += 1
                if len(batch) >= 1000:
                    stream.write("".join(batch))
                    batch.clear()
            stream.write("".join(batch))
            stream.write("  </Children>\n</Message>\n")
        if written == 0:
            raise ValueError(
                f"no child has an episode open in collection year {collection_year} "
                "(the schema requires at least one Child)"
            )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written
