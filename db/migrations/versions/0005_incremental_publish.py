"""incremental publish

Revision ID: 0005
Revises: 0004

Per-cell member deltas kept by triggers, the floor counts of the last publish and per-condition
publish parameters, so that a publish recomputes only what changed.
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRIGGERS = {
    "member_locations": ("dirty_insert", "dirty_delete", "dirty_update", "dirty_truncate"),
    "member_conditions": ("dirty_insert", "dirty_delete", "dirty_update", "dirty_truncate"),
    "members": ("dirty_update", "dirty_delete", "dirty_truncate"),
}


def upgrade() -> None:
    op.create_table(
        "publish_dirty",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("floor_cell", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", "floor_cell", name=op.f("pk_publish_dirty")),
    )
    op.create_table(
        "publish_floor_counts",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("floor_cell", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", "floor_cell", name=op.f("pk_publish_floor_counts")),
    )
    op.create_table(
        "publish_snapshots",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("k", sa.SmallInteger(), nullable=False),
        sa.Column("floor", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", name=op.f("pk_publish_snapshots")),
    )
    op.execute((SQL / "publish_dirty.sql").read_text())


def downgrade() -> None:
    for table, triggers in TRIGGERS.items():
        for trigger in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in (
        "geomap_dirty_locations_insert", "geomap_dirty_locations_delete",
        "geomap_dirty_locations_update", "geomap_dirty_conditions_insert",
        "geomap_dirty_conditions_delete", "geomap_dirty_conditions_update",
        "geomap_dirty_members_update", "geomap_dirty_member_deleted",
        "geomap_dirty_everything", "geomap_tracking_dirty",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("publish_snapshots")
    op.drop_table("publish_floor_counts")
    op.drop_table("publish_dirty")
