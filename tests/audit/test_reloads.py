"""Model reloads in the audit store, on SQLite and PostgreSQL: numbered one past the latest even when recorded
together, read back with the key generation in one SELECT, chained, append-only, and a tampered reload row is named
by ``closure-risk audit verify``."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit import AuditStore, Generations, ModelReload
from features import Role
from tests.audit.stores import run_together
from tests.audit.test_chain import triggers_off

DIGEST = "ab" * 32


def _reload(store: AuditStore, version: str, by: str = "admin-key") -> ModelReload:
    return store.record_reload(reloaded_by=by, model_name="case-closure-risk", model_version=version,
                               bundle_digest=DIGEST)  # fmt: skip


def test_reloads_are_numbered_and_the_latest_is_read_back(store: AuditStore) -> None:
    assert store.latest_reload() is None
    assert store.generations() == Generations(keys=0, models=0)
    first, second = _reload(store, "1"), _reload(store, "2")
    assert (first.generation, second.generation) == (1, 2)
    assert store.latest_reload() == second
    _, key = store.create_key(name="revoked", role=Role.SYSTEM)
    store.revoke_key(key.id)
    assert store.generations() == Generations(keys=1, models=2)


def test_reloads_recorded_together_get_distinct_generations_and_one_chain(store: AuditStore) -> None:
    results = run_together(6, lambda i: _reload(store, str(i)))
    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.generation for r in results if isinstance(r, ModelReload)) == [1, 2, 3, 4, 5, 6]
    assert store.generations().models == 6
    assert store.verify_chain().problems == []


def test_reload_rows_are_chained_and_append_only(store: AuditStore) -> None:
    _reload(store, "3")
    report = store.verify_chain()
    assert (report.problems, report.entries) == ([], 1)
    for statement in ("UPDATE model_reloads SET model_version = '4'", "DELETE FROM model_reloads"):
        with store.engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    assert store.latest_reload() is not None
    assert store.verify_chain().verified


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        ("UPDATE model_reloads SET model_version = '9' WHERE id = :id",
         "model_reloads row {id} (chain entry 2) was changed"),
        ("DELETE FROM model_reloads WHERE id = :id", "model_reloads row {id} (chain entry 2) is missing"),
    ],
)  # fmt: skip
def test_audit_verify_names_a_tampered_reload_row(
    store: AuditStore,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    edit: str,
    found: str,
) -> None:
    from closure_risk import main
    from serving.settings import get_settings

    _reload(store, "1")
    tampered = _reload(store, "2")
    monkeypatch.setenv("CCR_DATABASE_URL", store_url)
    get_settings.cache_clear()
    try:
        assert main(["audit", "verify"]) == 0
        capsys.readouterr()
        with triggers_off(store_url) as connection:
            connection.execute(text(edit), {"id": tampered.id})
        assert main(["audit", "verify"]) == 4
        printed = json.loads(capsys.readouterr().out)
    finally:
        get_settings.cache_clear()
    assert printed["verified"] is False
    assert any(found.format(id=tampered.id) in problem for problem in printed["problems"]), printed["problems"]
