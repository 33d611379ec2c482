"""A reload reaches every worker: two apps on one audit store and one MLflow registry stand for two worker processes
(the real two-process server is in test_reload_workers.py). A reload through one is followed by the other before it
answers, on the fast scoring path, the documented one, ``GET /v1/model`` and the report page; a refused version is
never swapped in anywhere; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from audit import AuditStore
from features import ChildRecord, Role
from models import RiskModel, registry
from serving.app import create_app
from serving.reloads import bundle_digest
from serving.settings import ServingSettings
from tests.conftest import AS_OF


@dataclass
class Workers:
    a: TestClient
    b: TestClient
    admin: dict[str, str]
    system: dict[str, str]
    manager: dict[str, str]
    bundle: Path

    @property
    def store(self) -> AuditStore:
        store: AuditStore = self.b.app.state.store  # type: ignore[attr-defined]
        return store

    def register(self, *, champion: bool = True) -> str:
        with registry.start_run("retrained"):
            version = registry.log_and_register(RiskModel.load(self.bundle)).version
        if champion:
            registry.set_alias(registry.CHAMPION, version)
        return version

    def served(self, client: TestClient) -> str:
        answer = client.get("/v1/model", headers=self.manager)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["version"])


@pytest.fixture
def workers(bundle: Path, store_url: str, tmp_path: Path) -> Iterator[Workers]:
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    registry.configure_tracking(tracking, experiment="follow", artifact_location=str(tmp_path / "mlruns"))
    with registry.start_run("first"):
        registry.set_alias(registry.CHAMPION, registry.log_and_register(RiskModel.load(bundle)).version)
    settings = ServingSettings(
        model_uri=f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}",
        tracking_uri=tracking,
        database_url=store_url,
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with ExitStack() as stack:
        a = stack.enter_context(TestClient(create_app(settings), base_url="https://testserver"))
        b = stack.enter_context(TestClient(create_app(settings), base_url="https://testserver"))
        store: AuditStore = a.app.state.store  # type: ignore[attr-defined]
        keys = {role: store.create_key(name=f"{role}-{tmp_path.name}", role=role)[0] for role in Role}
        auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
        yield Workers(a, b, auth[Role.ADMIN], auth[Role.SYSTEM], auth[Role.MANAGER], bundle)


def _body(record: ChildRecord) -> dict[str, object]:
    return {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}


def _tamper(version: str) -> None:
    """Change a registered version's booster after training, as someone with write access to the store could."""
    client = mlflow.MlflowClient()
    source = str(client.get_model_version(registry.MODEL_NAME, version).source).removeprefix("models:/")
    location = Path(str(client.get_logged_model(source).artifact_location).removeprefix("file://"))
    booster = location / "artifacts" / registry.BUNDLE_ARTIFACT / "booster.txt"
    booster.write_text(booster.read_text(encoding="utf-8").replace("leaf_value=", "leaf_value=1", 1), encoding="utf-8")


def test_a_reload_through_one_worker_is_followed_by_the_other_on_every_path(
    workers: Workers, open_records: list[ChildRecord]
) -> None:
    w = workers
    assert (w.served(w.a), w.served(w.b)) == ("1", "1")

    second = w.register()
    assert w.a.post("/v1/admin/reload", headers=w.admin).json() == {"previous_version": "1", "version": second}
    reload = w.store.latest_reload()
    assert reload is not None
    assert (reload.generation, reload.model_version) == (1, second)
    assert reload.bundle_digest == bundle_digest(RiskModel.load(w.bundle))
    fast = w.b.post("/v1/score", json=_body(open_records[0]), headers=w.system)  # the fast path
    assert fast.status_code == 200, fast.text
    assert fast.json()["model_version"] == second

    third = w.register()
    assert w.a.post("/v1/admin/reload", headers=w.admin).json()["version"] == third
    documented = w.b.post("/v1/score?team=North", json=_body(open_records[1]), headers=w.system)  # FastAPI's path
    assert documented.status_code == 200, documented.text
    assert documented.json()["model_version"] == third

    fourth = w.register()
    w.a.post("/v1/admin/reload", headers=w.admin)
    assert w.served(w.b) == fourth

    fifth = w.register()
    w.a.post("/v1/admin/reload", headers=w.admin)
    page = w.b.get(f"/v1/scores/{fast.json()['score_id']}/report", headers=w.manager)
    assert page.status_code == 200
    assert w.b.app.state.models.model.version == fifth  # type: ignore[attr-defined]
    assert w.b.get("/readyz").json()["model_version"] == fifth
    assert w.store.verify_chain().problems == []


def test_a_new_worker_starts_at_the_latest_reload_without_loading_it_again(workers: Workers) -> None:
    w = workers
    w.register()
    w.a.post("/v1/admin/reload", headers=w.admin)
    with TestClient(create_app(w.a.app.state.settings), base_url="https://testserver") as c:  # type: ignore[attr-defined]
        holder = c.app.state.models  # type: ignore[attr-defined]
        assert (holder.generation, holder.model.version) == (1, "2")
        model = holder.model
        assert w.served(c) == "2"
        assert c.app.state.models.model is model  # type: ignore[attr-defined]


def test_a_refused_version_is_never_swapped_in_on_any_worker(
    workers: Workers, caplog: pytest.LogCaptureFixture
) -> None:
    w = workers
    caplog.set_level(logging.INFO, logger="case_closure_risk.security")
    tampered = w.register()
    _tamper(tampered)
    refused = w.a.post("/v1/admin/reload", headers=w.admin)
    assert refused.status_code == 409
    assert w.store.latest_reload() is None  # nothing recorded: no worker is asked to load it
    assert (w.served(w.a), w.served(w.b)) == ("1", "1")

    # A reload recorded for it anyway (its files changed after the reload was recorded): refused by every worker.
    digest = bundle_digest(RiskModel.load(w.bundle))
    w.store.record_reload(reloaded_by="admin-key", model_name=registry.MODEL_NAME, model_version=tampered,
                          bundle_digest=digest)  # fmt: skip
    assert (w.served(w.a), w.served(w.b)) == ("1", "1")
    events = [json.loads(r.getMessage().removeprefix("security ")) for r in caplog.records if "security" in r.name]
    follows = [e for e in events if e["event"] == "model_follow_refused"]
    assert len(follows) == 2  # each worker tried once and keeps the old model until a later retry
    assert all(e == {"event": "model_follow_refused", "generation": "1", "version": tampered, "serving": "1"}
               for e in follows)  # fmt: skip

    # A sound version recorded with another bundle's digest: refused too.
    sound = w.register(champion=False)
    w.store.record_reload(reloaded_by="admin-key", model_name=registry.MODEL_NAME, model_version=sound,
                          bundle_digest="0" * 64)  # fmt: skip
    assert (w.served(w.a), w.served(w.b)) == ("1", "1")

    registry.set_alias(registry.CHAMPION, sound)
    assert w.a.post("/v1/admin/reload", headers=w.admin).json()["version"] == sound
    assert w.served(w.b) == sound
