"""Screenshots of the manager's pages for docs/: the default cohort's champion, served for real, seen in Chromium.

``make screenshots`` (after ``make data``; trains a champion first if the MLflow store has none). Scores the open
neglect cases of the authority as of its last census date through the real API into a throwaway audit store, signs
in with a manager's key, and saves the queue and the reports of the highest- and lowest-risk case.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from audit import AuditStore
from features import Role, current_episode, ingest
from serving.settings import ServingSettings
from tests.serving.live import CHROMIUM_ARGS, chromium_path, live_server
from training.pipeline import champion_or_none, train
from training.settings import get_settings as training_settings

CASES = 1000  # one batch request


def _score(url: str, key: str, data: Path, as_of: dt.date) -> list[dict[str, Any]]:
    records = ingest(sorted(data.glob("cin_*.xml")), extension=data / "extension.jsonl").records
    open_cases = [r for r in records if current_episode(r, as_of) is not None][:CASES]
    cases = [{"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": as_of.isoformat()}
             for r in open_cases]  # fmt: skip
    response = httpx.post(
        f"{url}/v1/score/batch", json={"cases": cases}, headers={"Authorization": f"Bearer {key}"}, timeout=300
    )
    response.raise_for_status()
    scores: list[dict[str, Any]] = response.json()["scores"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed: make install-browser")
    training = training_settings()
    if champion_or_none(training) is None:
        train(args.data, training)
    with tempfile.TemporaryDirectory(prefix="ccr-screenshots-") as tmp:
        settings = ServingSettings(
            model_uri="models:/case-closure-risk@champion",
            tracking_uri=training.tracking_uri,
            database_url=f"sqlite:///{tmp}/audit.db",
            pseudonym_key_file=f"{tmp}/pseudonym.key",
        )
        with live_server(settings) as url:
            store = AuditStore(settings.database_url)
            system = store.create_key(name="case-management", role=Role.SYSTEM)[0]
            manager = store.create_key(name="team-manager", role=Role.MANAGER)[0]
            store.close()
            model = httpx.get(f"{url}/v1/model", headers={"Authorization": f"Bearer {manager}"}, timeout=60).json()
            scores = [s for s in _score(url, system, args.data, dt.date.fromisoformat(model["data_end"]))
                      if s["in_scope"] and not s["out_of_distribution"]]  # fmt: skip
            high = max(scores, key=lambda s: s["probability"])
            low = min(scores, key=lambda s: s["probability"])
            args.out.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en-GB")
                page.goto(f"{url}/v1/ui/login")
                page.fill("#api_key", manager)
                page.click("button[type=submit]")
                page.wait_for_url("**/v1/ui/queue")
                page.screenshot(path=str(args.out / "queue.png"))
                for name, score in (("report-high-risk", high), ("report-low-risk", low)):
                    page.goto(f"{url}/v1/scores/{score['score_id']}/report")
                    page.screenshot(path=str(args.out / f"{name}.png"), full_page=True)
                    page.emulate_media(media="print")
                    page.pdf(path=str(args.out / f"{name}.pdf"), format="A4", print_background=True)
                    page.emulate_media(media="screen")
                    print(f"{name}: probability {score['probability']:.3f}, band {score['band']}")
                browser.close()


if __name__ == "__main__":
    main()
