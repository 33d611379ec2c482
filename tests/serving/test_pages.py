"""The manager's pages through the real app: sign-in and its cookie, the queue, the report, the decision form."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from pypdf import PdfReader

from features import ChildRecord
from features.numbers import in_words, percent, percent_points
from serving.app import create_app
from serving.settings import ServingSettings
from serving.ui import SESSION_COOKIE

AS_OF = dt.date(2025, 3, 31)


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
        batch_limit=50,
    )
    # https: the session cookie is Secure, so a client on plain http would (rightly) never send it back.
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as test_client:
        yield test_client


def _key(client: TestClient, role: str, name: str | None = None) -> str:
    store = client.app.state.store  # type: ignore[attr-defined]
    return str(store.create_key(name=name or f"test-{role}-{uuid.uuid4().hex[:8]}", role=role)[0])


def _score(client: TestClient, records: list[ChildRecord]) -> list[dict[str, Any]]:
    cases = [{"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()} for r in records]
    response = client.post(
        "/v1/score/batch", json={"cases": cases}, headers={"Authorization": f"Bearer {_key(client, 'system')}"}
    )
    assert response.status_code == 200, response.text
    scores: list[dict[str, Any]] = response.json()["scores"]
    return scores


def _sign_in(client: TestClient, key: str) -> str:
    response = client.post("/v1/ui/login", data={"api_key": key, "next": "/v1/ui/queue"})
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_login_sets_a_secure_http_only_strict_session_cookie(client: TestClient) -> None:
    response = client.post("/v1/ui/login", data={"api_key": _key(client, "manager"), "next": "/v1/ui/queue"})
    assert response.status_code == 303
    assert response.headers["location"] == "/v1/ui/queue"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    store = client.app.state.store  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        stored = [row[0] for row in connection.exec_driver_sql("SELECT id FROM ui_sessions")]
    assert token not in stored
    assert len(stored) == 1


@pytest.mark.parametrize(
    ("role", "status", "message"),
    [("system", 403, "the pages are for managers"), ("admin", 403, "the pages are for managers")],
)
def test_login_refuses_keys_of_other_roles(client: TestClient, role: str, status: int, message: str) -> None:
    response = client.post("/v1/ui/login", data={"api_key": _key(client, role)})
    assert response.status_code == status
    assert message in response.text
    assert "set-cookie" not in response.headers


def test_login_refuses_a_wrong_or_revoked_key(client: TestClient) -> None:
    assert client.post("/v1/ui/login", data={"api_key": "ccr_not-a-key"}).status_code == 401
    store = client.app.state.store  # type: ignore[attr-defined]
    plaintext, key = store.create_key(name="leaver", role="manager")
    store.revoke_key(key.id)
    response = client.post("/v1/ui/login", data={"api_key": plaintext})
    assert response.status_code == 401
    assert "not valid or has been revoked" in response.text


def test_login_never_redirects_off_site(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post("/v1/ui/login", data={"api_key": _key(client, "manager"), "next": target})
        assert response.headers["location"] == "/v1/ui/queue"


def test_pages_send_a_visitor_without_a_session_to_sign_in(client: TestClient) -> None:
    response = client.get("/v1/ui/queue?band=high")
    assert response.status_code == 303
    assert response.headers["location"] == "/v1/ui/login?next=%2Fv1%2Fui%2Fqueue%3Fband%3Dhigh"


def test_revoking_the_key_ends_its_page_sessions(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    plaintext, key = store.create_key(name="manager-a", role="manager")
    _sign_in(client, plaintext)
    assert client.get("/v1/ui/queue").status_code == 200
    store.revoke_key(key.id)
    assert client.get("/v1/ui/queue").status_code == 303


def test_queue_lists_each_case_once_highest_risk_first_with_filters(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    scores = _score(client, open_records[:30])
    again = _score(client, open_records[:1])[0]  # a newer score of the first case replaces it in the queue
    _sign_in(client, _key(client, "manager"))
    html = client.get("/v1/ui/queue").text
    listed = re.findall(r'data-score-id="([0-9a-f]+)"', html)
    latest = {s["score_id"]: s for s in scores[1:]} | {again["score_id"]: again}
    assert sorted(listed) == sorted(latest)
    probabilities = [latest[i]["probability"] for i in listed]
    assert probabilities == sorted(probabilities, reverse=True)
    assert "30 cases" in html

    high = [s for s in latest.values() if s["band"] == "high"]
    html = client.get("/v1/ui/queue?band=high").text
    assert sorted(re.findall(r'data-score-id="([0-9a-f]+)"', html)) == sorted(s["score_id"] for s in high)

    store = client.app.state.store  # type: ignore[attr-defined]
    decided = listed[0]
    store.record_decision(score_id=decided, decided_by="m", decision="keep_open", reason="plan not finished")
    undecided = re.findall(r'data-score-id="([0-9a-f]+)"', client.get("/v1/ui/queue?decision=undecided").text)
    kept = re.findall(r'data-score-id="([0-9a-f]+)"', client.get("/v1/ui/queue?decision=keep_open").text)
    assert kept == [decided]
    assert decided not in undecided
    assert len(undecided) == len(listed) - 1
    assert client.get("/v1/ui/queue?band=extreme").status_code == 422


def _listed(html: str) -> list[str]:
    return re.findall(r'data-score-id="([0-9a-f]+)"', html)


def test_queue_filters_left_on_any_send_empty_values_and_mean_no_filter(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    scores = _score(client, open_records[:12])
    _sign_in(client, _key(client, "manager"))
    everything = _listed(client.get("/v1/ui/queue").text)
    assert sorted(everything) == sorted(s["score_id"] for s in scores)
    for query in (
        "band=&decision=",
        "band=&decision=&reference=&sort=risk",
        "decision=&band=high",
        "band=&decision=undecided",
    ):
        response = client.get(f"/v1/ui/queue?{query}")
        assert response.status_code == 200, (query, response.text)
    assert _listed(client.get("/v1/ui/queue?band=&decision=").text) == everything
    high = sorted(s["score_id"] for s in scores if s["band"] == "high")
    assert sorted(_listed(client.get("/v1/ui/queue?band=high&decision=").text)) == high
    assert client.get("/v1/ui/queue?band=extreme&decision=").status_code == 422


def test_queue_pages_count_and_sort_without_overlap(client: TestClient, open_records: list[ChildRecord]) -> None:
    client.app.state.settings.queue_limit = 7  # type: ignore[attr-defined]
    scores = _score(client, open_records[:20])
    _sign_in(client, _key(client, "manager"))
    by_id = {s["score_id"]: s for s in scores}
    for sort in ("risk", "scored", "days_open"):
        seen: list[str] = []
        pages = [client.get(f"/v1/ui/queue?sort={sort}&page={n}").text for n in (1, 2, 3)]
        for html in pages:
            seen += _listed(html)
        assert sorted(seen) == sorted(s["score_id"] for s in scores), sort  # every case once, none twice
        assert "20 cases: 1 to 7 shown, page 1 of 3" in pages[0]
        assert "20 cases: 15 to 20 shown, page 3 of 3" in pages[2]
        assert f'href="/v1/ui/queue?sort={sort}&amp;page=2"' in pages[0] or sort == "risk"
        if sort == "risk":
            probabilities = [by_id[i]["probability"] for i in seen]
            assert probabilities == sorted(probabilities, reverse=True)
    store = client.app.state.store  # type: ignore[attr-defined]
    rows, _ = store.queue(sort="days_open", limit=100)
    days = [r.score.features.get("days_open") for r in rows]
    known = [d for d in days if d is not None]
    assert known == sorted(known, reverse=True)
    assert days[: len(known)] == known  # cases whose start is unknown come last
    assert "Next page" in pages[0]
    assert "Previous page" in pages[2]
    assert client.get("/v1/ui/queue?page=0").status_code == 422


def test_queue_and_report_keep_a_decision_when_the_case_is_scored_again(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    (first,) = _score(client, open_records[:1])
    store = client.app.state.store  # type: ignore[attr-defined]
    store.record_decision(score_id=first["score_id"], decided_by="manager-a", decision="close", reason="plan met")
    (again,) = _score(client, open_records[:1])
    _sign_in(client, _key(client, "manager"))
    html = client.get("/v1/ui/queue").text
    assert _listed(html) == [again["score_id"]]
    row = html.split(f'data-score-id="{again["score_id"]}"')[1].split("</tr>")[0]
    assert "Close the case" in row
    assert "manager-a" in row
    assert "on an earlier score" in row
    assert _listed(client.get("/v1/ui/queue?decision=close").text) == [again["score_id"]]
    assert _listed(client.get("/v1/ui/queue?decision=undecided").text) == []
    report = client.get(f"/v1/scores/{again['score_id']}/report").text
    assert 'id="case-decision"' in report
    assert "an earlier score" in report
    assert "manager-a" in report
    assert f"/v1/scores/{first['score_id']}/report#decision" in report


def test_queue_top_reason_shows_the_value_and_reads_right_in_both_directions(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    scores = _score(client, open_records[:30])
    _sign_in(client, _key(client, "manager"))
    html = client.get("/v1/ui/queue").text
    directions = set()
    for score in scores:
        row = html.split(f'data-score-id="{score["score_id"]}"')[1].split("</tr>")[0]
        top = score["reasons"][0]
        cell = row.split('class="top-reason">')[1].split("</td>")[0]
        direction = "raises" if top["contribution"] > 0 else "lowers"
        directions.add(direction)
        assert f"{escape(top['label'])}: <strong>" in cell
        assert f"{direction} the estimate" in cell
        assert "(lowers)" not in cell
        assert "(raises)" not in cell
    assert directions == {"raises", "lowers"}


def test_report_shows_the_stored_score_its_reasons_and_what_could_change(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    scores = _score(client, open_records[:40])
    manager = _key(client, "manager")
    auth = {"Authorization": f"Bearer {manager}"}
    # The case with the most what-ifs: the report must show each of them.
    stored = [client.get(f"/v1/scores/{s['score_id']}", headers=auth).json() for s in scores]
    case = max(stored, key=lambda s: len(s["what_ifs"] or []))
    assert case["what_ifs"], "no case of the tiny cohort has anything actionable pushing its risk up"
    response = client.get(f"/v1/scores/{case['score_id']}/report", headers=auth)  # a manager's bearer key works too
    assert response.status_code == 200
    html = response.text
    assert f'<span id="probability">{percent(case["probability"])}</span>' in html
    assert in_words(case["probability"]).capitalize() in html
    assert f'id="band">{case["band"]} band<' in html
    for reason in case["reasons"][:3]:
        assert f'data-feature="{reason["feature"]}"' in html
    for what in case["what_ifs"]:
        assert str(escape(what["change"])) in html
        assert percent_points(what["difference"]) in html
    assert "not promises of cause and effect" in html
    assert "This score does not decide; you do." in html
    assert '<svg role="img" aria-labelledby="chart-title chart-desc"' in html
    assert "Sign in on the" in html  # a bearer key has no session, so no form
    assert re.search(r'id="audit-chain">Audit trail: (verified at|not verified yet)', html)  # checked in the background


def _figure(value: float) -> dict[str, float]:
    return {"value": value, "low": value - 0.01, "high": value + 0.01}


def test_report_headlines_the_pooled_backtest_and_gives_the_test_year_beside_it(
    bundle: Path, tmp_path: Path, open_records: list[ChildRecord]
) -> None:
    from models import RiskModel

    model = RiskModel.load(bundle)
    model.metadata = model.metadata.model_copy(
        update={
            "test_metrics": {"roc_auc": _figure(0.7123), "ece": _figure(0.0456), "brier": _figure(0.1789)},
            "test_cases": 412,
            "test_year": 2024,
            "backtest_metrics": {"roc_auc": _figure(0.7654), "ece": _figure(0.0234), "brier": _figure(0.1678)},
            "backtest_cases": 1234,
            "backtest_years": [2022, 2023, 2024],
        }
    )
    folder = tmp_path / "with-backtest"
    model.save(folder)
    settings = ServingSettings(model_uri=str(folder), database_url=f"sqlite:///{tmp_path}/audit.db",
                               pseudonym_key_file=str(tmp_path / "pseudonym.key"), batch_limit=50)  # fmt: skip
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as with_backtest:
        (scored,) = _score(with_backtest, open_records[:1])
        manager = {"Authorization": f"Bearer {_key(with_backtest, 'manager')}"}
        html = with_backtest.get(f"/v1/scores/{scored['score_id']}/report", headers=manager).text
        facts = with_backtest.get("/v1/model", headers=manager).json()
    assert facts["backtest_years"] == [2022, 2023, 2024]
    assert facts["backtest_metrics"]["roc_auc"]["value"] == 0.7654
    table = html[html.index('<table id="metrics">') : html.index("</table>", html.index('<table id="metrics">'))]
    # The headline is the backtest: its figures in the table, the test year's only in the line beside it.
    assert "1,234 closures of collection years 2022, 2023, 2024" in html
    assert "0.765" in table
    assert "0.755 to 0.775" in table
    assert "0.023" in table
    assert "0.712" not in table
    beside = re.search(r'<p class="small" id="test-year-metrics">(.*?)</p>', html)
    assert beside is not None
    assert "2024 (412 closures)" in beside.group(1)
    assert "discrimination 0.712" in beside.group(1)


def test_report_decision_form_records_the_decision_and_shows_who_made_it(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    (score,) = _score(client, open_records[:1])
    _sign_in(client, _key(client, "manager", name="team-manager-1"))
    report = f"/v1/scores/{score['score_id']}/report"
    csrf = _csrf(client.get(report).text)
    opened = re.search(r'name="opened" value="([^"]+)"', client.get(report).text)
    assert opened is not None
    form = {"csrf": csrf, "decision": "step_down_early_help", "reason": "Parenting work done; early help agreed.",
            "agreement": "lower", "child_voice": "true", "multi_agency": "true", "grounds": "Nursery sees progress.",
            "opened": opened.group(1)}  # fmt: skip
    response = client.post(f"/v1/ui/scores/{score['score_id']}/decision", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == f"{report}#decision"
    html = client.get(report).text
    assert "Recorded: Step down to early help" in html
    assert '<span id="decided-by">team-manager-1</span>' in html
    assert '<strong id="recorded-agreement">I judge the risk lower</strong>' in html
    store = client.app.state.store  # type: ignore[attr-defined]
    (decision,) = store.decisions(score["score_id"])
    assert (decision.decision, decision.decided_by) == ("step_down_early_help", "team-manager-1")
    review = store.reviews([decision.id])[decision.id]
    ticked = (review.child_voice, review.family_strengths, review.partner_views, review.multi_agency)
    assert (review.agreement, ticked, review.grounds) == ("lower", (True, False, False, True), "Nursery sees progress.")
    assert review.report_open_s is not None
    assert review.report_open_s >= 0

    # The form then replaces the decision explicitly; the history is kept. A forged stamp records no time.
    replace = {"csrf": csrf, "decision": "keep_open", "reason": "New concern raised by school.", "supersede": "true",
               "agreement": "agree", "opened": "1.forged"}  # fmt: skip
    assert client.post(f"/v1/ui/scores/{score['score_id']}/decision", data=replace).status_code == 303
    decisions = store.decisions(score["score_id"])
    assert [d.decision for d in decisions] == ["step_down_early_help", "keep_open"]
    assert store.reviews([decisions[1].id])[decisions[1].id].report_open_s is None

    # The view of the estimate is required: without it the form comes back with the error.
    again = {**replace, "agreement": ""}
    refused = client.post(f"/v1/ui/scores/{score['score_id']}/decision", data=again)
    assert refused.status_code == 422
    assert "Say whether the estimate looks about right" in refused.text
    assert len(store.decisions(score["score_id"])) == 2


def test_report_decision_form_refuses_a_missing_csrf_token_or_another_site(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    (score,) = _score(client, open_records[:1])
    _sign_in(client, _key(client, "manager"))
    url = f"/v1/ui/scores/{score['score_id']}/decision"
    form = {"decision": "close", "reason": "work done"}
    assert client.post(url, data={**form, "csrf": "forged"}).status_code == 403
    csrf = _csrf(client.get(f"/v1/scores/{score['score_id']}/report").text)
    response = client.post(url, data={**form, "csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert client.app.state.store.decisions(score["score_id"]) == []  # type: ignore[attr-defined]


def test_report_decision_form_without_a_reason_is_shown_again_with_the_error(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    (score,) = _score(client, open_records[:1])
    _sign_in(client, _key(client, "manager"))
    csrf = _csrf(client.get(f"/v1/scores/{score['score_id']}/report").text)
    response = client.post(
        f"/v1/ui/scores/{score['score_id']}/decision",
        data={"csrf": csrf, "decision": "close", "reason": " ", "agreement": "agree"},
    )
    assert response.status_code == 422
    assert "Give the reason for the decision." in response.text
    assert client.app.state.store.decisions(score["score_id"]) == []  # type: ignore[attr-defined]


def test_report_of_an_unknown_score_is_a_404_page(client: TestClient) -> None:
    _sign_in(client, _key(client, "manager"))
    response = client.get("/v1/scores/nope/report")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no score nope" in response.text


def test_report_refuses_a_system_key(client: TestClient, open_records: list[ChildRecord]) -> None:
    (score,) = _score(client, open_records[:1])
    response = client.get(
        f"/v1/scores/{score['score_id']}/report", headers={"Authorization": f"Bearer {_key(client, 'system')}"}
    )
    assert response.status_code == 403
    assert "role manager" in response.text


def test_sign_out_ends_the_session(client: TestClient) -> None:
    _sign_in(client, _key(client, "manager"))
    csrf = _csrf(client.get("/v1/ui/queue").text)
    response = client.post("/v1/ui/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert client.get("/v1/ui/queue").status_code == 303


def test_report_pdf_is_the_print_layout_on_one_or_two_a4_pages(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    (score,) = _score(client, open_records[:1])
    _sign_in(client, _key(client, "manager"))
    response = client.get(f"/v1/scores/{score['score_id']}/report.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert 1 <= len(pages) <= 2
    assert [round(float(x)) for x in pages[0].mediabox] == [0, 0, 595, 842]  # A4 in points
    assert "Closure risk report" in pages[0].extract_text()
    for number, page in enumerate(pages, start=1):  # each page names the case and its place
        text = page.extract_text()
        assert f"Page {number} of {len(pages)}" in text
        assert f"score {score['score_id'][:12]}" in text
    assert client.get("/v1/scores/nope/report.pdf").status_code == 404


@pytest.mark.parametrize(
    ("accept", "target"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "/v1/ui/login"),  # a browser
        ("application/json", "/docs"),
        ("*/*", "/docs"),  # curl, httpx
        (None, "/docs"),
    ],
)
def test_front_door_sends_a_browser_to_sign_in_and_an_api_client_to_the_docs(
    client: TestClient, accept: str | None, target: str
) -> None:
    response = client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 303
    assert response.headers["location"] == target


def test_front_door_sends_a_signed_in_manager_to_the_queue(client: TestClient) -> None:
    _sign_in(client, _key(client, "manager"))
    assert client.get("/", headers={"Accept": "text/html"}).headers["location"] == "/v1/ui/queue"


def test_docs_load_their_assets_from_the_service(client: TestClient) -> None:
    for path, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.local.js",))):
        html = client.get(path).text
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        for asset in assets:
            assert f'"/docs-assets/{asset}"' in html
            assert client.get(f"/docs-assets/{asset}").status_code == 200
    assert b"cdn.redoc.ly" not in client.get("/docs-assets/redoc.local.js").content
