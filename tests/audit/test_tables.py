"""The audit schema on SQLite and PostgreSQL: migrations (alone, twice, concurrently) build the ORM's tables, and
the engine sets its connections up."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, Engine, insert, inspect, text
from sqlalchemy.exc import IntegrityError

from audit import ApiKey, AuditStore, DecisionRow, ScoreRow, StoreError
from audit.chain import append_to_chain
from audit.tables import AuditBase, alembic_config, migration_transaction
from features import Band, Decision, Role
from tests.audit.stores import INPUTS, make_score, postgres_database, raw_engine, run_together

# The newest revision, whichever it is: revisions from several branches are chained in order when merged.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
ROOT = Path(__file__).resolve().parents[2]


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


MIGRATE = "import sys; from audit import AuditStore; s = AuditStore(sys.argv[1]); s.migrate(); s.close()"


def _migrate(store: AuditStore, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    with migration_transaction(store.engine.execution_options(audit_write=True)) as connection:
        config.attributes["connection"] = connection
        step(config, revision)


def check_constraints(engine: Engine) -> dict[str, dict[str, str]]:
    """Each table's CHECK constraints as the database reads them back: name -> text."""
    inspector = inspect(engine)
    return {
        table: {str(c["name"]): c["sqltext"] for c in inspector.get_check_constraints(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def schema_of(engine: Engine) -> dict[str, object]:
    inspector = inspect(engine)
    tables = sorted(inspector.get_table_names())
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return {
        "version": version,
        "tables": {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in tables},
        "indexes": {t: sorted(str(i["name"]) for i in inspector.get_indexes(t)) for t in tables},
    }


def test_migrate_twice_changes_nothing(store: AuditStore) -> None:
    before = schema_of(store.engine)
    row = make_score()
    store.save_scores([row])
    store.migrate()
    store.migrate()
    assert schema_of(store.engine) == before
    assert before["version"] == [HEAD]
    assert store.get_score(row.id) == row


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_concurrent_start_ups_on_empty_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def start_up_together(url: str) -> None:
        # Separate processes, as service workers are: threads in one process queue on a process lock instead.
        stores = [AuditStore(url) for _ in range(2)]
        threads = run_together(2, lambda i: stores[i].migrate())
        for store in stores:
            store.close()
        workers = [
            subprocess.Popen([sys.executable, "-c", MIGRATE, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        failures = [err for worker in workers if (err := worker.communicate(timeout=60)[1]) and worker.returncode]
        assert (threads, failures) == ([None, None], [])
        engine = raw_engine(url)
        try:
            assert schema_of(engine)["version"] == [HEAD]
        finally:
            engine.dispose()

    if backend == "sqlite":
        start_up_together(f"sqlite:///{tmp_path / 'fresh.db'}")
    else:
        with postgres_database(request.getfixturevalue("postgres_admin")) as url:
            start_up_together(url)


def test_migrations_build_the_models_schema(store: AuditStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, AuditBase.metadata) == []


def test_migrations_build_the_models_check_constraints(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """compare_metadata leaves CHECK constraints out: the migrated ones must read back exactly as the ones the ORM
    creates in an empty database of the same backend (PostgreSQL reads them back normalised, SQLite as written)."""
    if store_url.startswith("sqlite"):
        empty: AbstractContextManager[str] = nullcontext(f"sqlite:///{tmp_path / 'orm.db'}")
    else:
        empty = postgres_database(request.getfixturevalue("postgres_admin"))
    with empty as orm_url:
        engines = raw_engine(store_url), raw_engine(orm_url)
        try:
            AuditBase.metadata.create_all(engines[1])
            migrated, created = (check_constraints(engine) for engine in engines)
        finally:
            for engine in engines:
                engine.dispose()
    assert migrated == created
    assert {name for names in created.values() for name in names} == {
        c.name for t in AuditBase.metadata.sorted_tables for c in t.constraints if isinstance(c, CheckConstraint)
    }


def test_schema_refuses_a_word_outside_the_vocabulary(store: AuditStore) -> None:
    score = make_score()
    store.save_scores([score])
    store.record_decision(score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="plan met")
    # Copies of the stored rows with one word changed (an UPDATE is refused by the append-only triggers first).
    scores = [c.name for c in AuditBase.metadata.tables["scores"].columns]
    decisions = [c.name for c in AuditBase.metadata.tables["decisions"].columns]
    copied = {"id": "'copy'", "band": "'severe'", "decision": "'delete'", "supersedes": "id"}
    refused = {
        "scores": (
            f"INSERT INTO scores ({', '.join(scores)}) SELECT "
            f"{', '.join(copied.get(c, c) for c in scores)} FROM scores",
            {},
        ),
        "decisions": (
            f"INSERT INTO decisions ({', '.join(decisions)}) SELECT "
            f"{', '.join(copied.get(c, c) for c in decisions)} FROM decisions",
            {},
        ),
        "api_keys": (
            "INSERT INTO api_keys (id, name, role, digest, created_at) "
            "VALUES ('k', 'robot', 'superuser', :digest, CURRENT_TIMESTAMP)",
            {"digest": "0" * 64},
        ),
    }
    for table, (statement, values) in refused.items():
        with store.engine.connect() as connection, pytest.raises(IntegrityError, match=f"ck_{table}_"):
            connection.execute(text(statement), values)
    assert store.get_score(score.id) == score


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_from_0002_keeps_every_row_chains_it_and_comes_back(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """0003 rebuilds the scores table on SQLite and 0004 adds columns, tables and triggers: the scores, the decisions
    that refer to them, keys and sessions written at 0002 all stay, 0003 adds the band CHECK, 0004 chains every old
    row (the chain verifies), and going back to 0002 takes it all away again. The rows are written as 0002's
    schema has them (the store's code writes the newest schema only)."""

    def write_at_0002(engine: Engine, table: str, values: dict[str, object]) -> None:
        later = {"caller_key", "decided_by_key", "created_by", "revoked_by", "team"}  # added by 0004, 0005 (0007 below)
        with engine.begin() as connection:
            connection.execute(insert(AuditBase.metadata.tables[table]), [
                {k: v for k, v in values.items() if k not in later | {"case_reference"}}
            ])  # fmt: skip

    def upgrade_a_used_store(url: str) -> None:
        store = AuditStore(url, inputs=INPUTS)
        try:
            _migrate(store, command.upgrade, "0002")
            scores = [make_score(band=band) for band in Band]
            for score in scores:
                write_at_0002(store.engine, "scores", dataclasses.asdict(score))
            first = DecisionRow("d1", scores[0].id, scores[0].created_at, "m1", Decision.CLOSE, "a", None)
            second = DecisionRow("d2", scores[0].id, scores[0].created_at, "m2", Decision.KEEP_OPEN, "b", "d1")
            for decision in (first, second):
                write_at_0002(store.engine, "decisions", dataclasses.asdict(decision))
            key = ApiKey("k1", "manager", Role.MANAGER, scores[0].created_at, None)
            plaintext = "ccr_" + "k" * 43
            write_at_0002(store.engine, "api_keys", {**dataclasses.asdict(key), "digest": _digest(plaintext)})
            before = schema_of(store.engine)

            store.migrate()
            assert schema_of(store.engine)["version"] == [HEAD]
            assert [store.get_score(s.id) for s in scores] == scores
            assert store.decisions(scores[0].id) == [first, second]
            assert store.verify_key(plaintext) == key
            assert store.create_session(key, lifetime_s=3600)[1].key == key
            assert "ck_scores_band_known" in check_constraints(store.engine)["scores"]
            report = store.verify_chain()
            assert (report.problems, report.entries) == ([], len(scores) + 2 + 1 + 1)  # and the sign-in

            _migrate(store, command.downgrade, "0002")
            assert schema_of(store.engine) == before
            assert "ck_scores_band_known" not in check_constraints(store.engine)["scores"]
            with store.engine.connect() as connection:
                kept = {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                        for t in ("scores", "decisions", "api_keys")}  # fmt: skip
            assert kept == {"scores": len(scores), "decisions": 2, "api_keys": 1}
        finally:
            store.close()

    if backend == "sqlite":
        upgrade_a_used_store(f"sqlite:///{tmp_path / 'used.db'}")
    else:
        with postgres_database(request.getfixturevalue("postgres_admin")) as url:
            upgrade_a_used_store(url)


def test_migrate_to_0007_keeps_the_chain_verifying_and_chains_a_case_reference(tmp_path: Path) -> None:
    """Scores chained at 0004 still verify once 0007 adds ``case_reference`` (a NULL one is not hashed); a score
    with a reference is chained with it, so changing the reference afterwards is found."""
    url = f"sqlite:///{tmp_path / 'used.db'}"
    store = AuditStore(url, inputs=INPUTS)
    try:
        _migrate(store, command.upgrade, "0004")
        old = make_score()
        with store.engine.begin() as connection:
            values = {k: v for k, v in dataclasses.asdict(old).items() if k not in {"case_reference", "team"}}
            connection.execute(insert(AuditBase.metadata.tables["scores"]).values(values))
            append_to_chain(connection, [("scores", values)])
        store.migrate()
        new = make_score(case_reference="CMS-2025/00417")
        store.save_scores([new])
        assert store.get_score(new.id) == new
        assert store.get_score(old.id) == old
        report = store.verify_chain()
        assert (report.problems, report.entries) == ([], 2)
        engine = raw_engine(url)
        try:
            with engine.begin() as connection:
                for table in ("scores",):
                    connection.exec_driver_sql(f"DROP TRIGGER {table}_no_update")
                connection.execute(text("UPDATE scores SET case_reference = 'CMS-1' WHERE id = :id"), {"id": old.id})
        finally:
            engine.dispose()
        assert store.verify_chain().problems == [
            f"scores row {old.id} (chain entry 1) was changed after it was written"
        ]
    finally:
        store.close()


@pytest.fixture
def decided_sqlite_store(tmp_path: Path) -> Iterator[tuple[AuditStore, ScoreRow, DecisionRow]]:
    """A migrated SQLite store holding a score and a decision that refers to it."""
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", inputs=INPUTS)
    store.migrate()
    score = make_score()
    store.save_scores([score])
    decision = store.record_decision(score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="plan met")
    yield store, score, decision
    store.close()


def _rebuild_scores(connection: Connection) -> None:
    """What Alembic's batch mode does to change a SQLite table: copy it, drop it, rename the copy."""
    with Operations(MigrationContext.configure(connection)).batch_alter_table("scores", recreate="always"):
        pass


def test_migration_transaction_lets_a_sqlite_table_rebuild_keep_the_rows_referring_to_it(
    decided_sqlite_store: tuple[AuditStore, ScoreRow, DecisionRow],
) -> None:
    store, score, decision = decided_sqlite_store
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        _rebuild_scores(connection)  # foreign keys on: the drop is refused while a decision refers to the table
    with migration_transaction(store.engine) as connection:
        _rebuild_scores(connection)
    assert store.get_score(score.id) == score
    assert store.decisions(score.id) == [decision]
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migration_transaction_undoes_a_migration_that_leaves_broken_references(
    decided_sqlite_store: tuple[AuditStore, ScoreRow, DecisionRow],
) -> None:
    store, score, _ = decided_sqlite_store

    def migration_that_breaks_references(connection: Connection) -> None:
        connection.execute(text("DROP TRIGGER scores_no_delete"))  # a migration may: undone with the rest
        connection.execute(text("DELETE FROM scores"))

    with pytest.raises(StoreError, match="decisions"), migration_transaction(store.engine) as connection:
        migration_that_breaks_references(connection)
    assert store.get_score(score.id) == score
    with store.engine.connect() as connection, pytest.raises(IntegrityError, match="append-only"):
        connection.execute(text("DELETE FROM scores"))


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        store.migrate()
        with store.engine.connect() as connection:
            pragmas = {p: connection.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                       ("journal_mode", "foreign_keys", "busy_timeout")}  # fmt: skip
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30_000}
    finally:
        store.close()


def test_store_construction_touches_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "audit.db"
    store = AuditStore(f"sqlite:///{missing}")
    try:
        assert not missing.parent.exists()
        assert store.ping() is False  # the folder does not exist: no database can be opened
    finally:
        store.close()


def test_store_unreachable_database_raises_store_error(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'absent' / 'audit.db'}", inputs=INPUTS)
    try:
        with pytest.raises(StoreError, match="migrate"):
            store.migrate()
        with pytest.raises(StoreError, match="unavailable"):
            store.save_scores([make_score()])
        with pytest.raises(StoreError, match="unavailable"):
            store.get_score("any")
        with pytest.raises(StoreError, match="unavailable"):
            store.verify_key("ccr_anything")
    finally:
        store.close()


def test_ping_succeeds_on_a_live_database(store: AuditStore) -> None:
    assert store.ping() is True
