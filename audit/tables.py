"""The audit store's tables (SQLAlchemy ORM), the engine that reaches them on SQLite or PostgreSQL, and the Alembic
configuration of the migrations that build them (``audit/migrations``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from alembic.config import Config
from sqlalchemy import (
    JSON,
    BigInteger,
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
    event,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.rows import ReadKind, StoreError
from features import Agreement, Band, Decision, Role

__all__ = [
    "APPEND_ONLY",
    "CHAINED_WHEN_SET",
    "ERASABLE",
    "AnnotationRecord",
    "ApiKeyRecord",
    "AuditBase",
    "ChainRecord",
    "DecisionRecord",
    "DecisionReviewRecord",
    "KeyRevocationRecord",
    "ModelReloadRecord",
    "ScoreReadRecord",
    "ScoreRecord",
    "SignInRecord",
    "TombstoneRecord",
    "UiSessionRecord",
    "UtcDateTime",
    "VocabularyText",
    "alembic_config",
    "create_audit_engine",
    "migration_transaction",
]

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
WordT = TypeVar("WordT", bound=StrEnum)
# A column's ``info`` for columns added to a chained table after the chain began: ``audit.chain`` hashes it only
# when it holds a value, so rows written before it existed keep their hashes, and setting it later is still found.
CHAINED_WHEN_SET: dict[str, object] = {"chained_when_set": True}


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


class VocabularyText(TypeDecorator[WordT], Generic[WordT]):
    """A member of one of the product's vocabularies (``features.vocabulary``), stored as its value, read back as the
    member; :func:`one_of` is the CHECK that keeps the column to those values."""

    impl = String
    cache_ok = True

    def __init__(self, vocabulary: type[WordT]) -> None:
        super().__init__()
        self.vocabulary = vocabulary

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        # The plain value, whatever the driver would make of an enum; an unknown one is the CHECK's to refuse.
        return None if value is None else str.__str__(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> WordT | None:
        return None if value is None else self.vocabulary(value)


def one_of(column: str, vocabulary: type[StrEnum]) -> CheckConstraint:
    """The CHECK ``<column> IN (...)`` of the vocabulary's values, named ``<column>_known``."""
    values = ", ".join(f"'{member.value}'" for member in vocabulary)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_known")


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
    band: Mapped[Band] = mapped_column(VocabularyText(Band))
    raw_score: Mapped[float] = mapped_column(Double)
    base_value: Mapped[float] = mapped_column(Double)
    in_scope: Mapped[bool] = mapped_column(Boolean)
    out_of_distribution: Mapped[list[str]] = mapped_column(JSON)
    # The personal fields (features, reasons, what_ifs, warnings, ethnic_group) are sealed into ``sealed_inputs``
    # since revision 0005 (``audit.crypto``) and JSON null in their own columns; rows stored before keep them plain.
    # The case reference joined them in revision 0010.
    features: Mapped[dict[str, float | str | None] | None] = mapped_column(JSON, nullable=False)
    reasons: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=False)
    what_ifs: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    ethnic_group: Mapped[str | None] = mapped_column(String)
    caller_key: Mapped[str | None] = mapped_column(String)  # the API key's id (None: stored before revision 0004)
    # The calling system's own reference for the case, opaque to the service, in plain: rows stored by revisions
    # 0007 to 0009 only (None: not given, stored before 0007, or sealed since 0010: ``case_reference_index``).
    case_reference: Mapped[str | None] = mapped_column(String, index=True, info=CHAINED_WHEN_SET)
    # Columns added after the chain began are chained only when set (``info``), so older rows keep their hashes.
    team: Mapped[str | None] = mapped_column(String, index=True, info=CHAINED_WHEN_SET)
    sealed_inputs: Mapped[str | None] = mapped_column(Text, info=CHAINED_WHEN_SET)
    inputs_key: Mapped[str | None] = mapped_column(String, info=CHAINED_WHEN_SET)
    # Since revision 0010: the sealed case reference's blind index, a keyed HMAC (``audit.crypto``), for the search.
    case_reference_index: Mapped[str | None] = mapped_column(String(64), index=True, info=CHAINED_WHEN_SET)

    __table_args__ = (
        CheckConstraint("probability >= 0 AND probability <= 1", name="probability_range"),
        one_of("band", Band),
        Index("ix_scores_probability", "probability"),
    )


