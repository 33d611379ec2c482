"""Bad numbers and what reaches the logs: ``NaN`` and ``Infinity`` (what Python's JSON encoder writes for a pandas
missing value) get 422 naming the field, and no log line holds a request's values or unknown fields, even when
something fails unexpectedly."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features import ChildRecord, Role
from serving.app import create_app
from serving.settings import ServingSettings

CHILD = "SENTINEL-CHILD-7Q"
UPN = "A123456789012"


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _key(client: TestClient, role: Role) -> dict[str, str]:
    plaintext = client.app.state.store.create_key(name=f"test-{role}", role=role)[0]  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {plaintext}", "Content-Type": "application/json"}


def _record(open_records: list[ChildRecord]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(open_records[0].model_dump_json(exclude_none=True))
    record["la_child_id"] = CHILD
    return record


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_score_refuses_nan_and_infinity_with_422_naming_the_field(
    client: TestClient, open_records: list[ChildRecord], caplog: pytest.LogCaptureFixture, number: float
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = _key(client, Role.SYSTEM)
    record = _record(open_records)
    record["episodes"][-1]["previous_plans"] = number
    record["unknown_upn"] = UPN
    cases: list[tuple[str, dict[str, Any], list[object]]] = [
        ("/v1/score", {"record": record}, ["body", "record", "episodes", 0, "previous_plans"]),
        ("/v1/score", {"record": _record(open_records), "as_of": number}, ["body", "as_of"]),
        ("/v1/score/batch", {"cases": [{"record": {**_record(open_records), "birth_date": number}}]},
         ["body", "cases", 0, "record", "birth_date"]),
    ]  # fmt: skip
    for path, body, loc in cases:
        response = client.post(path, content=json.dumps(body), headers=headers)  # json.dumps writes NaN, Infinity
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        assert any(e["loc"][: len(loc)] == loc and e["type"] == "finite_number" for e in errors), errors
        assert CHILD not in response.text
        assert UPN not in response.text
    decision = client.post(
        "/v1/scores/x/decision",
        content=f'{{"decision": "close", "reason": {json.dumps(number)}}}',
        headers=_key(client, Role.MANAGER),
    )
    assert decision.status_code == 422
    assert decision.json()["detail"][0]["loc"] == ["body", "reason"]
    assert CHILD not in caplog.text
    assert UPN not in caplog.text


def test_an_unexpected_failure_is_logged_without_the_request_values(
    client: TestClient,
    open_records: list[ChildRecord],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)

    def failing(*args: object, **kwargs: object) -> object:
        raise ValueError(f"could not assess {CHILD} with UPN {UPN}")  # a message that quotes the input

    monkeypatch.setattr("serving.routers.scoring.assess", failing)
    response = client.post(
        "/v1/score", content=json.dumps({"record": _record(open_records)}), headers=_key(client, Role.SYSTEM)
    )
    assert response.status_code == 500
    assert CHILD not in response.text
    assert UPN not in response.text
    assert "ValueError" in caplog.text
    assert "/v1/score" in caplog.text
    assert CHILD not in caplog.text
    assert UPN not in caplog.text
