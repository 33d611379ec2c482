"""The audit store's API keys, page sessions and read log (a base of ``AuditStore``).

A key's plaintext is shown once and never stored (only its SHA-256 digest is); a key serves one team or all teams
(``audit.access``). A page session ends when it expires, when its key is revoked, or after ``idle_s`` seconds
without a request (its ``last_seen_at`` is moved on at most every ``SEEN_EVERY_S`` seconds, so a busy page costs
few writes). Every read of a score, its decisions or its report, and every view of the queue, is a row of
``score_reads``: chained like every audited row, and listed for an admin by :meth:`KeysAndReads.reads`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Table, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from audit.access import ALL_TEAMS, check_team
from audit.chain import append_to_chain
from audit.rows import ApiKey, KeyNameTaken, ReadKind, ReadRow, StoreError, UiSession, vocabulary_member
from audit.tables import ApiKeyRecord, KeyRevocationRecord, ScoreReadRecord, SignInRecord, UiSessionRecord
from features import Role

__all__ = ["KEY_PREFIX", "SEEN_EVERY_S", "KeysAndReads"]

KEY_PREFIX = "ccr_"
SEEN_EVERY_S = 30.0  # a session's last_seen_at moves on at most this often (and at least every quarter of idle_s)


class KeysAndReads:
    """API keys, page sessions and the read log; the store supplies its engine and transactions."""

    _engine: Engine
    _keys: Table

    def _session(self, *, write: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError  # AuditStore's

    def create_key(
        self, *, name: str, role: Role, created_by: str | None = None, team: str = ALL_TEAMS
    ) -> tuple[str, ApiKey]:
        """A new API key: the plaintext is returned here once and never stored (only its SHA-256 digest is).

        ``created_by`` is the creating admin key's id (or "command line"); ``team`` the team it serves (``ALL_TEAMS``
        by default here: the command line and the API ask for it). Raises KeyNameTaken for a name in use, ValueError
        for an invalid role or team.
        """
        role = vocabulary_member(Role, role, "role")
        team = check_team(team)
        if not name.strip():
            raise ValueError("an API key needs a name")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=str(uuid.uuid4()), name=name.strip(), role=role, created_at=datetime.now(UTC), revoked_at=None,
            created_by=created_by, team=team,
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
            keys.c.team, revoked.c.key_id.label("revocation"),
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
            created_by=found.created_by, team=found.team,
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
                    last_seen_at=now,
                )
            )
        return token, session_row

    def verify_session(self, token: str, *, idle_s: float | None = None) -> UiSession | None:
        """The session behind a cookie's token, while it has not expired, its key is not revoked and (with
        ``idle_s``) it was used in the last ``idle_s`` seconds; an idle session is ended here."""
        if not token:
            return None
        digest, now = _digest(token), datetime.now(UTC)
        with self._session() as session:
            found = session.execute(
                select(UiSessionRecord, ApiKeyRecord, KeyRevocationRecord.key_id)
                .join(ApiKeyRecord, ApiKeyRecord.id == UiSessionRecord.key_id)
                .outerjoin(KeyRevocationRecord, KeyRevocationRecord.key_id == ApiKeyRecord.id)
                .where(UiSessionRecord.id == digest)
            ).first()
            if found is None:
                return None
            record, key, revocation = found
            if key.revoked_at is not None or revocation is not None or record.expires_at <= now:
                return None
            row = UiSession(key=_api_key(key), csrf_token=record.csrf_token, expires_at=record.expires_at)
            seen = record.last_seen_at or record.created_at
        if idle_s is not None:
            idle = (now - seen).total_seconds()
            if idle >= idle_s:
                self.end_session(token)
                return None
            if idle >= min(SEEN_EVERY_S, idle_s / 4):
                with self._session(write=True) as session:
                    session.execute(
                        update(UiSessionRecord).where(UiSessionRecord.id == digest).values(last_seen_at=now)
                    )
        return row

    def end_session(self, token: str) -> None:
        with self._session(write=True) as session:
            session.execute(delete(UiSessionRecord).where(UiSessionRecord.id == _digest(token)))

    def record_read(self, *, key_id: str, what: ReadKind, score_id: str | None = None) -> ReadRow:
        """Record, and chain, that the key read this score (or the queue): committed before it returns, so what is
        shown was recorded first (StoreError otherwise)."""
        row = ReadRow(id=str(uuid.uuid4()), key_id=key_id, what=vocabulary_member(ReadKind, what, "read"),
                      score_id=score_id, read_at=datetime.now(UTC))  # fmt: skip
        values = dataclasses.asdict(row)
        with self._session(write=True) as session:
            session.add(ScoreReadRecord(**values))
            append_to_chain(session.connection(), [("score_reads", values)])
        return row

    def reads(
        self,
        *,
        score_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[ReadRow]:
        """Recorded reads, newest first: of one score, by one key, since a moment (each filter optional)."""
        query = select(ScoreReadRecord).order_by(ScoreReadRecord.read_at.desc(), ScoreReadRecord.id).limit(limit)
        if score_id is not None:
            query = query.where(ScoreReadRecord.score_id == score_id)
        if key_id is not None:
            query = query.where(ScoreReadRecord.key_id == key_id)
        if since is not None:
            query = query.where(ScoreReadRecord.read_at >= since)
        with self._session() as session:
            return [_read_row(record) for record in session.scalars(query)]


def _read_row(record: ScoreReadRecord) -> ReadRow:
    return ReadRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(ReadRow)})


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _api_key(record: ApiKeyRecord, revocation: KeyRevocationRecord | None = None) -> ApiKey:
    return ApiKey(
        id=record.id,
        name=record.name,
        role=record.role,
        created_at=record.created_at,
        revoked_at=revocation.revoked_at if revocation is not None else record.revoked_at,
        created_by=record.created_by,
        revoked_by=revocation.revoked_by if revocation is not None else None,
        team=record.team,
    )
