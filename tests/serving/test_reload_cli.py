"""``closure-risk reload`` against the real service under uvicorn: it reloads with an admin key and says clearly why
it could not otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit import AuditStore
from cli import EXIT_INPUT, EXIT_USAGE, main
from features import Role
from serving.settings import ServingSettings
from tests.serving.live import live_server


def test_reload_asks_the_running_service_to_load_the_champion(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{tmp_path}/audit.db",
        pseudonym_key_file=str(tmp_path / "pseudonym.key"),
    )
    with live_server(settings) as url:
        store = AuditStore(settings.database_url)
        admin = store.create_key(name="admin", role=Role.ADMIN)[0]
        manager = store.create_key(name="manager", role=Role.MANAGER)[0]
        store.close()

        assert main(["reload", "--url", url, "--key", admin]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["version"] == answer["previous_version"]

        monkeypatch.setenv("CCR_ADMIN_KEY", admin)
        assert main(["reload", "--url", url]) == 0  # the key from the environment
        capsys.readouterr()

        assert main(["reload", "--url", url, "--key", manager]) == EXIT_INPUT
        assert "answered 403" in capsys.readouterr().err

    monkeypatch.delenv("CCR_ADMIN_KEY")
    assert main(["reload", "--url", url]) == EXIT_USAGE
    assert "an admin key is needed" in capsys.readouterr().err
    assert main(["reload", "--url", url, "--key", admin, "--timeout", "5"]) == EXIT_INPUT  # the service has stopped
    assert "is it running?" in capsys.readouterr().err
