"""The two-year monitoring scenario on a synthetic authority, end to end (``make monitor-demo``).

1. Generate the authority once, through collection year ``year + 2``: a longer run with the same seed keeps other
   children (the cohort is the first N children who appear in the returns of the window), so the years are not
   generated separately. The model is given only the returns up to ``year``: what the authority had then.
2. Train and register a version on those returns (the training pipeline, in its own MLflow store).
3. Through the API (every score written to the audit store): score every case open on 31 March ``year``, and every
   case again on the day it closed during collection year ``year + 1`` (the score a manager sees when closing);
   record the manager's decision: keep open for an opening score of a case still open four weeks later, and close
   (or step down to early help, for RC9) on the closing score.
4. Run the monitor on the returns of ``year + 1`` and ``year + 2``: a closure needs 365 days after it before its
   outcome is known, so the year after the scoring year is when every closure of the scoring year can be judged.
5. Read the summary back through ``GET /v1/model/monitoring`` and the gauges through ``/metrics``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import AuditStore
from features import ChildRecord, ClosureReason, Role, current_episode, ingest, record_as_of
from monitoring.run import monitor
from monitoring.settings import MonitoringSettings
from serving.settings import ServingSettings

__all__ = ["ScoredYear", "returns_up_to", "run_scenario", "scenario_settings", "score_year_through_api"]

BATCH = 500
KEEP_OPEN_AFTER_DAYS = 28


def returns_up_to(authority: Path, last_year: int, out: Path) -> Path:
    """A data folder with the authority's returns up to ``last_year``, its extension and truth file (copies)."""
    out.mkdir(parents=True, exist_ok=True)
    kept = [p for p in sorted(authority.glob("cin_*.xml")) if int(p.stem.split("_")[1]) <= last_year]
    if not kept:
        raise FileNotFoundError(f"{authority}: no returns up to {last_year}")
    for path in [*kept, authority / "extension.jsonl", authority / "truth.csv"]:
        if path.exists():
            shutil.copyfile(path, out / path.name)
    return out


@dataclass(frozen=True)
class ScoredYear:
    opening_scores: int  # cases open on the first day, scored then
    closing_scores: int  # cases scored again on the day they closed
    decisions: int


def _case_requests(records: Sequence[ChildRecord], year: int) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(request body, decision to record or None) for the opening and the closing scores of the year."""
    opening = dt.date(year, 3, 31)
    last_day = dt.date(year + 1, 3, 31)
    for record in records:
        index = current_episode(record, opening)
        if index is not None:
            seen = record_as_of(record, opening)
            episode = record.episodes[index]
            closed = episode.closure_date
            still_open = closed is None or closed > opening + dt.timedelta(days=KEEP_OPEN_AFTER_DAYS)
            if seen is not None:
                body = {"record": seen.model_dump(mode="json", exclude_none=True), "as_of": opening.isoformat()}
                yield body, "keep_open" if still_open else None
        for episode in record.episodes:
            closed = episode.closure_date
            if closed is None or not opening < closed <= last_day:
                continue
            seen = record_as_of(record, closed)
            if seen is None:
                continue
            decision = "step_down_early_help" if episode.closure_reason == ClosureReason.RC9 else "close"
            yield {"record": seen.model_dump(mode="json", exclude_none=True), "as_of": closed.isoformat()}, decision


def score_year_through_api(
    settings: ServingSettings, records: Sequence[ChildRecord], *, year: int
) -> tuple[ScoredYear, dict[str, str]]:
    """Score collection year ``year + 1`` through the API as described in the module docstring; returns the counts
    and one key per role (system, manager) for later calls."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    store = AuditStore(settings.database_url)
    store.migrate()
    keys = {
        role: store.create_key(name=f"monitoring-scenario-{role}", role=Role(role))[0] for role in ("system", "manager")
    }
    store.close()
    system = {"Authorization": f"Bearer {keys['system']}"}
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    opening_day = dt.date(year, 3, 31).isoformat()
    planned = list(_case_requests(records, year))
    opening = closing = decided = 0
    with TestClient(create_app(settings)) as client:
        for start in range(0, len(planned), BATCH):
            part = planned[start : start + BATCH]
            answer = client.post("/v1/score/batch", json={"cases": [body for body, _ in part]}, headers=system)
            if answer.status_code != 200:
                raise RuntimeError(f"scoring failed ({answer.status_code}): {answer.text[:500]}")
            for (body, decision), result in zip(part, answer.json()["scores"], strict=True):
                opening += body["as_of"] == opening_day
                closing += body["as_of"] != opening_day
                if decision is None:
                    continue
                recorded = client.post(
                    f"/v1/scores/{result['score_id']}/decision",
                    json={"decision": decision, "reason": "monitoring scenario: the decision the case file shows"},
                    headers=manager,
                )
                if recorded.status_code not in (200, 201):
                    raise RuntimeError(f"decision failed ({recorded.status_code}): {recorded.text[:500]}")
                decided += 1
    return ScoredYear(opening, closing, decided), keys


