"""The audit trail's hash chain: every score, decision, API key, key revocation, sign-in, read, decision review,
score annotation, tombstone and model reload row gets one entry in ``audit_chain``, ``row_hash = SHA-256(prev_hash +
canonical row)``, appended in the transaction that writes the row.

Entries are numbered 1, 2, 3, ... and each names the hash before it, so a changed row (its hash no longer matches),
a deleted row (an entry without its row), a row written around the chain (a row without an entry), a deleted entry
(a gap) and reordered entries (a broken link) are all found by :func:`verify_chain`, which names rows by table and
id, never by content. Appends are serialised by the store's writers: on SQLite every write already holds the write
lock (``BEGIN IMMEDIATE``, and the writer file lock across processes); on PostgreSQL each appending transaction
takes one transaction-scoped advisory lock before it reads the head. ``prev_hash`` is unique, so even a writer that
bypassed the lock could not fork the chain. A row erased under the retention schedule is accepted only where a
chained tombstone names it with its entry's hash (``audit.retention``). Someone who can rewrite every row after a
point can rebuild the chain from there: the exported head (:func:`chain_head`, ``closure-risk audit head``)
anchored elsewhere catches that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.engine import Connection

from audit.tables import (
    AnnotationRecord,
    ApiKeyRecord,
    ChainRecord,
    DecisionRecord,
    DecisionReviewRecord,
    KeyRevocationRecord,
    ModelReloadRecord,
    ScoreReadRecord,
    ScoreRecord,
    SignInRecord,
    TombstoneRecord,
)

__all__ = [
    "CHAINED",
    "GENESIS",
    "ChainHead",
    "ChainReport",
    "append_to_chain",
    "chain_head",
    "chain_summary",
    "lock_chain",
    "plain_scalar",
    "verify_chain",
]

GENESIS = "0" * 64
CHAIN_LOCK = 0x63637231  # "ccr1": the PostgreSQL advisory lock that serialises appends
_TABLES: tuple[Table, ...] = tuple(
    record.__table__  # type: ignore[misc]
    for record in (
        ScoreRecord, DecisionRecord, ApiKeyRecord, KeyRevocationRecord, SignInRecord, ScoreReadRecord,
        DecisionReviewRecord, AnnotationRecord, TombstoneRecord, ModelReloadRecord,
    )
)  # fmt: skip
CHAINED: dict[str, Table] = {table.name: table for table in _TABLES}
_KEYS = {"scores": "id", "decisions": "id", "api_keys": "id", "key_revocations": "key_id", "sign_ins": "id",
         "score_reads": "id", "decision_reviews": "decision_id", "score_annotations": "id",
         "tombstones": "id", "model_reloads": "id"}  # fmt: skip
_CHAIN: Table = ChainRecord.__table__  # type: ignore[assignment]


def plain_scalar(value: Any) -> Any:
    """A column's value as its canonical form holds it (the driver-level writer uses the same)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return str.__str__(value)
    return value


