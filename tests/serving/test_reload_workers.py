"""A reload reaches every worker of a real server: ``uvicorn --workers 2`` (what ``closure-risk serve --workers 2``
runs) on a free port, a tiny model in a real MLflow registry, the audit store on SQLite and PostgreSQL. After
``closure-risk reload`` to a new champion every one of 40 later requests, spread over new connections, reports the
new version, and the worker that did not take the reload says it followed; a refused version is served by neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from audit import AuditStore, load_inputs_cipher, load_or_create_key
from cli import EXIT_INPUT, main
from features import Role
from models import RiskModel, registry
from serving.reloads import bundle_digest
from tests.serving.live import _free_port
from tests.serving.test_reload_follow import _tamper

ROOT = Path(__file__).resolve().parents[2]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}},
    "loggers": {
        "case_closure_risk.security": {"level": "INFO", "handlers": ["err"], "propagate": False},
        "uvicorn.error": {"level": "INFO", "handlers": ["err"], "propagate": False},
    },
}


@dataclass
class Server:
    url: str
    log: Path
    admin: str
    manager: dict[str, str]

    def events(self, name: str) -> list[dict[str, str]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line[line.index("{") :]) for line in lines if line.startswith("case_closure_risk.security")]
        return [event for event in found if event["event"] == name]

    def versions(self, requests: int = 40) -> list[str]:
        """The version each of ``requests`` requests was answered with, each on a new connection, eight at a time
        (so both workers take some)."""

        def ask(_: int) -> str:
            answer = httpx.get(f"{self.url}/v1/model", headers={**self.manager, "Connection": "close"}, timeout=120)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["version"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(ask, range(requests)))


def _register(bundle: Path) -> str:
    with registry.start_run("trained"):
        version = registry.log_and_register(RiskModel.load(bundle)).version
    registry.set_alias(registry.CHAMPION, version)
    return version


@pytest.fixture
def server(bundle: Path, store_url: str, tmp_path: Path) -> Iterator[Server]:
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    registry.configure_tracking(tracking, experiment="workers", artifact_location=str(tmp_path / "mlruns"))
    assert _register(bundle) == "1"
    store = AuditStore(store_url)
    try:
        admin = store.create_key(name=f"admin-{tmp_path.name}", role=Role.ADMIN)[0]
        manager = store.create_key(name=f"manager-{tmp_path.name}", role=Role.MANAGER)[0]
    finally:
        store.close()
    load_or_create_key(tmp_path / "pseudonym.key")  # made here, not by two workers at once
    load_inputs_cipher(tmp_path / "inputs.key")
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(LOGGING), encoding="utf-8")
    port = _free_port()
    env = {
        **os.environ,
        "CCR_MODEL_URI": f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}",
        "CCR_TRACKING_URI": tracking,
        "CCR_DATABASE_URL": store_url,
        "CCR_PSEUDONYM_KEY_FILE": str(tmp_path / "pseudonym.key"),
        "CCR_INPUTS_KEY_FILE": str(tmp_path / "inputs.key"),
    }
    log = tmp_path / "server.log"
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "2", "--log-config", str(config)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # not a performance figure: how long a stuck start-up is waited for
        while log.read_text(encoding="utf-8").count("Application startup complete") < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text(encoding='utf-8')[-3000:]}")
            time.sleep(0.2)
        yield Server(f"http://127.0.0.1:{port}", log, admin, {"Authorization": f"Bearer {manager}"})
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_reload_reaches_both_workers_and_a_refused_version_neither(
    server: Server, bundle: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(server.versions()) == {"1"}

    second = _register(bundle)
    assert main(["reload", "--url", server.url, "--key", server.admin]) == 0
    assert json.loads(capsys.readouterr().out) == {"previous_version": "1", "version": second}
    for _ in range(10):  # the kernel hands connections to the workers: rounds until the other worker has had one
        assert server.versions() == [second] * 40
        followed = server.events("model_reload_followed")
        if followed:
            break
    assert len(followed) == 1  # the worker that did not take the reload loaded it, once
    assert (followed[0]["generation"], followed[0]["version"], followed[0]["previous_version"]) == ("1", second, "1")

    tampered = _register(bundle)
    _tamper(tampered)
    assert main(["reload", "--url", server.url, "--key", server.admin]) == EXIT_INPUT
    assert "answered 409" in capsys.readouterr().err
    assert server.versions() == [second] * 40

    store = AuditStore(store_url)
    try:  # a reload recorded for it anyway, as if its files were changed after the reload: both workers refuse it
        store.record_reload(reloaded_by="admin-key", model_name=registry.MODEL_NAME, model_version=tampered,
                            bundle_digest=bundle_digest(RiskModel.load(bundle)))  # fmt: skip
        assert server.versions() == [second] * 40
        assert server.events("model_follow_refused")
        assert store.verify_chain().problems == []
    finally:
        store.close()
