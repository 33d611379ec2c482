"""A score's band is one of the product's bands: the CHECK the ORM generates from ``features.Band``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, as in 0001: this revision keeps adding this constraint whatever the vocabulary becomes.
BAND_KNOWN = "band IN ('low', 'medium', 'high')"


def upgrade() -> None:
    # SQLite cannot add a constraint to a table: batch mode rebuilds it (PostgreSQL alters it in place).
    with op.batch_alter_table("scores") as batch:
        batch.create_check_constraint(op.f("ck_scores_band_known"), BAND_KNOWN)


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_constraint(op.f("ck_scores_band_known"), type_="check")