def canonical(kind: str, values: Mapping[str, Any]) -> bytes:
    """The row as the chain hashes it: every column of its table, by name, in one JSON form; a column added after
    the chain began (``CHAINED_WHEN_SET`` in its info) only when it holds a value, so older rows keep their hashes."""
    row = {
        column.name: plain_scalar(values[column.name])
        for column in CHAINED[kind].columns
        if not column.info.get("chained_when_set") or values.get(column.name) is not None
    }
    return json.dumps([kind, row], sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def link(prev_hash: str, kind: str, values: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(kind, values)).hexdigest()


def lock_chain(connection: Connection) -> None:
    """Serialise this write transaction with every other appender (PostgreSQL: a transaction-scoped advisory lock,
    which needs no UPDATE privilege, unlike SELECT ... FOR UPDATE; SQLite writers already hold the write lock)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": CHAIN_LOCK})


def append_to_chain(connection: Connection, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Chain ``rows`` (table name, the values inserted), in order, inside the caller's write transaction."""
    lock_chain(connection)
    head = connection.execute(select(_CHAIN.c.seq, _CHAIN.c.row_hash).order_by(_CHAIN.c.seq.desc()).limit(1)).first()
    seq, prev = (int(head.seq), str(head.row_hash)) if head is not None else (0, GENESIS)
    entries = []
    for kind, values in rows:
        seq += 1
        row_hash = link(prev, kind, values)
        entries.append(
            {"seq": seq, "kind": kind, "row_id": values[_KEYS[kind]], "prev_hash": prev, "row_hash": row_hash}
        )
        prev = row_hash
    if entries:
        connection.execute(insert(_CHAIN), entries)


@dataclass(frozen=True)
class ChainHead:
    entries: int
    head: str


@dataclass
class ChainReport:
    """What :func:`verify_chain` found: ``problems`` name rows by table and id, never by content."""

    entries: int = 0
    head: str = GENESIS
    problems: list[str] = field(default_factory=list)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def verified(self) -> bool:
        return not self.problems


def chain_summary(report: ChainReport | None) -> str:
    """One line for readiness and the pages: whether the chain verified when it was last checked."""
    if report is None:
        return "not verified yet"
    at = report.checked_at.strftime("%Y-%m-%d %H:%M UTC")
    if report.verified:
        return f"verified at {at} ({report.entries} entries)"
    return f"DOES NOT VERIFY at {at}: {len(report.problems)} problems; run closure-risk audit verify"


def chain_head(connection: Connection) -> ChainHead:
    head = connection.execute(select(_CHAIN.c.seq, _CHAIN.c.row_hash).order_by(_CHAIN.c.seq.desc()).limit(1)).first()
    return ChainHead(0, GENESIS) if head is None else ChainHead(int(head.seq), str(head.row_hash))


def verify_chain(connection: Connection, *, limit: int = 50) -> ChainReport:
    """Walk the chain in order against every chained row; at most ``limit`` problems are listed."""
    report = ChainReport()
    rows = {kind: _rows(connection, kind) for kind in CHAINED}
    # Rows erased under the retention schedule: each left a chained tombstone holding its entry's hash.
    tombstones = {(str(r["kind"]), str(r["row_id"])): str(r["row_hash"]) for r in rows["tombstones"].values()}
    seen: set[tuple[str, str]] = set()
    prev, expected_seq = GENESIS, 1

    def problem(message: str) -> None:
        if len(report.problems) < limit:
            report.problems.append(message)
        elif len(report.problems) == limit:
            report.problems.append("... and more")

    entries = connection.execute(select(_CHAIN).order_by(_CHAIN.c.seq)).mappings()
    for entry in entries:
        seq, kind, row_id = int(entry["seq"]), str(entry["kind"]), str(entry["row_id"])
        if seq != expected_seq:
            problem(f"chain entries {expected_seq} to {seq - 1} are missing")
        if entry["prev_hash"] != prev:
            problem(f"chain entry {seq} ({kind} {row_id}) does not follow entry {seq - 1}: reordered or replaced")
        values = rows.get(kind, {}).get(row_id)
        erased = tombstones.get((kind, row_id))
        if values is None and erased is not None:
            if erased != entry["row_hash"]:  # the tombstone must name the very row the chain holds
                problem(f"{kind} row {row_id} (chain entry {seq}) was erased under a tombstone for another row")
        elif values is None:
            problem(f"{kind} row {row_id} (chain entry {seq}) is missing: deleted")
        elif link(str(entry["prev_hash"]), kind, values) != entry["row_hash"]:
            problem(f"{kind} row {row_id} (chain entry {seq}) was changed after it was written")
        seen.add((kind, row_id))
        prev, expected_seq = str(entry["row_hash"]), seq + 1
        report.entries, report.head = seq, prev
    for kind, by_id in rows.items():
        for row_id in sorted(set(by_id) - {row_id for k, row_id in seen if k == kind}):
            problem(f"{kind} row {row_id} is not in the chain: written around it")
    return report


def _rows(connection: Connection, kind: str) -> dict[str, Mapping[str, Any]]:
    table = CHAINED[kind]
    key = table.c[_KEYS[kind]]
    return {str(row[key.name]): dict(row) for row in connection.execute(select(table)).mappings()}


def chain_rows(connection: Connection, kinds: Sequence[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every row of these tables, oldest first, to chain a store that was written before the chain existed (its
    columns as they were then)."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for kind in kinds:
        table = CHAINED[kind]
        order = [table.c.created_at] if "created_at" in table.c else []
        # The columns chained always: those added later (``CHAINED_WHEN_SET``) may not exist yet when this runs.
        columns = [column for column in table.columns if not column.info.get("chained_when_set")]
        query = select(*columns).order_by(*order, table.c[_KEYS[kind]])
        out.extend((kind, dict(row)) for row in connection.execute(query).mappings())
    return out
