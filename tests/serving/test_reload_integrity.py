"""``POST /v1/admin/reload`` from a real MLflow registry: a champion whose files changed since training, or one
logged as a pickle, is refused with the reason (409), the pickle is never run, and the old model keeps serving."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow.pyfunc.model import PythonModel

from features import Role
from models import RiskModel, registry
from serving.app import create_app
from serving.settings import ServingSettings


class _WritesOnUnpickle(PythonModel):
    """Unpickling it creates a file: a stand-in for any command an attacker with registry write would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))

    def predict(self, model_input: list[str], params: dict[str, Any] | None = None  # type: ignore[override]
                ) -> list[str]:  # fmt: skip
        return model_input


@pytest.fixture
def served(bundle: Path, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    registry.configure_tracking(tracking, experiment="reload", artifact_location=str(tmp_path / "mlruns"))
    with registry.start_run("first"):
        first = registry.log_and_register(RiskModel.load(bundle)).version
    registry.set_alias(registry.CHAMPION, first)
    settings = ServingSettings(
        model_uri=f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}",
        tracking_uri=tracking,
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin = client.app.state.store.create_key(name="admin", role=Role.ADMIN)[0]  # type: ignore[attr-defined]
        yield client, {"Authorization": f"Bearer {admin}"}


def _served_version(client: TestClient, auth: dict[str, str]) -> str:
    return str(client.get("/v1/model", headers=auth).json()["version"])


def test_reload_refuses_a_champion_changed_since_training_and_keeps_the_old_model(
    served: tuple[TestClient, dict[str, str]], bundle: Path
) -> None:
    client, auth = served
    assert client.post("/v1/admin/reload", headers=auth).json() == {"previous_version": "1", "version": "1"}
    with registry.start_run("second"):
        second = registry.log_and_register(RiskModel.load(bundle)).version
    registry.set_alias(registry.CHAMPION, second)
    mlflow_client = mlflow.MlflowClient()
    source = str(mlflow_client.get_model_version(registry.MODEL_NAME, second).source).removeprefix("models:/")
    location = Path(str(mlflow_client.get_logged_model(source).artifact_location).removeprefix("file://"))
    booster = location / "artifacts" / registry.BUNDLE_ARTIFACT / "booster.txt"
    booster.write_text(booster.read_text(encoding="utf-8").replace("leaf_value=", "leaf_value=1", 1), encoding="utf-8")

    response = client.post("/v1/admin/reload", headers=auth)
    assert response.status_code == 409
    assert "booster.txt differs from the file recorded at training" in response.json()["detail"]
    assert _served_version(client, auth) == "1"


def test_reload_never_runs_a_pickled_champion(served: tuple[TestClient, dict[str, str]], tmp_path: Path) -> None:
    client, auth = served
    marker = tmp_path / "ran.txt"
    with registry.start_run("pickled"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow advises against pickles: the point here
        info = mlflow.pyfunc.log_model(name="model", python_model=_WritesOnUnpickle(marker), pip_requirements=[],
                                       registered_model_name=registry.MODEL_NAME)  # fmt: skip
    registry.set_alias(registry.CHAMPION, str(info.registered_model_version))

    response = client.post("/v1/admin/reload", headers=auth)
    assert response.status_code == 409
    assert "no file digests" in response.json()["detail"]
    assert not marker.exists()
    assert _served_version(client, auth) == "1"
