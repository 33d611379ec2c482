"""Audit store fixtures (a plugin of the root conftest, so every room's tests have them): a fresh SQLite file per test,
and a throwaway PostgreSQL database per session.

PostgreSQL is reached at CCR_TEST_POSTGRES_URL (default: user postgres on 127.0.0.1:5432). When it is down the
PostgreSQL cases are skipped, except under CI=true, where they fail: CI must exercise both backends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from audit import AuditStore

POSTGRES_ADMIN_URL = os.environ.get("CCR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
AUDIT_TABLES = ("decisions", "scores", "ui_sessions", "api_keys")


def raw_engine(url: str) -> Engine:
    """A plain engine on the store's database, to look at what was really written."""
    return create_engine(url, poolclass=NullPool)


@contextmanager
def postgres_database(admin: Engine) -> Iterator[str]:
    """A new, empty database ``ccr_test_<hex>``, dropped afterwards; yields its URL."""
    name = f"ccr_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the server's maintenance database (skips, or fails under CI, when unreachable)."""
    admin = create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        where = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        cause = " ".join(str(exc.orig).split())
        reason = f"PostgreSQL is unreachable at {where} ({cause})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true, so the PostgreSQL store tests must run", pytrace=False)
        pytest.skip(f"{reason}: start it (see .ci/run) or set CCR_TEST_POSTGRES_URL")
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """The session's PostgreSQL database, migrated once (``store_url`` empties its tables around each test)."""
    with postgres_database(postgres_admin) as url:
        store = AuditStore(url)
        store.migrate()
        store.close()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated, empty audit database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        store = AuditStore(url)
        store.migrate()
        store.close()
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    empty_tables(url)  # other modules share the session's database
    yield url
    empty_tables(url)


def empty_tables(url: str) -> None:
    engine = raw_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"TRUNCATE {', '.join(AUDIT_TABLES)}")
    finally:
        engine.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    audit = AuditStore(store_url)
    yield audit
    audit.close()
