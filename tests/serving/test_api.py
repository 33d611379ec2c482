"""The scoring API through the real app (lifespan included), a real model bundle and a real audit store."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shap
from fastapi.testclient import TestClient

from features import ChildRecord, record_as_of
from models import RiskModel, rescore_stored
from serving.app import create_app
from serving.settings import ServingSettings
from tests.models.oracle import expected_scores

SNAPSHOT = Path(__file__).parent / "openapi.json"
AS_OF = dt.date(2025, 3, 31)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def client(bundle: Path, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=database_url,
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
        batch_limit=20,
        max_body_bytes=2_000_000,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _keys(client: TestClient) -> dict[str, str]:
    store = client.app.state.store  # type: ignore[attr-defined]
    return {
        role: store.create_key(name=f"test-{role}-{uuid.uuid4().hex[:8]}", role=role)[0]
        for role in ("system", "manager", "admin")
    }


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _body(record: ChildRecord, as_of: dt.date | None = AS_OF) -> dict[str, Any]:
    body: dict[str, Any] = {"record": json.loads(record.model_dump_json(exclude_none=True))}
    if as_of is not None:
        body["as_of"] = as_of.isoformat()
    return body


def _model(client: TestClient) -> RiskModel:
    model: RiskModel = client.app.state.models.model  # type: ignore[attr-defined]
    return model


def test_score_equals_the_bundle_and_is_stored_before_it_returns(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    record = open_records[0]
    response = client.post("/v1/score", json=_body(record), headers=_auth(keys["system"]))
    assert response.status_code == 200, response.text
    body = response.json()
    (expected,) = expected_scores(_model(client), [record], AS_OF)
    assert body["probability"] == expected.probability
    assert body["band"] == expected.band
    assert len(body["reasons"]) == 5
    stored = client.app.state.store.get_score(body["score_id"])  # type: ignore[attr-defined]
    assert stored is not None
    assert stored.probability == body["probability"]
    assert record.la_child_id not in stored.case_id
    # Re-scoring the stored model input with the same model version reproduces the score exactly.
    assert rescore_stored(_model(client), stored.features) == (stored.probability, stored.raw_score)


def test_score_explanations_are_exact_treeshap(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    record = open_records[1]
    body = client.post("/v1/score?reasons=all", json=_body(record), headers=_auth(keys["system"])).json()
    contributions = {r["feature"]: r["contribution"] for r in body["reasons"]}
    assert len(contributions) == len(_model(client).feature_spec)
    assert abs(body["base_value"] + sum(contributions.values()) - body["raw_score"]) < 1e-9
    from features import build_features

    frame = build_features([record], AS_OF)
    x = RiskModel.model_input(frame)
    explainer = shap.TreeExplainer(_model(client).booster, feature_perturbation="tree_path_dependent")
    with pytest.warns(UserWarning, match="LightGBM binary classifier"):
        reference = np.asarray(explainer.shap_values(x))[0]
    ours = np.array([contributions[name] for name in x.columns])
    assert np.max(np.abs(ours - reference)) < 1e-6
    assert abs(float(np.ravel(explainer.expected_value)[0]) - body["base_value"]) < 1e-6


def test_score_as_of_an_earlier_date_ignores_later_events(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    record = next(r for r in open_records if (AS_OF - r.episodes[-1].referral_date).days > 120)
    earlier = record.episodes[-1].referral_date + dt.timedelta(days=60)
    truncated = record_as_of(record, earlier)
    assert truncated is not None
    full = client.post("/v1/score", json=_body(record, earlier), headers=_auth(keys["system"])).json()
    cut = client.post("/v1/score", json=_body(truncated, earlier), headers=_auth(keys["system"])).json()
    assert full["probability"] == cut["probability"]
    assert full["reasons"] == cut["reasons"]


def test_batch_scores_and_stores_every_case(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    cases = [_body(r) for r in open_records[:12]]
    response = client.post("/v1/score/batch", json={"cases": cases}, headers=_auth(keys["system"]))
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert len(scores) == 12
    expected = expected_scores(_model(client), open_records[:12], AS_OF)
    assert [s["probability"] for s in scores] == [e.probability for e in expected]
    store = client.app.state.store  # type: ignore[attr-defined]
    assert all(store.get_score(s["score_id"]) is not None for s in scores)


def test_batch_over_the_limit_is_refused_with_the_limit_named(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    cases = [_body(open_records[i % len(open_records)]) for i in range(21)]
    response = client.post("/v1/score/batch", json={"cases": cases}, headers=_auth(keys["system"]))
    assert response.status_code == 413
    assert "limit is 20" in response.json()["detail"]


def test_invalid_record_gets_422_naming_the_path_and_rule_and_stores_nothing(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    body = _body(open_records[0])
    body["record"]["sex"] = "X"
    body["record"]["episodes"][0]["closure_date"] = "1999-01-01"
    response = client.post("/v1/score", json=body, headers=_auth(keys["system"]))
    assert response.status_code == 422
    errors = response.json()["detail"]
    sex = next(e for e in errors if e["loc"][-1] == "sex")
    assert "'M', 'F' or 'U'" in sex["msg"]  # unknown codes list the allowed ones
    assert sex["type"] == "enum"


def test_record_rule_violation_names_the_rule(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    body = _body(open_records[0])
    episode = body["record"]["episodes"][-1]
    episode["assessments"] = [{"start_date": episode["referral_date"], "factors": ["21", "4B"]}]
    response = client.post("/v1/score", json=body, headers=_auth(keys["system"]))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "factor_21_alone"
    assert error["loc"][-3:] == ["assessments", 0, "factors"]


@pytest.mark.parametrize(
    ("as_of", "rule"),
    [(dt.date.today() + dt.timedelta(days=1), "as_of_in_future"), (dt.date(2000, 1, 1), "no_open_episode")],
)
def test_unscorable_dates_get_422_and_store_nothing(
    client: TestClient, open_records: list[ChildRecord], as_of: dt.date, rule: str
) -> None:
    keys = _keys(client)
    response = client.post("/v1/score", json=_body(open_records[0], as_of), headers=_auth(keys["system"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == rule


def test_failed_audit_write_returns_no_score(
    client: TestClient, open_records: list[ChildRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import StoreError

    keys = _keys(client)
    store = client.app.state.store  # type: ignore[attr-defined]

    def broken(rows: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store._group_commit, "_write", broken)  # what the writer thread calls for every group
    for body in (_body(open_records[0]), {"cases": [_body(open_records[0])]}):
        path = "/v1/score" if "record" in body else "/v1/score/batch"
        response = client.post(path, json=body, headers=_auth(keys["system"]))
        assert response.status_code == 503
        assert "probability" not in response.text


def test_body_over_the_size_limit_is_refused(client: TestClient) -> None:
    keys = _keys(client)
    response = client.post(
        "/v1/score",
        content=b"{" + b" " * 2_100_000 + b"}",
        headers={**_auth(keys["system"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "2000000 bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("post", "/v1/score", "system"),
        ("post", "/v1/score/batch", "system"),
        ("get", "/v1/scores/x", "manager or system"),
        ("post", "/v1/scores/x/decision", "manager"),
        ("get", "/v1/scores/x/decision", "manager"),
        ("post", "/v1/admin/reload", "admin"),
        ("get", "/v1/admin/keys", "admin"),
    ],
)
def test_every_route_refuses_missing_wrong_revoked_and_wrong_role_keys(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    keys = _keys(client)
    call = getattr(client, method)
    assert call(path).status_code == 401
    assert call(path, headers=_auth("ccr_not-a-key")).status_code == 401
    for role, key in keys.items():
        if role not in allowed.split(" or "):
            response = call(path, headers=_auth(key))
            assert response.status_code == 403, (role, response.text)
            assert allowed in response.json()["detail"]
    store = client.app.state.store  # type: ignore[attr-defined]
    plaintext, key = store.create_key(name=f"to-revoke-{uuid.uuid4().hex[:8]}", role=allowed.split(" or ")[0])
    store.revoke_key(key.id)
    assert call(path, headers=_auth(plaintext)).status_code == 401


def test_health_and_readiness_are_open_and_metrics_need_a_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/metrics").status_code == 401
    keys = _keys(client)
    text = client.get("/metrics", headers=_auth(keys["admin"])).text
    assert "ccr_model_info" in text
    assert "ccr_http_request_duration_seconds" in text
    assert 'route="/healthz",status="200"' in text  # counted by route and status


def test_decisions_are_kept_beside_the_score(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    score_id = client.post("/v1/score", json=_body(open_records[0]), headers=_auth(keys["system"])).json()["score_id"]
    manager = _auth(keys["manager"])
    first = client.post(
        f"/v1/scores/{score_id}/decision",
        json={"decision": "keep_open", "reason": "Parenting work not finished"},
        headers=manager,
    )
    assert first.status_code == 201
    assert first.json()["decided_by"].startswith("test-manager")
    again = client.post(
        f"/v1/scores/{score_id}/decision", json={"decision": "close", "reason": "Goals met"}, headers=manager
    )
    assert again.status_code == 409
    superseding = client.post(
        f"/v1/scores/{score_id}/decision",
        json={"decision": "step_down_early_help", "reason": "Early help agreed", "supersede": True},
        headers=manager,
    )
    assert superseding.status_code == 201
    assert superseding.json()["supersedes"] == first.json()["decision_id"]
    history = client.get(f"/v1/scores/{score_id}/decision", headers=manager).json()
    assert [d["decision"] for d in history] == ["keep_open", "step_down_early_help"]
    stored = client.get(f"/v1/scores/{score_id}", headers=manager).json()
    assert len(stored["decisions"]) == 2
    assert (
        client.post(
            "/v1/scores/nope/decision", json={"decision": "close", "reason": "x" * 5}, headers=manager
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/v1/scores/{score_id}/decision", json={"decision": "shred", "reason": "nope"}, headers=manager
        ).status_code
        == 422
    )


def test_model_facts_and_reload_under_concurrent_requests(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    facts = client.get("/v1/model", headers=_auth(keys["manager"])).json()
    assert facts["version"].startswith("local:")
    assert {f["name"] for f in facts["features"]} >= {"days_open", "counselling_days_waiting"}
    statuses: list[int] = []
    stop = threading.Event()

    def score() -> None:
        while not stop.is_set():
            response = client.post("/v1/score", json=_body(open_records[2]), headers=_auth(keys["system"]))
            statuses.append(response.status_code)

    threads = [threading.Thread(target=score) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        assert client.post("/v1/admin/reload", headers=_auth(keys["admin"])).status_code == 200
    stop.set()
    for thread in threads:
        thread.join()
    assert statuses
    assert set(statuses) == {200}


def test_openapi_schema_matches_the_reviewed_snapshot(client: TestClient) -> None:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot: run UPDATE_SNAPSHOTS=1 pytest tests/serving/test_api.py and review it"
    assert text == SNAPSHOT.read_text(encoding="utf-8"), "the API contract changed: review and update the snapshot"


def test_key_names_are_unique_and_decisions_record_the_key_id(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    admin = _auth(keys["admin"])
    name = f"manager-{uuid.uuid4().hex[:8]}"
    made = client.post(f"/v1/admin/keys?name={name}&role=manager", headers=admin)
    assert made.status_code == 201
    again = client.post(f"/v1/admin/keys?name={name}&role=manager", headers=admin)
    assert again.status_code == 409
    assert "another API key" in again.json()["detail"]
    store = client.app.state.store  # type: ignore[attr-defined]
    admin_id = store.verify_key(keys["admin"]).id
    listed = next(k for k in client.get("/v1/admin/keys", headers=admin).json() if k["name"] == name)
    assert listed["created_by"] == admin_id
    score_id = client.post("/v1/score", json=_body(open_records[0]), headers=_auth(keys["system"])).json()["score_id"]
    assert store.get_score(score_id).caller_key == store.verify_key(keys["system"]).id
    decision = {"decision": "close", "reason": "Plan complete"}
    client.post(f"/v1/scores/{score_id}/decision", json=decision, headers=_auth(made.json()["key"]))
    assert store.decisions(score_id)[0].decided_by_key == made.json()["id"]
    assert client.delete(f"/v1/admin/keys/{made.json()['id']}", headers=admin).status_code == 204
    revoked = next(k for k in client.get("/v1/admin/keys", headers=admin).json() if k["name"] == name)
    assert (revoked["revoked_by"], revoked["revoked_at"] is not None) == (admin_id, True)


def test_readiness_says_whether_the_audit_chain_verifies(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/readyz").json()["audit_chain"] == "not verified yet" and time.monotonic() < deadline:
        time.sleep(0.05)  # verified in the background at start-up
    assert client.get("/readyz").json()["audit_chain"].startswith("verified at ")
    store = client.app.state.store  # type: ignore[attr-defined]
    store.chain_report.problems.append("decisions row d1 (chain entry 3) was changed after it was written")
    assert "DOES NOT VERIFY" in client.get("/readyz").json()["audit_chain"]
