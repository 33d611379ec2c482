"""Reading a whole return: a streaming parse of the header and each Child, memory bounded however long the file.

A file that cannot be used at all raises :class:`IngestError`. A file that is not well-formed is read as far as
it goes and then on from the Child after the break (``features.census.resync``): the break and the child it is in
are problems (``not_well_formed``), and ``partial`` says so. Otherwise every ``Child`` element ends up either as a
:class:`ParsedChild` (plain dicts shaped like :class:`~features.record.ChildRecord`, validated later, once per linked
child) or as one or more :class:`Problem` rows naming the child, the element path and the rule. The parser never
expands entities, never reads a DTD and never touches the network. Child elements are cleared as they are read;
stray elements after the last Child stay in memory until ``</Children>`` (about 110 bytes each). Problems are listed
one by one up to 100 per child and 1,000 stray elements per file, then summed up in one more
(``too_many_problems``), so a small hostile file cannot become millions of problem rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from lxml import etree

from features.census.problems import (
    DUPLICATE_CHILD,
    ID_LOOKS_NUMERIC,
    MAX_PROBLEMS_PER_CHILD,
    MAX_STRAY_PROBLEMS,
    NOT_WELL_FORMED,
    TOO_MANY_PROBLEMS,
    UNEXPECTED_TEXT,
    UNKNOWN_ELEMENT,
    YEAR_MISMATCH,
    IngestError,
    Problem,
    Severity,
    severity_of,
)
from features.census.prolog import opened
from features.census.reader import CHILD_ID_PATH, child_key, is_stray, read_child
from features.census.resync import Resumed, byte_offset, child_id_at, child_starts, line_of, resume_prefix
from features.census.schema import CHILD, CHILDREN, COLLECTION, HEADER, MESSAGE, Group, Leaf, locate
from features.census.values import ValueType, show

__all__ = ["CensusReturn", "ParsedChild", "read_census_header", "read_census_return"]


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
    # children the reader found errors in, as far as they could be read: their record rules are still checked,
    # so the data officer hears of every problem at once
    rejected: list[ParsedChild] = field(default_factory=list)
    child_elements: int = 0
    stray_elements: int = 0  # elements in Message or Children that are not Header, Children or Child
    breaks: int = 0  # places the XML parser stopped at; each child after one was read by resuming at the next Child

    @property
    def partial(self) -> bool:
        """The file is not well-formed: whatever lay between a break and the next Child could not be read."""
        return self.breaks > 0


_MESSAGE, _HEADER, _CHILDREN, _CHILD = MESSAGE.tag, HEADER.tag, CHILDREN.tag, CHILD.tag
_ID: Final = CHILD_ID_PATH.rsplit("/", 1)[-1]
_HEADER_PARTS: Final = frozenset(element.tag for element in HEADER.elements)
_NUMERIC_ID: Final = re.compile(r"\d+\.0+|\d(\.\d+)?[eE]\+?\d+")  # 244301.0, 2.44301E+5


def _header_value(field: str) -> tuple[tuple[str, ...], ValueType]:
    """The tags leading from the root to a header value element, and its type."""
    tags, element = locate(HEADER, field)
    if not isinstance(element, Leaf):
        raise TypeError(f"the header's {field} is not a value element")
    return (HEADER.tag, *tags), element.type


# the header values this reader looks at
_COLLECTION, _ = _header_value("collection")
_YEAR, _YEAR_TYPE = _header_value("collection_year")
_REFERENCE_DATE, _DATE_TYPE = _header_value("reference_date")


def _header_texts(el: Any, group: Group, into: dict[tuple[str, ...], str], at: tuple[str, ...]) -> None:
    """The stripped text of each value element of the header (the first of its name), by its tags."""
    for element in group.elements:
        if isinstance(element, Group):
            sub = el.find(element.tag)
            if sub is not None:
                _header_texts(sub, element, into, (*at, element.tag))
        elif isinstance(element, Leaf):
            text = el.findtext(element.tag)
            if text is not None:
                into[(*at, element.tag)] = text.strip()


def _read_header(path: Path, el: Any, ret: CensusReturn) -> None:
    """Collection year and reference date (from the year when not given); another collection is refused."""
    for sub in el:
        if sub.tag not in _HEADER_PARTS:
            ret.problems.append(
                Problem(
                    ret.source,
                    None,
                    f"{_HEADER}/{sub.tag}",
                    UNKNOWN_ELEMENT,
                    f"{sub.tag} is not an element of {_HEADER}",
                    Severity.WARNING,
                )
            )
    texts: dict[tuple[str, ...], str] = {}
    _header_texts(el, HEADER, texts, (_HEADER,))
    collection = texts.get(_COLLECTION)
    if collection and collection != COLLECTION:
        raise IngestError(f"{path}: not a CIN return: the header's {_COLLECTION[-1]} is {show(collection)}")
    year = texts.get(_YEAR)
    if year:
        try:
            ret.collection_year = _YEAR_TYPE.read(year, _YEAR[-1])
        except ValueError as exc:
            ret.problems.append(Problem(ret.source, None, "/".join(_YEAR), _YEAR_TYPE.rule, f"{_YEAR[-1]} {exc}"))
    reference = texts.get(_REFERENCE_DATE)
    if reference:
        try:
            ret.reference_date = _DATE_TYPE.read(reference, _REFERENCE_DATE[-1])
        except ValueError as exc:
            ret.problems.append(Problem(ret.source, None, "/".join(_REFERENCE_DATE), _DATE_TYPE.rule, str(exc)))
    if ret.reference_date is None and ret.collection_year is not None:
        ret.reference_date = dt.date(ret.collection_year, 3, 31)
    elif ret.collection_year is not None and ret.reference_date and ret.reference_date.year != ret.collection_year:
        # the 2023-24 return is Year 2024, ReferenceDate 31 March 2024
        ret.problems.append(
            Problem(ret.source, None, "/".join(_YEAR), YEAR_MISMATCH,
                    f"{_YEAR[-1]} {ret.collection_year} disagrees with {_REFERENCE_DATE[-1]} {ret.reference_date}"
                    f" (a return's {_REFERENCE_DATE[-1]} is 31 March of its {_YEAR[-1]}); the "
                    f"{_REFERENCE_DATE[-1]} is used", Severity.WARNING)
        )  # fmt: skip


class _BrokenError(Exception):
    """The XML parser stopped: at (line, column) of the stream it was given."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def read_census_return(path: Path, *, holds: Callable[[str | None], bool] | None = None) -> CensusReturn:
    """Read one CIN census return. Raises IngestError when the file as a whole cannot be used.

    A file that is not well-formed is read as far as it goes, then again from the next Child after each break
    (``ret.partial``); the child a break falls in is reported (``not_well_formed``), and so is the break.

    ``holds`` (given a child's name, ``child_key``) reads only the children it holds, counting the others: one of
    several processes that share the children out (``features.ingest.Part``).
    """
    ret = CensusReturn(source=path.name)
    seen_ids: dict[str, int] = {}
    with opened(path) as stream:
        try:
            _parse(path, stream, ret, seen_ids, holds)
        except _BrokenError as broken:
            _read_on(path, stream, ret, seen_ids, broken, holds)
    rejected = {p.la_child_id for p in ret.problems if p.is_error}
    if rejected:
        ret.children = [c for c in ret.children if c.la_child_id not in rejected]
    return ret


