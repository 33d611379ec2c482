"""Accountable use: decision reviews, score annotations and tombstones, and erasure only under a tombstone.

- ``decision_reviews``: whether the manager agrees with the estimate (agree / higher / lower), the grounds weighed
  (the child's voice, family strengths, partner agencies' views, a multi-agency discussion, free text) and how long
  the report was open before the decision; one per decision, written with it.
- ``score_annotations``: a score marked as based on wrong input, never an edit of the score, and the score that
  replaced it once the case was scored again.
- ``tombstones``: a row erased under the retention schedule, with its chain entry's hash.

All three are append-only and chained. The DELETE triggers of the rows a child's scores hold (scores, decisions,
decision reviews, annotations) now let a delete through only when a tombstone for that row exists: the one
controlled way to erase, which the chain records before the row goes. UPDATE stays refused everywhere.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
# Written out: this revision keeps these rules whatever later revisions add.
NEW_TABLES = ("decision_reviews", "score_annotations", "tombstones")
ERASABLE = ("scores", "decisions", "decision_reviews", "score_annotations", "score_reads")
KEYS = {
    "scores": "id", "decisions": "id", "decision_reviews": "decision_id", "score_annotations": "id",
    "score_reads": "id",
}  # fmt: skip
AGREEMENT_KNOWN = "agreement IN ('agree', 'higher', 'lower')"


def _refuse(table: str, event: str, when: str = "") -> str:
    return (
        f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} {when}"
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: its rows are never changed or deleted'); END"
    )


def _sqlite_erase_only_under_tombstone(table: str) -> str:
    tombstoned = f"SELECT 1 FROM tombstones t WHERE t.kind = '{table}' AND t.row_id = OLD.{KEYS[table]}"
    return _refuse(table, "DELETE", f"FOR EACH ROW WHEN NOT EXISTS ({tombstoned}) ")


POSTGRES_ERASE = (
    "CREATE FUNCTION audit_erase_under_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE key text := to_jsonb(OLD) ->> TG_ARGV[0]; BEGIN "
    "IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM tombstones t WHERE t.kind = TG_TABLE_NAME AND t.row_id = key) "
    "THEN RETURN OLD; END IF; "
    "RAISE EXCEPTION '% is append-only: its rows are never changed or deleted', TG_TABLE_NAME "
    "USING ERRCODE = 'insufficient_privilege'; END $$"
)


def upgrade() -> None:
    op.create_table(
        "decision_reviews",
        sa.Column("decision_id", sa.String(), nullable=False),
        sa.Column("agreement", sa.String(), nullable=False),
        sa.Column("child_voice", sa.Boolean(), nullable=False),
        sa.Column("family_strengths", sa.Boolean(), nullable=False),
        sa.Column("partner_views", sa.Boolean(), nullable=False),
        sa.Column("multi_agency", sa.Boolean(), nullable=False),
        sa.Column("grounds", sa.Text(), nullable=False),
        sa.Column("report_open_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_reviews")),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_decision_reviews_decision_id_decisions")
        ),
        sa.CheckConstraint(AGREEMENT_KNOWN, name=op.f("ck_decision_reviews_agreement_known")),
    )
    op.create_table(
        "score_annotations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("score_id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("annotated_by", sa.String(), nullable=False),
        sa.Column("annotated_by_key", sa.String(), nullable=True),
        sa.Column("wrong_inputs", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("rescored_as", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_annotations")),
        sa.ForeignKeyConstraint(["score_id"], ["scores.id"], name=op.f("fk_score_annotations_score_id_scores")),
    )
    op.create_index(op.f("ix_score_annotations_score_id"), "score_annotations", ["score_id"])
    op.create_table(
        "tombstones",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("erased_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tombstones")),
        sa.UniqueConstraint("kind", "row_id", name=op.f("uq_tombstones_kind_row_id")),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in NEW_TABLES:
            op.execute(_refuse(table, "UPDATE"))
            if table not in ERASABLE:
                op.execute(_refuse(table, "DELETE"))
        for table in ERASABLE:
            if table in ("scores", "decisions", "score_reads"):  # append-only before: 0004, 0005
                op.execute(f"DROP TRIGGER {table}_no_delete")
            op.execute(_sqlite_erase_only_under_tombstone(table))
        return
    op.execute(POSTGRES_ERASE)
    for table in NEW_TABLES:  # as 0005 for the tables before: TRUNCATE refused, to the owner too
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    op.execute(
        "CREATE TRIGGER tombstones_append_only BEFORE UPDATE OR DELETE ON tombstones "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
    )
    for table in ERASABLE:
        if table in ("scores", "decisions", "score_reads"):  # append-only before: 0004, 0005
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION audit_erase_under_tombstone('{KEYS[table]}')"
        )


def downgrade() -> None:
    connection = op.get_bind()
    for table in NEW_TABLES:  # their rows are chained: dropping them would break the chain for good
        if connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one():
            raise RuntimeError(f"{table} holds chained rows: revision 0008 cannot be undone without breaking the chain")
    dialect = connection.dialect.name
    for table in ("scores", "decisions", "score_reads"):
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER {table}_no_delete")
            op.execute(_refuse(table, "DELETE"))
        else:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            )
    for table in NEW_TABLES:
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION audit_erase_under_tombstone()")
