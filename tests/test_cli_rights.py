"""``closure-risk retention`` and ``audit verify`` together: a dry run first, then erasure the chain still verifies."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from audit import AuditStore, load_inputs_cipher
from cli import main
from serving.settings import get_settings
from tests.audit.stores import make_score


def test_retention_dry_run_then_apply_and_audit_verify_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    key = tmp_path / "inputs.key"  # the command opens the sealed inputs with the service's key
    monkeypatch.setenv("CCR_INPUTS_KEY_FILE", str(key))
    store = AuditStore(url, inputs=load_inputs_cipher(key))
    store.migrate()
    old = make_score(as_of=dt.date(2000, 1, 1))  # age 1/3: the 25th birthday was by 2025
    store.save_scores([old, make_score(as_of=dt.date(2025, 1, 1))])
    store.close()
    monkeypatch.setenv("CCR_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert main(["retention", "apply", "--today", "2026-01-01"]) == 0
        dry = json.loads(capsys.readouterr().out)
        assert (dry["scores_due"], dry["scores_kept"], dry["erased"]) == (1, 1, None)
        assert "dry run" in dry["note"]
        assert main(["retention", "apply", "--confirm", "--today", "2026-01-01"]) == 0
        assert json.loads(capsys.readouterr().out)["erased"]["scores"] == 1
        assert main(["audit", "verify"]) == 0
        verified = json.loads(capsys.readouterr().out)
        assert verified["verified"] is True
        assert main(["retention", "plan", "--today", "2026-01-01"]) == 0
        assert json.loads(capsys.readouterr().out)["scores_due"] == 0
        bad = tmp_path / "bad.toml"
        bad.write_text('name = "x"\n')
        assert main(["retention", "plan", "--schedule", str(bad)]) == 2
    finally:
        get_settings.cache_clear()
    check = AuditStore(url)
    assert check.get_score(old.id) is None
    check.close()
