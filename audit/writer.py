"""Score rows written through the database driver itself: each row checked and its JSON encoded once, then one plain
INSERT per group and the rows' chain entries, in one transaction on the writer thread's own connection.

SQLAlchemy stays the store's schema and its every other query; on the hot path its statement compilation and JSON
type processing cost more than the insert. The values each column gets are SQLAlchemy's own (each column type's
bind processor for this dialect), so a row reads back exactly as before; the JSON columns get the text encoded here,
which is also the chain's canonical form of that value (``audit.chain.canonical``: sorted keys, no spaces, no
NaN), so the row's hash is built from the same bytes without encoding anything a second time. Durability is the
engine's: SQLite's ``synchronous=FULL`` is set on every connection it opens, PostgreSQL commits synchronously.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import JSON, Engine
from sqlalchemy.exc import SQLAlchemyError

from audit.chain import CHAIN_LOCK, GENESIS, plain_scalar
from audit.rows import ScoreRow, StoreError
from audit.tables import ScoreRecord
from features import Band

__all__ = ["DriverConnections", "EncodedRow", "ScoreWriter"]

_SCORES = ScoreRecord.__table__
_BANDS = frozenset(Band)
_FINITE = ("probability", "raw_score", "base_value")
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_string: Callable[[str], str] = encode_basestring  # what ``_dumps`` writes a string as (ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class EncodedRow:
    """A score row ready for the driver: its parameters in column order and its canonical form for the chain."""

    row_id: str
    params: tuple[Any, ...]
    canonical: bytes


def _scalar(value: Any) -> str:
    """``_dumps(plain_scalar(value))`` for a column's scalar, the same text: the common types written directly (the
    encoder's own C string escaping, ``repr`` for numbers, as the encoder writes them), anything else by the encoder.
    A row has some thirty columns, and the encoder's set-up is most of the cost of writing one."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _dumps(plain_scalar(value))


