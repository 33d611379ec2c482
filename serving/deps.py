"""Typed dependencies: the audit store, the model being served, the caller's key and role checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from models import RiskModel
from serving.pseudonym import Pseudonymiser
from serving.settings import ServingSettings
from serving.store import ApiKey, AuditStore

__all__ = [
    "CallerDep",
    "ModelDep",
    "ModelHolder",
    "PseudonymDep",
    "RoleCheck",
    "SettingsDep",
    "StoreDep",
    "require",
]


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
    store: StoreDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = store.verify_key(credentials.credentials)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API key is not valid or has been revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


CallerDep = Annotated[ApiKey, Depends(get_caller)]


class RoleCheck:
    """A dependency that lets through only keys with one of ``roles`` (kept on it, so tests can read them)."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    def __call__(self, caller: CallerDep) -> ApiKey:
        if caller.role not in self.roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs a key with role {' or '.join(self.roles)}; this key's role is {caller.role}",
            )
        return caller


def require(*roles: str) -> Callable[[ApiKey], ApiKey]:
    """A dependency that lets through only keys with one of ``roles``."""
    return RoleCheck(*roles)
