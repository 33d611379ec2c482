"""Need-to-know: which team's cases a key may score and read.

Every API key and page session serves one team, or all teams (``ALL_TEAMS``, a lead's key). Every score records
the team that asked for it: the system key's team, or, for a key that serves all teams, the team the request names.
A manager reads the scores, reports and queue of the key's team only. Keys and scores stored before revision 0005
have no team (None): such a key reads as all teams (revoke it and make one with a team); such a score is read by
all-teams keys only.
"""

from __future__ import annotations

import re

from audit.rows import ApiKey, ScoreRow
from features import Role

__all__ = [
    "ALL_TEAMS",
    "TeamNotAllowed",
    "check_team",
    "is_lead",
    "may_read",
    "scoring_team",
    "serves_all_teams",
    "visible_teams",
]

ALL_TEAMS = "*"
_TEAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")


class TeamNotAllowed(PermissionError):  # noqa: N818 (reads as what happened)
    """The key may not act for that team."""


def check_team(team: str) -> str:
    """A team name as stored: 1 to 64 letters, digits, spaces, dots, dashes or underscores (first a letter or digit),
    or ``ALL_TEAMS``. Raises ValueError naming the rule."""
    team = team.strip()
    if team == ALL_TEAMS or _TEAM.fullmatch(team):
        return team
    raise ValueError(
        f"a team is {ALL_TEAMS!r} (all teams) or 1 to 64 letters, digits, spaces, '.', '-' or '_', "
        "beginning with a letter or digit"
    )


def serves_all_teams(key: ApiKey) -> bool:
    return key.team is None or key.team == ALL_TEAMS


def is_lead(key: ApiKey) -> bool:
    """A lead: a manager whose key serves every team (the review of decisions is theirs), or an admin."""
    return key.role == Role.ADMIN or (key.role == Role.MANAGER and serves_all_teams(key))


def visible_teams(key: ApiKey) -> frozenset[str] | None:
    """The teams whose scores the key may read; None: every team's (and scores stored without a team)."""
    return None if serves_all_teams(key) else frozenset({str(key.team)})


def may_read(key: ApiKey, row: ScoreRow) -> bool:
    """Whether the key may read this score (and its decisions and report)."""
    teams = visible_teams(key)
    return teams is None or row.team in teams


def scoring_team(key: ApiKey, asked: str | None) -> str:
    """The team a new score is recorded for: the key's own team, or, for an all-teams key, the team asked for.

    Raises ValueError when an all-teams key names no team (or an invalid one), TeamNotAllowed when a team's key
    asks for another team."""
    if serves_all_teams(key):
        if asked is None or not asked.strip():
            raise ValueError("this key serves all teams: name the team the score is for (?team=...)")
        team = check_team(asked)
        if team == ALL_TEAMS:
            raise ValueError(f"a score is made for one team, not {ALL_TEAMS!r}")
        return team
    if asked is not None and asked.strip() and asked.strip() != key.team:
        raise TeamNotAllowed("this key scores for its own team only")
    return str(key.team)