def read_census_header(path: Path) -> CensusReturn:
    """Only the header of a return (collection year, reference date), reading no further than it.

    Refuses the same unusable files as :func:`read_census_return` where the header shows it (a DTD, another
    root, another collection), so a run can check every file before the long read.
    """
    ret = CensusReturn(source=path.name)
    with opened(path) as stream:
        try:
            for _, el in _events(stream, (_HEADER, _CHILD)):
                if el.tag == _HEADER and el.getparent() is not None and el.getparent().getparent() is None:
                    _read_header(path, el, ret)
                    break
                el.clear(keep_tail=True)
        except etree.XMLSyntaxError:
            pass  # the full read reports where and why, and reads on past it
        except etree.LxmlError as exc:
            raise IngestError(f"{path}: cannot be parsed: {exc}") from None
    return ret


_NOT_UTF8: Final = (
    "; the file is not UTF-8 (as its declaration says, or as XML assumes without one): re-save it as UTF-8, or "
    'declare its encoding in its first line, e.g. <?xml version="1.0" encoding="windows-1252"?>'
)


def _why(message: str) -> str:
    message = " ".join(message.split()).split(", line ")[0]
    if "encoding" in message.lower() or "utf-8" in message.lower():
        return message + _NOT_UTF8
    return message


def _read_on(
    path: Path, stream: IO[bytes], ret: CensusReturn, seen_ids: dict[str, int], broken: _BrokenError,
    holds: Callable[[str | None], bool] | None,
) -> None:  # fmt: skip
    """Report each break and the child it falls in, and read on from the Child after that one."""
    prefix = resume_prefix(path)
    base, skip, resumed = 0, 0, 0
    while True:
        ret.breaks += 1
        offset = byte_offset(path, base, skip, broken.line, broken.column)
        line = broken.line if not skip else line_of(path, offset)
        why = _why(broken.message)
        nth = ret.child_elements + 1  # the first Child not read: the break is in it, or before it
        starts = child_starts(path, nth + 1)
        resume = nth if len(starts) >= nth and starts[nth - 1] > offset else nth + 1
        resume = max(resume, resumed + 1)  # always onwards
        if resume > nth and len(starts) >= nth:
            child_id = child_id_at(path, starts[nth - 1])
            ret.problems.append(
                Problem(ret.source, child_id, f"{_CHILD}[{nth}]", NOT_WELL_FORMED,
                        f"{_CHILD}[{nth}] is not well-formed XML (line {line}): {why}; it could not be read")
            )  # fmt: skip
            ret.child_elements = nth  # counted, though unread, so kept + dropped = Child elements
        can_resume = prefix is not None and len(starts) >= resume
        after = f"reading went on from {_CHILD}[{resume}]" if can_resume else "nothing after it could be read"
        ret.problems.append(
            Problem(
                ret.source, None, f"line {line}", NOT_WELL_FORMED, f"not well-formed XML (line {line}): {why}; {after}"
            )
        )
        if not can_resume or prefix is None:
            return
        ret.child_elements, resumed = resume - 1, resume
        base, skip = starts[resume - 1], len(prefix)
        try:
            _parse(path, Resumed(stream, prefix, base), ret, seen_ids, holds)  # type: ignore[arg-type]
            return
        except _BrokenError as again:
            broken = again


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
        Problem(
            ret.source,
            None,
            f"{container}/{tag}",
            UNKNOWN_ELEMENT,
            f"{tag} is not an element of {container}",
            Severity.WARNING,
        )
    )


