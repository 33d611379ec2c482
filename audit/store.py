"""The audit store: every score and decision the service makes, and its API keys, in SQLite or PostgreSQL.

A score row keeps what is needed to reproduce and contest it: the model version, the pseudonymous case id, the
model's input values and every feature's contribution. Rows are only ever inserted, except an API key's revocation
time. Decisions on a score form one chain: the first has ``supersedes`` NULL (a partial unique index allows one per
score) and each later one supersedes the previous (``supersedes`` is unique), so a score has at most one current
decision even under concurrent writers. The schema is created and upgraded by the Alembic migrations beside this
module (``audit/migrations``), run programmatically by :meth:`AuditStore.migrate`.

Scores are written by group commit: each request hands its rows to the store's writer thread and waits; the writer
inserts everything handed over while the previous commit was being flushed in one transaction, commits it, and
only then wakes the requests, so a score is still committed before its request returns, and one disk flush serves
many requests. A group that fails is retried request by request, so a request fails only for its own rows. On
SQLite, writers of every process on the same file queue on an exclusive file lock (``<file>-writer.lock``) rather
than polling SQLite's busy timeout, which sleeps in steps of up to 100 ms.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import hmac
import json
import math
import os
import queue
import secrets
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Double,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column

from features import Decision, Role

__all__ = [
    "DECISIONS",
    "ROLES",
    "ApiKey",
    "AuditStore",
    "DecisionExists",
    "DecisionRow",
    "QueueRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
]

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
DECISIONS = tuple(d.value for d in Decision)
ROLES = tuple(r.value for r in Role)
KEY_PREFIX = "ccr_"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
# Alembic keeps the running migration in module globals: one migration at a time per process. Processes starting
# together queue on the database instead (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL: env.py).
_MIGRATION_LOCK = threading.Lock()


class StoreError(Exception):
    """The audit store could not do what was asked (the database refused or could not be reached)."""


class ScoreNotFound(StoreError):  # noqa: N818 (the API contract's name)
    """No score with that id."""


class DecisionExists(StoreError):  # noqa: N818 (the API contract's name)
    """The score already has a current decision and superseding it was not asked for."""


@dataclass(frozen=True)
class ScoreRow:
    id: str
    created_at: datetime  # UTC, timezone-aware
    caller: str
    request_id: str
    model_name: str
    model_version: str
    case_id: str  # pseudonymous, computed by the caller; never a raw LAchildID
    as_of: date
    probability: float
    band: str
    raw_score: float
    base_value: float
    in_scope: bool
    out_of_distribution: list[str]
    features: dict[str, float | str | None]  # the model's input values for the case
    reasons: list[dict[str, object]]  # every feature's contribution, as given
    # What the model estimates if one actionable thing were different (None: not computed, as before revision 0002).
    what_ifs: list[dict[str, object]] | None = None
    warnings: list[str] | None = None  # what the caller was warned of (None: stored before revision 0002)
    ethnic_group: str | None = None  # for the fairness summary only: never a model input


@dataclass(frozen=True)
class QueueRow:
    """A case's latest score with its current decision (None: undecided), for the manager's queue."""

    score: ScoreRow
    decision: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class UiSession:
    key: ApiKey
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class DecisionRow:
    id: str
    score_id: str
    created_at: datetime
    decided_by: str
    decision: str  # one of DECISIONS
    reason: str
    supersedes: str | None


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str  # one of ROLES
    created_at: datetime
    revoked_at: datetime | None


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored as UTC; SQLite, which keeps no offset, gets naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class AuditBase(DeclarativeBase):
    """The audit tables; the migrations must build exactly this schema (a test compares them)."""

    metadata = MetaData(naming_convention=NAMING)


class ScoreRecord(AuditBase):
    __tablename__ = "scores"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    caller: Mapped[str] = mapped_column(String)
    request_id: Mapped[str] = mapped_column(String)
    model_name: Mapped[str] = mapped_column(String)
    model_version: Mapped[str] = mapped_column(String)
    case_id: Mapped[str] = mapped_column(String, index=True)
    as_of: Mapped[date] = mapped_column(Date)
    probability: Mapped[float] = mapped_column(Double)
    band: Mapped[str] = mapped_column(String)
    raw_score: Mapped[float] = mapped_column(Double)
    base_value: Mapped[float] = mapped_column(Double)
    in_scope: Mapped[bool] = mapped_column(Boolean)
    out_of_distribution: Mapped[list[str]] = mapped_column(JSON)
    features: Mapped[dict[str, float | str | None]] = mapped_column(JSON)
    reasons: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    what_ifs: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    ethnic_group: Mapped[str | None] = mapped_column(String)

    __table_args__ = (
        CheckConstraint("probability >= 0 AND probability <= 1", name="probability_range"),
        Index("ix_scores_probability", "probability"),
    )


class DecisionRecord(AuditBase):
    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint("decision IN ('close', 'keep_open', 'step_down_early_help')", name="decision_known"),
        # Also the index behind "decisions of a score", and the target of the same-score supersedes key below.
        UniqueConstraint("score_id", "id"),
        UniqueConstraint("supersedes"),  # a decision is superseded at most once ...
        ForeignKeyConstraint(["score_id", "supersedes"], ["decisions.score_id", "decisions.id"]),
        # ... and a score has one first decision, so its decisions form one chain with one current end.
        Index(
            "ux_decisions_first_per_score",
            "score_id",
            unique=True,
            sqlite_where=text("supersedes IS NULL"),
            postgresql_where=text("supersedes IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    score_id: Mapped[str] = mapped_column(String, ForeignKey("scores.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str] = mapped_column(String)
    decision: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text)
    supersedes: Mapped[str | None] = mapped_column(String)


class ApiKeyRecord(AuditBase):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('system', 'manager', 'admin')", name="role_known"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the key; the key is never kept
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UiSessionRecord(AuditBase):
    """A signed-in page session: the cookie holds a random token, the store only its SHA-256 digest."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String, ForeignKey("api_keys.id"))
    csrf_token: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


