"""Security of the service, checked on every route the app registers (routes added later are covered too).

Keys: every route but the open ones refuses a missing, wrong, revoked or wrong-role key. Keys and personal data
never reach the logs or the store in clear. Every response carries the security headers, HTML pages a strict CSP.
Bodies over the limit are refused whether or not they declare their length; CORS is closed unless configured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import Mount, Route

from audit import ALL_TEAMS, AuditStore
from features import ChildRecord, Role
from serving.app import create_app
from serving.deps import RoleCheck
from serving.security import CONTENT_SECURITY_POLICY, NO_CSP_PATHS, SecurityHeaders
from serving.settings import ServingSettings
from tests.audit.stores import postgres_database, raw_engine

AS_OF = dt.date(2025, 3, 31)
ROLES = ("system", "manager", "admin")
# Open on purpose: liveness and readiness for the orchestrator, the API description, the login form and its CSS.
# "/": the front door only redirects (to the sign-in page or the API description); ReDoc's script is a public file.
OPEN_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {"/docs-assets/redoc.local.js"}
)
OPEN_UI_PATHS = frozenset({"/v1/ui/login"})
LOGIN = "/v1/ui/login"
SESSION_COOKIE = "ccr_session"


def _settings(bundle: Path, tmp_path: Path, **changes: Any) -> ServingSettings:
    values: dict[str, Any] = {
        "model_uri": str(bundle),
        "database_url": f"sqlite:///{tmp_path}/audit.db",
        "pseudonym_key_file": str(tmp_path / "pseudonym.key"),
        "batch_limit": 20,
        "max_body_bytes": 200_000,
        # These tests send every route wrong keys; the limit on refusals is tested in test_fast_path.
        "key_failures_per_minute": 100_000,
    }
    return ServingSettings(**{**values, **changes})


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(bundle, tmp_path)), follow_redirects=False) as test_client:
        yield test_client


def _store(client: TestClient) -> AuditStore:
    store: AuditStore = client.app.state.store  # type: ignore[attr-defined]
    return store


def _keys(client: TestClient) -> dict[str, str]:
    return {
        role: _store(client).create_key(name=f"test-{role}-{uuid.uuid4().hex[:8]}", role=Role(role))[0]
        for role in ROLES
    }


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _body(record: ChildRecord) -> dict[str, Any]:
    return {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}


def _roles_required(dependant: Dependant) -> tuple[str, ...] | None:
    """The roles a route's RoleCheck lets through, found anywhere in its dependency tree (None: no role check)."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleCheck):
            return dependency.call.roles
        found = _roles_required(dependency)
        if found is not None:
            return found
    return None


