"""Subject access, annotation and re-scoring, and the decision's review, through the real app and a real store."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cli import main
from features import ChildRecord, current_episode
from serving.app import create_app
from serving.settings import ServingSettings, get_settings

AS_OF = dt.date(2025, 3, 31)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(bundle: Path, database_url: str, tmp_path: Path) -> ServingSettings:
    return ServingSettings(
        model_uri=str(bundle), database_url=database_url, pseudonym_key_file=str(tmp_path / "pseudonym.key")
    )


@pytest.fixture
def client(settings: ServingSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _keys(client: TestClient) -> dict[str, dict[str, str]]:
    store = client.app.state.store  # type: ignore[attr-defined]
    out = {}
    for role in ("system", "manager", "admin"):
        plaintext, _ = store.create_key(name=f"test-{role}-{uuid.uuid4().hex[:8]}", role=role)
        out[role] = {"Authorization": f"Bearer {plaintext}"}
    return out


def _body(record: ChildRecord, as_of: dt.date = AS_OF) -> dict[str, Any]:
    return {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": as_of.isoformat()}


def _score(client: TestClient, keys: dict[str, dict[str, str]], record: ChildRecord, as_of: dt.date = AS_OF) -> str:
    response = client.post("/v1/score", json=_body(record, as_of), headers=keys["system"])
    assert response.status_code == 200, response.text
    score_id: str = response.json()["score_id"]
    return score_id


def test_subject_export_finds_every_score_of_the_child_and_nothing_of_another(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    child, other = open_records[0], open_records[1]
    mine = {_score(client, keys, child), _score(client, keys, child, AS_OF - dt.timedelta(days=7))}
    theirs = _score(client, keys, other)
    asked = {"la_child_id": child.la_child_id, "birth_date": str(child.birth_date or child.expected_birth_date)}

    response = client.post("/v1/admin/subject", json=asked, headers=keys["admin"])
    assert response.status_code == 200, response.text
    export = response.json()
    assert {s["id"] for s in export["scores"]} == mine
    assert theirs not in json.dumps(export)
    for score in export["scores"]:
        stored = client.get(f"/v1/scores/{score['id']}", headers=keys["manager"]).json()
        assert score["features"] == stored["features"]
        assert [r["feature"] for r in score["reasons"]] == [r["feature"] for r in stored["reasons"]]
        assert score["what_ifs"] is not None

    # Without the birth date the search is wider and finds the same; a manager may not ask.
    wide = client.post("/v1/admin/subject", json={"la_child_id": child.la_child_id}, headers=keys["admin"])
    assert {s["id"] for s in wide.json()["scores"]} == mine
    assert client.post("/v1/admin/subject", json=asked, headers=keys["manager"]).status_code == 403
    future = {"la_child_id": "X", "birth_date": str(dt.date.today() + dt.timedelta(days=400))}
    refused = client.post("/v1/admin/subject", json=future, headers=keys["admin"])
    assert refused.status_code == 422
    assert "birth_date" in refused.text

    pdf = client.post("/v1/admin/subject.pdf", json=asked, headers=keys["admin"])
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["cache-control"] == "no-store"


def test_annotation_marks_a_score_and_rescoring_names_the_new_score(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    keys = _keys(client)
    child = open_records[2]
    wrong = _score(client, keys, child)
    episode = current_episode(child, AS_OF)
    assert episode is not None
    body = {"wrong_inputs": ["referrals_12m"], "note": "a referral of another child was linked here",
            "rescore": _body(child)}  # fmt: skip
    response = client.post(f"/v1/admin/scores/{wrong}/annotations", json=body, headers=keys["admin"])
    assert response.status_code == 201, response.text
    annotation = response.json()
    assert annotation["rescored_as"] == annotation["rescored"]["score_id"] != wrong
    stored = client.get(f"/v1/scores/{wrong}", headers=keys["manager"]).json()
    assert [a["annotation_id"] for a in stored["annotations"]] == [annotation["annotation_id"]]
    assert client.post("/v1/admin/scores/nope/annotations", json=body, headers=keys["admin"]).status_code == 404
    hidden = {"wrong_inputs": ["x\u202e"], "note": "bidirectional"}
    assert client.post(f"/v1/admin/scores/{wrong}/annotations", json=hidden, headers=keys["admin"]).status_code == 422
    report = client.app.state.store.verify_chain()  # type: ignore[attr-defined]
    assert report.problems == []

    export = client.post("/v1/admin/subject", json={"la_child_id": child.la_child_id}, headers=keys["admin"]).json()
    (noted,) = [s for s in export["scores"] if s["annotations"]]
    assert noted["id"] == wrong
    assert noted["annotations"][0]["rescored_as"] == annotation["rescored_as"]


def test_decision_review_round_trips_through_the_api(client: TestClient, open_records: list[ChildRecord]) -> None:
    keys = _keys(client)
    score_id = _score(client, keys, open_records[3])
    review = {"agreement": "lower", "child_voice": True, "family_strengths": True, "partner_views": False,
              "multi_agency": True, "grounds": "school and health visitor report steady progress",
              "report_open_s": 95.5}  # fmt: skip
    body = {"decision": "close", "reason": "goals met", "review": review}
    response = client.post(f"/v1/scores/{score_id}/decision", json=body, headers=keys["manager"])
    assert response.status_code == 201, response.text
    assert response.json()["review"] == review
    (listed,) = client.get(f"/v1/scores/{score_id}/decision", headers=keys["manager"]).json()
    assert listed["review"] == review
    bad = {**body, "supersede": True, "review": {**review, "agreement": "maybe"}}
    refused = client.post(f"/v1/scores/{score_id}/decision", json=bad, headers=keys["manager"])
    assert refused.status_code == 422
    assert "agreement" in refused.text


def test_subject_command_writes_private_files_and_prints_no_identifier(
    settings: ServingSettings,
    client: TestClient,
    open_records: list[ChildRecord],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = _keys(client)
    child = open_records[4]
    score_id = _score(client, keys, child)
    monkeypatch.setenv("CCR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CCR_PSEUDONYM_KEY_FILE", settings.pseudonym_key_file)
    get_settings.cache_clear()
    try:
        out, pdf = tmp_path / "export" / "child.json", tmp_path / "export" / "child.pdf"
        code = main(["subject", "--child", child.la_child_id, "--out", str(out), "--pdf", str(pdf)])
        printed = capsys.readouterr().out
        assert code == 0
        assert child.la_child_id not in printed
        assert json.loads(printed)["scores"] == 1
        assert [s["id"] for s in json.loads(out.read_text())["scores"]] == [score_id]
        assert pdf.read_bytes().startswith(b"%PDF")
        assert out.stat().st_mode & 0o077 == 0
        assert pdf.stat().st_mode & 0o077 == 0
        code = main(["annotate", score_id, "--wrong-input", "age_years", "--note", "birth date was mistyped"])
        assert code == 0
        assert main(["annotate", "nope", "--wrong-input", "age_years", "--note", "n"]) != 0
    finally:
        get_settings.cache_clear()
