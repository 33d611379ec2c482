"""The calling system's own reference for a case, kept with the score's other inputs and searchable in the queue.

The column is added in place (no table rebuild, so the append-only triggers stay). Rows written before it have
NULL, and the hash chain leaves a NULL ``case_reference`` out of a row's canonical form (``audit.chain``), so every
entry chained before this revision still verifies.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("scores", sa.Column("case_reference", sa.String(), nullable=True))
    op.create_index(op.f("ix_scores_case_reference"), "scores", ["case_reference"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scores_case_reference"), table_name="scores")
    # A plain DROP COLUMN (SQLite 3.35 and later, PostgreSQL): batch mode would rebuild the table and lose its
    # append-only triggers. Scores chained with a reference no longer verify after this: it is a true loss of data.
    op.execute("ALTER TABLE scores DROP COLUMN case_reference")
