"""Every problem of one child in one pass: its values' types and shapes, and every census rule at every level.

pydantic runs an object's own rules only when everything it holds is valid, so a Section47 rule would hide the
episode's rules, and a bad value the record's. Here the record is validated once as usual; when that fails it is
validated for its structure alone (no rules), the values that fail are set aside (an optional value is dropped; an
item of a list that cannot stand without it is left out), and every object's rules are then run on what remains.
Rules are reported at the locations of the data as given: an item left out never shifts another's index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails

from features.record import ChildRecord
from features.validation import STRUCTURE_ONLY, Loc

__all__ = ["check_record"]

_ROUNDS = 3  # drop the values that fail; then the items they leave incomplete; then give up


def check_record(data: Mapping[str, Any]) -> tuple[ChildRecord | None, list[ErrorDetails]]:
    """The record, or None and every problem found: type and shape errors first, then every rule broken."""
    try:
        return ChildRecord.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    drop_keys: set[Loc] = set()
    drop_items: set[Loc] = set()
    shape_errors: list[ErrorDetails] | None = None
    for _ in range(_ROUNDS):
        index_map: dict[Loc, list[int]] = {}
        pruned = _pruned(data, (), drop_keys, drop_items, index_map)
        try:
            structure = ChildRecord.model_validate(pruned, context=STRUCTURE_ONLY)
        except ValidationError as exc:
            found = exc.errors(include_url=False)
            if shape_errors is None:
                shape_errors = found  # the data as given: these are reported, later rounds' are consequences
            if not _set_aside(found, index_map, drop_keys, drop_items):
                return None, errors
            continue
        rules = [_located(error, index_map) for error in _rule_violations(structure, ())]
        return None, (shape_errors or []) + (_details(rules) if rules else [])
    return None, errors


def _pruned(node: Any, at: Loc, drop_keys: set[Loc], drop_items: set[Loc], index_map: dict[Loc, list[int]]) -> Any:
    """A copy of ``node`` without the keys and list items set aside; ``index_map`` gives each shortened list's kept
    indices (as given)."""
    if isinstance(node, Mapping):
        return {
            key: _pruned(value, (*at, key), drop_keys, drop_items, index_map)
            for key, value in node.items()
            if (*at, key) not in drop_keys
        }
    if isinstance(node, list):
        kept = [i for i in range(len(node)) if (*at, i) not in drop_items]
        if len(kept) < len(node):
            index_map[at] = kept
        return [_pruned(node[i], (*at, i), drop_keys, drop_items, index_map) for i in kept]
    return node


def _as_given(loc: Loc, index_map: Mapping[Loc, list[int]]) -> Loc:
    out: list[str | int] = []
    for key in loc:
        if isinstance(key, int):
            kept = index_map.get(tuple(out))
            out.append(kept[key] if kept is not None and key < len(kept) else key)
        else:
            out.append(key)
    return tuple(out)


def _set_aside(
    errors: list[ErrorDetails], index_map: Mapping[Loc, list[int]], drop_keys: set[Loc], drop_items: set[Loc]
) -> bool:
    """Set aside what each error is about; False when one is about the child itself (nothing can stand in)."""
    for error in errors:
        loc = _as_given(tuple(error["loc"]), index_map)
        if loc and isinstance(loc[-1], int):
            drop_items.add(loc)  # a bad item of a list
        elif loc and loc not in drop_keys and error["type"] != "missing":
            drop_keys.add(loc)  # a bad value: without it, an optional field is missing, a required one says so
        else:
            items = [i for i, key in enumerate(loc) if isinstance(key, int)]
            if not items:
                return False
            drop_items.add(loc[: items[-1] + 1])  # the innermost item that cannot stand without the value
    return True


def _rule_violations(obj: BaseModel, at: Loc) -> list[InitErrorDetails]:
    rules = getattr(obj, "rules", None)
    found: list[InitErrorDetails] = rules().details(at) if rules is not None else []
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            found += _rule_violations(value, (*at, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += _rule_violations(item, (*at, name, i))
    return found


def _located(error: InitErrorDetails, index_map: Mapping[Loc, list[int]]) -> InitErrorDetails:
    return {**error, "loc": _as_given(tuple(error["loc"]), index_map)}


def _details(errors: list[InitErrorDetails]) -> list[ErrorDetails]:
    return ValidationError.from_exception_data(ChildRecord.__name__, errors).errors(include_url=False)
