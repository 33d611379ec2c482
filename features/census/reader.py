"""Reading one Child element of a CIN census return into ChildRecord-shaped fields and problems.

Reading accepts the 2017-2026 schema variants (``GenderCurrent`` 1/2/0/9 or ``Sex`` M/F/U; booleans ``0/1`` or
``true/false``; optional modules absent; whitespace around values). Policy:

- any problem in a child rejects that child (it is reported, never silently dropped);
- an element the schema does not know is a problem (``unknown_element``), as is stray text between elements
  (``unexpected_text``): a misspelt optional element would otherwise vanish without a trace;
- element order is not enforced and attributes are ignored: neither loses data;
- ``UPN``, ``FormerUPN``, ``UPNunknown`` and ``PersonDeathDate`` are read past and not stored;
- an empty container (``<FactorsIdentifiedAtAssessment/>``) is read as an empty list;
- a child whose LAchildID is over-long is named by its position only, never by a cut-down id (which could be another
  child's).

Element paths are XPath-like with 1-based indices:
``Child[12]/CINdetails[2]/Assessments[1]/AssessmentAuthorisationDate``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from features.census.problems import (
    DUPLICATE_ELEMENT,
    DUPLICATE_EPISODE,
    INVALID_BOOLEAN,
    INVALID_CODE,
    INVALID_DATE,
    INVALID_ID,
    INVALID_INTEGER,
    MISSING_ELEMENT,
    UNEXPECTED_TEXT,
    UNKNOWN_ELEMENT,
)
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

__all__ = ["is_stray", "parse_date", "read_child", "show"]


# --- value converters: text (already stripped) -> value; ValueError when the text is not acceptable ---------


def parse_date(text: str) -> dt.date:
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        raise ValueError(f"{show(text)} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{show(text)} is not a date (YYYY-MM-DD)") from None


_BOOLEANS: Final = {"0": False, "1": True, "false": False, "true": True}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"{show(text)} is not a boolean (0, 1, true or false)") from None


def _integer(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ValueError(f"{show(text)} is not a whole number")
    return int(text)


_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def _child_id(text: str) -> str:
    if not text:
        raise ValueError("LAchildID is empty")
    if len(text) > 100 or _CONTROL.search(text):
        raise ValueError(f"LAchildID {show(text)} is longer than 100 characters or holds control characters")
    return text


def _code(codes: Iterable[str], element: str) -> Callable[[str], Any]:
    table = {str(c): c for c in codes}

    def convert(text: str) -> Any:
        try:
            return table[text]
        except KeyError:
            raise ValueError(f"{show(text)} is not one of the {element} codes") from None

    return convert


def _gender_current(text: str) -> Sex:
    try:
        return sex_from_gender_current(text)
    except KeyError:
        raise ValueError(f"{show(text)} is not a GenderCurrent code (1, 2, 0 or 9)") from None


def show(text: str, limit: int = 40) -> str:
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
        "PersonBirthDate": _Leaf("birth_date", parse_date, INVALID_DATE),
        "ExpectedPersonBirthDate": _Leaf("expected_birth_date", parse_date, INVALID_DATE),
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
        "AssessmentActualStartDate": _Leaf("start_date", parse_date, INVALID_DATE, required=True),
        "AssessmentInternalReviewDate": _Leaf("internal_review_date", parse_date, INVALID_DATE),
        "AssessmentAuthorisationDate": _Leaf("authorisation_date", parse_date, INVALID_DATE),
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
        "CINPlanStartDate": _Leaf("start_date", parse_date, INVALID_DATE, required=True),
        "CINPlanEndDate": _Leaf("end_date", parse_date, INVALID_DATE),
    },
    repeated=True,
)
_SECTION47 = _Group(
    "section47s",
    {
        "S47ActualStartDate": _Leaf("start_date", parse_date, INVALID_DATE, required=True),
        "InitialCPCtarget": _Leaf("icpc_target_date", parse_date, INVALID_DATE),
        "DateOfInitialCPC": _Leaf("icpc_date", parse_date, INVALID_DATE),
        "ICPCnotRequired": _Leaf("icpc_not_required", _boolean, INVALID_BOOLEAN, required=True),
    },
    repeated=True,
)
_PROTECTION_PLAN = _Group(
    "protection_plans",
    {
        "CPPstartDate": _Leaf("start_date", parse_date, INVALID_DATE, required=True),
        "CPPendDate": _Leaf("end_date", parse_date, INVALID_DATE),
        "InitialCategoryOfAbuse": _Leaf(
            "initial_category", _code(AbuseCategory, "InitialCategoryOfAbuse"), INVALID_CODE, required=True
        ),
        "LatestCategoryOfAbuse": _Leaf(
            "latest_category", _code(AbuseCategory, "LatestCategoryOfAbuse"), INVALID_CODE, required=True
        ),
        "NumberOfPreviousCPP": _Leaf("previous_plans", _integer, INVALID_INTEGER, required=True),
        "Reviews": _list_of("review_dates", "CPPreviewDate", _Leaf("review", parse_date, INVALID_DATE, repeated=True)),
    },
    repeated=True,
)
_EPISODE = _Group(
    "episodes",
    {
        "CINreferralDate": _Leaf("referral_date", parse_date, INVALID_DATE, required=True),
        "ReferralSource": _Leaf(
            "referral_source", _code(ReferralSource, "ReferralSource"), INVALID_CODE, required=True
        ),
        "PrimaryNeedCode": _Leaf("primary_need", _code(PrimaryNeed, "PrimaryNeedCode"), INVALID_CODE),
        "CINclosureDate": _Leaf("closure_date", parse_date, INVALID_DATE),
        "ReasonForClosure": _Leaf("closure_reason", _code(ClosureReason, "ReasonForClosure"), INVALID_CODE),
        "DateOfInitialCPC": _Leaf("initial_cpc_date", parse_date, INVALID_DATE),
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


def is_stray(text: str | None) -> bool:
    return bool(text) and not text.isspace()  # type: ignore[union-attr]


def _read_group(el: Any, group: _Group, path: str, found: _Found, into: dict[str, Any]) -> None:
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


def read_child(el: Any, position: int) -> tuple[str | None, dict[str, Any], _Found]:
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
