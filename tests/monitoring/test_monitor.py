"""The monitoring scenario on the session's tiny authority: train on the returns up to 2023, score collection year
2024 through the API (audit store in SQLite), then monitor with the 2024 and 2025 returns into a real MLflow store."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from fastapi.testclient import TestClient

import closure_risk
from audit import AuditStore, Pseudonymiser, load_inputs_cipher
from docs.monitor_demo import ScoredYear, returns_up_to, scenario_settings, score_year_through_api
from features import build_features, ingest
from models import RiskModel, registry, stored_features
from models.performance import MonitoringReport, MonitoringSummary
from monitoring import MonitoringSettings, ScoredOutcome, build_summary, feature_drift, join_outcomes, monitor
from serving.app import create_app
from serving.settings import ServingSettings
from synthetic import generate_cohort
from training.pipeline import train
from training.settings import TrainingSettings

YEAR = 2023  # the model sees returns up to 31 March 2023 and scores collection year 2024
DATA_END = dt.date(2025, 3, 31)


@dataclass
class Scenario:
    authority: Path
    settings: MonitoringSettings
    serving: ServingSettings
    version: str
    keys: dict[str, str]
    scored: ScoredYear
    before: Any  # the endpoint's answer before any monitoring run
    result: dict[str, Any]

    @property
    def newer(self) -> list[Path]:
        return [self.authority / f"cin_{y}.xml" for y in (YEAR + 1, YEAR + 2)]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="module")
def scenario(tiny_authority: Path, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    out = tmp_path_factory.mktemp("monitoring")
    tracking = f"sqlite:///{out / 'mlflow.db'}"
    trained = train(
        returns_up_to(tiny_authority, YEAR, out / "returns"),
        # The tiny test year cannot judge calibration against the production gate: the gate is not the point here.
        TrainingSettings(tracking_uri=tracking, artifact_location=str(out / "mlruns"), experiment="test-monitor-train",
                         bootstrap=60, shap_sample=200, max_calibration_error=1.0, max_group_calibration_error=1.0,
                         min_closures=0, min_rereferrals=0),
    )  # fmt: skip
    version = trained.version
    serving, settings = scenario_settings(out, version=version, bootstrap=100, experiment="test-monitoring")
    records = ingest(sorted(tiny_authority.glob("cin_*.xml")), extension=tiny_authority / "extension.jsonl").records
    scored, keys = score_year_through_api(serving, records, year=YEAR)
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    with TestClient(create_app(serving)) as client:
        before = client.get("/v1/model/monitoring", headers=manager)
    newer = [tiny_authority / f"cin_{y}.xml" for y in (YEAR + 1, YEAR + 2)]
    result = monitor(newer, settings=settings, extension=tiny_authority / "extension.jsonl")
    return Scenario(tiny_authority, settings, serving, version, keys, scored, before, result)


@pytest.fixture
def client(scenario: Scenario) -> Iterator[TestClient]:
    with TestClient(create_app(scenario.serving)) as test_client:
        yield test_client


def _outcomes(scenario: Scenario, returns: list[Path]) -> tuple[list[ScoredOutcome], dt.date]:
    """The join the monitor makes, recomputed here so each closure can be checked against the generator's truth."""
    ingested = ingest(returns, extension=scenario.authority / "extension.jsonl")
    assert ingested.data_end is not None
    store = AuditStore(scenario.settings.database_url, inputs=load_inputs_cipher(scenario.settings.inputs_key_path))
    try:
        scores = store.scores_between()
        decisions = store.current_decisions([s.id for s in scores])
    finally:
        store.close()
    key = Pseudonymiser(Path(scenario.settings.pseudonym_key_file).read_bytes())
    return join_outcomes(scores, ingested.records, data_end=ingested.data_end, pseudonymiser=key,
                         decisions=decisions), ingested.data_end  # fmt: skip


def _truth(scenario: Scenario) -> dict[str, tuple[float, int | None]]:
    """The generator's true probability and outcome of every closure, by the case id the service would give it."""
    key = Pseudonymiser(Path(scenario.settings.pseudonym_key_file).read_bytes())
    with (scenario.authority / "truth.csv").open(encoding="utf-8", newline="") as stream:
        return {
            key.case_id(row["la_child_id"], dt.date.fromisoformat(row["referral_date"])): (
                float(row["true_probability"]),
                int(row["rereferred_within_365"]) if row["rereferred_within_365"] else None,
            )
            for row in csv.DictReader(stream)
        }


