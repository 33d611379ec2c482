"""What linking a child's returns can change without a trace, said as warnings: the later return wins, and says so.

- a characteristic (birth date, sex, ethnicity, disabilities) that differs from the earlier return's;
- an episode open in one return and missing from a later one that should hold it (kept open, warned);
- a referral date corrected between returns (an episode of the earlier return, due in the later one and missing
  from it, within :data:`CORRECTION_DAYS` of a new referral date): matched as one episode, warned;
- a referral dated after the return's reference date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from features.census import Problem, Severity
from features.census.schema import CHILD, locate

__all__ = [
    "CHARACTERISTIC_CHANGED",
    "CORRECTION_DAYS",
    "OPEN_EPISODE_MISSING",
    "REFERRAL_AFTER_REFERENCE_DATE",
    "REFERRAL_DATE_CORRECTED",
    "LinkedChild",
    "changed_characteristics",
    "corrected_referral",
    "due_in",
]

CHARACTERISTIC_CHANGED: Final = "characteristic_changed"
OPEN_EPISODE_MISSING: Final = "open_episode_missing"
REFERRAL_DATE_CORRECTED: Final = "referral_date_corrected"
REFERRAL_AFTER_REFERENCE_DATE: Final = "referral_after_reference_date"
CORRECTION_DAYS: Final = 31


@dataclass
class LinkedChild:
    """One child gathered across returns: latest characteristics, one episode per referral date."""

    fields: dict[str, Any]
    source: str
    element: str  # the child's element in its latest return, Child[n]
    episodes: dict[dt.date, dict[str, Any]] = field(default_factory=dict)
    episode_sources: dict[dt.date, str] = field(default_factory=dict)
    episode_elements: dict[dt.date, str] = field(default_factory=dict)  # Child[n]/CINdetails[m] in its return
    extension_lines: dict[dt.date, int] = field(default_factory=dict)
    rank: int = 0  # the place in the reading order of the return the characteristics come from
    episode_ranks: dict[dt.date, int] = field(default_factory=dict)  # and of each episode's return
    open: bool = False  # an episode of it is open as linked so far


_WATCHED: Final = {
    name: "/".join(locate(CHILD, name)[0]) for name in ("birth_date", "sex", "ethnicity", "disabilities")
}


def _shown(value: Any) -> str:
    if value is None:
        return "not given"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def changed_characteristics(
    before: Mapping[str, Any], before_source: str, after: Mapping[str, Any], *, source: str, child_id: str, at: str
) -> Iterable[Problem]:
    """A warning for each watched characteristic the later return gives otherwise than the earlier one."""
    for name, path in _WATCHED.items():
        old, new = before.get(name), after.get(name)
        if name == "disabilities":
            old, new = sorted(old or []), sorted(new or [])
        if old != new and not (name == "birth_date" and old is None):  # born since: not a change
            yield Problem(
                source,
                child_id,
                f"{at}/{path}",
                CHARACTERISTIC_CHANGED,
                f"{path.rsplit('/', 1)[-1]} is {_shown(new)} here but was {_shown(old)} in {before_source}; "
                "the later return's is used",
                Severity.WARNING,
            )


def due_in(episode: Mapping[str, Any], reference_date: dt.date | None) -> bool:
    """Whether a return with this reference date should hold the episode: open at some point in its year."""
    if reference_date is None:
        return False
    start = reference_date.replace(year=reference_date.year - 1) + dt.timedelta(days=1)
    closure = episode.get("closure_date")
    return bool(episode["referral_date"] <= reference_date and (closure is None or closure >= start))


def corrected_referral(
    referral: dt.date, earlier: Mapping[dt.date, Mapping[str, Any]], given: set[dt.date], reference_date: dt.date | None
) -> dt.date | None:
    """The earlier episode's referral date that ``referral`` corrects, if one: the nearest within
    CORRECTION_DAYS of an episode that this return should hold and does not."""
    candidates = [
        old
        for old, episode in earlier.items()
        if old not in given and abs((old - referral).days) <= CORRECTION_DAYS and due_in(episode, reference_date)
    ]
    return min(candidates, key=lambda old: abs((old - referral).days), default=None)
