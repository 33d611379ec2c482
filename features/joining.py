"""Joining the case-management extension file (JSON lines) to the linked children, on (LAchildID, referral date)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from features.census import RULE_NAMES, IngestError, Problem, Severity
from features.extension import EXTENSION_FIELDS, EpisodeExtension
from features.linking import LinkedChild

__all__ = ["DUPLICATE_EXTENSION", "EXTENSION_UNMATCHED", "join_extension", "line_path"]

EXTENSION_UNMATCHED: Final = "extension_unmatched"
DUPLICATE_EXTENSION: Final = "duplicate_extension"


def line_path(line: int, loc: Sequence[str | int]) -> str:
    """A path in the extension file: ``line 3/services[1]/start_date`` (1-based)."""
    parts = [f"line {line}"]
    for key in loc:
        if isinstance(key, int):
            parts[-1] += f"[{key + 1}]"
        else:
            parts.append(key)
    return "/".join(parts)


def _child_id_of(raw: bytes) -> str | None:
    """The la_child_id of an extension line that failed validation, when it can still be read."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    child_id = value.get("la_child_id") if isinstance(value, dict) else None
    if not isinstance(child_id, str):
        return None
    return child_id.strip()[:100] or None


def join_extension(path: Path, linked: dict[str, LinkedChild], rejected: set[str], problems: list[Problem]) -> None:
    """Add each line's fields to its episode; a bad, unmatched or repeated line is a problem. Raises IngestError
    when the file cannot be read."""
    source = path.name
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    with stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                line = EpisodeExtension.model_validate_json(raw)
            except ValidationError as exc:
                child_id = _child_id_of(raw)
                for err in exc.errors(include_url=False):
                    rule = RULE_NAMES.get(err["type"], err["type"])
                    problems.append(Problem(source, child_id, line_path(number, err["loc"]), rule, err["msg"]))
                if child_id is not None:
                    rejected.add(child_id)
                continue
            child_id, referral = line.la_child_id, line.referral_date
            if child_id in rejected:
                continue  # the child is already reported
            entry = linked.get(child_id)
            episode = entry.episodes.get(referral) if entry is not None else None
            if entry is None or episode is None:
                whom = "no child" if entry is None else "the child has no episode"
                problems.append(
                    Problem(
                        source,
                        child_id,
                        f"line {number}",
                        EXTENSION_UNMATCHED,
                        f"{whom} with LAchildID {child_id!r} and referral date {referral} in the returns",
                        Severity.WARNING,
                    )
                )
                continue
            if referral in entry.extension_lines:
                problems.append(
                    Problem(
                        source,
                        child_id,
                        f"line {number}",
                        DUPLICATE_EXTENSION,
                        f"line {entry.extension_lines[referral]} already gives this episode's extension",
                    )
                )
                rejected.add(child_id)
                continue
            entry.extension_lines[referral] = number
            episode = entry.episodes[referral] = dict(episode)
            for name in EXTENSION_FIELDS:
                value = getattr(line, name)
                if value is not None:
                    episode[name] = value
