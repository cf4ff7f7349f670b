"""incremental publish

Revision ID: 0005
Revises: 0004

Per-cell member deltas kept by triggers, the floor counts of the last publish and per-condition
publish parameters, so that a publish recomputes only what changed.
"""

import sqlalchemy as sa
from alembic import op

# The SQL as this migration ran it, kept here: a later change is a new migration.
PUBLISH_DIRTY_SQL = r"""
-- Dirty floor cells for incremental publish. Every write that can change what a
-- condition publishes adds, per (condition_id, floor_cell), the net change in members
-- on that condition's map ("delta"). Statement-level triggers with transition tables
-- keep it set-based (cheap for bulk writes): a statement's delta is its new rows'
-- contributions minus its old rows', each joined with the two other member tables as
-- they stand (they do not change during the statement). A deleted member is subtracted
-- by a BEFORE DELETE row trigger; the cascaded deletes then find no member row and add
-- nothing. The bulk loader switches the triggers off (geomap.track_dirty = 'off') and
-- records its own deltas. floor_cell 0 marks the whole condition (after a TRUNCATE):
-- the next publish recounts it.

CREATE OR REPLACE FUNCTION geomap_tracking_dirty() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('geomap.track_dirty', true), '') <> 'off'
$$;

-- member_locations -------------------------------------------------------------------
CREATE OR REPLACE FUNCTION geomap_dirty_locations_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT mc.condition_id, n.floor_cell, count(*)
        FROM new_rows n
        JOIN members m ON m.id = n.member_id AND m.visibility = 'map'
        JOIN member_conditions mc ON mc.member_id = n.member_id
        GROUP BY 1, 2
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_locations_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT mc.condition_id, o.floor_cell, -count(*)
        FROM old_rows o
        JOIN members m ON m.id = o.member_id AND m.visibility = 'map'
        JOIN member_conditions mc ON mc.member_id = o.member_id
        GROUP BY 1, 2
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_locations_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT mc.condition_id, x.floor_cell, sum(x.sign)
        FROM (SELECT member_id, floor_cell, 1 AS sign FROM new_rows
              UNION ALL SELECT member_id, floor_cell, -1 FROM old_rows) x
        JOIN members m ON m.id = x.member_id AND m.visibility = 'map'
        JOIN member_conditions mc ON mc.member_id = x.member_id
        GROUP BY 1, 2 HAVING sum(x.sign) <> 0
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

-- member_conditions ------------------------------------------------------------------
CREATE OR REPLACE FUNCTION geomap_dirty_conditions_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT n.condition_id, ml.floor_cell, count(*)
        FROM new_rows n
        JOIN members m ON m.id = n.member_id AND m.visibility = 'map'
        JOIN member_locations ml ON ml.member_id = n.member_id
        GROUP BY 1, 2
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_conditions_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT o.condition_id, ml.floor_cell, -count(*)
        FROM old_rows o
        JOIN members m ON m.id = o.member_id AND m.visibility = 'map'
        JOIN member_locations ml ON ml.member_id = o.member_id
        GROUP BY 1, 2
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_conditions_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT x.condition_id, ml.floor_cell, sum(x.sign)
        FROM (SELECT condition_id, member_id, 1 AS sign FROM new_rows
              UNION ALL SELECT condition_id, member_id, -1 FROM old_rows) x
        JOIN members m ON m.id = x.member_id AND m.visibility = 'map'
        JOIN member_locations ml ON ml.member_id = x.member_id
        GROUP BY 1, 2 HAVING sum(x.sign) <> 0
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

-- members ----------------------------------------------------------------------------
-- A new member has no conditions or location yet: inserting one changes nothing.
CREATE OR REPLACE FUNCTION geomap_dirty_members_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT mc.condition_id, ml.floor_cell, sum(x.sign)
        FROM (SELECT id, 1 AS sign FROM new_rows WHERE visibility = 'map'
              UNION ALL SELECT id, -1 FROM old_rows WHERE visibility = 'map') x
        JOIN member_conditions mc ON mc.member_id = x.id
        JOIN member_locations ml ON ml.member_id = x.id
        GROUP BY 1, 2 HAVING sum(x.sign) <> 0
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_member_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() AND OLD.visibility = 'map' THEN
        INSERT INTO publish_dirty (condition_id, floor_cell, delta)
        SELECT mc.condition_id, ml.floor_cell, -count(*)
        FROM member_conditions mc JOIN member_locations ml ON ml.member_id = mc.member_id
        WHERE mc.member_id = OLD.id
        GROUP BY 1, 2
        ON CONFLICT (condition_id, floor_cell)
        DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta;
    END IF;
    RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_everything() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO publish_dirty (condition_id, floor_cell, delta)
    SELECT id, 0, 0 FROM conditions ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER dirty_insert AFTER INSERT ON member_locations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_insert();
CREATE TRIGGER dirty_delete AFTER DELETE ON member_locations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_delete();
CREATE TRIGGER dirty_update AFTER UPDATE ON member_locations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_update();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON member_locations
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();

CREATE TRIGGER dirty_insert AFTER INSERT ON member_conditions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_insert();
CREATE TRIGGER dirty_delete AFTER DELETE ON member_conditions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_delete();
CREATE TRIGGER dirty_update AFTER UPDATE ON member_conditions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_update();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON member_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();

CREATE TRIGGER dirty_update AFTER UPDATE ON members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_members_update();
CREATE TRIGGER dirty_delete BEFORE DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION geomap_dirty_member_deleted();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();
"""

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
    op.execute(PUBLISH_DIRTY_SQL)


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
