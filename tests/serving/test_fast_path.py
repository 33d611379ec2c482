"""The scoring fast path against the documented one, and the key checked before any work (auth before the body,
refusals limited per client, a revocation seen at once by every worker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features import ChildRecord, Role
from serving.app import create_app
from serving.routers.scoring import _REQUESTS
from serving.schemas import BatchResponse, ScoreResponse
from serving.settings import ServingSettings
from tests.serving.test_api import _auth, _body

_IDS = ("score_id", "request_id", "created_at", "report_url")  # made anew for each request


def _settings(bundle: Path, tmp_path: Path, **more: Any) -> ServingSettings:
    return ServingSettings(model_uri=str(bundle), database_url=f"sqlite:///{tmp_path}/audit.db",
                           pseudonym_key_file=str(tmp_path / "pseudonym.key"), **more)  # fmt: skip


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(bundle, tmp_path, key_failures_per_minute=3))) as test_client:
        yield test_client


def _key(client: TestClient, role: Role = Role.SYSTEM, name: str = "fast") -> tuple[str, str]:
    plaintext, key = client.app.state.store.create_key(name=f"{name}-{role}", role=role)  # type: ignore[attr-defined]
    return plaintext, key.id


def _documented(body: dict[str, Any]) -> dict[str, Any]:
    """The same case in a body the fast decoder hands on (pydantic strips the id's padding: the same record)."""
    padded: dict[str, Any] = json.loads(json.dumps(body))
    padded["record"]["la_child_id"] = f" {padded['record']['la_child_id']} "
    return padded


def _without_ids(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in _IDS}


@pytest.mark.parametrize("reasons", ["top", "all"])
def test_fast_path_answers_exactly_as_the_documented_path(
    client: TestClient, open_records: list[ChildRecord], reasons: str
) -> None:
    system, _ = _key(client)
    compared = 0
    for record in open_records[:8]:
        body = _body(record)
        assert _REQUESTS.decode_fast(json.dumps(body).encode()) is not None  # this one takes the fast path
        assert _REQUESTS.decode_fast(json.dumps(_documented(body)).encode()) is None  # this one does not
        fast = client.post(f"/v1/score?reasons={reasons}", json=body, headers=_auth(system))
        slow = client.post(f"/v1/score?reasons={reasons}", json=_documented(body), headers=_auth(system))
        if slow.status_code == 422:  # no open episode: both refuse alike
            assert fast.json() == slow.json()
            continue
        assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
        assert list(fast.json()) == list(slow.json())  # the same fields in the same order
        assert _without_ids(fast.json()) == _without_ids(slow.json())
        assert ScoreResponse.model_validate(fast.json()).model_dump(mode="json") == fast.json()
        compared += 1
    assert compared >= 3


def test_fast_batch_answers_as_the_documented_batch(client: TestClient, open_records: list[ChildRecord]) -> None:
    system, _ = _key(client)
    cases = [_body(r) for r in open_records[:3]]
    fast = client.post("/v1/score/batch", json={"cases": cases}, headers=_auth(system))
    slow = client.post("/v1/score/batch", json={"cases": [_documented(c) for c in cases]}, headers=_auth(system))
    assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
    assert BatchResponse.model_validate(fast.json()).model_dump(mode="json") == fast.json()
    assert [_without_ids(s) for s in fast.json()["scores"]] == [_without_ids(s) for s in slow.json()["scores"]]


def test_fast_path_refuses_as_the_documented_path(client: TestClient, open_records: list[ChildRecord]) -> None:
    system, _ = _key(client)
    manager, _ = _key(client, Role.MANAGER)
    body = _body(open_records[0])
    future = {**body, "as_of": "2999-01-01"}
    assert client.post("/v1/score", json=future, headers=_auth(system)).json()["detail"][0]["type"] == "as_of_in_future"
    wrong_role = client.post("/v1/score", json=body, headers=_auth(manager))
    assert wrong_role.status_code == 403
    assert client.post("/v1/score?reasons=some", json=body, headers=_auth(system)).status_code == 422


def _asgi_post(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST /v1/score straight to the ASGI app with a body that never finishes arriving: the answer's status and
    how many times the app asked for the body."""
    asked = 0
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        await asyncio.sleep(3600)  # half-sent: a body that would keep the route waiting
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"15000000"), *headers],
             "client": ("203.0.113.9", 5000), "server": ("testserver", 80)}  # fmt: skip

    async def main() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=30)

    asyncio.run(main())
    return answered[0], asked


def test_keyless_and_wrongly_keyed_bodies_are_refused_before_a_byte_is_read(client: TestClient) -> None:
    assert _asgi_post(client.app, []) == (401, 0)
    assert _asgi_post(client.app, [(b"authorization", b"Bearer ccr_wrong")]) == (401, 0)


def test_refused_keys_are_limited_per_client_with_429(client: TestClient, open_records: list[ChildRecord]) -> None:
    system, _ = _key(client)
    for _ in range(3):
        assert client.get("/v1/model", headers=_auth("ccr_guess")).status_code == 401
    limited = client.post("/v1/score", json=_body(open_records[0]), headers=_auth("ccr_guess"))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get("/v1/model", headers=_auth(system)).status_code == 429  # the client waits, whatever its key
    assert _asgi_post(client.app, [(b"authorization", b"Bearer ccr_guess")]) == (401, 0)  # another client


def test_a_revocation_reaches_every_worker_at_once(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(bundle, tmp_path)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        manager, key_id = _key(one, Role.MANAGER, "revoked")
        for worker in (one, two):  # each worker has the key in its cache
            assert worker.get("/v1/model", headers=_auth(manager)).status_code == 200
        one.app.state.store.revoke_key(key_id)  # type: ignore[attr-defined]
        for worker in (one, two):
            assert worker.get("/v1/model", headers=_auth(manager)).status_code == 401


def test_a_refused_upload_closes_its_connection_so_its_body_is_never_drained(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    """Kept alive, the server would read and discard the rest of a refused 15 MB body to reuse the connection."""
    refused = client.post("/v1/score", json=_body(open_records[0]), headers=_auth("ccr_wrong"))
    assert refused.status_code == 401
    assert refused.headers["connection"] == "close"
    system, _ = _key(client)
    accepted = client.post("/v1/score", json=_body(open_records[0]), headers=_auth(system))
    assert accepted.status_code == 200
    assert accepted.headers.get("connection") != "close"  # a caller with a key keeps its connection
