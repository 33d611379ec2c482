"""Audit store fixtures (a plugin of the root conftest, so every room's tests have them): a fresh SQLite file per test,
and a throwaway PostgreSQL database per session; and the helpers the audit tests share.

PostgreSQL is reached at CCR_TEST_POSTGRES_URL (default: user postgres on 127.0.0.1:5432). When it is down the
PostgreSQL cases are skipped, except under CI=true, where they fail: CI must exercise both backends.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from audit import AuditStore, InputsCipher, ScoreRow
from features import Band

POSTGRES_ADMIN_URL = os.environ.get("CCR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
AUDIT_TABLES = (
    "decision_reviews", "score_annotations", "tombstones", "score_reads", "decisions", "scores", "ui_sessions",
    "key_revocations", "sign_ins", "audit_chain", "api_keys", "model_reloads",
)  # fmt: skip
# The inputs key of the test stores (the service keeps its own in a file: ``audit.crypto``).
INPUTS = InputsCipher(secrets.token_bytes(32))


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
            # The append-only tables refuse TRUNCATE (a trigger): a superuser emptying a test database sets it aside.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            connection.exec_driver_sql(f"TRUNCATE {', '.join(AUDIT_TABLES)}")
    finally:
        engine.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    audit = AuditStore(store_url, inputs=INPUTS)
    yield audit
    audit.close()


def make_score(**changes: Any) -> ScoreRow:
    row = ScoreRow(
        id=str(uuid.uuid4()),
        created_at=datetime(2025, 3, 31, 9, 15, 2, 123456, tzinfo=UTC),
        caller="case-system",
        request_id="req-7f3a",
        model_name="case-closure-risk",
        model_version="7",
        case_id="c9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
        as_of=date(2025, 3, 31),
        probability=0.1 + 0.2,  # 0.30000000000000004: survives only a 64-bit float
        band=Band.MEDIUM,
        raw_score=-0.84729786038720367,
        base_value=-1.2345678901234567e-5,
        in_scope=True,
        out_of_distribution=["referrals_12m", "age_years"],
        features={
            "age_years": 1 / 3,
            "referrals_12m": 4.0,
            "tiny": 5e-324,
            "huge": 1.7976931348623157e308,
            "days_since_last_closure": None,
            "referral_source": "1B",
            "note": "café \u2013 ☂",
        },
        reasons=[
            {"feature": "referrals_12m", "label": "Referrals, 12 months", "value": 4.0,
             "contribution": 0.7071067811865476, "direction": "raises"},
            {"feature": "days_since_last_closure", "label": "Days since the last closure", "value": None,
             "contribution": -2.220446049250313e-16, "direction": "lowers"},
        ],
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def count_rows(url: str, table: str) -> int:
    engine = raw_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def run_together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``count`` threads released at the same moment; each result or the exception raised."""
    barrier = threading.Barrier(count)

    def attempt(i: int) -> object:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(attempt, range(count)))
