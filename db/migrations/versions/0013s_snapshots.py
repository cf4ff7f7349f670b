"""incremental private snapshots: dirty members and what the admin counts counted

Revision ID: 0013s_snapshots
Revises: 0013p_perf

``snapshot_dirty`` lists members whose admin counts or nearby rows may have changed
(kept by triggers, SNAPSHOT_DIRTY_SQL below, and by the bulk loader);
``admin_counted`` keeps, per member, the place, role, month and conditions the admin
counts last counted them under, so a refresh subtracts exactly what it added;
``snapshot_state`` remembers the region polygons the places were derived with. The
next refresh after this migration is a full one (member 0 marks everything).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The SQL as this migration ran it, kept here: a later change is a new migration.
SNAPSHOT_DIRTY_SQL = r"""
-- Members whose private snapshots (admin counts, nearby index) may have changed since
-- the last refresh. Statement-level triggers with transition tables keep it set-based,
-- like publish_dirty (migration 0005_incremental_publish), and in the writers' own transactions:
-- a member is marked when their location's floor cell, their conditions, or one of
-- role, joined_at, visibility, contactable, suspended_at changes, and when they are
-- deleted. member_id 0 marks everything (after a TRUNCATE): the next refresh is full.
-- The bulk loader switches the triggers off (geomap.track_dirty = 'off') and marks
-- its members itself (geomap.ingest.members_bulk).

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_new() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT DISTINCT member_id FROM new_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_old() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT DISTINCT member_id FROM old_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_conditions_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT member_id FROM new_rows UNION SELECT member_id FROM old_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_locations_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT coalesce(n.member_id, o.member_id)
        FROM new_rows n FULL JOIN old_rows o ON o.member_id = n.member_id
        WHERE n.floor_cell IS DISTINCT FROM o.floor_cell
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_members_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT coalesce(n.id, o.id)
        FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
        WHERE (n.role, n.joined_at, n.visibility, n.contactable, n.suspended_at)
              IS DISTINCT FROM (o.role, o.joined_at, o.visibility, o.contactable, o.suspended_at)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_members_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO snapshot_dirty (member_id)
        SELECT id FROM old_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_snapshot_dirty_everything() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO snapshot_dirty (member_id) VALUES (0) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER snapshot_dirty_insert AFTER INSERT ON member_locations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_new();
CREATE TRIGGER snapshot_dirty_delete AFTER DELETE ON member_locations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_old();
CREATE TRIGGER snapshot_dirty_update AFTER UPDATE ON member_locations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_locations_update();
CREATE TRIGGER snapshot_dirty_truncate AFTER TRUNCATE ON member_locations
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_everything();

CREATE TRIGGER snapshot_dirty_insert AFTER INSERT ON member_conditions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_new();
CREATE TRIGGER snapshot_dirty_delete AFTER DELETE ON member_conditions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_old();
CREATE TRIGGER snapshot_dirty_update AFTER UPDATE ON member_conditions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_conditions_update();
CREATE TRIGGER snapshot_dirty_truncate AFTER TRUNCATE ON member_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_everything();

CREATE TRIGGER snapshot_dirty_update AFTER UPDATE ON members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_members_update();
CREATE TRIGGER snapshot_dirty_delete AFTER DELETE ON members
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_members_delete();
CREATE TRIGGER snapshot_dirty_truncate AFTER TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_snapshot_dirty_everything();
"""

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
    op.execute(SNAPSHOT_DIRTY_SQL)
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
