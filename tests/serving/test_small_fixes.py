"""The review's smaller findings: hidden characters in decision reasons, the pseudonym key created race-free with
mode 0600 and checked, and security events logged as structured lines without names or values."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit import load_or_create_key
from features import Role
from serving.app import create_app
from serving.schemas import hidden_characters
from serving.settings import ServingSettings
from tests.audit.stores import run_together


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as test_client:
        yield test_client


@pytest.mark.parametrize("hidden", ["\u202e", "\u2066", "\x00", "\x1b[31m", "\u200b"])
def test_decision_reason_with_control_or_bidirectional_characters_gets_422(client: TestClient, hidden: str) -> None:
    key = client.app.state.store.create_key(name="manager", role=Role.MANAGER)[0]  # type: ignore[attr-defined]
    body = {"decision": "close", "reason": f"Plan done {hidden}evil"}
    response = client.post("/v1/scores/x/decision", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]
    assert hidden_characters("Line one\r\nline two\twith a tab") == []


def test_pseudonym_key_is_created_once_by_racing_workers_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "pseudonym.key"
    keys = run_together(8, lambda i: load_or_create_key(path))
    assert all(isinstance(k, bytes) for k in keys), keys
    assert len(set(keys)) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temporary file left


def test_pseudonym_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(ValueError, match="0644"):
        load_or_create_key(path)


def test_security_events_are_structured_lines_without_names_or_keys(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="case_closure_risk.security")
    store = client.app.state.store  # type: ignore[attr-defined]
    admin, admin_key = store.create_key(name="Jane Admin", role=Role.ADMIN)
    auth = {"Authorization": f"Bearer {admin}"}
    assert client.get("/v1/admin/keys", headers={"Authorization": "Bearer ccr_wrong"}).status_code == 401
    made = client.post("/v1/admin/keys?name=Joe%20Manager&role=manager", headers=auth).json()
    assert client.post("/v1/ui/login", data={"api_key": "ccr_wrong"}).status_code == 401
    assert client.post("/v1/ui/login", data={"api_key": made["key"]}).status_code == 303
    assert client.delete(f"/v1/admin/keys/{made['id']}", headers=auth).status_code == 204
    assert client.post("/v1/admin/reload", headers=auth).status_code == 200
    events = [
        json.loads(r.getMessage().removeprefix("security ")) for r in caplog.records if r.name.endswith("security")
    ]
    assert [e["event"] for e in events] == [
        "key_refused", "key_created", "sign_in_refused", "signed_in", "key_revoked", "model_reloaded"
    ]  # fmt: skip
    assert events[1] == {"event": "key_created", "key_id": made["id"], "role": "manager", "by": admin_key.id}
    for secret in ("Jane", "Joe", "ccr_wrong", made["key"], admin):
        assert secret not in caplog.text
