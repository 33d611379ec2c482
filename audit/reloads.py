"""The audit store's record of model reloads (a base of ``AuditStore``), and the one cheap read every request makes.

A reload is an appended, chained row of ``model_reloads`` numbered by ``generation`` (1, 2, 3, ...), written under
the chain's lock so two reloads never share a number. :meth:`ModelReloads.generations` reads, in one plain SELECT,
the count of key revocations (the API key cache's generation) and the latest reload's number: what each request of
each worker process checks before it is answered.
"""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.chain import append_to_chain, lock_chain
from audit.tables import ModelReloadRecord
from audit.writer import DriverConnections

__all__ = ["Generations", "ModelReload", "ModelReloads"]

# One round trip for both numbers: the cost per request stays one plain SELECT.
_GENERATIONS = "SELECT (SELECT count(*) FROM key_revocations), (SELECT coalesce(max(generation), 0) FROM model_reloads)"


@dataclass(frozen=True)
class ModelReload:
    """A recorded reload: ``generation`` numbers it among all reloads; ``reloaded_by`` is the admin key's id."""

    id: str
    generation: int
    created_at: datetime
    reloaded_by: str
    model_name: str
    model_version: str
    bundle_digest: str


@dataclass(frozen=True)
class Generations:
    """``keys``: the count of key revocations; ``models``: the latest reload's generation (0: none recorded)."""

    keys: int
    models: int


class ModelReloads:
    """Model reloads; the store supplies its transactions and its reading connection."""

    _driver: DriverConnections

    def _session(self, *, write: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError  # AuditStore's

    def record_reload(
        self, *, reloaded_by: str, model_name: str, model_version: str, bundle_digest: str
    ) -> ModelReload:
        """Append and chain a reload, numbered one past the latest; committed when this returns (StoreError
        otherwise, and nothing is recorded)."""
        with self._session(write=True) as session:
            connection = session.connection()
            lock_chain(connection)  # reloads queue here (PostgreSQL; SQLite writers hold the write lock)
            latest = session.scalar(select(func.max(ModelReloadRecord.generation)))
            row = ModelReload(
                id=str(uuid.uuid4()), generation=int(latest or 0) + 1, created_at=datetime.now(UTC),
                reloaded_by=reloaded_by, model_name=model_name, model_version=model_version,
                bundle_digest=bundle_digest,
            )  # fmt: skip
            values = dataclasses.asdict(row)
            session.add(ModelReloadRecord(**values))
            append_to_chain(connection, [("model_reloads", values)])
        return row

    def latest_reload(self) -> ModelReload | None:
        """The reload with the highest generation, or None when none was recorded."""
        query = select(ModelReloadRecord).order_by(ModelReloadRecord.generation.desc()).limit(1)
        with self._session() as session:
            record = session.scalars(query).first()
            if record is None:
                return None
            return ModelReload(**{f.name: getattr(record, f.name) for f in dataclasses.fields(ModelReload)})

    def generations(self) -> Generations:
        """The key and model generations in one plain SELECT through the driver (microseconds on SQLite, one round
        trip on PostgreSQL); StoreError when the store cannot be reached."""
        keys, models = self._driver.first(_GENERATIONS)
        return Generations(keys=int(keys), models=int(models))