def _summary(scenario: Scenario) -> MonitoringReport:
    registry.use_store(scenario.settings.tracking_uri)
    summary = registry.latest_monitoring(scenario.version)
    assert summary is not None
    return summary


def test_monitor_endpoint_is_404_before_any_monitoring_run(scenario: Scenario) -> None:
    assert scenario.before.status_code == 404
    assert "no monitoring run yet" in scenario.before.json()["detail"]


def test_monitor_known_outcomes_equal_the_generators_outcomes(scenario: Scenario) -> None:
    outcomes, _ = _outcomes(scenario, scenario.newer)
    truth = _truth(scenario)
    known = [o for o in outcomes if o.at_closure and o.status == "known"]
    assert len(known) >= 200
    assert [o.label for o in known] == [truth[o.score.case_id][1] for o in known]


def test_monitor_realised_band_rates_agree_with_the_generators_truth(scenario: Scenario) -> None:
    outcomes, _ = _outcomes(scenario, scenario.newer)
    truth = _truth(scenario)
    summary = _summary(scenario)
    for band in summary.bands:
        closures = [o for o in outcomes if o.at_closure and o.status == "known" and o.score.band == band.band]
        assert band.closures == len(closures) >= 20
        assert band.re_referred == sum(o.label or 0 for o in closures)
        # The realised rate is a sum of Bernoulli draws with the true probabilities: within three standard errors.
        p = [truth[o.score.case_id][0] for o in closures]
        standard_error = math.sqrt(sum(q * (1 - q) for q in p)) / len(p)
        assert band.realised_rate is not None
        assert abs(band.realised_rate - sum(p) / len(p)) <= 3 * standard_error, band


def test_monitor_pending_outcomes_are_never_counted_as_negatives(scenario: Scenario) -> None:
    outcomes, data_end = _outcomes(scenario, scenario.newer)
    pending = [o for o in outcomes if o.at_closure and o.status == "pending"]
    assert pending
    assert all(o.label is None and o.closure_date and o.closure_date > data_end - dt.timedelta(days=365)
               for o in pending)  # fmt: skip
    summary = _summary(scenario)
    assert summary.outcomes["pending"] == len(pending)
    assert sum(b.closures for b in summary.bands) == summary.outcomes["known"]
    # With only the following year's return, every closure of the scoring year is still pending: none is a 0.
    early, early_end = _outcomes(scenario, scenario.newer[:1])
    at_closure = [o for o in early if o.at_closure]
    cutoff = early_end - dt.timedelta(days=365)
    assert all(o.closure_date is not None and o.closure_date <= cutoff for o in at_closure if o.status == "known")
    closed_late = [o for o in at_closure if o.status in ("known", "pending") and o.closure_date
                   and o.closure_date > cutoff]  # fmt: skip
    assert len(closed_late) > 100
    assert {o.status for o in closed_late} == {"pending"}
    model = registry.load_model(scenario.version)
    early_summary = build_summary(model, early, data_end=early_end.isoformat(), since=None, drift_threshold=0.25,
                                  n_boot=0, seed=0)  # fmt: skip
    assert early_summary.outcomes["known"] == sum(o.status == "known" for o in at_closure)
    assert early_summary.outcomes["pending"] == sum(o.status == "pending" for o in at_closure)


def test_monitor_counts_decisions_against_outcomes(scenario: Scenario) -> None:
    summary = _summary(scenario)
    decisions = {d.decision: d for d in summary.decisions}
    assert sum(d.scores for d in decisions.values()) == scenario.scored.decisions
    for d in decisions.values():
        assert d.outcome_known + d.pending + d.still_open <= d.scores
    assert decisions["keep_open"].scores > 0
    assert decisions["close"].outcome_known > 0


def test_monitor_logs_a_run_linked_to_the_model_version(scenario: Scenario) -> None:
    [logged] = scenario.result["versions"]
    summary = _summary(scenario)
    assert summary.run_id == logged["run_id"]
    run = mlflow.get_run(logged["run_id"])
    assert run.data.tags["ccr.model_version"] == scenario.version
    assert run.data.tags["ccr.kind"] == "monitoring"
    assert run.data.metrics["realised_calibration_error"] == pytest.approx(summary.calibration_error)
    assert run.data.metrics["outcomes_pending"] == summary.outcomes["pending"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(logged["run_id"], "monitoring")}
    assert {"monitoring/report.html", "monitoring/summary.json", "monitoring/calibration.png",
            "monitoring/drift.png", "monitoring/fairness.png"} <= artifacts  # fmt: skip


