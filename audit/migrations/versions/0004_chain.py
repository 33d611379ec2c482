"""A tamper-evident audit trail: the hash chain, append-only tables, keys recorded by id, unique key names.

Scores and decisions record the API key's id; keys record who created them; a revocation and a sign-in are rows
of their own (``key_revocations``, ``sign_ins``) so no audited row is ever changed. Rows written before this
revision are chained here, oldest first. Triggers then refuse UPDATE and DELETE on every audited table.

Caveat for later revisions: SQLite's batch mode rebuilds a table (copy, drop, rename), and dropping a table drops
its triggers: a revision that rebuilds an append-only table must create its triggers again (``append_only_sql``).
No table is rebuilt here: columns are added with plain ``ALTER TABLE ADD COLUMN`` and the name rule is an index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.chain import append_to_chain, chain_rows

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
# Written out: this revision protects these tables whatever later revisions add.
APPEND_ONLY = ("scores", "decisions", "api_keys", "key_revocations", "sign_ins", "audit_chain")


def append_only_sql(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` refuse UPDATE and DELETE."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: its rows are never changed or deleted'); END"
            for event in ("UPDATE", "DELETE")
        ]
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
    ]


def upgrade() -> None:
    op.create_table(
        "key_revocations",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_revocations")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_key_revocations_key_id_api_keys")),
    )
    op.create_table(
        "sign_ins",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_ins")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_sign_ins_key_id_api_keys")),
    )
    op.create_table(
        "audit_chain",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("kind", "row_id", name=op.f("uq_audit_chain_kind_row_id")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_chain_prev_hash")),
        sa.UniqueConstraint("row_hash", name=op.f("uq_audit_chain_row_hash")),
    )
    op.add_column("scores", sa.Column("caller_key", sa.String(), nullable=True))
    op.add_column("decisions", sa.Column("decided_by_key", sa.String(), nullable=True))
    op.add_column("api_keys", sa.Column("created_by", sa.String(), nullable=True))

    connection = op.get_bind()
    # Key names become unique: a later key that shares an earlier one's name gets its id appended, before the
    # rows are chained and frozen (decisions made before recorded the name; the key list shows both names).
    keys = sa.table("api_keys", sa.column("id", sa.String()), sa.column("name", sa.String()), sa.column("created_at"))
    taken: set[str] = set()
    for key_id, name in connection.execute(sa.select(keys.c.id, keys.c.name).order_by(keys.c.created_at, keys.c.id)):
        if name in taken:
            name = f"{name} ({key_id})"
            connection.execute(sa.update(keys).where(keys.c.id == key_id).values(name=name))
        taken.add(name)
    op.create_index("ux_api_keys_name", "api_keys", ["name"], unique=True)

    append_to_chain(connection, chain_rows(connection, ("api_keys", "scores", "decisions")))

    dialect = connection.dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only: its rows are never changed or deleted', TG_TABLE_NAME "
            "USING ERRCODE = 'insufficient_privilege'; END $$"
        )
    for table in APPEND_ONLY:
        for statement in append_only_sql(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION audit_append_only()")
    # Revocations since go back into the key's row, where 0003 keeps them: no revoked key comes back to life.
    op.execute(
        "UPDATE api_keys SET revoked_at = (SELECT r.revoked_at FROM key_revocations r WHERE r.key_id = api_keys.id) "
        "WHERE revoked_at IS NULL AND id IN (SELECT key_id FROM key_revocations)"
    )
    op.drop_index("ux_api_keys_name", table_name="api_keys")
    for table, column in (("api_keys", "created_by"), ("decisions", "decided_by_key"), ("scores", "caller_key")):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
    op.drop_table("audit_chain")
    op.drop_table("sign_ins")
    op.drop_table("key_revocations")
