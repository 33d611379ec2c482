"""Element paths for rule violations found after linking: a ChildRecord location in census element names.

The names come from the schema table: a field's element, through groups without a field of their own
(``birth_date`` is ``ChildIdentifiers/PersonBirthDate``); an older spelling is never a path, the current one is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

from features.census.schema import CHILD, Group, Ignored, ListOf

__all__ = ["element_path"]

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


def element_path(loc: Sequence[str | int], referral_dates: Sequence[dt.date | None]) -> str:
    """The element path of a ChildRecord validation error; an episode is named by its referral date.

    ``referral_dates`` are those of the episodes in the order they were validated (oldest first).
    """
    if not loc:
        return CHILD.tag
    if loc[0] != "episodes":
        return "/".join(_walk(loc, _CHILD_PATHS))
    if len(loc) == 1 or not isinstance(loc[1], int):
        return "/".join([_EPISODE, *_walk(loc[1:], None)])
    index = loc[1]
    referral = referral_dates[index] if 0 <= index < len(referral_dates) else None
    head = f"{_EPISODE}[referral_date={referral.isoformat()}]" if referral else f"{_EPISODE}[{index + 1}]"
    return "/".join([head, *_walk(loc[2:], _EPISODE_PATHS)])
