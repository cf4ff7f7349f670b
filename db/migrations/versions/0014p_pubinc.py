"""partition leftovers for the incremental publish

Revision ID: 0014p_pubinc
Revises: 0013g_deepzoom

The members gathered (1..k-1) in each cell coarser than the floor that no part holds
yet: with them, an incremental publish re-rolls only the ancestors of the changed floor
cells instead of whole base cells. Existing snapshots are marked stale (k = 0), so the
next publish is a full one and fills the table. The tables an incremental publish
updates keep a fifth of each page free for in-place (HOT) updates.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014p_pubinc"
down_revision = "0013g_deepzoom"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publish_leftovers",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("cell", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", "cell", name=op.f("pk_publish_leftovers")),
    )
    # Room on each page, so that an incremental publish updates counts in place (HOT:
    # no count is indexed) instead of adding index entries for every changed row.
    for table in ("published_cells", "publish_floor_counts", "publish_leftovers"):
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")
    op.execute("UPDATE publish_snapshots SET k = 0")


def downgrade() -> None:
    op.drop_table("publish_leftovers")
    for table in ("published_cells", "publish_floor_counts"):
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
