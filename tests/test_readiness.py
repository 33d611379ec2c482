"""``closure-risk readiness``: the data officer's report, as JSON and as a page checked in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

import cli.readiness
from closure_risk import EXIT_PARTIAL, main
from tests.serving.live import CHROMIUM_ARGS, chromium_path
from tests.serving.test_browser import ARTIFACTS, _assert_accessible
from tests.strategies import census_xml, child_xml, episode_xml
from training.split import split_by_time

_IDS = ("SECRET-A", "SECRET-B", "SECRET-C", "SECRET-D", "SECRET-E")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def returns(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three years: a child closed in the second, one missing from it, a bad code, and a broken third file."""
    folder = tmp_path_factory.mktemp("readiness-returns")
    a, b, c, d, e = _IDS
    first = census_xml(
        child_xml(a, episode_xml("2022-05-01")),
        child_xml(b, episode_xml("2022-06-01")),
        child_xml(c, episode_xml("2022-07-01", source="XX", closure="2022-09-01", reason="RC7")),
        year=2023,
    )
    closed = episode_xml("2022-05-01", closure="2023-06-01", reason="RC7")
    second = census_xml(child_xml(a, closed), child_xml(d, episode_xml("2023-08-01")), year=2024)
    third = census_xml(child_xml(d, episode_xml("2023-08-01")), child_xml(e, episode_xml("2024-09-01")), year=2025)
    third = third.replace(f"<LAchildID>{e}</LAchildID>", f"<LAchildID>{e}</LAchild>")  # broken in one child
    extension = json.dumps({"la_child_id": d, "referral_date": "2023-08-01", "services": [], "visits": []})
    return [
        _write(folder, "cin_2023.xml", first),
        _write(folder, "cin_2024.xml", second),
        _write(folder, "cin_2025.xml", third),
        _write(folder, "extension.jsonl", extension + "\n"),
    ]


@pytest.fixture(scope="module")
def report(returns: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("readiness-report")
    *xml, extension = returns
    assert main(["readiness", *map(str, xml), "--extension", str(extension), "--out", str(out)]) == EXIT_PARTIAL
    return out, json.loads((out / "readiness.json").read_text(encoding="utf-8"))


def test_readiness_counts_children_episodes_and_closures_per_collection_year(
    report: tuple[Path, dict[str, Any]],
) -> None:
    _, data = report
    years = {y["year"]: y for y in data["years"]}
    assert list(years) == ["2022-23", "2023-24", "2024-25"]
    assert [(y["child_elements"], y["child_elements_kept"], y["child_elements_dropped"]) for y in years.values()] == [
        (3, 2, 1),  # SECRET-C's bad ReferralSource
        (2, 2, 0),
        (2, 1, 1),  # SECRET-E's broken tag
    ]
    assert (years["2022-23"]["children"], years["2022-23"]["episodes"], years["2022-23"]["referrals"]) == (2, 2, 2)
    assert (years["2023-24"]["closures"], years["2023-24"]["eligible_closures"]) == (1, 1)  # a full year to 2025
    assert years["2023-24"]["censored_closures"] == 0
    assert data["partial"] is True
    assert data["partly_read_files"] == ["cin_2025.xml"]


def test_readiness_says_what_is_recorded_lacking_and_why_training_cannot_start(
    report: tuple[Path, dict[str, Any]],
) -> None:
    _, data = report
    fields = {f["name"]: (f["recorded"], f["episodes"], f["open_recorded"], f["open_episodes"]) for f in data["fields"]}
    # kept: A (closed), B (open, missing from 2024), D (open, extension services and visits only)
    assert fields == {"services": (1, 3, 1, 2), "agencies": (0, 3, 0, 2), "visits": (1, 3, 1, 2),
                      "plan_reviews": (0, 3, 0, 2)}  # fmt: skip
    assert data["scoring"] == {"open_episodes": 2, "missing_from_return": 1, "expected_birth_only": 0,
                               "lacking": {"services": 1, "agencies": 2, "visits": 1, "plan_reviews": 2}}  # fmt: skip
    training = data["training"]
    assert (training["enough"], training["eligible_closures"], training["minimum_is_estimate"]) == (False, 1, True)
    assert training["complete_years"] == ["2023-24"]
    assert training["reasons"][0].startswith("1 collection year of closures with a full year of follow-up; training ")


def test_readiness_lists_problems_by_rule_with_the_dfe_rule_and_names_no_child(
    report: tuple[Path, dict[str, Any]],
) -> None:
    out, data = report
    rules = {(r["rule"], r["severity"]): r for r in data["rules"]}
    code = rules[("invalid_code", "error")]
    assert (code["count"], code["dfe_rule"]) == (1, "8866")
    assert code["examples"] == [
        {"source": "cin_2023.xml", "path": "Child[3]/CINdetails[1]/ReferralSource", "message": code["examples"][0][
            "message"]}
    ]  # fmt: skip
    assert rules[("not_well_formed", "error")]["dfe_rule"] is None
    assert ("open_episode_missing", "warning") in rules
    html = (out / "readiness.html").read_text(encoding="utf-8")
    for text in (html, json.dumps(data)):
        assert not any(child_id in text for child_id in _IDS)
    assert "no DfE rule number" in html


def test_readiness_says_enough_when_both_minimums_are_met(
    returns: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.readiness, "MIN_COMPLETE_YEARS", 0)
    monkeypatch.setattr(cli.readiness, "ESTIMATED_MIN_CLOSURES", 0)
    assert main(["readiness", str(returns[0]), "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "readiness.json").read_text(encoding="utf-8"))
    assert (data["training"]["enough"], data["training"]["reasons"]) == (True, [])
    assert data["extension"] is None


def test_readiness_minimum_of_years_is_the_one_training_enforces() -> None:
    def frame(years: int) -> pd.DataFrame:
        closures = [dt.date(2018 + y, 6, 1) for y in range(years)]
        return pd.DataFrame({"closure_date": closures, "la_child_id": [f"c{i}" for i in range(years)]})

    end = dt.date(2018 + cli.readiness.MIN_COMPLETE_YEARS + 1, 3, 31)  # every year's closures have a full year after
    split_by_time(frame(cli.readiness.MIN_COMPLETE_YEARS), data_end=end)
    with pytest.raises(ValueError, match="at least three collection years"):
        split_by_time(frame(cli.readiness.MIN_COMPLETE_YEARS - 1), data_end=end)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        opened = browser.new_page()
        yield opened
        browser.close()


def test_readiness_page_reads_well_in_chromium(report: tuple[Path, dict[str, Any]], page: Page) -> None:
    out, data = report
    console: list[str] = []

    def heard(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", heard)
    page.goto((out / "readiness.html").as_uri())
    assert page.title() == "Readiness of the CIN census returns · case-closure-risk"
    assert page.inner_text("#enough") == (
        "Not yet: 1 closure eligible for training in 1 collection year with a full year of follow-up."
    )
    assert page.locator("#years tbody tr").count() == len(data["years"])
    assert page.locator("#rules tbody tr").count() == len(data["rules"])
    assert "read around broken XML: cin_2025.xml" in page.inner_text("#partial")
    _assert_accessible(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "readiness.png"), full_page=True)
    assert console == []
