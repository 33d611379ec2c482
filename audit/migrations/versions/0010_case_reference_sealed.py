"""The calling system's case reference sealed with the score's other inputs, found through a blind index.

From this revision a new score keeps its case reference inside ``sealed_inputs`` (AES-GCM under the inputs key,
``audit.crypto``) and NULL in the plain ``case_reference`` column; the new ``case_reference_index`` column keeps a
keyed HMAC-SHA256 of the normalised reference, indexed, which is what the managers' search compares. The column is
added in place (no table rebuild, so the append-only triggers stay). It is chained only when set, so every entry
chained before still verifies.

Rows stored by revisions 0007 to 0009 keep their reference in plain: they are chained, and UPDATE is refused on
them, so they are not rewritten. The store reads their reference from the plain column and the search looks there
too; erasing them under the retention schedule removes it with the row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("scores", sa.Column("case_reference_index", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_scores_case_reference_index"), "scores", ["case_reference_index"])


def downgrade() -> None:
    connection = op.get_bind()
    indexed = connection.execute(sa.text("SELECT count(*) FROM scores WHERE case_reference_index IS NOT NULL"))
    if indexed.scalar_one():  # their hashes include the index: dropping it would break the chain for good
        raise RuntimeError("scores hold chained case reference indexes: revision 0010 cannot be undone")
    op.drop_index(op.f("ix_scores_case_reference_index"), table_name="scores")
    # A plain DROP COLUMN (SQLite 3.35 and later, PostgreSQL): batch mode would rebuild the table and lose its
    # append-only triggers.
    op.execute("ALTER TABLE scores DROP COLUMN case_reference_index")
