"""An integration that links back: the caller's case reference round trip, the report's address in the answer, the
system that made a score reading it back, and one shape for a score whether posted or read."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from audit import load_inputs_cipher
from features import ChildRecord, current_episode
from features.numbers import probability_text
from serving.app import create_app
from serving.routers.scoring import _REQUESTS
from serving.settings import ServingSettings

AS_OF = dt.date(2025, 3, 31)


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as test_client:
        yield test_client


def _key(client: TestClient, role: str) -> dict[str, str]:
    store = client.app.state.store  # type: ignore[attr-defined]
    plaintext = store.create_key(name=f"{role}-{uuid.uuid4().hex[:8]}", role=role)[0]
    return {"Authorization": f"Bearer {plaintext}"}


def _case(record: ChildRecord, reference: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": str(AS_OF)}
    if reference is not None:
        body["case_reference"] = reference
    return body


def test_case_reference_round_trip_through_answer_store_batch_and_queue(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    system, manager = _key(client, "system"), _key(client, "manager")
    posted = client.post("/v1/score", json=_case(open_records[0], "CMS/2025-00417"), headers=system)
    assert posted.status_code == 200, posted.text
    answer = posted.json()
    assert answer["case_reference"] == "CMS/2025-00417"
    assert answer["report_url"] == f"/v1/scores/{answer['score_id']}/report"
    assert client.get(answer["report_url"], headers=manager).status_code == 200
    assert client.get(f"/v1/scores/{answer['score_id']}", headers=manager).json()["case_reference"] == "CMS/2025-00417"

    references = ["B-1", None, "B 3"]
    batch = client.post(
        "/v1/score/batch",
        json={"cases": [_case(r, ref) for r, ref in zip(open_records[1:4], references, strict=True)]},
        headers=system,
    )
    assert batch.status_code == 200, batch.text
    assert [s["case_reference"] for s in batch.json()["scores"]] == references  # matched by reference, not position

    cookie_client = client
    login = cookie_client.post("/v1/ui/login", data={"api_key": manager["Authorization"][7:]})
    assert login.status_code == 303
    found = cookie_client.get("/v1/ui/queue", params={"reference": "CMS/2025-00417"}).text
    assert re.findall(r'data-score-id="([0-9a-f]+)"', found) == [answer["score_id"]]
    assert "CMS/2025-00417" in found
    assert re.findall(r'data-score-id="([0-9a-f]+)"', cookie_client.get("/v1/ui/queue?reference=CMS-0").text) == []
    report = cookie_client.get(answer["report_url"]).text
    assert '<strong id="case-reference">CMS/2025-00417</strong>' in report


@pytest.mark.parametrize(
    ("reference", "rule"),
    [("", "string_too_short"), ("x" * 65, "string_too_long"), ("CMS\n17", "string_pattern_mismatch"),
     ("CMS\u202e71", "string_pattern_mismatch"), (" lead", "string_pattern_mismatch"),
     ("a  b", "string_pattern_mismatch"), ("Zoë-1", "string_pattern_mismatch")],
)  # fmt: skip
def test_case_reference_is_checked_for_length_and_characters(
    client: TestClient, open_records: list[ChildRecord], reference: str, rule: str
) -> None:
    response = client.post("/v1/score", json=_case(open_records[0], reference), headers=_key(client, "system"))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "case_reference"], rule)
    assert reference not in response.text or not reference


def test_the_system_that_made_a_score_reads_it_back_in_the_shape_it_was_posted(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    system, other, manager = _key(client, "system"), _key(client, "system"), _key(client, "manager")
    posted = client.post("/v1/score?reasons=all", json=_case(open_records[0], "R-9"), headers=system).json()
    read = client.get(f"/v1/scores/{posted['score_id']}", headers=system)
    assert read.status_code == 200, read.text
    assert read.json() == posted  # one shape, the same values
    assert read.json()["probability_in_words"] == probability_text(posted["probability"])
    episode = open_records[0].episodes[current_episode(open_records[0], AS_OF) or 0]
    assert posted["episode_referral_date"] == episode.referral_date.isoformat()
    assert client.get(f"/v1/scores/{posted['score_id']}", headers=other).status_code == 404  # not its score
    assert client.get(f"/v1/scores/{posted['score_id']}", headers=manager).status_code == 200
    assert client.get(f"/v1/scores/{posted['score_id']}/decision", headers=system).status_code == 403


def test_fast_and_documented_paths_store_the_reference_sealed_alike(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    """Whichever path scores it, the reference is stored sealed, with the same keyed index, never in plain."""
    system, reference = _key(client, "system"), "CMS/2025-00417"
    fast_body = _case(open_records[0], reference)
    documented_body = json.loads(json.dumps(fast_body))
    documented_body["record"]["la_child_id"] = f" {documented_body['record']['la_child_id']} "  # the same record
    assert _REQUESTS.decode_fast(json.dumps(fast_body).encode()) is not None  # takes the fast path
    assert _REQUESTS.decode_fast(json.dumps(documented_body).encode()) is None  # handed to the documented one
    answers = [client.post("/v1/score", json=body, headers=system) for body in (fast_body, documented_body)]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    ids = [a.json()["score_id"] for a in answers]
    store = client.app.state.store  # type: ignore[attr-defined]
    cipher = load_inputs_cipher(client.app.state.settings.inputs_key_path)  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        raw = [dict(r) for r in connection.execute(text("SELECT * FROM scores")).mappings()]
    assert reference not in json.dumps(raw, default=str)
    stored = {r["id"]: (r["case_reference"], r["case_reference_index"]) for r in raw}
    assert [stored[i] for i in ids] == [(None, cipher.reference_index(reference))] * 2
    assert [store.get_score(i).case_reference for i in ids] == [reference, reference]
