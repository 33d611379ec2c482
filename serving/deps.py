"""Typed dependencies: the audit store, the model being served, the caller's key and role checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audit import ApiKey, AuditStore, Pseudonymiser
from features import Role
from models import RiskModel
from serving.auth import NO_KEY, authenticate
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
    "SettingsDep",
    "StoreDep",
    "System",
    "require",
    "shown",
]

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


class ModelHolder:
    """The model being served. A reload swaps the reference in one assignment: a request keeps the model it got."""

    def __init__(self, model: RiskModel) -> None:
        model.explainer  # noqa: B018 (built now, at start-up, rather than in the first request)
        self._model = model
        self._lock = threading.Lock()

    @property
    def model(self) -> RiskModel:
        return self._model

    def swap(self, model: RiskModel) -> RiskModel:
        model.explainer  # noqa: B018 (built before the swap: requests keep being served meanwhile)
        with self._lock:
            previous, self._model = self._model, model
        return previous


def get_settings_dep(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> AuditStore:
    store: AuditStore = request.app.state.store
    return store


def get_model(request: Request) -> RiskModel:
    holder: ModelHolder = request.app.state.models
    return holder.model


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