def create_audit_engine(url: str) -> Engine:
    """An engine for the audit store; connects lazily.

    SQLite: WAL journal, foreign keys on, a busy timeout, and transactions begun by SQLAlchemy (the sqlite3
    driver's own BEGIN handling is switched off) so that writers can ask for ``BEGIN IMMEDIATE``: a write
    transaction takes the write lock before it reads, and two writers queue instead of failing on upgrade.
    PostgreSQL: pre-ping pooled connections and a connect timeout unless the URL sets one.
    """
    parsed = make_url(url)
    # NaN and infinity are not JSON: PostgreSQL would refuse them, SQLite would keep them. Refuse them on both.
    json_serializer = functools.partial(json.dumps, allow_nan=False)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, json_serializer=json_serializer)
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(
        parsed,
        json_serializer=json_serializer,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
    )


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself: see _begin_sqlite_transaction
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # NORMAL could lose the last commits on power loss
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("audit_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config() -> Config:
    """Alembic's configuration for the audit migrations, built in code (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


_SCORE_COLUMNS = tuple(f.name for f in dataclasses.fields(ScoreRow))


class _Pending:
    """Rows handed to the writer thread, and what became of them."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: Sequence[ScoreRow]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None


class _WriterLock:
    """Writers of every process and thread on one SQLite file, one at a time: a thread lock, then a file lock."""

    def __init__(self, database: str) -> None:
        self._path = f"{database}-writer.lock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class AuditStore:
    """Scores, decisions and API keys; each method is one transaction, committed when it returns."""

    def __init__(self, url: str) -> None:
        self._engine = create_audit_engine(url)
        # Same pool, but its transactions start with BEGIN IMMEDIATE on SQLite (see create_audit_engine).
        self._writer = self._engine.execution_options(audit_write=True)
        database = self._engine.url.database if self._engine.url.get_backend_name() == "sqlite" else None
        self._writer_lock = _WriterLock(database) if database and database != ":memory:" else None
        self._pending: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._group_writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._keys = ApiKeyRecord.__table__

    @property
    def engine(self) -> Engine:
        """The underlying engine, for diagnostics and tests."""
        return self._engine

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; a no-op when it is there already. Safe at every start-up."""
        config = alembic_config()
        try:
            with _MIGRATION_LOCK, self._writer.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"could not migrate the audit store: {exc}") from exc

    def ping(self) -> bool:
        try:
            with self._engine.connect() as connection:
                return bool(connection.execute(text("SELECT 1")).scalar_one() == 1)
        except SQLAlchemyError:
            return False

    def save_scores(self, rows: Sequence[ScoreRow]) -> None:
        """Store every row or none, committed when this returns (ValueError for an invalid row, StoreError when the
        database refuses one). Concurrent calls share a transaction (group commit), each still all or none."""
        for row in rows:
            _check_score(row)
        if not rows:
            return
        pending = _Pending(rows)
        self._pending.put(pending)
        if self._group_writer is None:
            self._start_group_writer()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _start_group_writer(self) -> None:
        with self._start_lock:
            if self._group_writer is None:
                self._group_writer = threading.Thread(target=self._write_groups, name="audit-group-commit", daemon=True)
                self._group_writer.start()

    def _write_groups(self) -> None:
        """The writer thread: everything queued while the last commit was flushed goes in the next transaction."""
        stopping = False
        while not stopping:
            first = self._pending.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            try:
                self._insert_scores([row for pending in group for row in pending.rows])
            except BaseException as exc:  # handed to the waiting requests: none of them may take it for success
                if len(group) == 1:
                    group[0].error = exc
                else:  # one request's rows must not fail the others': each alone, in its own transaction
                    for pending in group:
                        try:
                            self._insert_scores(pending.rows)
                        except BaseException as own:
                            pending.error = own
            finally:
                for pending in group:
                    pending.done.set()

    def _insert_scores(self, rows: Sequence[ScoreRow]) -> None:
        # A plain INSERT of shallow dicts: the ORM session and dataclasses.asdict's deep copies of every reason
        # cost more than the insert itself.
        values = [{name: getattr(row, name) for name in _SCORE_COLUMNS} for row in rows]
        try:
            with self._write_transaction() as connection:
                connection.execute(insert(ScoreRecord), values)
        except IntegrityError as exc:
            raise StoreError(f"none of {len(rows)} scores saved: {exc.orig}") from exc

    def get_score(self, score_id: str) -> ScoreRow | None:
        with self._session() as session:
            record = session.get(ScoreRecord, score_id)
            return None if record is None else _score_row(record)

    def record_decision(
        self, *, score_id: str, decided_by: str, decision: str, reason: str, supersede: bool = False
    ) -> DecisionRow:
        """Record a manager's decision on a score; with ``supersede`` it replaces the current decision.

        Raises ScoreNotFound, DecisionExists, or ValueError for a decision not in DECISIONS.
        """
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}: expected one of {', '.join(DECISIONS)}")
        try:
            with self._session(write=True) as session:
                # Writers on one score queue here (a row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite), so the
                # current decision read below is still current at the insert; the unique indexes are the backstop.
                found = session.execute(
                    select(ScoreRecord.id).where(ScoreRecord.id == score_id).with_for_update()
                ).first()
                if found is None:
                    raise ScoreNotFound(score_id)
                chain = _chain(list(session.scalars(select(DecisionRecord).where(DecisionRecord.score_id == score_id))))
                current = chain[-1] if chain else None
                if current is not None and not supersede:
                    raise DecisionExists(f"score {score_id} already has decision {current.id}")
                row = DecisionRow(
                    id=str(uuid.uuid4()),
                    score_id=score_id,
                    created_at=datetime.now(UTC),
                    decided_by=decided_by,
                    decision=decision,
                    reason=reason,
                    supersedes=current.id if current is not None else None,
                )
                session.add(DecisionRecord(**dataclasses.asdict(row)))
        except IntegrityError as exc:
            raise DecisionExists(f"score {score_id}: a concurrent decision was recorded first") from exc
        return row

    def decisions(self, score_id: str) -> list[DecisionRow]:
        """A score's decisions, oldest first (the last is the current one)."""
        with self._session() as session:
            records = list(session.scalars(select(DecisionRecord).where(DecisionRecord.score_id == score_id)))
            return [_decision_row(record) for record in _chain(records)]

    def scores_between(self, *, since: date | None = None, until: date | None = None) -> list[ScoreRow]:
        """Every score whose ``as_of`` lies in [since, until] (either end open when None), oldest first."""
        query = select(ScoreRecord).order_by(ScoreRecord.as_of, ScoreRecord.created_at, ScoreRecord.id)
        if since is not None:
            query = query.where(ScoreRecord.as_of >= since)
        if until is not None:
            query = query.where(ScoreRecord.as_of <= until)
        fields = [f.name for f in dataclasses.fields(ScoreRow)]
        with self._session() as session:
            return [ScoreRow(**{name: getattr(r, name) for name in fields}) for r in session.scalars(query)]

    def current_decisions(self, score_ids: Sequence[str]) -> dict[str, DecisionRow]:
        """The current decision of each of these scores that has one."""
        out: dict[str, DecisionRow] = {}
        ids = list(dict.fromkeys(score_ids))
        with self._session() as session:
            for start in range(0, len(ids), 500):  # keeps every IN list within the drivers' parameter limits
                chunk = ids[start : start + 500]
                records = list(session.scalars(select(DecisionRecord).where(DecisionRecord.score_id.in_(chunk))))
                by_score: dict[str, list[DecisionRecord]] = {}
                for record in records:
                    by_score.setdefault(record.score_id, []).append(record)
                for score_id, chain in by_score.items():
                    out[score_id] = _decision_row(_chain(chain)[-1])
        return out

    def create_key(self, *, name: str, role: str) -> tuple[str, ApiKey]:
        """A new API key: the plaintext is returned here once and never stored (only its SHA-256 digest is)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        if not name.strip():
            raise ValueError("an API key needs a name")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=str(uuid.uuid4()), name=name.strip(), role=role, created_at=datetime.now(UTC), revoked_at=None)
        with self._session(write=True) as session:
            session.add(ApiKeyRecord(**dataclasses.asdict(key), digest=_digest(plaintext)))
        return plaintext, key

    def verify_key(self, plaintext: str) -> ApiKey | None:
        """The key's record when it exists and is not revoked, else None."""
        if not plaintext:
            return None
        digest = _digest(plaintext)
        keys = self._keys
        # Every request asks this: a plain SELECT on a pooled connection, no ORM session.
        query = select(keys.c.id, keys.c.name, keys.c.role, keys.c.created_at, keys.c.revoked_at, keys.c.digest)
        try:
            with self._engine.connect() as connection:
                found = connection.execute(query.where(keys.c.digest == digest)).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc
        if found is None or not hmac.compare_digest(found.digest, digest) or found.revoked_at is not None:
            return None
        return ApiKey(id=found.id, name=found.name, role=found.role, created_at=found.created_at, revoked_at=None)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key: False when there is no such key; a second revocation keeps the first time."""
        with self._session(write=True) as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None:
                return False
            if record.revoked_at is None:
                record.revoked_at = datetime.now(UTC)
            return True

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._session() as session:
            records = session.scalars(select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id))
            return [_api_key(record) for record in records]

    def queue(
        self, *, band: str | None = None, decision: str | None = None, limit: int = 200
    ) -> tuple[list[QueueRow], int]:
        """Each case's latest score with its current decision, highest probability first; and how many match.

        ``decision`` is one of DECISIONS or ``"undecided"``; ``band`` one of low, medium, high.
        """
        latest = (
            select(ScoreRecord.case_id, func.max(ScoreRecord.created_at).label("at"))
            .group_by(ScoreRecord.case_id)
            .subquery()
        )
        later = aliased(DecisionRecord)
        current = (
            select(DecisionRecord)
            .where(~select(later.id).where(later.supersedes == DecisionRecord.id).exists())
            .subquery()
        )
        query = (
            select(ScoreRecord, current.c.decision, current.c.created_at)
            .join(latest, (latest.c.case_id == ScoreRecord.case_id) & (latest.c.at == ScoreRecord.created_at))
            .outerjoin(current, current.c.score_id == ScoreRecord.id)
        )
        if band is not None:
            query = query.where(ScoreRecord.band == band)
        if decision == "undecided":
            query = query.where(current.c.decision.is_(None))
        elif decision is not None:
            query = query.where(current.c.decision == decision)
        with self._session() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = session.execute(query.order_by(ScoreRecord.probability.desc(), ScoreRecord.id).limit(limit)).all()
            return [QueueRow(score=_score_row(record), decision=made, decided_at=at) for record, made, at in rows], int(
                total
            )

    def create_session(self, key: ApiKey, *, lifetime_s: int) -> tuple[str, UiSession]:
        """A page session for a valid key: the token for the cookie (returned once, stored as its digest)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session_row = UiSession(
            key=key, csrf_token=secrets.token_urlsafe(32), expires_at=now + timedelta(seconds=lifetime_s)
        )
        with self._session(write=True) as session:
            session.execute(delete(UiSessionRecord).where(UiSessionRecord.expires_at <= now))
            session.add(
                UiSessionRecord(
                    id=_digest(token),
                    key_id=key.id,
                    csrf_token=session_row.csrf_token,
                    created_at=now,
                    expires_at=session_row.expires_at,
                )
            )
        return token, session_row

    def verify_session(self, token: str) -> UiSession | None:
        """The session behind a cookie's token, while it has not expired and its key is not revoked."""
        if not token:
            return None
        with self._session() as session:
            found = session.execute(
                select(UiSessionRecord, ApiKeyRecord)
                .join(ApiKeyRecord, ApiKeyRecord.id == UiSessionRecord.key_id)
                .where(UiSessionRecord.id == _digest(token))
            ).first()
            if found is None:
                return None
            record, key = found
            if key.revoked_at is not None or record.expires_at <= datetime.now(UTC):
                return None
            return UiSession(key=_api_key(key), csrf_token=record.csrf_token, expires_at=record.expires_at)

    def end_session(self, token: str) -> None:
        with self._session(write=True) as session:
            session.execute(delete(UiSessionRecord).where(UiSessionRecord.id == _digest(token)))

    def close(self) -> None:
        """Finish the writes handed over, then close every connection."""
        with self._start_lock:
            if self._group_writer is not None:
                self._pending.put(None)
                self._group_writer.join()
                self._group_writer = None
        if self._writer_lock is not None:
            self._writer_lock.close()
        self._engine.dispose()

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """One write transaction on a pooled connection (no ORM), committed on leaving; as ``_session``."""
        try:
            if self._writer_lock is not None:
                with self._writer_lock.held(), self._writer.begin() as connection:
                    yield connection
            else:
                with self._writer.begin() as connection:
                    yield connection
        except IntegrityError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction, committed on leaving; database failures become StoreError (IntegrityError is left to
        the caller, which knows what the conflict means)."""
        try:
            if write and self._writer_lock is not None:
                with self._writer_lock.held(), Session(self._writer) as session, session.begin():
                    yield session
            else:
                with Session(self._writer if write else self._engine) as session, session.begin():
                    yield session
        except IntegrityError:
            raise
        except (SQLAlchemyError, OSError) as exc:  # OSError: the writer lock's file could not be opened
            raise StoreError(f"audit store unavailable: {exc}") from exc


def _check_score(row: ScoreRow) -> None:
    if row.created_at.utcoffset() is None:
        raise ValueError(f"score {row.id}: created_at has no time zone")
    for name in ("probability", "raw_score", "base_value"):
        if not math.isfinite(getattr(row, name)):
            raise ValueError(f"score {row.id}: {name} is not a finite number")
    if not 0.0 <= row.probability <= 1.0:
        raise ValueError(f"score {row.id}: probability {row.probability} is outside [0, 1]")
    for name in ("out_of_distribution", "features", "reasons", "what_ifs", "warnings"):
        try:
            json.dumps(getattr(row, name), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"score {row.id}: {name} is not plain JSON ({exc})") from exc


def _chain(records: list[DecisionRecord]) -> list[DecisionRecord]:
    """A score's decisions in the order they superseded each other, first decision first."""
    by_predecessor = {record.supersedes: record for record in records}
    chain: list[DecisionRecord] = []
    record = by_predecessor.get(None)
    while record is not None:
        chain.append(record)
        record = by_predecessor.get(record.id)
    if len(chain) != len(records):  # the constraints forbid it; never hide a row if they were bypassed
        rest = [record for record in records if record not in chain]
        chain.extend(sorted(rest, key=lambda r: (r.created_at, r.id)))
    return chain


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _score_row(record: ScoreRecord) -> ScoreRow:
    return ScoreRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(ScoreRow)})


def _decision_row(record: DecisionRecord) -> DecisionRow:
    return DecisionRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(DecisionRow)})


def _api_key(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(**{f.name: getattr(record, f.name) for f in dataclasses.fields(ApiKey)})
