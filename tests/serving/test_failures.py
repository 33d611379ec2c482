"""Honest failures: a store that cannot be written or reached gives 503 with its reason on every route, never a
bare 500, leaves nothing half written, and makes ``/readyz`` answer 503; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from audit import AuditStore
from features import ChildRecord, Role
from serving.app import create_app
from serving.settings import ServingSettings
from tests.audit.stores import AUDIT_TABLES, count_rows, postgres_database, raw_engine

AS_OF = dt.date(2025, 3, 31)
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2"


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own: the test makes it read-only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        yield url


@pytest.fixture
def client(bundle: Path, own_database: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=own_database,
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as test_client:
        yield test_client


def _store(client: TestClient) -> AuditStore:
    store: AuditStore = client.app.state.store  # type: ignore[attr-defined]
    return store


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _body(record: ChildRecord) -> dict[str, Any]:
    return {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}


def _make_read_only(engine: Engine, url: str) -> None:
    """From outside the store: the database refuses every write on every new connection."""
    if engine.dialect.name == "sqlite":

        def query_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA query_only = ON")

        event.listen(engine, "connect", query_only)
    else:
        admin = raw_engine(url)
        try:
            with admin.begin() as connection:
                name = engine.url.database
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            admin.dispose()
    engine.dispose()  # the pooled connections were opened writable


def _counts(url: str) -> dict[str, int]:
    return {table: count_rows(url, table) for table in AUDIT_TABLES}


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert "audit store" in response.text


def test_read_only_store_gives_503_on_every_write_and_readyz(
    client: TestClient, own_database: str, open_records: list[ChildRecord]
) -> None:
    store = _store(client)
    system, _ = store.create_key(name="cms", role=Role.SYSTEM)
    manager, _ = store.create_key(name="manager", role=Role.MANAGER)
    admin, other = store.create_key(name="admin", role=Role.ADMIN)
    score = client.post("/v1/score", json=_body(open_records[0]), headers=_auth(system)).json()
    signed_in = client.post("/v1/ui/login", data={"api_key": manager, "next": "/v1/ui/queue"})
    assert signed_in.status_code == 303
    report = client.get(f"/v1/scores/{score['score_id']}/report")
    csrf = re.search(r'name="csrf" value="([^"]+)"', report.text)
    assert csrf is not None
    assert client.get("/readyz").status_code == 200
    _make_read_only(store.engine, own_database)
    before = _counts(own_database)

    _assert_unavailable(client.post("/v1/score", json=_body(open_records[1]), headers=_auth(system)))
    decision = {"decision": "close", "reason": "Work finished"}
    _assert_unavailable(client.post(f"/v1/scores/{score['score_id']}/decision", json=decision, headers=_auth(manager)))
    form = {"csrf": csrf.group(1), "agreement": "agree", **decision}
    page = client.post(f"/v1/ui/scores/{score['score_id']}/decision", data=form)
    _assert_unavailable(page)
    assert page.headers["content-type"].startswith("text/html")  # a page's refusal is a page
    client.cookies.clear()
    _assert_unavailable(client.post("/v1/ui/login", data={"api_key": manager, "next": "/v1/ui/queue"}))
    _assert_unavailable(client.post("/v1/admin/keys?name=new&role=manager", headers=_auth(admin)))
    _assert_unavailable(client.delete(f"/v1/admin/keys/{other.id}", headers=_auth(admin)))
    readyz = client.get("/readyz")
    _assert_unavailable(readyz)
    # A score is shown only once its read is recorded (issue 17, need-to-know): no record, no read.
    _assert_unavailable(client.get(f"/v1/scores/{score['score_id']}", headers=_auth(manager)))
    assert _counts(own_database) == before


def test_unreachable_postgres_gives_503_not_500(bundle: Path, tmp_path: Path, open_records: list[ChildRecord]) -> None:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as client:
        client.app.state.store = AuditStore(UNREACHABLE_POSTGRES)  # type: ignore[attr-defined]
        key = "ccr_" + "x" * 43  # the key check itself reaches for the store
        calls = [
            client.post("/v1/score", json=_body(open_records[0]), headers=_auth(key)),
            client.get("/v1/scores/abc", headers=_auth(key)),
            client.post("/v1/scores/abc/decision", json={"decision": "close", "reason": "done"}, headers=_auth(key)),
            client.post("/v1/admin/keys?name=new&role=manager", headers=_auth(key)),
            client.get("/v1/admin/keys", headers=_auth(key)),
            client.get("/metrics", headers=_auth(key)),
            client.post("/v1/ui/login", data={"api_key": key}),
            client.get("/v1/ui/queue", headers=_auth(key)),
            client.get("/readyz"),
        ]
        for response in calls:
            _assert_unavailable(response)
        assert client.get("/healthz").status_code == 200
