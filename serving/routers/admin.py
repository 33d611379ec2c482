"""``/v1/admin``: reload the champion, and create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from audit import KeyNameTaken
from features import Role
from models.registry import ModelUnavailableError, load_model_uri
from serving.deps import AUTH_RESPONSES, Admin, ModelHolder, SettingsDep, StoreDep, shown
from serving.metrics import ServiceMetrics
from serving.security import security_event

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reload",
    summary="Load the current champion; requests in flight finish",
    responses={
        **AUTH_RESPONSES,
        409: {"description": "the model's files fail their checks (changed since training): the old model is kept"},
        503: {
            "description": "the audit store cannot be reached or written, or the model registry or bundle cannot be "
            "read now: nothing was done, the old model is kept; try again"
        },
    },
)
def reload_model(caller: Admin, request: Request, settings: SettingsDep) -> dict[str, str]:
    try:  # loaded before the swap: requests keep being served meanwhile, and a refused model is never swapped in
        model = load_model_uri(settings.model_uri)
    except (ModelUnavailableError, OSError) as exc:
        security_event("model_reload_failed", by=caller.id)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the model was not reloaded: {exc}") from exc
    except ValueError as exc:  # ModelRefusedError among them
        security_event("model_reload_refused", by=caller.id)
        raise HTTPException(status.HTTP_409_CONFLICT, f"the model was refused and not reloaded: {exc}") from exc
    holder: ModelHolder = request.app.state.models
    previous = holder.swap(model)
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.serving(model.name, model.version)
    security_event("model_reloaded", by=caller.id, version=model.version, previous_version=previous.version)
    return {"previous_version": previous.version, "version": model.version}


@router.post(
    "/keys",
    status_code=201,
    summary="Create an API key (shown once)",
    responses={**AUTH_RESPONSES, 409: {"description": "another key has this name: names must be unique"}},
)
def create_key(
    caller: Admin,
    store: StoreDep,
    name: Annotated[str, Query(min_length=1, max_length=100)],
    role: Annotated[Role, Query()],
) -> dict[str, str]:
    try:
        plaintext, key = store.create_key(name=name, role=role, created_by=caller.id)
    except KeyNameTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"another API key is named {shown(name)}") from exc
    security_event("key_created", key_id=key.id, role=key.role, by=caller.id)
    return {"id": key.id, "name": key.name, "role": key.role, "key": plaintext}


@router.get("/keys", summary="API keys (never the keys themselves)", responses=AUTH_RESPONSES)
def list_keys(caller: Admin, store: StoreDep) -> list[dict[str, str | None]]:
    return [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            "created_by": k.created_by,
            "revoked_by": k.revoked_by,
        }
        for k in store.list_keys()
    ]


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    responses={**AUTH_RESPONSES, 404: {"description": "no such key"}},
)
def revoke_key(key_id: str, caller: Admin, store: StoreDep) -> Response:
    if not store.revoke_key(key_id, revoked_by=caller.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key with id {shown(key_id)}")
    security_event("key_revoked", key_id=key_id, by=caller.id)
    return Response(status_code=204)
