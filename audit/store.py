"""The audit store: every score and decision the service makes, its API keys and page sessions, in SQLite or
PostgreSQL.

A score row keeps what is needed to reproduce and contest it: the model version, the pseudonymous case id, the
model's input values and every feature's contribution. Audited rows are only ever inserted (triggers refuse UPDATE
and DELETE; a key's revocation and a sign-in are rows of their own) and each is chained (``audit.chain``) in the
transaction that writes it; only the page sessions' working rows are deleted when they end. Decisions on a score
form one chain: the first has ``supersedes`` NULL (a partial unique index allows one per score) and each later one
supersedes the previous (``supersedes`` is unique), so a score has at most one current decision even under
concurrent writers. The schema is created and upgraded by the Alembic migrations (``audit/migrations``), run
programmatically by :meth:`AuditStore.migrate`. Scores are written by group commit (``audit.group_commit``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from alembic import command
from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from audit.chain import ChainHead, ChainReport, append_to_chain, chain_head, verify_chain
from audit.group_commit import GroupCommit, WriterLock
from audit.rows import (
    ApiKey,
    DecisionExists,
    DecisionReview,
    DecisionRow,
    KeyNameTaken,
    QueueRow,
    ScoreNotFound,
    ScoreRow,
    StoreError,
    UiSession,
    check_score_row,
    vocabulary_member,
)
from audit.store_rights import RightsMixin
from audit.tables import (
    ApiKeyRecord,
    DecisionRecord,
    DecisionReviewRecord,
    KeyRevocationRecord,
    ScoreRecord,
    SignInRecord,
    UiSessionRecord,
    alembic_config,
    create_audit_engine,
    migration_transaction,
)
from features import Band, Decision, Role

__all__ = ["AuditStore"]

KEY_PREFIX = "ccr_"
# Alembic keeps the running migration in module globals: one migration at a time per process. Processes starting
# together queue on the database instead (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL: env.py).
_MIGRATION_LOCK = threading.Lock()
_SCORE_COLUMNS = tuple(f.name for f in dataclasses.fields(ScoreRow))
# After a write fails for want of the database (a full disk, say), readiness says so for this long unless a write
# succeeds first: long enough for a load balancer to notice, short enough that a store mended meanwhile is used again.
WRITE_FAILURE_MEMORY_S = 30.0


class AuditStore(RightsMixin):
    """Scores, decisions, API keys (rights and review: ``RightsMixin``); each method is one committed transaction."""

    def __init__(self, url: str) -> None:
        self._engine = create_audit_engine(url)
        # Same pool, but its transactions start with BEGIN IMMEDIATE on SQLite (see create_audit_engine).
        self._writer = self._engine.execution_options(audit_write=True)
        database = self._engine.url.database if self._engine.url.get_backend_name() == "sqlite" else None
        self._writer_lock = WriterLock(database) if database and database != ":memory:" else None
        self._group_commit = GroupCommit(self._insert_scores, name="audit-group-commit")
        self._keys = ApiKeyRecord.__table__
        self.chain_report: ChainReport | None = None  # the last verification's (see verify_chain)
        self._write_failed_at: float | None = None  # time.monotonic() of the last write the database could not take

    @property
    def engine(self) -> Engine:
        """The underlying engine, for diagnostics and tests."""
        return self._engine

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; a no-op when it is there already. Safe at every start-up."""
        config = alembic_config()
        try:
            with _MIGRATION_LOCK, migration_transaction(self._writer) as connection:
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

    def unready_reason(self) -> str | None:
        """Why the store cannot take a write now, or None when it can.

        It must answer, accept a write transaction (SQLite takes its write lock, ``BEGIN IMMEDIATE``, and lets it go
        at once; PostgreSQL must not be read-only) and not have failed a write in the last
        ``WRITE_FAILURE_MEMORY_S`` seconds without a write succeeding since (a full disk shows only on a write).
        """
        try:
            with self._writer.begin() as connection:
                if connection.dialect.name == "postgresql":
                    if connection.exec_driver_sql("SHOW transaction_read_only").scalar_one() == "on":
                        return "the audit store is read-only"
                else:
                    connection.execute(text("SELECT 1"))
                connection.rollback()
        except SQLAlchemyError as exc:
            return f"the audit store cannot be reached or written ({type(exc).__name__})"
        failed_at = self._write_failed_at
        if failed_at is not None and time.monotonic() - failed_at < WRITE_FAILURE_MEMORY_S:
            return "the audit store failed a write in the last 30 seconds"
        return None

    def save_scores(self, rows: Sequence[ScoreRow]) -> None:
        """Store every row or none, committed when this returns (ValueError for an invalid row, StoreError when the
        database refuses one). Concurrent calls share a transaction (group commit), each still all or none."""
        for row in rows:
            check_score_row(row)
        if rows:
            self._group_commit.write(rows)

    def _insert_scores(self, rows: Sequence[ScoreRow]) -> None:
        # A plain INSERT of shallow dicts: the ORM session and dataclasses.asdict's deep copies of every reason
        # cost more than the insert itself.
        values = [{name: getattr(row, name) for name in _SCORE_COLUMNS} for row in rows]
        try:
            with self._write_transaction() as connection:
                connection.execute(insert(ScoreRecord), values)
                append_to_chain(connection, [("scores", v) for v in values])
        except IntegrityError as exc:
            # The database's first line names the constraint; PostgreSQL's DETAIL line may quote the whole row.
            refused = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
            raise StoreError(f"none of {len(rows)} scores saved: {refused}") from None

    def get_score(self, score_id: str) -> ScoreRow | None:
        with self._session() as session:
            record = session.get(ScoreRecord, score_id)
            return None if record is None else _score_row(record)

    def record_decision(
        self,
        *,
        score_id: str,
        decided_by: str,
        decision: Decision,
        reason: str,
        supersede: bool = False,
        decided_by_key: str | None = None,
        review: DecisionReview | None = None,
    ) -> DecisionRow:
        """Record a manager's decision on a score (and its ``review``, written and chained with it); with
        ``supersede`` it replaces the current decision.

        Raises ScoreNotFound, DecisionExists, or ValueError for a value that is not a Decision.
        """
        decision = vocabulary_member(Decision, decision, "decision")
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
                    decided_by_key=decided_by_key,
                )
                session.add(DecisionRecord(**dataclasses.asdict(row)))
                chained: list[tuple[str, dict[str, object]]] = [("decisions", dataclasses.asdict(row))]
                if review is not None:
                    chained.append(("decision_reviews", {"decision_id": row.id, **dataclasses.asdict(review)}))
                    session.add(DecisionReviewRecord(**chained[-1][1]))
                append_to_chain(session.connection(), chained)
        except IntegrityError as exc:
            raise DecisionExists(f"score {score_id}: a concurrent decision was recorded first") from exc
        return row

    def decisions(self, score_id: str) -> list[DecisionRow]:
        """A score's decisions, oldest first (the last is the current one)."""
        return self.decisions_of_scores([score_id]).get(score_id, [])

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

    def create_key(self, *, name: str, role: Role, created_by: str | None = None) -> tuple[str, ApiKey]:
        """A new API key: the plaintext is returned here once and never stored (only its SHA-256 digest is).

        ``created_by`` is the creating admin key's id (or "command line"). Raises KeyNameTaken for a name in use.
        """
        role = vocabulary_member(Role, role, "role")
        if not name.strip():
            raise ValueError("an API key needs a name")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=str(uuid.uuid4()), name=name.strip(), role=role, created_at=datetime.now(UTC), revoked_at=None,
            created_by=created_by,
        )  # fmt: skip
        values = {**dataclasses.asdict(key), "digest": _digest(plaintext)}
        del values["revoked_by"]
        try:
            with self._session(write=True) as session:
                taken = session.scalar(select(ApiKeyRecord.id).where(ApiKeyRecord.name == key.name))
                if taken is not None:
                    raise KeyNameTaken(f"another API key is named {key.name!r}: key names must be unique")
                session.add(ApiKeyRecord(**values))
                append_to_chain(session.connection(), [("api_keys", values)])
        except IntegrityError as exc:  # a concurrent key with the same name, caught by the unique index
            raise KeyNameTaken(f"another API key is named {key.name!r}: key names must be unique") from exc
        return plaintext, key

    def verify_key(self, plaintext: str) -> ApiKey | None:
        """The key's record when it exists and is not revoked, else None."""
        if not plaintext:
            return None
        digest = _digest(plaintext)
        keys = self._keys
        # Every request asks this: a plain SELECT on a pooled connection, no ORM session.
        revoked = KeyRevocationRecord.__table__
        query = select(
            keys.c.id, keys.c.name, keys.c.role, keys.c.created_at, keys.c.revoked_at, keys.c.digest, keys.c.created_by,
            revoked.c.key_id.label("revocation"),
        ).outerjoin(revoked, revoked.c.key_id == keys.c.id)  # fmt: skip
        try:
            with self._engine.connect() as connection:
                found = connection.execute(query.where(keys.c.digest == digest)).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc
        if found is None or not hmac.compare_digest(found.digest, digest):
            return None
        if found.revoked_at is not None or found.revocation is not None:
            return None
        return ApiKey(
            id=found.id, name=found.name, role=found.role, created_at=found.created_at, revoked_at=None,
            created_by=found.created_by,
        )  # fmt: skip

    def revoke_key(self, key_id: str, *, revoked_by: str | None = None) -> bool:
        """Revoke a key (an appended row: the key's own row never changes): False when there is no such key; a
        second revocation keeps the first. ``revoked_by`` is the revoking admin key's id (or "command line")."""
        with self._session(write=True) as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None:
                return False
            if record.revoked_at is None and session.get(KeyRevocationRecord, key_id) is None:
                values = {"key_id": key_id, "revoked_at": datetime.now(UTC), "revoked_by": revoked_by}
                session.add(KeyRevocationRecord(**values))
                append_to_chain(session.connection(), [("key_revocations", values)])
            return True

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        query = (
            select(ApiKeyRecord, KeyRevocationRecord)
            .outerjoin(KeyRevocationRecord, KeyRevocationRecord.key_id == ApiKeyRecord.id)
            .order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        )
        with self._session() as session:
            return [_api_key(record, revocation) for record, revocation in session.execute(query)]

    def verify_chain(self) -> ChainReport:
        """Check the whole hash chain against every audited row (``audit.chain``); the report is kept as
        ``chain_report`` for readiness and the pages. It reads every audited row: run it on a schedule, not per
        request."""
        try:
            with self._engine.connect() as connection, connection.begin():
                report = verify_chain(connection)
        except SQLAlchemyError as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc
        self.chain_report = report
        return report

    def chain_head(self) -> ChainHead:
        """The chain's last entry: its number and hash, to anchor outside the store."""
        try:
            with self._engine.connect() as connection:
                return chain_head(connection)
        except SQLAlchemyError as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc

    def queue(
        self,
        *,
        band: Band | None = None,
        decision: Decision | Literal["undecided"] | None = None,
        limit: int = 200,
    ) -> tuple[list[QueueRow], int]:
        """Each case's latest score (the latest ``as_of``; of those, the last made) with its current decision, highest
        probability first; and how many match. A back-filled score of an earlier date never hides a newer one.

        ``band`` and ``decision`` filter (None: any); ``decision="undecided"`` keeps the cases with none.
        """
        newest_first = (ScoreRecord.as_of.desc(), ScoreRecord.created_at.desc(), ScoreRecord.id.desc())
        ranked = func.row_number().over(partition_by=ScoreRecord.case_id, order_by=newest_first)
        latest = select(ScoreRecord.id, ranked.label("rank")).subquery()
        later = aliased(DecisionRecord)
        current = (
            select(DecisionRecord)
            .where(~select(later.id).where(later.supersedes == DecisionRecord.id).exists())
            .subquery()
        )
        query = (
            select(ScoreRecord, current.c.decision, current.c.created_at)
            .join(latest, (latest.c.id == ScoreRecord.id) & (latest.c.rank == 1))
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
        sign_in = {"id": str(uuid.uuid4()), "key_id": key.id, "created_at": now}
        with self._session(write=True) as session:
            session.execute(delete(UiSessionRecord).where(UiSessionRecord.expires_at <= now))
            session.add(SignInRecord(**sign_in))
            append_to_chain(session.connection(), [("sign_ins", sign_in)])
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
                select(UiSessionRecord, ApiKeyRecord, KeyRevocationRecord.key_id)
                .join(ApiKeyRecord, ApiKeyRecord.id == UiSessionRecord.key_id)
                .outerjoin(KeyRevocationRecord, KeyRevocationRecord.key_id == ApiKeyRecord.id)
                .where(UiSessionRecord.id == _digest(token))
            ).first()
            if found is None:
                return None
            record, key, revocation = found
            if key.revoked_at is not None or revocation is not None or record.expires_at <= datetime.now(UTC):
                return None
            return UiSession(key=_api_key(key), csrf_token=record.csrf_token, expires_at=record.expires_at)

    def end_session(self, token: str) -> None:
        with self._session(write=True) as session:
            session.execute(delete(UiSessionRecord).where(UiSessionRecord.id == _digest(token)))

    def close(self) -> None:
        """Finish the writes handed over, then close every connection."""
        self._group_commit.close()
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
            self._write_failed_at = time.monotonic()
            raise StoreError(f"audit store unavailable: {exc}") from exc
        self._write_failed_at = None

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
            if write:
                self._write_failed_at = time.monotonic()
            raise StoreError(f"audit store unavailable: {exc}") from exc
        if write:
            self._write_failed_at = None


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


def _api_key(record: ApiKeyRecord, revocation: KeyRevocationRecord | None = None) -> ApiKey:
    return ApiKey(
        id=record.id,
        name=record.name,
        role=record.role,
        created_at=record.created_at,
        revoked_at=revocation.revoked_at if revocation is not None else record.revoked_at,
        created_by=record.created_by,
        revoked_by=revocation.revoked_by if revocation is not None else None,
    )