def test_monitor_report_is_self_contained(scenario: Scenario) -> None:
    [logged] = scenario.result["versions"]
    html = Path(logged["report"]).read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"https?://", html)
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 3
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert logged["run_id"] in html
    assert f"version {scenario.version}" in html


def test_monitoring_endpoint_gives_managers_the_latest_summary(scenario: Scenario, client: TestClient) -> None:
    summary = _summary(scenario)
    answer = client.get("/v1/model/monitoring", headers=scenario.headers("manager"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == scenario.version
    assert body["run_id"] == summary.run_id
    assert body["outcomes"]["pending"] == summary.outcomes["pending"]
    assert [b["closures"] for b in body["bands"]] == [b.closures for b in summary.bands]
    assert set(body) == set(MonitoringSummary.model_fields)  # the report's detail stays out of the API
    assert client.get("/v1/model/monitoring", headers=scenario.headers("system")).status_code == 403
    assert client.get("/v1/model/monitoring").status_code == 401


def test_metrics_expose_realised_calibration_error_and_largest_drift(scenario: Scenario, client: TestClient) -> None:
    summary = _summary(scenario)
    text = client.get("/metrics", headers=scenario.headers("manager")).text
    ece = re.search(rf'^ccr_monitoring_calibration_error{{version="{scenario.version}"}} (\S+)$', text, re.M)
    assert ece is not None
    assert float(ece.group(1)) == pytest.approx(summary.calibration_error)
    drift = re.search(r'^ccr_monitoring_largest_drift_psi{feature="(\w+)",version="\d+"} (\S+)$', text, re.M)
    assert drift is not None
    assert summary.largest_drift is not None
    assert drift.group(1) == summary.largest_drift.feature
    assert float(drift.group(2)) == pytest.approx(max(d.psi for d in summary.drift))


def test_model_card_performance_in_use_points_to_the_latest_report(scenario: Scenario, client: TestClient) -> None:
    card = client.get("/v1/model", headers=scenario.headers("manager")).json()["model_card"]
    section = card[card.index("## Performance in use") :].split("\n## ")[0]
    assert scenario.result["versions"][0]["run_id"] in section
    assert "monitoring/report.html" in section
    assert "No monitoring report yet" not in section


def test_drift_flags_raised_for_a_shifted_population(bundle: Path, tmp_path: Path, open_records: list[Any]) -> None:
    model = RiskModel.load(bundle)
    as_of = dt.date(2025, 3, 31)
    shifted = tmp_path / "older-referrals"
    generate_cohort(children=800, seed=41, start=2022, end=2025, out=shifted, workers=1, referral_age_shift_years=6.0)
    records = ingest(sorted(shifted.glob("cin_*.xml")), extension=shifted / "extension.jsonl").records

    def flagged(records: list[Any]) -> dict[str, float]:
        frame = build_features(records, as_of)
        cases = [stored_features(row) for _, row in frame.iterrows()]
        return {d["feature"]: d["psi"] for d in feature_drift(model, cases, threshold=0.25) if d["flagged"]}

    usual, older = flagged(open_records), flagged(records)
    assert "age_years" in older
    assert "age_years" not in usual


def test_cli_monitor_refuses_to_run_without_the_pseudonym_key(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitoring import settings

    monkeypatch.setenv("CCR_DATABASE_URL", scenario.settings.database_url)
    monkeypatch.setenv("CCR_PSEUDONYM_KEY_FILE", str(tmp_path / "absent.key"))
    settings.get_settings.cache_clear()
    try:
        code = closure_risk.main(["monitor", "--returns", str(scenario.newer[0])])
    finally:
        settings.get_settings.cache_clear()
    assert code == closure_risk.EXIT_INPUT
    assert "no pseudonym key" in capsys.readouterr().err
    assert not (tmp_path / "absent.key").exists()


def test_monitor_report_warns_of_selective_outcomes_and_reviews_the_decisions(scenario: Scenario) -> None:
    [logged] = scenario.result["versions"]
    html = Path(logged["report"]).read_text(encoding="utf-8")
    assert "Outcomes are seen only for the cases managers chose to close." in html
    assert "pre-deployment hold-out" in html
    assert '<table id="review-by-band">' in html
    rows = re.findall(r"<tr><td>(low|medium|high)</td><td class=\"n\">(\d+)</td>", html)
    assert sum(int(n) for _, n in rows) == scenario.scored.decisions  # every decision of the scenario, once
