"""Alembic environment of the audit store.

``AuditStore.migrate`` runs it with its own connection, already in a transaction (``config.attributes``). The
alembic command line runs it too, for developers:
``alembic -c audit/migrations/alembic.ini [-x url=postgresql+psycopg://...] upgrade head | revision --autogenerate``.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from audit.tables import AuditBase, create_audit_engine, migration_transaction

# Held for the migration's transaction, so that service processes starting together migrate one at a time.
POSTGRES_MIGRATION_LOCK = 0x43435241  # "CCRA"

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set sqlalchemy.url in the alembic ini file")
    return url


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=AuditBase.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_audit_engine(_url()).execution_options(audit_write=True)
    try:
        with migration_transaction(engine) as own:
            _run(own)
    finally:
        engine.dispose()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=AuditBase.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if config.attributes.get("connection") is None and config.config_file_name is not None:
    fileConfig(config.config_file_name)  # the command line's logging; the service configures its own

if context.is_offline_mode():
    run_offline()
else:
    run_online()