def _parse(
    path: Path, stream: IO[bytes], ret: CensusReturn, seen_ids: dict[str, int],
    holds: Callable[[str | None], bool] | None = None,
) -> None:  # fmt: skip
    events = _events(stream, (_MESSAGE, _HEADER, _CHILDREN, _CHILD))
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
            if tag == _CHILD:
                if parent is None or parent.tag != _CHILDREN or not _is_top(parent):
                    continue  # misplaced: the element it sits in reports it as unknown
                ret.child_elements += 1
                _take_child(el, ret, seen_ids, holds)
                el.clear(keep_tail=True)
                previous = el.getprevious()
                while previous is not None:  # processed children, or strays to report, keep memory bounded
                    if previous.tag != _CHILD:
                        _unknown(ret, _CHILDREN, previous.tag)
                    parent.remove(previous)
                    previous = el.getprevious()
            elif tag == _CHILDREN and _is_top(el):
                has_children = True
                for other in el:
                    if other.tag != _CHILD:
                        _unknown(ret, _CHILDREN, other.tag)
            elif tag == _HEADER and parent is not None and parent.getparent() is None:
                _read_header(path, el, ret)
            elif tag == _MESSAGE and parent is None:
                for other in el:
                    if other.tag not in (_HEADER, _CHILDREN):
                        _unknown(ret, _MESSAGE, other.tag)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno or 1, 1)
        raise _BrokenError(max(line, 1), max(column, 1), exc.msg or str(exc)) from None
    except etree.LxmlError as exc:
        raise IngestError(f"{path}: cannot be parsed: {exc}") from None
    root = events.root
    if root is None or root.tag != _MESSAGE:
        shown = "none" if root is None else f"<{root.tag}>"
        raise IngestError(f"{path}: not a CIN census return: the root element is {shown}, not <{_MESSAGE}>")
    if not has_children:
        raise IngestError(f"{path}: not a CIN census return: <{_MESSAGE}> has no <{_CHILDREN}>")
    if ret.stray_elements > MAX_STRAY_PROBLEMS:
        more = ret.stray_elements - MAX_STRAY_PROBLEMS
        ret.problems.append(
            Problem(ret.source, None, _CHILDREN, TOO_MANY_PROBLEMS,
                    f"{more} more elements that are not {_CHILD}, {_HEADER} or {_CHILDREN} are not listed one by one",
                    Severity.WARNING)
        )  # fmt: skip


