"""``/v1/admin``: reload the champion; create, list and revoke API keys; list the recorded reads of scores."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from audit import ALL_TEAMS, KeyNameTaken, ReadRow, check_team
from features import Role
from models.registry import ModelUnavailableError, load_model_uri
from serving.deps import AUTH_RESPONSES, Admin, ModelHolder, SettingsDep, StoreDep, shown
from serving.reloads import bundle_digest
from serving.security import security_event

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reload",
    summary="Load the current champion in every worker process; requests in flight finish",
    responses={
        **AUTH_RESPONSES,
        409: {"description": "the model's files fail their checks (changed since training): the old model is kept"},
        503: {
            "description": "the audit store cannot be reached or written, or the model registry or bundle cannot be "
            "read now: nothing was done, the old model is kept; try again"
        },
    },
)
def reload_model(caller: Admin, request: Request, settings: SettingsDep, store: StoreDep) -> dict[str, str]:
    """The worker that takes this request loads the champion, records the reload in the audit store (chained: when,
    by which key, the version and its bundle's digest) and serves it; every other worker process loads that same
    version, its bundle checked against the recorded digest, before it answers its next request. A version that
    fails its checks is served by none. Answers the version now served and the one before."""
    holder: ModelHolder = request.app.state.models
    with holder.loading():  # one load at a time in this worker
        try:  # loaded before the swap: requests keep being served meanwhile, and a refused model is never swapped in
            model = load_model_uri(settings.model_uri)
        except (ModelUnavailableError, OSError) as exc:
            security_event("model_reload_failed", by=caller.id)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the model was not reloaded: {exc}") from exc
        except ValueError as exc:  # ModelRefusedError among them
            security_event("model_reload_refused", by=caller.id)
            raise HTTPException(status.HTTP_409_CONFLICT, f"the model was refused and not reloaded: {exc}") from exc
        digest = bundle_digest(model)
        # Recorded before the swap: a store that cannot take it leaves every worker on the old model (503).
        reload = store.record_reload(reloaded_by=caller.id, model_name=model.name, model_version=model.version,
                                     bundle_digest=digest)  # fmt: skip
        previous = holder.swap(model, generation=reload.generation, digest=digest)
    security_event("model_reloaded", by=caller.id, version=model.version, previous_version=previous.version,
                   generation=str(reload.generation))  # fmt: skip
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
    team: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            description="the team whose cases the key serves, or `*` for all teams (a lead's key, the default)",
        ),
    ] = ALL_TEAMS,
) -> dict[str, str]:
    try:
        team = check_team(team)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["query", "team"], "type": "team", "msg": str(exc)}]
        ) from exc
    try:
        plaintext, key = store.create_key(name=name, role=role, created_by=caller.id, team=team)
    except KeyNameTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"another API key is named {shown(name)}") from exc
    security_event("key_created", key_id=key.id, role=key.role, by=caller.id)
    return {"id": key.id, "name": key.name, "role": key.role, "team": team, "key": plaintext}


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
            "team": k.team,
        }
        for k in store.list_keys()
    ]


def read_entry(row: ReadRow) -> dict[str, str | None]:
    return {"id": row.id, "key_id": row.key_id, "what": row.what, "score_id": row.score_id,
            "read_at": row.read_at.isoformat()}  # fmt: skip


@router.get(
    "/reads",
    summary="Recorded reads of scores, decisions, reports and the queue: who (key id), when, which; newest first",
    responses=AUTH_RESPONSES,
)
def list_reads(
    caller: Admin,
    store: StoreDep,
    score_id: Annotated[str | None, Query(max_length=100, description="reads of this score only")] = None,
    key_id: Annotated[str | None, Query(max_length=100, description="reads by this key only")] = None,
    since: Annotated[
        dt.datetime | None, Query(description="reads at or after this moment (with its time zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, str | None]]:
    if since is not None and since.utcoffset() is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["query", "since"], "type": "timezone", "msg": "give the moment's time zone, e.g. Z or +01:00"}],
        )
    return [read_entry(r) for r in store.reads(score_id=score_id, key_id=key_id, since=since, limit=limit)]


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
