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

import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Literal

from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from audit.chain import ChainHead, ChainReport, append_to_chain, chain_head, lock_chain, verify_chain
from audit.crypto import InputsCipher, InputsUnavailable, open_score, seal_score
from audit.files import create_private_sqlite
from audit.group_commit import GroupCommit, WriterLock
from audit.keys import KeysAndReads
from audit.queue import QueueSort, queue_select
from audit.reloads import ModelReloads
from audit.roles import grant_service_role, service_privileges
from audit.rows import (
    DecisionExists,
    DecisionReview,
    DecisionRow,
    QueueRow,
    ScoreNotFound,
    ScoreRow,
    StoreError,
    superseding_order,
    vocabulary_member,
)
from audit.store_rights import RightsMixin
from audit.tables import (
    ApiKeyRecord,
    DecisionRecord,
    DecisionReviewRecord,
    ScoreRecord,
    alembic_config,
    create_audit_engine,
    migration_transaction,
)
from audit.writer import DriverConnections, EncodedRow, ScoreWriter
from features import Band, Decision

__all__ = ["AuditStore"]

# Alembic keeps the running migration in module globals: one migration at a time per process. Processes starting
# together queue on the database instead (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL: env.py).
_MIGRATION_LOCK = threading.Lock()
# After a write fails for want of the database (a full disk, say), readiness says so for this long unless a write
# succeeds first: long enough for a load balancer to notice, short enough that a store mended meanwhile is used again.
WRITE_FAILURE_MEMORY_S = 30.0
_STORED_COLUMNS = tuple(column.name for column in ScoreRecord.__table__.columns)


