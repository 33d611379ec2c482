"""Typed dependencies: the audit store, the model being served, the caller's key and role checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audit import (
    ApiKey,
    AuditStore,
    Pseudonymiser,
    ReadKind,
    ScoreRow,
    TeamNotAllowed,
    load_inputs_cipher,
    may_read,
    open_files,
    scoring_team,
    sqlite_files,
)
from features import Role
from models import RiskModel
from serving.auth import MODEL_GENERATION, NO_KEY, authenticate
from serving.reloads import ModelHolder
from serving.settings import ServingSettings

__all__ = [
    "AUTH_RESPONSES",
    "BODY_RESPONSES",
    "Admin",
    "CallerDep",
    "Manager",
    "ModelDep",
    "ModelHolder",
    "PseudonymDep",
    "RoleCheck",
    "ScoringCaller",
    "SettingsDep",
    "StoreDep",
    "System",
    "SystemForTeam",
    "get_model",
    "readable_score",
    "require",
    "shown",
    "start_store",
]

log = logging.getLogger("case_closure_risk.serving")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key, or one that is not valid or has been revoked"},
    403: {"description": "the key's role may not do this"},
    503: {"description": "the audit store cannot be reached or written: nothing was done or recorded; try again"},
}
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body could not be read (it is not UTF-8 text)"}
}


def shown(value: str, limit: int = 80) -> str:
    """A caller's value quoted for a message: control characters escaped, long values cut."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def start_store(settings: ServingSettings) -> AuditStore:
    """The audit store the service writes, checked and migrated: its files (SQLite) and the inputs key must be
    private to the service's user, or it refuses to start (ValueError saying which file and how to fix it); MLflow's
    SQLite store open to others is warned of; a PostgreSQL role that may change audited rows is warned of."""
    exposed = open_files(sqlite_files(settings.database_url))
    if exposed:
        raise ValueError(
            f"the audit store holds personal data but others may read or write {', '.join(exposed)}: "
            "chmod 600 them (and keep the folder private) before starting the service"
        )
    tracking = open_files(sqlite_files(settings.tracking_uri)[:1])
    if tracking:
        log.warning("MLflow's store %s may be read by others: chmod 600 it", tracking[0])
    store = AuditStore(settings.database_url, inputs=load_inputs_cipher(settings.inputs_key_path))
    try:
        store.migrate()
        warning = store.privilege_warning()
    except BaseException:
        store.close()
        raise
    if warning is not None:
        log.warning("%s", warning)
    return store


def get_settings_dep(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> AuditStore:
    store: AuditStore = request.app.state.store
    return store


def get_model(request: Request) -> RiskModel:
    """The model to answer with: this worker's, once it has followed the latest reload recorded in the store (read
    with the caller's key check; read here for a request whose key was not checked first, such as a page's)."""
    holder: ModelHolder = request.app.state.models
    store: AuditStore = request.app.state.store
    generation: int | None = request.scope.get("state", {}).get(MODEL_GENERATION)
    if generation is None:
        generation = store.generations().models
    if not holder.behind(generation):
        return holder.model
    settings: ServingSettings = request.app.state.settings
    return holder.follow(generation, store, model_uri=settings.model_uri)


def get_pseudonymiser(request: Request) -> Pseudonymiser:
    pseudonymiser: Pseudonymiser = request.app.state.pseudonymiser
    return pseudonymiser


SettingsDep = Annotated[ServingSettings, Depends(get_settings_dep)]
StoreDep = Annotated[AuditStore, Depends(get_store)]
ModelDep = Annotated[RiskModel, Depends(get_model)]
PseudonymDep = Annotated[Pseudonymiser, Depends(get_pseudonymiser)]

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer ccr_...`")


def get_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    """The caller's key: checked already, before the body, for a request with one (``serving.auth.AuthGate``); else
    checked now against the cache of verified keys, refusals counted against the client."""
    checked: ApiKey | None = request.scope.get("state", {}).get("caller")
    if checked is not None:
        return checked
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_KEY, headers={"WWW-Authenticate": "Bearer"})
    return authenticate(request.scope, request.app.state.keys, request.app.state.failures)


CallerDep = Annotated[ApiKey, Depends(get_caller)]


class RoleCheck:
    """A dependency that lets through only keys with one of ``roles`` (kept on it, so tests can read them)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    def __call__(self, caller: CallerDep) -> ApiKey:
        if caller.role not in self.roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs a key with role {' or '.join(self.roles)}; this key's role is {caller.role}",
            )
        return caller


def require(*roles: Role) -> Callable[[ApiKey], ApiKey]:
    """A dependency that lets through only keys with one of ``roles``."""
    return RoleCheck(*roles)


System = Annotated[ApiKey, Depends(require(Role.SYSTEM))]
Manager = Annotated[ApiKey, Depends(require(Role.MANAGER))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]


@dataclass(frozen=True)
class ScoringCaller:
    """A system key and the team its scores are recorded for (``audit.access.scoring_team``)."""

    key: ApiKey
    team: str | None


TeamParam = Annotated[
    str | None,
    Query(
        max_length=64,
        description="the team the score is for, named by a key that serves all teams (a key of one team scores for "
        "its own); managers see their own team's scores only, and a score made without a team is read by all-teams "
        "keys only",
    ),
]


def get_scoring_caller(caller: System, team: TeamParam = None) -> ScoringCaller:
    """The team a new score is recorded for: the key's, or the one asked for by a key that serves all teams. An
    all-teams key that names none records the score without a team: all-teams (lead) keys alone then read it."""
    if team is None and (caller.team is None or caller.team == "*"):
        return ScoringCaller(caller, None)
    try:
        return ScoringCaller(caller, scoring_team(caller, team))
    except TeamNotAllowed as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{exc}: {caller.team!r}") from exc
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["query", "team"], "type": "team", "msg": str(exc)}]
        ) from exc


SystemForTeam = Annotated[ScoringCaller, Depends(get_scoring_caller)]


def readable_score(store: AuditStore, key: ApiKey, score_id: str, *, what: ReadKind | None) -> ScoreRow:
    """The score when it exists and the key's team may read it, the read recorded (``what``) before it is returned;
    404 otherwise (another team's score is not said to exist)."""
    row = store.get_score(score_id)
    if row is None or not may_read(key, row):
        named = score_id if score_id.isprintable() and len(score_id) <= 80 else shown(score_id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score {named}")
    if what is not None:
        store.record_read(key_id=key.id, what=what, score_id=row.id)
    return row