def _is_top(children: Any) -> bool:
    """``children`` is a Children element directly under the root Message."""
    message = children.getparent()
    return message is not None and message.tag == _MESSAGE and message.getparent() is None


def _take_child(
    el: Any, ret: CensusReturn, seen_ids: dict[str, int], holds: Callable[[str | None], bool] | None
) -> None:
    position = ret.child_elements
    if is_stray(el.tail):
        ret.problems.append(
            Problem(
                ret.source,
                None,
                _CHILDREN,
                UNEXPECTED_TEXT,
                f"stray text after {_CHILD}[{position}]",
                Severity.WARNING,  # between children: no child's data is lost
            )
        )
    if holds is not None and not holds(child_key(el)):
        return  # another process reads this child
    child_id, fields, found = read_child(el, position)
    if child_id is not None and _NUMERIC_ID.fullmatch(child_id):
        found.append(
            (f"{_CHILD}[{position}]/{CHILD_ID_PATH}", ID_LOOKS_NUMERIC,
             f"{_ID} {show(child_id)} looks like a number a spreadsheet rewrote; it links only to the same text")
        )  # fmt: skip
    if child_id is not None:
        first = seen_ids.setdefault(child_id, position)
        if first != position:
            found.append(
                (
                    f"{_CHILD}[{position}]/{CHILD_ID_PATH}",
                    DUPLICATE_CHILD,
                    f"{_ID} {show(child_id)} is also {_CHILD}[{first}] in this return",
                )
            )
    errors = any(severity_of(rule) is Severity.ERROR for _, rule, _ in found)
    summed = Severity.ERROR if errors else Severity.WARNING  # of the problems not listed one by one
    if len(found) > MAX_PROBLEMS_PER_CHILD:
        more = len(found) - MAX_PROBLEMS_PER_CHILD
        del found[MAX_PROBLEMS_PER_CHILD:]
        found.append((f"{_CHILD}[{position}]", TOO_MANY_PROBLEMS, f"{more} more problems in this child are not listed"))
    ret.problems.extend(
        Problem(ret.source, child_id, p, rule, message, summed if rule == TOO_MANY_PROBLEMS else severity_of(rule))
        for p, rule, message in found
    )
    if child_id is not None:
        (ret.rejected if errors else ret.children).append(ParsedChild(child_id, position, fields))
