"""Copies a later return supersedes: an error only in the earlier copy is a warning, and the later copy is used.

A later return gives a child's characteristics, and each episode it holds, again; linking uses the later copy. An
error in the earlier copy that the later one does not repeat no longer matters to the record, so it is reported as a
warning naming the return whose copy is used, and it leaves no child out:

- a copy the reader rejected (a value it could not read, a record rule it breaks) is superseded when every error of
  it is in an episode a later return gives again, or in the characteristics when a later return gives the child
  again; its other episodes are then linked as if it had been clean. An error about the child as a whole (not
  well-formed, a duplicate LAchildID, its LAchildID itself) is never superseded.
- an episode copy that was read cleanly but breaks an episode rule is checked when a later return replaces it with a
  different copy: an error the later copy does not repeat is warned of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from features.census import RULE_NAMES, CensusReturn, ParsedChild, Problem, Severity, census_words, element_path
from features.census.problems import DUPLICATE_CHILD, NOT_WELL_FORMED, TOO_MANY_PROBLEMS
from features.checking import check_record
from features.linking import LinkedChild
from features.record import Episode

__all__ = ["RejectedCopy", "rejected_copies", "settle_rejected_copies", "superseded_episode_problems"]

_EPISODE: Final = "CINdetails"
_WHOLE_CHILD: Final = frozenset({NOT_WELL_FORMED, DUPLICATE_CHILD, TOO_MANY_PROBLEMS})


@dataclass(slots=True)
class RejectedCopy:
    """A child the reader rejected in one return, and where its errors are in the run's problems."""

    rank: int  # the return's place in the reading order
    source: str
    child: ParsedChild
    errors: list[int]


def rejected_copies(ret: CensusReturn, rank: int, problems: list[Problem], start: int) -> list[RejectedCopy]:
    """The rejected children of ``ret`` (its problems are ``problems[start:]``) whose every error is at their own
    element: those a later return may supersede. A duplicated LAchildID names another element, so never is."""
    errors: dict[str, list[int]] = {}
    for i in range(start, len(problems)):
        p = problems[i]
        if p.is_error and p.la_child_id is not None:
            errors.setdefault(p.la_child_id, []).append(i)
    out = []
    for child in ret.rejected:
        head = f"Child[{child.position}]"
        own = errors.get(child.la_child_id, [])
        if own and all(problems[i].path == head or problems[i].path.startswith(f"{head}/") for i in own):
            out.append(RejectedCopy(rank, ret.source, child, own))
    return out


def _used_instead(p: Problem, copy: RejectedCopy, entry: LinkedChild) -> str | None:
    """What supersedes the part of the copy ``p`` is about, in words; None when nothing later does."""
    rest = p.path.removeprefix(f"Child[{copy.child.position}]")
    episodes = copy.child.fields.get("episodes") or []
    if rest.startswith(f"/{_EPISODE}["):
        number = rest[len(_EPISODE) + 2 :].split("]", 1)[0]
        m = int(number) if number.isdigit() else 0
        episode = episodes[m - 1] if 0 < m <= len(episodes) else None
        referral = episode.get("referral_date") if isinstance(episode, dict) else None
        if referral is None or entry.episode_ranks.get(referral, -1) <= copy.rank:
            return None
        return f"{entry.episode_sources[referral]} gives this episode again, and its copy is used"
    if not rest or p.rule in _WHOLE_CHILD or rest.endswith("/LAchildID") or entry.rank <= copy.rank:
        return None
    return f"{entry.source} gives this child again, and its characteristics are used"


def settle_rejected_copies(
    copies: list[RejectedCopy], linked: Mapping[str, LinkedChild], problems: list[Problem]
) -> list[RejectedCopy]:
    """Turn each error a later copy supersedes into a warning; link the copies whose every error is superseded and
    return them."""
    used = []
    for copy in copies:
        entry = linked.get(copy.child.la_child_id)
        if entry is None:
            continue
        superseded = 0
        for i in copy.errors:
            p = problems[i]
            instead = _used_instead(p, copy, entry)
            if instead is not None:
                superseded += 1
                problems[i] = dataclasses.replace(
                    p, severity=Severity.WARNING, message=f"{p.message} (in a superseded copy: {instead})"
                )
        if superseded == len(copy.errors):
            _link_rest(copy, entry)
            used.append(copy)
    return used


def _link_rest(copy: RejectedCopy, entry: LinkedChild) -> None:
    """The copy's episodes that no later return gives, linked as read (every error of the copy was elsewhere)."""
    head = f"Child[{copy.child.position}]"
    for number, episode in enumerate(copy.child.fields.get("episodes") or [], start=1):
        referral = episode.get("referral_date") if isinstance(episode, dict) else None
        if referral is None or referral in entry.episodes:
            continue
        entry.episodes[referral] = episode
        entry.episode_sources[referral] = copy.source
        entry.episode_elements[referral] = f"{head}/{_EPISODE}[{number}]"
        entry.episode_ranks[referral] = copy.rank


def _episode_errors(episode: Mapping[str, Any], child: Mapping[str, Any]) -> list[ErrorDetails]:
    """Every error of one episode in one pass, as the child's only episode (its errors about the child left out)."""
    try:
        errors = check_record({**child, "episodes": [episode]})[1]
    except (TypeError, ValueError):
        return []
    return [e for e in errors if tuple(e["loc"][:2]) == ("episodes", 0)]


def superseded_episode_problems(
    old: Mapping[str, Any], new: Mapping[str, Any], entry: LinkedChild, *, child_id: str, new_source: str
) -> list[Problem]:
    """Warnings for the errors of an episode's earlier copy ``old`` (as ``entry`` holds it) that its later copy
    ``new`` does not repeat. Cheap when the earlier copy is valid, as it nearly always is."""
    try:
        Episode.model_validate(old)
        return []
    except ValidationError:
        pass
    referral = old["referral_date"]
    repeated = {(tuple(e["loc"]), e["type"]) for e in _episode_errors(new, entry.fields)}
    head = entry.episode_elements[referral]
    return [
        Problem(entry.episode_sources[referral], child_id, element_path(e["loc"], episodes=[head]),
                RULE_NAMES.get(e["type"], e["type"]),
                f"{census_words(e['msg'], e['loc'])} (in a superseded copy: {new_source} gives this episode again "
                "without it, and its copy is used)", Severity.WARNING)
        for e in _episode_errors(old, entry.fields)
        if (tuple(e["loc"]), e["type"]) not in repeated
    ]  # fmt: skip
