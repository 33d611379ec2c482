"""The manager's report: what a score could still become, its warnings and audit group; page sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Nullable: scores stored before this revision have none of them, and the report says so.
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("what_ifs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("ethnic_group", sa.String(), nullable=True))
    op.create_index(op.f("ix_scores_probability"), "scores", ["probability"])

    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),  # SHA-256 hex of the cookie's token
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("csrf_token", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_sessions")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_ui_sessions_key_id_api_keys")),
    )
    op.create_index(op.f("ix_ui_sessions_expires_at"), "ui_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ui_sessions_expires_at"), table_name="ui_sessions")
    op.drop_table("ui_sessions")
    op.drop_index(op.f("ix_scores_probability"), table_name="scores")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("ethnic_group")
        batch.drop_column("warnings")
        batch.drop_column("what_ifs")
