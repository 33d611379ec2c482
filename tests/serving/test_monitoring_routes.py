"""The monitoring route and gauges when there is nothing to show (the full scenario is in tests/monitoring)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServingSettings


@pytest.fixture
def client(bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _manager(client: TestClient) -> dict[str, str]:
    key = client.app.state.store.create_key(name="test-manager", role="manager")[0]  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def test_monitoring_local_bundle_is_404_with_the_reason(client: TestClient) -> None:
    answer = client.get("/v1/model/monitoring", headers=_manager(client))
    assert answer.status_code == 404
    assert "local bundle" in answer.json()["detail"]


def test_metrics_without_a_monitoring_run_have_no_monitoring_samples(client: TestClient) -> None:
    text = client.get("/metrics", headers=_manager(client)).text
    assert "# TYPE ccr_monitoring_calibration_error gauge" in text
    assert not [line for line in text.splitlines() if line.startswith("ccr_monitoring_")]