def _routes(app: FastAPI) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(method, path with parameters filled, roles allowed) for every guarded route of the app."""
    out: list[tuple[str, str, tuple[str, ...] | None]] = []
    for context in iter_route_contexts(app.routes):  # included routers flattened, as FastAPI's OpenAPI does
        route = context.original_route
        if isinstance(route, Mount):
            continue  # static files (CSS), served to anyone
        assert isinstance(route, APIRoute | Route), f"an unknown kind of route: {route!r}"
        full_path = context.path or route.path
        if full_path in OPEN_PATHS or full_path in OPEN_UI_PATHS:
            continue
        path = re.sub(r"\{[^}]+\}", "x", full_path)
        roles = _roles_required(route.dependant) if isinstance(route, APIRoute) else None
        out.extend((method, path, roles) for method in sorted(route.methods or ()) if method != "HEAD")
    return out


def _html(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/html")


def _refused(response: Any) -> bool:
    """401/403 saying why (JSON for the API, a page for HTML); an HTML page may send the browser to the login form."""
    if response.status_code in (401, 403):
        return bool(response.text.strip()) if _html(response) else bool(response.json().get("detail"))
    location = urlsplit(response.headers.get("location", ""))
    return response.status_code in (302, 303, 307) and not location.netloc and location.path == LOGIN


def test_every_guarded_route_refuses_missing_wrong_revoked_and_wrong_role_keys(client: TestClient) -> None:
    keys = _keys(client)
    store = _store(client)
    revoked: dict[str, str] = {}
    for role in ROLES:
        plaintext, record = store.create_key(name=f"revoked-{role}-{uuid.uuid4().hex[:8]}", role=Role(role))
        store.revoke_key(record.id)
        revoked[role] = plaintext
    routes = _routes(client.app)  # type: ignore[arg-type]
    assert {path for _, path, _ in routes} >= {"/v1/score", "/v1/scores/x/decision", "/v1/admin/keys", "/metrics"}
    for method, path, roles in routes:
        where = f"{method} {path}"
        assert _refused(client.request(method, path)), f"{where} without a key"
        assert _refused(client.request(method, path, headers=_auth("ccr_not-a-key"))), f"{where} wrong key"
        assert _refused(client.request(method, path, headers={"Authorization": f"Basic {keys['admin']}"})), where
        for role in ROLES:
            assert _refused(client.request(method, path, headers=_auth(revoked[role]))), f"{where} revoked {role}"
        for role, key in keys.items():
            response = client.request(method, path, headers=_auth(key))
            if (roles is None or role in roles) and _refused(response) and (_html(response) or response.is_redirect):
                continue  # an HTML page may want a login session rather than a bearer key: refused is still safe
            if roles is None or role in roles:
                assert response.status_code not in (401, 403), f"{where} refuses its own role {role}"
            elif _html(response) or response.is_redirect:
                assert _refused(response), f"{where} lets {role} through: {response.status_code}"
            else:
                assert response.status_code == 403, f"{where} lets {role} through: {response.status_code}"
                assert " or ".join(roles) in response.json()["detail"]


def test_open_routes_answer_without_a_key(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 200, path


def test_a_stored_digest_is_not_a_key(client: TestClient) -> None:
    """The store keeps SHA-256 digests: one leaked from a backup must not open the service."""
    keys = _keys(client)
    digest = hashlib.sha256(keys["admin"].encode()).hexdigest()
    assert client.get("/v1/admin/keys", headers=_auth(digest)).status_code == 401
    assert client.get("/v1/admin/keys", headers=_auth(keys["admin"][:-1])).status_code == 401
    assert client.get("/v1/admin/keys", headers=_auth(keys["admin"])).status_code == 200


def test_verify_key_compares_digests_in_constant_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _keys(client)
    compared: list[tuple[str, str]] = []
    compare_digest = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the store calls it as hmac.compare_digest
    assert client.get("/v1/model", headers=_auth(keys["manager"])).status_code == 200
    assert compared, "the key's digest was not compared with hmac.compare_digest"
    for a, b in compared:
        assert len(a) == len(b) == 64  # digests, never the plaintext key
        assert keys["manager"] not in (a, b)


def test_keys_and_personal_data_never_reach_the_logs_or_the_store(
    client: TestClient, open_records: list[ChildRecord], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = _keys(client)
    record = open_records[0]
    score = client.post("/v1/score", json=_body(record), headers=_auth(keys["system"]))
    assert score.status_code == 200
    client.post("/v1/score", json=_body(record), headers=_auth("ccr_wrong-key-that-must-not-be-logged"))
    client.post(f"/v1/scores/{score.json()['score_id']}/decision", headers=_auth(keys["manager"]),
                json={"decision": "close", "reason": "Goals met"})  # fmt: skip
    bad = _body(record)
    bad["record"]["birth_date"] = "not a date"
    client.post("/v1/score", json=bad, headers=_auth(keys["system"]))
    logged = caplog.text
    secrets = [*keys.values(), "ccr_wrong-key-that-must-not-be-logged"]
    personal = [record.la_child_id, record.birth_date.isoformat() if record.birth_date else None]
    for value in [*secrets, *personal]:
        if value:
            assert value not in logged
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert stored, "the audit store wrote nothing"
    for value in [*secrets, *personal]:
        if value:
            assert value.encode() not in stored


def test_every_response_carries_the_security_headers(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    score_id = client.post("/v1/score", json=_body(open_records[0]), headers=_auth(keys["system"])).json()["score_id"]
    seen = 0
    for method, path, roles in _routes(client.app):  # type: ignore[arg-type]
        role = roles[0] if roles else "admin"
        for response in (
            client.request(method, path),
            client.request(method, path.replace("/x", f"/{score_id}"), headers=_auth(keys[role])),
        ):
            seen += 1
            where = f"{method} {path} -> {response.status_code}"
            assert response.headers["x-content-type-options"] == "nosniff", where
            assert response.headers["referrer-policy"] == "no-referrer", where
            assert response.headers["x-frame-options"] == "DENY", where
            assert response.headers["cache-control"] == "no-store", where
            if response.headers.get("content-type", "").startswith("text/html"):
                assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, where
    too_large = client.post("/v1/score", content=b"{" + b" " * 300_000 + b"}", headers=_auth(keys["system"]))
    assert too_large.status_code == 413
    assert too_large.headers["cache-control"] == "no-store"
    assert seen > 10


def test_docs_pages_keep_loading_their_assets(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200
        assert "content-security-policy" not in response.headers, path
        assert response.headers["x-content-type-options"] == "nosniff"


def test_security_headers_give_html_pages_a_strict_csp() -> None:
    """An HTML page with a weaker policy of its own still leaves with the strict one; the docs paths are exempt."""
    app = FastAPI(docs_url=None, redoc_url=None)

    def page() -> HTMLResponse:
        return HTMLResponse("<p>case</p>", headers={"Content-Security-Policy": "default-src *"})

    app.add_api_route("/v1/ui/page", page)
    app.add_api_route(sorted(NO_CSP_PATHS)[0], page)
    app.add_middleware(SecurityHeaders)
    with TestClient(app) as test_client:
        response = test_client.get("/v1/ui/page")
        assert response.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
        assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")  # no script from anywhere
        assert test_client.get(sorted(NO_CSP_PATHS)[0]).headers["content-security-policy"] == "default-src *"


def _login_form(html: str) -> tuple[str, str]:
    """The login form's action and the name of its key field (the password-type input)."""
    form = re.search(r"<form\b[^>]*>", html, re.IGNORECASE)
    assert form is not None, "the login page has no form"
    action = re.search(r'action="([^"]*)"', form.group(), re.IGNORECASE)
    field = re.search(r'<input\b[^>]*type="password"[^>]*>', html, re.IGNORECASE)
    assert field is not None, "the login form has no password field for the key"
    name = re.search(r'name="([^"]+)"', field.group(), re.IGNORECASE)
    assert name is not None
    return (action.group(1) if action and action.group(1) else LOGIN), name.group(1)


