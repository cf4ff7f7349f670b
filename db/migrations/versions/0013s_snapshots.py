"""incremental private snapshots: dirty members and what the admin counts counted

Revision ID: 0013s_snapshots
Revises: 0013p_perf

``snapshot_dirty`` lists members whose admin counts or nearby rows may have changed
(kept by triggers, db/sql/snapshot_dirty.sql, and by the bulk loader);
``admin_counted`` keeps, per member, the place, role, month and conditions the admin
counts last counted them under, so a refresh subtracts exactly what it added;
``snapshot_state`` remembers the region polygons the places were derived with. The
next refresh after this migration is a full one (member 0 marks everything).
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0013s_snapshots"
down_revision = "0013p_perf"
branch_labels = None
depends_on = None

TRIGGERS = {
    "member_locations": ("snapshot_dirty_insert", "snapshot_dirty_delete",
                         "snapshot_dirty_update", "snapshot_dirty_truncate"),
    "member_conditions": ("snapshot_dirty_insert", "snapshot_dirty_delete",
                          "snapshot_dirty_update", "snapshot_dirty_truncate"),
    "members": ("snapshot_dirty_update", "snapshot_dirty_delete", "snapshot_dirty_truncate"),
}
FUNCTIONS = (
    "geomap_snapshot_dirty_new", "geomap_snapshot_dirty_old",
    "geomap_snapshot_dirty_conditions_update", "geomap_snapshot_dirty_locations_update",
    "geomap_snapshot_dirty_members_update", "geomap_snapshot_dirty_members_delete",
    "geomap_snapshot_dirty_everything",
)


def upgrade() -> None:
    op.create_table(
        "snapshot_dirty",
        sa.Column("member_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_snapshot_dirty")),
    )
    op.create_table(
        "admin_counted",
        sa.Column("member_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("region_code", sa.String(length=24), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("conditions", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_admin_counted")),
    )
    op.create_table(
        "snapshot_state",
        sa.Column("id", sa.Boolean(), nullable=False),
        sa.Column("places_key", sa.Text(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_snapshot_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot_state")),
    )
    op.execute((SQL / "snapshot_dirty.sql").read_text())
    op.execute("INSERT INTO snapshot_dirty (member_id) VALUES (0)")


def downgrade() -> None:
    for table, triggers in TRIGGERS.items():
        for trigger in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("snapshot_state")
    op.drop_table("admin_counted")
    op.drop_table("snapshot_dirty")