class AuditStore(KeysAndReads, RightsMixin, ModelReloads):
    """Scores, decisions, API keys, sessions and reads (``KeysAndReads``), rights and review (``RightsMixin``), model
    reloads (``ModelReloads``); each method is one transaction, committed when it returns.

    ``inputs`` seals each score's personal inputs when it is stored and opens them when it is read
    (``audit.crypto``); a store opened without it can verify the chain and manage keys, but neither store nor read
    a score (``InputsUnavailable``).
    """

    def __init__(self, url: str, *, inputs: InputsCipher | None = None) -> None:
        self._inputs = inputs
        self._engine = create_audit_engine(url)
        # Same pool, but its transactions start with BEGIN IMMEDIATE on SQLite (see create_audit_engine).
        self._writer = self._engine.execution_options(audit_write=True)
        database = self._engine.url.database if self._engine.url.get_backend_name() == "sqlite" else None
        self._writer_lock = WriterLock(database) if database and database != ":memory:" else None
        self._group_commit: GroupCommit[EncodedRow] = GroupCommit(self._insert_scores, name="audit-group-commit")
        self._rows = ScoreWriter(self._engine)
        self._driver = DriverConnections(self._engine, self._rows)
        self._keys = ApiKeyRecord.__table__  # type: ignore[assignment]
        self.chain_report: ChainReport | None = None  # the last verification's (see verify_chain)
        self._write_failed_at: float | None = None  # time.monotonic() of the last write the database could not take

    @property
    def engine(self) -> Engine:
        """The underlying engine, for diagnostics and tests."""
        return self._engine

    def migrate(self, *, service_role: str | None = None) -> None:
        """Upgrade the schema to the newest migration; a no-op when it is there already. Safe at every start-up.

        A new SQLite file is created with mode 0600 first. On PostgreSQL, ``service_role`` (the role the service
        connects as, when this store connects as the schema's owner) is then granted INSERT and SELECT only
        (``audit.roles``)."""
        config = alembic_config()
        try:
            create_private_sqlite(self._engine.url)
            with _MIGRATION_LOCK, migration_transaction(self._writer) as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if service_role is not None and connection.dialect.name == "postgresql":
                    grant_service_role(connection, service_role)
        except (SQLAlchemyError, OSError) as exc:
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

    def privilege_warning(self) -> str | None:
        """On PostgreSQL, why the connected role is not the restricted role the service should run as (it may change
        or remove audited rows), or None."""
        if self._engine.dialect.name != "postgresql":
            return None
        try:
            with self._engine.connect() as connection:
                held = service_privileges(connection, "scores")
        except SQLAlchemyError as exc:
            raise StoreError(f"audit store unavailable: {exc}") from exc
        extra = sorted(held - {"SELECT", "INSERT"})
        if not extra:
            return None
        return (
            f"the audit store's role may {', '.join(extra)} audited rows: run the service as a role with INSERT and "
            "SELECT only, and migrate with CCR_OWNER_DATABASE_URL (closure-risk audit migrate)"
        )

    def save_scores(self, rows: Sequence[ScoreRow]) -> None:
        """Store every row or none, committed when this returns (ValueError for an invalid row, StoreError when the
        database refuses one). Concurrent calls share a transaction (group commit), each still all or none."""
        # Each row checked and its personal fields sealed: nothing is handed over if one is bad.
        encoded = [self._rows.encode(row, seal_score(row, self._inputs)) for row in rows]
        if encoded:
            self._group_commit.write(encoded)

    async def save_scores_async(self, rows: Sequence[ScoreRow]) -> None:
        """``save_scores`` for an event loop: the loop serves other requests while the group is committed."""
        encoded = [self._rows.encode(row, seal_score(row, self._inputs)) for row in rows]
        if encoded:
            await self._group_commit.write_async(encoded)

    def _insert_scores(self, rows: Sequence[EncodedRow]) -> None:
        """One transaction through the driver itself: the rows, then their chain entries (see ``audit.writer``)."""
        lock = self._writer_lock.held() if self._writer_lock is not None else contextlib.nullcontext()
        try:
            with self._driver.transaction(lock) as connection:
                self._rows.insert(connection, rows)
        except StoreError:
            self._write_failed_at = time.monotonic()
            raise
        except self._rows.integrity_errors as exc:
            # The database's first line names the constraint; PostgreSQL's DETAIL line may quote the whole row.
            refused = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"none of {len(rows)} scores saved: {refused}") from None
        self._write_failed_at = None

    def get_score(self, score_id: str) -> ScoreRow | None:
        with self._session() as session:
            record = session.get(ScoreRecord, score_id)
            return None if record is None else self._score_row(record)

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
                # Writers queue here (the chain's advisory lock on PostgreSQL, which needs no UPDATE privilege as a
                # row lock would; BEGIN IMMEDIATE on SQLite), so the current decision read below is still current at
                # the insert; the unique indexes are the backstop.
                lock_chain(session.connection())
                found = session.execute(select(ScoreRecord.id).where(ScoreRecord.id == score_id)).first()
                if found is None:
                    raise ScoreNotFound(score_id)
                chain = superseding_order(
                    list(session.scalars(select(DecisionRecord).where(DecisionRecord.score_id == score_id)))
                )
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
        with self._session() as session:
            return [self._score_row(r) for r in session.scalars(query)]

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
                    out[score_id] = _decision_row(superseding_order(chain)[-1])
        return out

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
        case_reference: str | None = None,
        sort: QueueSort = QueueSort.RISK,
        limit: int = 200,
        offset: int = 0,
        teams: frozenset[str] | None = None,
    ) -> tuple[list[QueueRow], int]:
        """Each case's latest score (the latest ``as_of``; of those, the last made) with the case's latest decision
        on any of its scores, in ``sort`` order from ``offset``; and how many match. A back-filled score of an
        earlier date never hides a newer one. The filters are None for any; ``decision="undecided"`` keeps the cases
        with none; ``teams`` keeps the cases whose latest score was made for one of them (None: every team's,
        ``audit.access``; ``audit.queue``). ``case_reference`` is found through its blind index (``audit.crypto``)."""
        indexes: list[str] = []
        if case_reference is not None:
            if self._inputs is None:
                raise InputsUnavailable(
                    "this audit store was opened without the inputs key: it cannot search by reference"
                )
            indexes = self._inputs.reference_indexes(case_reference)
        query, order = queue_select(band=band, decision=decision, case_reference=case_reference,
                                    reference_indexes=indexes, sort=sort, teams=teams)  # fmt: skip
        in_python = sort == QueueSort.DAYS_OPEN  # days open is a sealed input: sorted once the rows are opened
        with self._session() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            ordered = query.order_by(*order)
            rows = session.execute(ordered if in_python else ordered.limit(limit).offset(offset)).all()
            queued = [
                QueueRow(score=self._score_row(record), decision=made, decided_at=at, decided_by=by, decided_on=on)
                for record, made, at, by, on in rows
            ]
        if in_python:
            queued.sort(key=_days_open_first)
            queued = queued[offset : offset + limit]
        return queued, int(total)

    def case_decisions(self, case_id: str) -> list[DecisionRow]:
        """Every decision on any score of this case (child and episode), oldest first: the last is the latest."""
        query = (
            select(DecisionRecord)
            .join(ScoreRecord, ScoreRecord.id == DecisionRecord.score_id)
            .where(ScoreRecord.case_id == case_id)
            .order_by(DecisionRecord.created_at, DecisionRecord.id)
        )
        with self._session() as session:
            return [_decision_row(record) for record in session.scalars(query)]

    def _score_row(self, record: ScoreRecord) -> ScoreRow:
        return open_score({column: getattr(record, column) for column in _STORED_COLUMNS}, self._inputs)

    def close(self) -> None:
        """Finish the writes handed over, then close every connection."""
        self._group_commit.close()
        self._driver.close()
        if self._writer_lock is not None:
            self._writer_lock.close()
        self._engine.dispose()

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


def _days_open_first(row: QueueRow) -> tuple[bool, float]:
    """Longest open first, cases without the figure last (the order is stable: by risk among equals)."""
    days = row.score.features.get("days_open")
    return (not isinstance(days, int | float), -float(days) if isinstance(days, int | float) else 0.0)


def _decision_row(record: DecisionRecord) -> DecisionRow:
    return DecisionRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(DecisionRow)})