def test_login_session_cookie_flags(client: TestClient) -> None:
    if not any(context.path == LOGIN for context in iter_route_contexts(client.app.routes)):  # type: ignore[attr-defined]
        pytest.skip(f"{LOGIN} is not registered on this app: the HTML pages (issue 6) are not merged here")
    keys = _keys(client)
    page = client.get(LOGIN)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    action, field = _login_form(page.text)
    response = client.post(action, data={field: keys["manager"]})
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")]
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookies[0].split(";")[1:]}
    assert "httponly" in flags
    assert "secure" in flags
    assert flags.get("samesite", "").lower() == "samesite=strict"
    assert flags.get("path") == "Path=/"
    assert keys["manager"] not in cookies[0]  # the session is not the key itself
    refused = client.post(action, data={field: "ccr_not-a-key"})
    assert not any(c.startswith(f"{SESSION_COOKIE}=") for c in refused.headers.get_list("set-cookie"))


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"record": "'
    for _ in range(size // 10_000):
        yield b"x" * 10_000
    yield b'"}'


@pytest.mark.parametrize("route", ["/v1/score", "/v1/score/batch", "/v1/scores/x/decision"])
def test_a_body_over_the_limit_is_refused_without_a_declared_length(client: TestClient, route: str) -> None:
    keys = _keys(client)
    role = "manager" if "decision" in route else "system"
    response = client.post(
        route, content=_chunks(400_000), headers={**_auth(keys[role]), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "200000 bytes" in response.json()["detail"]


@pytest.mark.parametrize("method", ["OPTIONS", "GET"])
def test_cors_is_closed_by_default(client: TestClient, method: str) -> None:
    keys = _keys(client)
    headers = {
        **_auth(keys["manager"]),
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    response = client.request(method, "/v1/model", headers=headers)
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_cors_opens_only_to_the_configured_origins(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(bundle, tmp_path, cors_origins="https://cms.example.gov.uk, https://other.example")
    with TestClient(create_app(settings)) as test_client:
        preflight: Callable[[str], Any] = lambda origin: test_client.options(  # noqa: E731
            "/v1/model",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        allowed = preflight("https://cms.example.gov.uk")
        assert allowed.headers["access-control-allow-origin"] == "https://cms.example.gov.uk"
        assert "access-control-allow-credentials" not in allowed.headers
        refused = preflight("https://elsewhere.example")
        assert refused.headers.get("access-control-allow-origin") is None


# --- need-to-know, personal data at rest, idle sessions ---------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def team_client(request: pytest.FixtureRequest, bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a fresh audit store of each backend."""
    if request.param == "sqlite":
        settings = _settings(bundle, tmp_path)
        with TestClient(create_app(settings), follow_redirects=False) as test_client:
            yield test_client
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        settings = _settings(bundle, tmp_path, database_url=url)
        with TestClient(create_app(settings), follow_redirects=False) as test_client:
            yield test_client


def _team_keys(client: TestClient) -> dict[str, str]:
    store, suffix = _store(client), uuid.uuid4().hex[:8]
    made = {
        "system": store.create_key(name=f"cms-{suffix}", role=Role.SYSTEM, team=ALL_TEAMS),
        "north": store.create_key(name=f"north-{suffix}", role=Role.MANAGER, team="North"),
        "south": store.create_key(name=f"south-{suffix}", role=Role.MANAGER, team="South"),
        "lead": store.create_key(name=f"lead-{suffix}", role=Role.MANAGER, team=ALL_TEAMS),
        "admin": store.create_key(name=f"admin-{suffix}", role=Role.ADMIN),
    }
    return {name: plaintext for name, (plaintext, _) in made.items()}


def test_a_manager_of_one_team_cannot_read_another_teams_score_or_report(
    team_client: TestClient, open_records: list[ChildRecord]
) -> None:
    client, keys = team_client, _team_keys(team_client)
    scored = client.post("/v1/score?team=North", json=_body(open_records[0]), headers=_auth(keys["system"]))
    assert scored.status_code == 200, scored.text
    score_id = scored.json()["score_id"]
    paths = [f"/v1/scores/{score_id}", f"/v1/scores/{score_id}/decision", f"/v1/scores/{score_id}/report",
             f"/v1/scores/{score_id}/report.pdf"]  # fmt: skip
    for path in paths:
        assert client.get(path, headers=_auth(keys["south"])).status_code == 404, path
    decided = client.post(f"/v1/scores/{score_id}/decision", headers=_auth(keys["south"]),
                          json={"decision": "close", "reason": "not my team's case"})  # fmt: skip
    assert decided.status_code == 404
    south_queue = client.get("/v1/ui/queue", headers=_auth(keys["south"]))
    assert south_queue.status_code == 200
    assert score_id not in south_queue.text
    for reader in ("north", "lead"):
        for path in paths[:3]:
            assert client.get(path, headers=_auth(keys[reader])).status_code == 200, (reader, path)
    assert score_id in client.get("/v1/ui/queue", headers=_auth(keys["north"])).text

    reads = client.get(f"/v1/admin/reads?score_id={score_id}", headers=_auth(keys["admin"]))
    assert reads.status_code == 200
    north, lead = (_store(client).verify_key(keys[name]) for name in ("north", "lead"))
    assert north is not None
    assert lead is not None
    assert sorted((r["key_id"], r["what"]) for r in reads.json()) == sorted(
        (key.id, what) for key in (north, lead) for what in ("score", "decisions", "report")
    )  # the refused reads were not shown, so not recorded as reads
    queue_reads = client.get(f"/v1/admin/reads?key_id={north.id}", headers=_auth(keys["admin"])).json()
    assert queue_reads[0]["what"] == "queue"
    assert client.get("/v1/admin/reads", headers=_auth(keys["north"])).status_code == 403
    assert _store(client).verify_chain().problems == []


def test_a_score_carries_the_team_of_its_key_or_of_the_request(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    store = _store(client)
    north = store.create_key(name="north-system", role=Role.SYSTEM, team="North")[0]
    lead = store.create_key(name="lead-system", role=Role.SYSTEM, team=ALL_TEAMS)[0]
    body = _body(open_records[0])
    own = client.post("/v1/score", json=body, headers=_auth(north))
    assert own.status_code == 200
    assert store.get_score(own.json()["score_id"]).team == "North"  # type: ignore[union-attr]
    assert client.post("/v1/score?team=South", json=body, headers=_auth(north)).status_code == 403
    named = client.post("/v1/score/batch?team=South", json={"cases": [body]}, headers=_auth(lead))
    assert named.status_code == 200
    assert store.get_score(named.json()["scores"][0]["score_id"]).team == "South"  # type: ignore[union-attr]
    invalid = client.post("/v1/score?team=%2A", json=body, headers=_auth(lead))
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["query", "team"]


def test_stored_inputs_are_sealed_and_the_api_opens_them(
    client: TestClient, open_records: list[ChildRecord], tmp_path: Path
) -> None:
    store = _store(client)
    system, manager = (store.create_key(name=f"k-{role}", role=role)[0] for role in (Role.SYSTEM, Role.MANAGER))
    scored = client.post("/v1/score?reasons=all", json=_body(open_records[0]), headers=_auth(system)).json()
    engine = raw_engine(f"sqlite:///{tmp_path}/audit.db")
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT features, reasons, sealed_inputs FROM scores")).one()
    finally:
        engine.dispose()
    assert (stored.features, stored.reasons) == ("null", "null")
    assert stored.sealed_inputs
    read = client.get(f"/v1/scores/{scored['score_id']}", headers=_auth(manager)).json()
    assert read["reasons"] == scored["reasons"]  # opened exactly as answered
    assert {r["feature"]: r["value"] for r in read["reasons"]} == read["features"]
    assert stat.S_IMODE((tmp_path / "inputs.key").stat().st_mode) == 0o600


def test_an_idle_page_session_is_signed_out(bundle: Path, tmp_path: Path) -> None:
    settings = _settings(bundle, tmp_path, session_idle_minutes=30)
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as client:
        manager = _store(client).create_key(name="manager", role=Role.MANAGER, team="North")[0]
        assert client.post(LOGIN, data={"api_key": manager}).status_code == 303
        assert client.get("/v1/ui/queue").status_code == 200
        engine = raw_engine(settings.database_url)
        try:
            with engine.begin() as connection:
                idle_since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)).replace(tzinfo=None)
                connection.execute(text("UPDATE ui_sessions SET last_seen_at = :at"), {"at": idle_since})
        finally:
            engine.dispose()
        signed_out = client.get("/v1/ui/queue")
        assert signed_out.status_code == 303
        assert urlsplit(signed_out.headers["location"]).path == LOGIN


@pytest.mark.parametrize("name", ["audit.db", "audit.db-wal"])
def test_the_service_refuses_to_start_on_a_store_others_may_read(bundle: Path, tmp_path: Path, name: str) -> None:
    settings = _settings(bundle, tmp_path)
    store = AuditStore(settings.database_url)
    store.migrate()
    store.close()
    (tmp_path / name).touch()
    os.chmod(tmp_path / name, 0o644)
    with pytest.raises(ValueError, match=rf"{name} \(mode 0644\).*chmod 600"), TestClient(create_app(settings)):
        pass


def test_the_service_refuses_to_start_with_an_inputs_key_others_may_read(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "inputs.key").write_bytes(os.urandom(32))
    os.chmod(tmp_path / "inputs.key", 0o640)
    with (
        pytest.raises(ValueError, match="inputs key's mode is 0640"),
        TestClient(create_app(_settings(bundle, tmp_path))),
    ):
        pass
