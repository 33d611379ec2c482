"""The audit schema on SQLite and PostgreSQL: migrations (alone, twice, concurrently) build the ORM's tables, and
the engine sets its connections up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import CheckConstraint, Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from audit import AuditStore, DecisionRow, ScoreRow, StoreError
from audit.tables import AuditBase, migration_transaction
from features import Decision
from tests.audit.stores import make_score, postgres_database, raw_engine, run_together

HEAD = "0002"
ROOT = Path(__file__).resolve().parents[2]
MIGRATE = "import sys; from audit import AuditStore; s = AuditStore(sys.argv[1]); s.migrate(); s.close()"


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
    # compare_metadata leaves check constraints out
    inspector = inspect(store.engine)
    for table in AuditBase.metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        assert {c["name"] for c in inspector.get_check_constraints(table.name)} == expected


@pytest.fixture
def decided_sqlite_store(tmp_path: Path) -> Iterator[tuple[AuditStore, ScoreRow, DecisionRow]]:
    """A migrated SQLite store holding a score and a decision that refers to it."""
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
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
    with pytest.raises(StoreError, match="decisions"), migration_transaction(store.engine) as connection:
        connection.execute(text("DELETE FROM scores"))
    assert store.get_score(score.id) == score


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
    store = AuditStore(f"sqlite:///{tmp_path / 'absent' / 'audit.db'}")
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
