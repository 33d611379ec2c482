"""Need-to-know and personal data at rest: teams on keys and scores, sealed score inputs, the read log, the
page sessions' idle timeout, and TRUNCATE refused on PostgreSQL.

Scores get ``team`` (who asked), ``sealed_inputs`` and ``inputs_key`` (``audit.crypto``); a sealed row's personal
columns hold JSON ``null`` (the columns stay NOT NULL: a row is never half written). Keys get ``team``.
``score_reads`` records every read of a score or report, append-only and chained. ``ui_sessions`` gets
``last_seen_at``. The new columns are chained only when set (``audit.tables.CHAINED_WHEN_SET``), so the rows chained
before keep their hashes.

No table is rebuilt. PostgreSQL gets a statement trigger refusing TRUNCATE on every append-only table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
# Written out: this revision protects these tables whatever later revisions add.
APPEND_ONLY = ("scores", "decisions", "api_keys", "key_revocations", "sign_ins", "audit_chain", "score_reads")
READ_KINDS = ("score", "decisions", "report", "report.pdf", "queue")


def _sqlite_append_only(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: its rows are never changed or deleted'); END"
        for event in ("UPDATE", "DELETE")
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, kind in (("team", sa.String()), ("sealed_inputs", sa.Text()), ("inputs_key", sa.String())):
        op.add_column("scores", sa.Column(name, kind, nullable=True))
    op.create_index(op.f("ix_scores_team"), "scores", ["team"])
    op.add_column("api_keys", sa.Column("team", sa.String(), nullable=True))
    op.add_column("ui_sessions", sa.Column("last_seen_at", TIMESTAMP, nullable=True))

    op.create_table(
        "score_reads",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("what", sa.String(), nullable=False),
        sa.Column("score_id", sa.String(), nullable=True),
        sa.Column("read_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            f"what IN ({', '.join(repr(kind) for kind in READ_KINDS)})", name=op.f("ck_score_reads_what_known")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_score_reads_key_id_api_keys")),
        sa.ForeignKeyConstraint(["score_id"], ["scores.id"], name=op.f("fk_score_reads_score_id_scores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_reads")),
    )
    for column in ("key_id", "score_id", "read_at"):
        op.create_index(op.f(f"ix_score_reads_{column}"), "score_reads", [column])

    if dialect == "sqlite":
        for statement in _sqlite_append_only("score_reads"):
            op.execute(statement)
        return
    op.execute(
        "CREATE TRIGGER score_reads_append_only BEFORE UPDATE OR DELETE ON score_reads "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )


def downgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name
    written = connection.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM scores WHERE sealed_inputs IS NOT NULL OR team IS NOT NULL)"
            " + (SELECT count(*) FROM api_keys WHERE team IS NOT NULL) + (SELECT count(*) FROM score_reads)"
        )
    ).scalar_one()
    if written:
        # Sealed inputs cannot go back into plain columns without the key, and dropping a chained column would
        # change the hash of every row that holds it: the trail would no longer verify.
        raise RuntimeError(
            f"{written} rows hold what revision 0005 added (sealed inputs, teams, reads): they cannot be taken back"
        )
    if dialect == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.drop_table("score_reads")  # its triggers go with it
    with op.batch_alter_table("ui_sessions") as batch:
        batch.drop_column("last_seen_at")
    op.drop_index(op.f("ix_scores_team"), table_name="scores")
    # SQLite drops a column in place (ALTER TABLE DROP COLUMN, SQLite 3.35+), so the tables keep their triggers.
    for table, column in (("api_keys", "team"), ("scores", "inputs_key"), ("scores", "sealed_inputs"),
                          ("scores", "team")):  # fmt: skip
        op.drop_column(table, column)
