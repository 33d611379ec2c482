"""The tamper-evident audit trail on SQLite and PostgreSQL: every audited row is chained; a direct database edit
(changed, deleted, reordered, written around the chain) is found and named by id; UPDATE and DELETE are refused;
concurrent writers keep the chain linear; key names are unique."""

from __future__ import annotations

import dataclasses
import json
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from audit import AuditStore, KeyNameTaken, ReadKind
from audit.tables import APPEND_ONLY, AuditBase
from features import Decision, Role
from tests.audit.stores import make_score, raw_engine, run_together


@contextmanager
def triggers_off(url: str) -> Iterator[Connection]:
    """A raw connection on which the append-only triggers do not fire: what someone with the database file or a
    superuser could do, and what the chain is there to reveal."""
    engine = raw_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                for table in APPEND_ONLY:
                    connection.exec_driver_sql(f"DROP TRIGGER {table}_no_update")
                    connection.exec_driver_sql(f"DROP TRIGGER {table}_no_delete")
            else:
                connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield connection
    finally:
        engine.dispose()


def _used_store(store: AuditStore) -> dict[str, str]:
    """A store with a row of every audited kind; their ids."""
    scores = [make_score(), make_score()]
    store.save_scores(scores)
    decision = store.record_decision(score_id=scores[0].id, decided_by="m1", decision=Decision.CLOSE, reason="done")
    _, key = store.create_key(name="manager", role=Role.MANAGER, created_by="command line")
    store.create_session(key, lifetime_s=60)
    store.revoke_key(key.id, revoked_by="command line")
    read = store.record_read(key_id=key.id, what=ReadKind.REPORT, score_id=scores[0].id)
    return {"score": scores[0].id, "later_score": scores[1].id, "decision": decision.id, "key": key.id, "read": read.id}


def test_every_audited_row_is_chained_and_verifies(store: AuditStore) -> None:
    _used_store(store)
    report = store.verify_chain()
    assert report.problems == []
    assert report.entries == 7  # two scores, a decision, a key, a sign-in, a revocation, a read
    assert store.chain_head().head == report.head
    assert store.chain_report is report


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        ("UPDATE decisions SET reason = 'rewritten', decided_by = 'someone else' WHERE id = :decision",
         "decisions row {decision} (chain entry 3) was changed"),
        ("UPDATE scores SET probability = 0.05, band = 'low' WHERE id = :score",
         "scores row {score} (chain entry 1) was changed"),
        ("DELETE FROM scores WHERE id = :later_score", "scores row {later_score} (chain entry 2) is missing"),
        ("DELETE FROM audit_chain WHERE seq = 2", "chain entries 2 to 2 are missing"),
        ("UPDATE audit_chain SET seq = CASE seq WHEN 1 THEN 2 ELSE 1 END WHERE seq IN (1, 2)",
         "chain entry 1 (scores {later_score}) does not follow"),
        ("INSERT INTO sign_ins (id, key_id, created_at) VALUES ('forged', :key, CURRENT_TIMESTAMP)",
         "sign_ins row forged is not in the chain"),
    ],
)  # fmt: skip
def test_verify_names_a_direct_database_edit_by_id(store: AuditStore, store_url: str, edit: str, found: str) -> None:
    ids = _used_store(store)
    with triggers_off(store_url) as connection:
        if "SET seq" in edit:  # two steps: the primary key is checked row by row
            connection.execute(text("UPDATE audit_chain SET seq = -seq WHERE seq IN (1, 2)"))
            edit = "UPDATE audit_chain SET seq = CASE seq WHEN -1 THEN 2 ELSE 1 END WHERE seq IN (-1, -2)"
        connection.execute(text(edit), ids)
    report = store.verify_chain()
    assert not report.verified
    assert any(found.format(**ids) in problem for problem in report.problems), report.problems
    assert not any("rewritten" in problem or "0.05" in problem for problem in report.problems)  # ids, no content


