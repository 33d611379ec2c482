"""Model reloads, recorded: each ``POST /v1/admin/reload`` appends a row (when, by which key, the model's name and
version, its bundle's digest) numbered by ``generation``, so every worker process of the service can see that a reload
happened and load the same version (``serving.reloads``).

The table is chained and append-only like the other audited tables: triggers refuse UPDATE and DELETE (and TRUNCATE
on PostgreSQL, to the owner too); the service's PostgreSQL role gets INSERT and SELECT only at the next migration's
grants (``audit.roles``). No table is rebuilt.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
TABLE = "model_reloads"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("reloaded_by", sa.String(), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("bundle_digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_reloads")),
        sa.UniqueConstraint("generation", name=op.f("uq_model_reloads_generation")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{event.lower()} BEFORE {event} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: its rows are never changed or deleted'); END"
            )
        return
    op.execute(  # audit_append_only(): revision 0004
        f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
    )


def downgrade() -> None:
    connection = op.get_bind()
    if connection.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one():  # chained rows
        raise RuntimeError(f"{TABLE} holds chained rows: revision 0009 cannot be undone without breaking the chain")
    op.drop_table(TABLE)  # its triggers go with it
