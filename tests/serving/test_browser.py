"""The manager's pages in a real browser: headless Debian Chromium driven by Playwright against the running service.

The service is the real app under uvicorn, serving a champion trained and registered by the real pipeline into an
MLflow store in tmp_path, with a real SQLite audit store. Screenshots and a printed PDF of the report are saved
under ``test-artifacts/`` (``CCR_TEST_ARTIFACTS``). Where Chromium is not installed the tests skip, except under
CI=true, where they fail: `.ci/run` installs it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from audit import AuditStore
from features import ChildRecord, Role
from serving.report import in_words, percent
from serving.settings import ServingSettings
from tests.serving.live import CHROMIUM_ARGS, chromium_path, live_server
from training.pipeline import train
from training.settings import TrainingSettings

AS_OF = dt.date(2025, 3, 31)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CCR_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# axe-core rules for the accessibility bar (WCAG 2 A and AA): headings, contrast, text alternatives, forms.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true, so the browser tests must run", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def service(
    tiny_authority: Path, tiny_cohort_policy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, AuditStore]]:
    folder = tmp_path_factory.mktemp("browser-service")
    tracking = f"sqlite:///{folder}/mlflow.db"
    # The tiny cohort's test year is too small to judge calibration against the production bounds; the gate's
    # calibration rules have their own tests. Here the champion just has to exist, with all its facts.
    train(
        tiny_authority,
        TrainingSettings(
            tracking_uri=tracking,
            artifact_location=str(folder / "mlruns"),
            experiment="browser",
            gate_policy_file=tiny_cohort_policy,
            bootstrap=60,
            shap_sample=100,
            max_calibration_error=1.0,
            max_group_calibration_error=1.0,
            min_closures=0,  # far below the policy's minimum closures: the refusal has its own test
            min_rereferrals=0,
        ),
    )
    settings = ServingSettings(
        model_uri="models:/case-closure-risk@champion",
        tracking_uri=tracking,
        database_url=f"sqlite:///{folder}/audit.db",
        pseudonym_key_file=str(folder / "pseudonym.key"),
    )
    with live_server(settings) as url:
        store = AuditStore(settings.database_url)
        yield url, store
        store.close()


@pytest.fixture(scope="module")
def scored(service: tuple[str, AuditStore], open_records: list[ChildRecord]) -> list[dict[str, Any]]:
    url, store = service
    system = store.create_key(name="case-management", role=Role.SYSTEM)[0]
    cases = [{"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}
             for r in open_records[:80]]  # fmt: skip
    response = httpx.post(
        f"{url}/v1/score/batch", json={"cases": cases}, headers={"Authorization": f"Bearer {system}"}, timeout=60
    )
    assert response.status_code == 200, response.text
    scores: list[dict[str, Any]] = response.json()["scores"]
    return scores


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield opened
    context.close()
    assert problems == [], "the pages wrote to the browser console"


def _sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/v1/ui/queue")
    assert "/v1/ui/login" in page.url  # not signed in yet: sent to sign in, and back afterwards
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/v1/ui/queue$"))


def _headings_in_order(page: Page) -> list[int]:
    levels: list[int] = page.eval_on_selector_all("h1, h2, h3, h4, h5, h6", "els => els.map(e => +e.tagName[1])")
    return levels


def _assert_accessible(page: Page) -> None:
    levels = _headings_in_order(page)
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels
    results = Axe().run(page, options=AXE_OPTIONS)
    violations = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]
    assert violations == []


def _api(url: str, key: str, path: str) -> Any:
    response = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_manager_signs_in_reads_the_riskiest_report_and_records_a_decision(
    service: tuple[str, AuditStore], scored: list[dict[str, Any]], page: Page
) -> None:
    url, store = service
    manager = store.create_key(name="team-manager-browser", role=Role.MANAGER)[0]
    _sign_in(page, url, manager)
    _assert_accessible(page)
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == min(len({s["score_id"] for s in scored}), ServingSettings().queue_limit)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)

    # Highest risk first: the first row is the riskiest case; open its report from the queue.
    first = rows.first
    score_id = first.get_attribute("data-score-id")
    assert score_id is not None
    first.get_by_role("link").click()
    page.wait_for_url(f"{url}/v1/scores/{score_id}/report")

    stored = _api(url, manager, f"/v1/scores/{score_id}")
    assert stored["probability"] == max(s["probability"] for s in scored)
    assert page.inner_text("#probability") == percent(stored["probability"])
    assert page.inner_text("#probability-words") == in_words(stored["probability"]).capitalize()
    assert page.inner_text("#band") == f"{stored['band']} band"
    assert page.inner_text("#model-version") == stored["model_version"]
    shown = page.eval_on_selector_all("#reasons-table tbody tr", "rows => rows.map(r => r.dataset.feature)")
    raising = [r["feature"] for r in stored["reasons"] if r["contribution"] > 0][:8]
    lowering = [r["feature"] for r in stored["reasons"] if r["contribution"] < 0][:8]
    assert shown == raising + lowering
    if stored["what_ifs"]:
        assert page.locator("#what-ifs li").count() == len(stored["what_ifs"])
    model = _api(url, manager, "/v1/model")
    # The headline is the pooled backtest; this version's own test year is given beside it.
    assert model["backtest_years"]
    auc = model["backtest_metrics"]["roc_auc"]
    assert f"{auc['value']:.3f}" in page.inner_text("#metrics")
    assert f"{model['test_metrics']['roc_auc']['value']:.3f}" in page.inner_text("#test-year-metrics")
    assert page.locator("svg[role=img] title").count() == 1
    _assert_accessible(page)
    page.screenshot(path=str(ARTIFACTS / "report-high-risk.png"), full_page=True)
    page.emulate_media(media="print")
    pdf = page.pdf(path=str(ARTIFACTS / "report-high-risk.pdf"), format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, f"the printed report runs to {pages} A4 pages"
    page.emulate_media(media="screen")

    page.check("#decision-keep_open")
    page.fill("#reason", "Parenting programme not finished; health visitor to join the plan.")
    page.check("#agreement-higher")
    page.check("#ground-child_voice")
    page.check("#ground-partner_views")
    page.fill("#grounds", "School reports the child is often hungry.")
    page.click(".decision-form button[type=submit]")
    page.wait_for_selector("#recorded-decision")
    assert "Recorded: Keep the case open" in page.inner_text("#recorded-decision")
    assert page.inner_text("#decided-by") == "team-manager-browser"
    assert page.inner_text("#recorded-agreement") == "I judge the risk higher"
    _assert_accessible(page)
    (decision,) = _api(url, manager, f"/v1/scores/{score_id}/decision")
    assert (decision["decision"], decision["decided_by"]) == ("keep_open", "team-manager-browser")
    assert decision["reason"] == "Parenting programme not finished; health visitor to join the plan."
    review = decision["review"]
    assert (review["agreement"], review["child_voice"], review["family_strengths"], review["partner_views"],
            review["multi_agency"]) == ("higher", True, False, True, False)  # fmt: skip
    assert review["grounds"] == "School reports the child is often hungry."
    assert review["report_open_s"] is not None
    assert review["report_open_s"] > 0

    # The review of decisions counts it, and reads well.
    page.goto(f"{url}/v1/ui/review")
    assert page.locator(f'#high-band-closures tr[data-score-id="{score_id}"]').count() == 0  # kept open
    assert "1</strong> decisions, <strong>1</strong> with" in page.content()
    _assert_accessible(page)
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

    # The queue shows the decision, and its filter finds it.
    page.goto(f"{url}/v1/ui/queue?decision=keep_open")
    assert page.locator("table.queue tbody tr").count() == 1
    assert page.locator("table.queue tbody tr").first.get_attribute("data-score-id") == score_id


def test_queue_form_works_with_every_combination_of_any(
    service: tuple[str, AuditStore], scored: list[dict[str, Any]], page: Page
) -> None:
    """The browser submits the form as a manager leaves it: an option on "any" sends an empty value."""
    url, store = service
    _sign_in(page, url, store.create_key(name="team-manager-filters", role=Role.MANAGER)[0])
    page_size = ServingSettings().queue_limit
    for band, decision, order in itertools.product(("", "high", "low"), ("", "undecided"), ("risk", "days_open")):
        page.goto(f"{url}/v1/ui/queue")
        page.select_option("#band", band)
        page.select_option("#decision", decision)
        page.select_option("#sort", order)
        page.click(".filters button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "Scored open cases", (band, decision, order, page.url)
        shown = page.eval_on_selector_all("table.queue tbody tr", "rows => rows.map(r => r.dataset.scoreId)")
        decided = {d.score_id for s in scored for d in store.decisions(s["score_id"])}
        expected = {s["score_id"] for s in scored if band in ("", s["band"])}
        if decision == "undecided":
            expected -= decided
        total = int(page.inner_text("#queue-count").split(" ")[0].replace(",", ""))
        assert total == len(expected), (band, decision)
        assert set(shown) <= expected
        assert len(shown) == min(total, page_size)
        if total > page_size:  # the next page holds the rest, none twice
            page.click("a[rel=next]")
            page.wait_for_load_state()
            more = page.eval_on_selector_all("table.queue tbody tr", "rows => rows.map(r => r.dataset.scoreId)")
            assert not set(more) & set(shown)
            assert set(more) <= expected
    _assert_accessible(page)


def test_low_risk_report_reads_well_and_sign_in_page_is_accessible(
    service: tuple[str, AuditStore], scored: list[dict[str, Any]], page: Page
) -> None:
    url, store = service
    page.goto(f"{url}/v1/ui/login")
    _assert_accessible(page)
    manager = store.create_key(name="team-manager-low", role=Role.MANAGER)[0]
    _sign_in(page, url, manager)
    page.goto(f"{url}/v1/ui/queue?band=low")
    rows = page.locator("table.queue tbody tr")
    low = [s for s in scored if s["band"] == "low"]
    assert rows.count() == len({s["score_id"] for s in low})
    if not low:
        pytest.fail("the tiny cohort has no low-band case to show")
    last = rows.last
    score_id = last.get_attribute("data-score-id")
    last.get_by_role("link").click()
    page.wait_for_url(f"{url}/v1/scores/{score_id}/report")
    stored = _api(url, manager, f"/v1/scores/{score_id}")
    assert stored["probability"] == min(s["probability"] for s in low)
    assert page.inner_text("#probability") == percent(stored["probability"])
    _assert_accessible(page)
    page.screenshot(path=str(ARTIFACTS / "report-low-risk.png"), full_page=True)


@pytest.mark.parametrize(("path", "ready"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_api_documentation_renders_with_the_network_blocked(
    service: tuple[str, AuditStore], page: Page, path: str, ready: str
) -> None:
    """Swagger UI and ReDoc come from files installed with the service: nothing is fetched from anywhere else."""
    url, _ = service
    elsewhere: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.goto(f"{url}{path}")
    page.wait_for_selector(ready, timeout=30_000)
    assert "case-closure-risk" in page.inner_text(ready)
    page.wait_for_function("() => document.body.innerText.includes('/v1/score')", timeout=30_000)
    assert elsewhere == []


def test_the_front_door_sends_a_browser_to_sign_in(service: tuple[str, AuditStore], page: Page) -> None:
    url, _ = service
    page.goto(f"{url}/")
    assert page.url == f"{url}/v1/ui/login"
    assert page.locator("#api_key").count() == 1
