"""Reading one Child element into ChildRecord-shaped fields and problems, as the schema table says.

Policy:

- any error in a child rejects that child (it is reported, never silently dropped); a warning keeps it;
- an element the schema does not know is a warning (``unknown_element``): the child is kept, and a misspelt optional
  element or a newer return's block does not vanish without a trace; stray text between elements is a problem
  (``unexpected_text``);
- element order is not enforced and attributes are ignored: neither loses data;
- ignored elements (``UPN``, ``FormerUPN``, ``UPNunknown``, ``PersonDeathDate``) are read past and not stored;
- an empty container (``<FactorsIdentifiedAtAssessment/>``) is read as an empty list;
- a child whose LAchildID is over-long is named by its position only, never by a cut-down id (which could be another
  child's).

Element paths are XPath-like with 1-based indices:
``Child[12]/CINdetails[2]/Assessments[1]/AssessmentAuthorisationDate``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from features.census.problems import (
    DUPLICATE_ELEMENT,
    DUPLICATE_EPISODE,
    MISSING_ELEMENT,
    NOT_A_VALUE,
    UNEXPECTED_TEXT,
    UNKNOWN_ELEMENT,
)
from features.census.schema import CHILD, Group, Ignored, Leaf, ListOf, locate
from features.census.values import show

__all__ = ["CHILD_ID_PATH", "is_stray", "read_child"]


# --- how each group's elements are read, compiled once from the schema table ---------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    key: str  # the field the value goes into (an older spelling gives the same field)
    read: Callable[[str, str], Any]
    rule: str
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class _Reading:
    """A container element. ``merge``: its fields go into the parent's; ``items``: it is a list of that element."""

    key: str
    elements: Mapping[str, _Value | _Reading | None]  # None: read past
    required: tuple[tuple[str, tuple[str, ...]], ...]  # (key, tags that give it; the first is the path's)
    repeated: bool = False
    merge: bool = False
    items: str | None = None


def _compile(group: Group) -> _Reading:
    elements: dict[str, _Value | _Reading | None] = {}
    required: list[tuple[str, tuple[str, ...]]] = []
    for element in group.elements:
        if isinstance(element, Ignored):
            elements[element.tag] = None
            continue
        tags: tuple[str, ...] = (element.tag,)
        spec: _Value | _Reading
        if isinstance(element, Leaf):
            spec = _Value(element.field, element.type.read, element.type.rule)
            for tag, older in element.older:
                elements[tag] = _Value(element.field, older.read, older.rule)
                tags += (tag,)
        elif isinstance(element, ListOf):
            item = _Value(element.item, element.type.read, element.type.rule, repeated=True)
            spec = _Reading(element.field, {element.item: item}, (), items=element.item)
        else:
            spec = _compile(element)
        elements[element.tag] = spec
        if element.required:
            required.append((spec.key, tags))
    key = group.tag if group.field is None else group.field
    return _Reading(key, elements, tuple(required), repeated=group.repeated, merge=group.field is None)


_UNKNOWN: Final = _Reading("unknown", {}, ())  # marks a tag the schema does not list
_CHILD: Final = _compile(CHILD)
CHILD_ID_PATH: Final = "/".join(locate(CHILD, "la_child_id")[0])
_EPISODE, _REFERRAL = locate(CHILD, "episodes", "referral_date")[0]

_Found = list[tuple[str, str, str]]  # (path, rule, message) for one child


def is_stray(text: str | None) -> bool:
    return bool(text) and not text.isspace()  # type: ignore[union-attr]


def _read_group(el: Any, group: _Reading, path: str, found: _Found, into: dict[str, Any]) -> None:
    """Read a container's elements into ``into`` as ``group`` says; record what is wrong in ``found``.

    This runs for every element of every return, so it stays plain: one pass, paths built only when needed.
    """
    text = el.text
    if text and not text.isspace():
        found.append((path, UNEXPECTED_TEXT, f"stray text {show(text.strip())} in {el.tag}"))
    counts: dict[str, int] = {}
    given: dict[str, str] = {}  # output name -> the tag that gave it (Sex and GenderCurrent give the same)
    elements = group.elements
    for sub in el:
        tag = sub.tag
        tail = sub.tail
        if tail and not tail.isspace():
            found.append((path, UNEXPECTED_TEXT, f"stray text {show(tail.strip())} after {tag}"))
        spec = elements.get(tag, _UNKNOWN)
        if spec is None:
            continue
        if spec is _UNKNOWN:
            found.append((f"{path}/{tag}", UNKNOWN_ELEMENT, f"{tag} is not an element of {el.tag}"))
            continue
        name = spec.key
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
        if isinstance(spec, _Value):
            value: Any = None
            if len(sub):
                found.append((sub_path or f"{path}/{tag}", NOT_A_VALUE, f"{tag} holds elements, not a value"))
            else:
                text = sub.text
                try:
                    value = spec.read(text.strip() if text else "", tag)
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
    for name, tags in group.required:
        if name not in given and tags[0] not in counts:
            found.append((f"{path}/{tags[0]}", MISSING_ELEMENT, f"{' or '.join(tags)} is required in {el.tag}"))


def read_child(el: Any, position: int) -> tuple[str | None, dict[str, Any], _Found]:
    """The child's LAchildID (when it can name the child), its fields and what is wrong with them."""
    path = f"{CHILD.tag}[{position}]"
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
                    f"{path}/{_EPISODE}[{i}]/{_REFERRAL}",
                    DUPLICATE_EPISODE,
                    f"{_EPISODE}[{i}] has the referral date of {_EPISODE}[{seen[referral]}] ({referral})",
                )
            )
        else:
            seen[referral] = i
    child_id = fields.get("la_child_id")
    if child_id is None:  # missing or invalid: name the child by its raw text if there is any
        child_id = child_key(el)
    return child_id, fields, found


def child_key(el: Any) -> str | None:
    """The name ``read_child`` gives a Child element, read without reading the rest of it: its LAchildID's text
    (valid or not). Never a cut-down one: its first 100 characters may be another, valid child's id, which would
    then be rejected with it; over-long, the child is named by its position (the problem's path) alone."""
    raw = (el.findtext(CHILD_ID_PATH) or "").strip()
    return raw if 0 < len(raw) <= 100 else None
