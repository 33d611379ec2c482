"""Element paths for rule violations found after linking: a ChildRecord location in census element names, in the
reader's style (``Child[3]/CINdetails[2]/Assessments[1]/AssessmentActualStartDate``).

The names come from the schema table: a field's element, through groups without a field of their own
(``birth_date`` is ``ChildIdentifiers/PersonBirthDate``); an older spelling is never a path, the current one is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

from features.census.schema import CHILD, Group, Ignored, ListOf

__all__ = ["census_words", "element_path"]

# field -> (element path, sub-map for the element's own fields, item element for a list of values)
_PathMap: TypeAlias = Mapping[str, tuple[str, "_PathMap | None", str | None]]


def _path_map(group: Group, prefix: str = "") -> dict[str, tuple[str, _PathMap | None, str | None]]:
    paths: dict[str, tuple[str, _PathMap | None, str | None]] = {}
    for element in group.elements:
        if isinstance(element, Ignored):
            continue
        path = prefix + element.tag
        if isinstance(element, Group):
            if element.field is None:
                paths.update(_path_map(element, f"{path}/"))
            else:
                paths[element.field] = (path, _path_map(element), None)
        elif isinstance(element, ListOf):
            paths[element.field] = (path, None, element.item)
        else:
            paths[element.field] = (path, None, None)
    return paths


_CHILD_PATHS: Final = _path_map(CHILD)
_EPISODE, _EPISODE_PATHS, _ = _CHILD_PATHS["episodes"]


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


def element_path(loc: Sequence[str | int], *, child: str = CHILD.tag, episodes: Sequence[str] = ()) -> str:
    """The element path of a ChildRecord validation error, in the reader's style (1-based positions).

    ``child`` is the child's element (``Child[3]``); ``episodes[i]`` the element of the record's i-th episode
    (``Child[3]/CINdetails[2]``, which may sit in another return), else ``{child}/CINdetails[i+1]``.
    """
    if not loc:
        return child
    if loc[0] != "episodes":
        return "/".join([child, *_walk(loc, _CHILD_PATHS)])
    if len(loc) == 1 or not isinstance(loc[1], int):
        return "/".join([child, _EPISODE, *_walk(loc[1:], None)])
    index = loc[1]
    head = episodes[index] if 0 <= index < len(episodes) else f"{child}/{_EPISODE}[{index + 1}]"
    return "/".join([head, *_walk(loc[2:], _EPISODE_PATHS)])


# A record field in a message: a name with an underscore, an index or a dot (start_date, assessments[0].start_date),
# or one of the plain names that are only ever fields; other words are English and stay as they are.
_TOKEN: Final = re.compile(r"\b[a-z][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z][a-z0-9_]*(?:\[\d+\])?)*")
_PLAIN_FIELDS: Final = frozenset({"assessments", "section47s"})
_INDEXED: Final = re.compile(r"([a-z][a-z0-9_]*)(?:\[(\d+)\])?")


def _translate(token: str, contexts: Sequence[_PathMap]) -> str:
    if not ("_" in token or "." in token or "[" in token or token in _PLAIN_FIELDS):
        return token
    loc: list[str | int] = []
    for part in token.split("."):
        match = _INDEXED.fullmatch(part)
        if match is None:
            return token
        loc.append(match.group(1))
        if match.group(2) is not None:
            loc.append(int(match.group(2)))
    for paths in contexts:
        if loc[0] in paths:
            return "/".join(_walk(loc, paths))
    return token


def census_words(message: str, loc: Sequence[str | int]) -> str:
    """A record rule's message in the census's element names: ``assessments[0].start_date`` is
    ``Assessments[1]/AssessmentActualStartDate``, read in the object the rule is about, then those around it."""
    contexts: list[_PathMap] = [_CHILD_PATHS]
    paths: _PathMap | None = _CHILD_PATHS
    for i, key in enumerate(loc):
        if isinstance(key, int):
            continue
        entry = paths.get(key) if paths is not None else None
        if entry is None or entry[1] is None or i + 1 >= len(loc) or not isinstance(loc[i + 1], int):
            break
        paths = entry[1]
        contexts.append(paths)
    return _TOKEN.sub(lambda match: _translate(match.group(), contexts[::-1]), message)
