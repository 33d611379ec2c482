"""The review of decisions page through the real app: its figures are the store's, counted here independently."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features import ChildRecord
from serving.app import create_app
from serving.settings import ServingSettings


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(model_uri=str(bundle), database_url=f"sqlite:///{tmp_path}/audit.db",
                               pseudonym_key_file=str(tmp_path / "pseudonym.key"))  # fmt: skip
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _cells(html: str, group: str) -> list[tuple[int, int]]:
    row = re.search(rf'<tr data-group="{re.escape(group)}">(.*?)</tr>', html, re.S)
    assert row is not None, group
    return [(int(e), int(n)) for e, n in re.findall(r'data-events="(\d+)" data-n="(\d+)"', row.group(1))]


def test_review_page_figures_match_the_store(client: TestClient, open_records: list[ChildRecord]) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    system = {"Authorization": f"Bearer {store.create_key(name=f's-{uuid.uuid4().hex[:6]}', role='system')[0]}"}
    manager = {"Authorization": f"Bearer {store.create_key(name=f'm-{uuid.uuid4().hex[:6]}', role='manager')[0]}"}
    cases = [{"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": "2025-03-31"}
             for r in open_records[:12]]  # fmt: skip
    scores = client.post("/v1/score/batch", json={"cases": cases}, headers=system).json()["scores"]
    choices = [("close", "agree"), ("keep_open", "higher"), ("step_down_early_help", "lower"), ("keep_open", "agree")]
    for i, score in enumerate(scores[:10]):
        decision, agreement = choices[i % len(choices)]
        body = {"decision": decision, "reason": "weighed with the team",
                "review": {"agreement": agreement, "child_voice": i % 2 == 0, "family_strengths": True,
                           "partner_views": False, "multi_agency": i % 3 == 0}}  # fmt: skip
        assert client.post(f"/v1/scores/{score['score_id']}/decision", json=body, headers=manager).status_code == 201

    response = client.get("/v1/ui/review", headers=manager)
    assert response.status_code == 200, response.text
    html = response.text
    assert re.search(r"<strong>10</strong> decisions, <strong>10</strong> with", html)
    decided = scores[:10]
    for band in ("low", "medium", "high"):
        mine = [(s, choices[i % len(choices)]) for i, s in enumerate(decided) if s["band"] == band]
        if not mine:
            continue
        cells = _cells(html, f"band:{band}")
        agree, higher, lower = cells[:3]
        against = cells[3] if band != "medium" else None  # either decision is in keeping with the medium band
        assert len(cells) == (3 if band == "medium" else 4)
        n = len(mine)
        assert agree == (sum(a == "agree" for _, (_, a) in mine), n)
        assert higher == (sum(a == "higher" for _, (_, a) in mine), n)
        assert lower == (sum(a == "lower" for _, (_, a) in mine), n)
        if band == "high":
            assert against == (sum(d != "keep_open" for _, (d, _) in mine), n)
        elif band == "low":
            assert against == (sum(d == "keep_open" for _, (d, _) in mine), n)
    voiced = re.search(r'data-ground="child_voice">.*?data-events="(\d+)" data-n="(\d+)"', html)
    assert voiced is not None
    assert (int(voiced.group(1)), int(voiced.group(2))) == (5, 10)
    assert client.get("/v1/ui/review", headers=system).status_code == 403


def test_review_page_is_for_leads_and_admins_only(bundle: Path, tmp_path: Path) -> None:
    """A lead (a manager key of all teams) and an admin see the review; a manager of one team is refused with a page
    that says why, whether by bearer key or by a signed-in session, and their pages do not link to it."""
    settings = ServingSettings(model_uri=str(bundle), database_url=f"sqlite:///{tmp_path}/audit.db",
                               pseudonym_key_file=str(tmp_path / "pseudonym.key"))  # fmt: skip
    # https: the session cookie is Secure, so a client on plain http would never send it back.
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as client:
        store = client.app.state.store  # type: ignore[attr-defined]

        def key(role: str, **team: str) -> str:
            return str(store.create_key(name=f"{role}-{uuid.uuid4().hex[:6]}", role=role, **team)[0])

        one_team, lead, admin, system = key("manager", team="north"), key("manager"), key("admin"), key("system")
        refused = client.get("/v1/ui/review", headers={"Authorization": f"Bearer {one_team}"})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "The review of decisions is for leads" in refused.text
        assert "This key serves one team" in refused.text
        for allowed in (lead, admin):
            response = client.get("/v1/ui/review", headers={"Authorization": f"Bearer {allowed}"})
            assert response.status_code == 200, response.text
            assert 'id="review-count"' in response.text
        by_system = client.get("/v1/ui/review", headers={"Authorization": f"Bearer {system}"})
        assert by_system.status_code == 403
        assert "for leads and admins" in by_system.text
        assert client.get("/v1/ui/review").status_code == 303  # not signed in: to the sign-in page

        for plaintext, sees_review in ((one_team, False), (lead, True)):
            client.cookies.clear()
            assert client.post("/v1/ui/login", data={"api_key": plaintext}).status_code == 303
            queue = client.get("/v1/ui/queue")
            assert queue.status_code == 200
            assert ('href="/v1/ui/review"' in queue.text) is sees_review
            assert client.get("/v1/ui/review").status_code == (200 if sees_review else 403)
