"""The audit store: scores, decisions, API keys.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from audit.tables, so that this revision keeps building the same schema
# whatever the models become. Names are final (op.f): env.py's naming convention must not rewrite them.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("band", sa.String(), nullable=False),
        sa.Column("raw_score", sa.Double(), nullable=False),
        sa.Column("base_value", sa.Double(), nullable=False),
        sa.Column("in_scope", sa.Boolean(), nullable=False),
        sa.Column("out_of_distribution", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name=op.f("ck_scores_probability_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    op.create_index(op.f("ix_scores_case_id"), "scores", ["case_id"])
    op.create_index(op.f("ix_scores_created_at"), "scores", ["created_at"])

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("score_id", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("supersedes", sa.String(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('close', 'keep_open', 'step_down_early_help')", name=op.f("ck_decisions_decision_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.ForeignKeyConstraint(["score_id"], ["scores.id"], name=op.f("fk_decisions_score_id_scores")),
        # Also the index behind "decisions of a score", and the target of the same-score supersedes key.
        sa.UniqueConstraint("score_id", "id", name=op.f("uq_decisions_score_id_id")),
        # A decision is superseded at most once, and only by a decision on the same score ...
        sa.UniqueConstraint("supersedes", name=op.f("uq_decisions_supersedes")),
        sa.ForeignKeyConstraint(
            ["score_id", "supersedes"],
            ["decisions.score_id", "decisions.id"],
            name=op.f("fk_decisions_score_id_supersedes_decisions"),
        ),
    )
    # ... and a score has one first decision: its decisions form one chain, whose end is the current decision.
    op.create_index(
        op.f("ux_decisions_first_per_score"),
        "decisions",
        ["score_id"],
        unique=True,
        sqlite_where=sa.text("supersedes IS NULL"),
        postgresql_where=sa.text("supersedes IS NULL"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("role IN ('system', 'manager', 'admin')", name=op.f("ck_api_keys_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index(op.f("ux_decisions_first_per_score"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_index(op.f("ix_scores_created_at"), table_name="scores")
    op.drop_index(op.f("ix_scores_case_id"), table_name="scores")
    op.drop_table("scores")
