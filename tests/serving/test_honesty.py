"""The report tells the truth about itself: synthetic training data, a low estimate is not a safe closure, the
label's limits, the neglect population's own bands for a case in scope, and no figures for too small a group."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features import ChildRecord
from models import RiskModel
from serving.app import create_app
from serving.honesty import MIN_GROUP_SIZE
from serving.settings import ServingSettings


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(model_uri=str(bundle), database_url=f"sqlite:///{tmp_path}/audit.db",
                               pseudonym_key_file=str(tmp_path / "pseudonym.key"))  # fmt: skip
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _report(client: TestClient, record: ChildRecord) -> tuple[dict[str, Any], str]:
    store = client.app.state.store  # type: ignore[attr-defined]
    system = store.create_key(name=f"s-{uuid.uuid4().hex[:6]}", role="system")[0]
    manager = store.create_key(name=f"m-{uuid.uuid4().hex[:6]}", role="manager")[0]
    body = {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": "2025-03-31"}
    score = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {system}"}).json()
    html = client.get(f"/v1/scores/{score['score_id']}/report", headers={"Authorization": f"Bearer {manager}"}).text
    return score, html


def test_report_says_what_the_estimate_is_not_and_that_the_data_were_synthetic(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    model: RiskModel = client.app.state.models.model  # type: ignore[attr-defined]
    _, html = _report(client, open_records[0])
    assert "A low estimate does not mean the case is safe to close." in html
    assert "re-referral to another authority" in html
    assert "does not record whether it learned from real or synthetic" in html  # this bundle does not say

    model.metadata.trained_on_synthetic = True
    model.metadata.neglect_bands = {"low": {"closures": 40.0, "observed_rate": 0.1},
                                    "high": {"closures": 640.0, "observed_rate": 0.55}}  # fmt: skip
    model.metadata.neglect_metrics = {"ece": {"value": 0.058, "low": 0.03, "high": 0.08}}
    model.metadata.test_metrics = {**model.metadata.test_metrics, "ece": {"value": 0.018, "low": 0.01, "high": 0.03}}
    model.metadata.fairness = [{"dimension": "disability", "group": "yes", "n": MIN_GROUP_SIZE - 45,
                                "observed_rate": 0.4, "mean_predicted": 0.35, "ece": 0.1, "ece_low": 0.0,
                                "ece_high": 0.3}]  # fmt: skip
    in_scope = next(r for r in open_records if _report(client, r)[0]["in_scope"])
    _, html = _report(client, in_scope)
    assert '<p class="error" id="synthetic-notice"><strong>This model learned from synthetic data.' in html
    assert '<tr data-band="high"><td>high</td><td class="num">640</td><td class="num">55%</td></tr>' in html
    assert '<tr data-band="low"><td>low</td><td class="num">40</td><td class="num">too few children like this' in html
    assert "calibration error is 0.058 on neglect cases against 0.018 on all closures" in html
    if '<tr data-too-few="disability">' in html:  # the child has a recorded disability
        assert "Too few children like this to judge" in html
        assert "0.100 (0.000 to 0.300)" not in html
    # Where the version carries a backtest, the note compares its pooled figures, as the report's headline does.
    model.metadata.backtest_metrics = {"ece": {"value": 0.021, "low": 0.01, "high": 0.03}}
    model.metadata.backtest_neglect_metrics = {"ece": {"value": 0.047, "low": 0.03, "high": 0.07}}
    _, html = _report(client, in_scope)
    assert "calibration error is 0.047 on neglect cases against 0.021 on all closures" in html
    out = next((r for r in open_records if not _report(client, r)[0]["in_scope"]), None)
    if out is not None:
        assert 'id="neglect-bands"' not in _report(client, out)[1]