# The tables a used store has rows in (a row-level trigger needs a row); the data-rights tables' triggers are tested
# with rows of theirs in test_retention.py and test_subject.py, model reloads' in test_reloads.py.
_USED = [t for t in APPEND_ONLY if t not in ("decision_reviews", "score_annotations", "tombstones", "model_reloads")]


@pytest.mark.parametrize("table", _USED)
def test_database_refuses_update_and_delete_on_audited_tables(store: AuditStore, table: str) -> None:
    _used_store(store)
    column = "kind" if table == "audit_chain" else next(iter(AuditBase.metadata.tables[table].primary_key.columns)).name
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
        with store.engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    assert store.verify_chain().verified


def test_concurrent_writers_keep_one_linear_chain(store: AuditStore) -> None:
    _, key = store.create_key(name="admin", role=Role.ADMIN)
    scored = [make_score() for _ in range(8)]
    store.save_scores(scored)

    def write(i: int) -> object:
        actions: list[Callable[[], object]] = [
            lambda: store.save_scores([make_score(), make_score()]),
            lambda: store.record_decision(score_id=scored[i].id, decided_by="m", decision=Decision.CLOSE, reason="r"),
            lambda: store.create_key(name=f"key {i}", role=Role.SYSTEM),
            lambda: store.create_session(key, lifetime_s=60),
            lambda: store.record_read(key_id=key.id, what=ReadKind.SCORE, score_id=scored[i].id),
        ]
        return actions[i % len(actions)]()

    results = run_together(8, write)
    assert not [r for r in results if isinstance(r, Exception)]
    report = store.verify_chain()
    assert report.problems == []
    assert report.entries == 1 + 8 + 2 * 2 + 2 + 2 + 1 + 1  # key, scored, 2 x scores, decisions, keys, ...


def test_key_names_are_unique(store: AuditStore) -> None:
    store.create_key(name="manager", role=Role.MANAGER)
    with pytest.raises(KeyNameTaken):
        store.create_key(name=" manager ", role=Role.ADMIN)
    results = run_together(4, lambda i: store.create_key(name="same", role=Role.MANAGER))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, KeyNameTaken) for r in results if isinstance(r, Exception))


def test_scores_and_decisions_record_the_key_id_and_keys_who_made_them(store: AuditStore) -> None:
    score = dataclasses.replace(make_score(), caller_key="key-1")
    store.save_scores([score])
    decision = store.record_decision(
        score_id=score.id, decided_by="m", decision=Decision.CLOSE, reason="r", decided_by_key="key-2"
    )
    assert store.get_score(score.id) == score
    assert store.decisions(score.id) == [decision]
    assert decision.decided_by_key == "key-2"
    _, key = store.create_key(name="made", role=Role.MANAGER, created_by="admin-key")
    store.revoke_key(key.id, revoked_by="other-admin-key")
    listed = next(k for k in store.list_keys() if k.id == key.id)
    assert (listed.created_by, listed.revoked_by, listed.revoked_at is not None) == (
        "admin-key",
        "other-admin-key",
        True,
    )


def test_audit_cli_verify_names_a_tampered_row_and_head_exports_the_head(
    store: AuditStore,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from closure_risk import main
    from serving.settings import get_settings

    ids = _used_store(store)
    monkeypatch.setenv("CCR_DATABASE_URL", store_url)
    get_settings.cache_clear()
    try:
        out = tmp_path / "anchor" / "head.json"
        assert main(["audit", "head", "--out", str(out)]) == 0
        exported = json.loads(out.read_text())
        assert (exported["entries"], exported["head"]) == (7, store.chain_head().head)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert main(["audit", "verify"]) == 0
        capsys.readouterr()
        with triggers_off(store_url) as connection:
            connection.execute(text("UPDATE decisions SET reason = 'rewritten' WHERE id = :decision"), ids)
        assert main(["audit", "verify"]) == 4
        printed = json.loads(capsys.readouterr().out)
        assert printed["verified"] is False
        assert ids["decision"] in printed["problems"][0]
        assert "rewritten" not in json.dumps(printed)
    finally:
        get_settings.cache_clear()