class DecisionRecord(AuditBase):
    __tablename__ = "decisions"
    __table_args__ = (
        one_of("decision", Decision),
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
    decision: Mapped[Decision] = mapped_column(VocabularyText(Decision))
    reason: Mapped[str] = mapped_column(Text)
    supersedes: Mapped[str | None] = mapped_column(String)
    decided_by_key: Mapped[str | None] = mapped_column(String)  # the API key's id (None: before revision 0004)


class ApiKeyRecord(AuditBase):
    __tablename__ = "api_keys"
    __table_args__ = (one_of("role", Role), Index("ux_api_keys_name", "name", unique=True))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    role: Mapped[Role] = mapped_column(VocabularyText(Role))
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the key; the key is never kept
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Revocations before revision 0004 only; later ones are appended rows of ``key_revocations``.
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String)  # the admin key's id, or "command line"
    team: Mapped[str | None] = mapped_column(String, info=CHAINED_WHEN_SET)  # "*": all teams (``audit.access``)


class KeyRevocationRecord(AuditBase):
    """A key's revocation, appended (the key's own row is never changed)."""

    __tablename__ = "key_revocations"

    key_id: Mapped[str] = mapped_column(String, ForeignKey("api_keys.id"), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String)  # the admin key's id, or "command line"


class SignInRecord(AuditBase):
    """A page sign-in, kept: the session it opened (``ui_sessions``) is working state that ends and is deleted."""

    __tablename__ = "sign_ins"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    key_id: Mapped[str] = mapped_column(String, ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChainRecord(AuditBase):
    """One link of the audit trail's hash chain (``audit.chain``)."""

    __tablename__ = "audit_chain"
    __table_args__ = (UniqueConstraint("kind", "row_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String)  # the chained row's table
    row_id: Mapped[str] = mapped_column(String)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class ScoreReadRecord(AuditBase):
    """A read of a score, its decisions or its report, or of the queue: who (the key), when, which score."""

    __tablename__ = "score_reads"
    __table_args__ = (one_of("what", ReadKind),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    key_id: Mapped[str] = mapped_column(String, ForeignKey("api_keys.id"), index=True)
    what: Mapped[ReadKind] = mapped_column(VocabularyText(ReadKind))
    score_id: Mapped[str | None] = mapped_column(String, ForeignKey("scores.id"), index=True)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DecisionReviewRecord(AuditBase):
    """How a decision was reached (revision 0008): whether the manager agrees with the estimate, the grounds weighed,
    and how long the report was open first. A row of its own, written with the decision, so decisions made before
    keep their chained form."""

    __tablename__ = "decision_reviews"
    __table_args__ = (one_of("agreement", Agreement),)

    decision_id: Mapped[str] = mapped_column(String, ForeignKey("decisions.id"), primary_key=True)
    agreement: Mapped[Agreement] = mapped_column(VocabularyText(Agreement))
    child_voice: Mapped[bool] = mapped_column(Boolean)
    family_strengths: Mapped[bool] = mapped_column(Boolean)
    partner_views: Mapped[bool] = mapped_column(Boolean)
    multi_agency: Mapped[bool] = mapped_column(Boolean)
    grounds: Mapped[str] = mapped_column(Text)
    report_open_s: Mapped[float | None] = mapped_column(Double)  # None: decided without the page (the API)


class AnnotationRecord(AuditBase):
    """A score marked as based on wrong input (revision 0008): the score is never edited; this row says which inputs
    were wrong and, once the case is scored again on the corrected record, which score replaces it."""

    __tablename__ = "score_annotations"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    score_id: Mapped[str] = mapped_column(String, ForeignKey("scores.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    annotated_by: Mapped[str] = mapped_column(String)
    annotated_by_key: Mapped[str | None] = mapped_column(String)
    wrong_inputs: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text)
    rescored_as: Mapped[str | None] = mapped_column(String)  # the score made from the corrected record


class TombstoneRecord(AuditBase):
    """An audited row erased under the retention schedule (revision 0008): chained before the row is deleted, it
    keeps the erased row's chain hash, so ``audit verify`` accepts the gap and still proves what was there."""

    __tablename__ = "tombstones"
    __table_args__ = (UniqueConstraint("kind", "row_id"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String)  # the erased row's table
    row_id: Mapped[str] = mapped_column(String)
    row_hash: Mapped[str] = mapped_column(String(64))  # the erased row's chain entry hash
    rule: Mapped[str] = mapped_column(Text)  # the schedule's rule and date that made it due
    erased_by: Mapped[str] = mapped_column(String)


class ModelReloadRecord(AuditBase):
    """A reload of the served model (revision 0009): which version, by which key, with the digest of its bundle
    (``serving.reloads.bundle_digest``). ``generation`` numbers the reloads 1, 2, 3, ...: every worker checks the
    latest one per request and loads that very version when its own model came from an earlier one."""

    __tablename__ = "model_reloads"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reloaded_by: Mapped[str] = mapped_column(String)  # the admin key's id
    model_name: Mapped[str] = mapped_column(String)
    model_version: Mapped[str] = mapped_column(String)
    bundle_digest: Mapped[str] = mapped_column(String(64))  # SHA-256 hex


# The tables whose rows are never changed or deleted: triggers refuse it (revisions 0004, 0005, 0008 and 0009; TRUNCATE
# too on PostgreSQL), and on PostgreSQL the service's role may only INSERT and SELECT (``audit.roles``). Since
# revision 0008 the rows a child's scores hold (``ERASABLE``) may be deleted once a tombstone for them is in the chain.
APPEND_ONLY = (
    "scores", "decisions", "api_keys", "key_revocations", "sign_ins", "audit_chain", "score_reads",
    "decision_reviews", "score_annotations", "tombstones", "model_reloads",
)  # fmt: skip
ERASABLE = ("scores", "decisions", "decision_reviews", "score_annotations", "score_reads")


class UiSessionRecord(AuditBase):
    """A signed-in page session: the cookie holds a random token, the store only its SHA-256 digest."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String, ForeignKey("api_keys.id"))
    csrf_token: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # for the idle timeout (None: created_at)


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
    # A database error's text would otherwise carry the statement's values (a case id, the model's inputs, a
    # decision's reason) into every message and log line built from it.
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, json_serializer=json_serializer, hide_parameters=True)
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(
        parsed,
        json_serializer=json_serializer,
        hide_parameters=True,
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


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """The write transaction a migration runs in, committed on leaving.

    On SQLite it runs with foreign keys off, as SQLite's own recipe for altering a table asks: a migration that
    rebuilds a table (Alembic's batch mode copies it, drops it and renames the copy) would otherwise be refused the
    drop as soon as another table's row refers to it. Every foreign key is checked again before the commit, and
    the connection gets them back before it returns to the pool. (The switch is a no-op inside a transaction.)
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        driver = connection.connection.driver_connection
        assert driver is not None  # a checked-out connection always has one
        driver.execute("PRAGMA foreign_keys = OFF")  # autocommit: the connection's transactions are begun by SQLAlchemy
        try:
            with connection.begin():
                yield connection
                broken = sorted({row[0] for row in connection.exec_driver_sql("PRAGMA foreign_key_check")})
                if broken:
                    raise StoreError(f"the migration left rows in {', '.join(broken)} that refer to no row: undone")
        finally:
            try:
                driver.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                connection.invalidate()  # never hand a connection without foreign keys back to the pool
                raise


def alembic_config() -> Config:
    """Alembic's configuration for the audit migrations, built in code (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config