def scenario_settings(
    out: Path, *, version: str, bootstrap: int, experiment: str = "case-closure-risk-monitoring"
) -> tuple[ServingSettings, MonitoringSettings]:
    """The service's and the monitor's settings over the scenario's own stores in ``out`` (MLflow, audit, key)."""
    tracking, database_url, key_file = (
        f"sqlite:///{out / 'mlflow.db'}",
        f"sqlite:///{out / 'audit.db'}",
        str(out / "pseudonym.key"),
    )
    serving = ServingSettings(model_uri=f"models:/case-closure-risk/{version}", tracking_uri=tracking,
                              database_url=database_url, pseudonym_key_file=key_file)  # fmt: skip
    monitoring = MonitoringSettings(tracking_uri=tracking, database_url=database_url, pseudonym_key_file=key_file,
                                    artifact_location=str(out / "mlruns"), monitoring_experiment=experiment,
                                    report_dir=str(out / "reports"), bootstrap=bootstrap)  # fmt: skip
    return serving, monitoring


def run_scenario(
    out: Path, *, children: int, seed: int, start: int, year: int, bootstrap: int = 200, workers: int | None = None
) -> dict[str, Any]:
    """The whole scenario in ``out`` (its own MLflow store, audit store, key and reports); returns what it found."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from synthetic import generate_cohort
    from training.pipeline import train
    from training.settings import TrainingSettings

    out = out.resolve()
    authority = out / "authority"
    for stale in ("mlflow.db", "audit.db", "audit.db-wal", "audit.db-shm", "pseudonym.key", "endpoint_summary.json"):
        (out / stale).unlink(missing_ok=True)  # a rerun starts from the generated authority, nothing else
    for stale_dir in ("mlruns", "reports", f"returns-to-{year}"):
        shutil.rmtree(out / stale_dir, ignore_errors=True)
    if not (authority / "manifest.json").exists():
        generate_cohort(children=children, seed=seed, start=start, end=year + 2, out=authority, workers=workers)
    tracking = f"sqlite:///{out / 'mlflow.db'}"
    trained = train(
        returns_up_to(authority, year, out / f"returns-to-{year}"),
        TrainingSettings(tracking_uri=tracking, artifact_location=str(out / "mlruns"), bootstrap=bootstrap,
                         shap_sample=500),
    )  # fmt: skip
    serving, settings = scenario_settings(out, version=trained.version, bootstrap=bootstrap)
    records = ingest(sorted(authority.glob("cin_*.xml")), extension=authority / "extension.jsonl").records
    scored, keys = score_year_through_api(serving, records, year=year)
    newer = [authority / f"cin_{y}.xml" for y in (year + 1, year + 2)]
    monitored = monitor(newer, settings=settings, extension=authority / "extension.jsonl")
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    with TestClient(create_app(serving)) as client:
        endpoint = client.get("/v1/model/monitoring", headers=manager)
        scraped = client.get("/metrics", headers=manager).text
    gauges = [line for line in scraped.splitlines() if line.startswith("ccr_monitoring_")]
    (out / "endpoint_summary.json").write_text(json.dumps(endpoint.json(), indent=2), encoding="utf-8")
    return {
        "out": str(out),
        "trained": {
            "version": trained.version,
            "promoted": trained.promoted,
            "test_year": trained.test_year,
            "test": trained.test,
        },
        "scored": scored.__dict__,
        "monitor": monitored,
        "endpoint_status": endpoint.status_code,
        "endpoint_summary": str(out / "endpoint_summary.json"),
        "gauges": gauges,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.monitor_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the authority, stores and reports")
    parser.add_argument("--children", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=20250331)
    parser.add_argument("--start", type=int, default=2017, help="first collection year generated")
    parser.add_argument("--year", type=int, default=2023, help="last collection year the model is trained on")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args(argv)
    found = run_scenario(
        args.out, children=args.children, seed=args.seed, start=args.start, year=args.year, bootstrap=args.bootstrap
    )
    print(json.dumps(found, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