class ScoreWriter:
    """Encodes score rows for one dialect and inserts them with their chain entries."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self.dialect = dialect.name
        dbapi = dialect.dbapi
        assert dbapi is not None  # a dialect in use has its driver loaded
        self.integrity_errors: tuple[type[BaseException], ...] = (dbapi.IntegrityError,)
        self.driver_errors: tuple[type[BaseException], ...] = (dbapi.Error,)
        columns = list(_SCORES.columns)
        self._names = [c.name for c in columns]
        # Columns added after the chain began are hashed only when set (``audit.tables.CHAINED_WHEN_SET``).
        self._when_set = [bool(c.info.get("chained_when_set")) for c in columns]
        self._json = [isinstance(c.type, JSON) for c in columns]
        self._bind: list[Callable[[Any], Any] | None] = [c.type._cached_bind_processor(dialect) for c in columns]
        # The canonical row's keys, sorted, each with its column's position.
        self._sorted = sorted(range(len(columns)), key=lambda i: self._names[i])
        self._keys = [_dumps(self._names[i]) for i in self._sorted]
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._insert = f"INSERT INTO scores ({', '.join(self._names)}) VALUES ({', '.join([mark] * len(columns))})"
        self._chain_insert = (
            f"INSERT INTO audit_chain (seq, kind, row_id, prev_hash, row_hash) VALUES ({', '.join([mark] * 5)})"
        )

    def encode(self, row: ScoreRow, values: Mapping[str, Any]) -> EncodedRow:
        """The row checked (ValueError naming what is wrong, as ``audit.rows.check_score_row``) and encoded, stored
        as ``values`` (every column's value: ``audit.crypto.seal_score`` seals the personal ones)."""
        if row.created_at.utcoffset() is None:
            raise ValueError(f"score {row.id}: created_at has no time zone")
        for name in _FINITE:
            if not math.isfinite(getattr(row, name)):
                raise ValueError(f"score {row.id}: {name} is not a finite number")
        if not 0.0 <= row.probability <= 1.0:
            raise ValueError(f"score {row.id}: probability {row.probability} is outside [0, 1]")
        if row.band not in _BANDS:
            raise ValueError(f"score {row.id}: band {row.band!r} is not one of {', '.join(Band)}")
        params: list[Any] = []
        fragments: list[str | None] = []
        for name, is_json, bind, when_set in zip(self._names, self._json, self._bind, self._when_set, strict=True):
            value = values.get(name)
            if when_set and value is None:
                params.append(None)
                fragments.append(None)
            elif is_json:
                try:
                    text = _dumps(value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"score {row.id}: {name} is not plain JSON ({exc})") from exc
                params.append(text)
                fragments.append(text)
            else:
                params.append(bind(value) if bind is not None else value)
                fragments.append(_scalar(value))
        body = ",".join(
            f"{key}:{fragments[i]}" for key, i in zip(self._keys, self._sorted, strict=True) if fragments[i] is not None
        )
        canonical = f'["scores",{{{body}}}]'.encode()
        return EncodedRow(row.id, tuple(params), canonical)

    def insert(self, connection: Any, rows: Sequence[EncodedRow]) -> None:
        """Insert ``rows`` and chain them, inside the caller's transaction on a driver connection."""
        cursor = connection.cursor()
        try:
            cursor.executemany(self._insert, [row.params for row in rows])
            if self.dialect == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            cursor.execute("SELECT seq, row_hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
            head = cursor.fetchone()
            seq, prev = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS)
            entries = []
            for row in rows:
                seq += 1
                row_hash = hashlib.sha256(prev.encode("ascii") + row.canonical).hexdigest()
                entries.append((seq, "scores", row.row_id, prev, row_hash))
                prev = row_hash
            cursor.executemany(self._chain_insert, entries)
        finally:
            cursor.close()


class DriverConnections:
    """Driver connections of one store: the group-commit writer's transactions, and the one reading connection."""

    def __init__(self, engine: Engine, writer: ScoreWriter) -> None:
        self._engine = engine
        self._writer = writer
        self._reader: Any = None
        self._reading = threading.Lock()
        self._failures: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, *writer.driver_errors)

    @contextmanager
    def transaction(self, lock: AbstractContextManager[None]) -> Iterator[Any]:
        """One write transaction on a pooled connection's driver connection (one per group, not per row), committed
        on leaving and rolled back on any error; a connection that failed is dropped from the pool. Driver and
        connection errors other than a refused row become StoreError."""
        sqlite = self._engine.dialect.name == "sqlite"
        connection: Any = None
        try:
            connection = self._engine.raw_connection()
            with lock:
                if sqlite:
                    connection.execute("BEGIN IMMEDIATE")  # the engine's connections leave BEGIN to the caller
                try:
                    yield connection
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
        except self._writer.integrity_errors:
            raise
        except self._failures as exc:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.invalidate()
            raise StoreError(f"audit store unavailable: {type(exc).__name__}") from None
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()  # back to the pool (a no-op after invalidate)

    def scalar(self, sql: str) -> Any:
        """The first value of a read on the store's one reading connection (``first``)."""
        return self.first(sql)[0]

    def first(self, sql: str) -> tuple[Any, ...]:
        """The first row of a read on the store's one reading connection (autocommit: nothing stays open; reads
        take microseconds, so threads share it under a lock)."""
        with self._reading:
            connection = self._reader
            try:
                if connection is None:
                    connection = self._engine.raw_connection()
                    if self._engine.dialect.name == "postgresql":
                        driver: Any = connection.driver_connection
                        driver.autocommit = True
                    connection.detach()  # the store's for good: not counted against the pool
                    self._reader = connection
                cursor = connection.cursor()
                try:
                    cursor.execute(sql)
                    found: Any = cursor.fetchone()
                    return tuple(found)
                finally:
                    cursor.close()
            except self._failures as exc:
                self._reader = None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
                raise StoreError(f"audit store unavailable: {type(exc).__name__}") from None

    def close(self) -> None:
        with self._reading:
            if self._reader is not None:
                with contextlib.suppress(Exception):
                    self._reader.close()
                self._reader = None
