-- Members whose private snapshots (admin counts, nearby index) may have changed since
-- the last refresh. Statement-level triggers with transition tables keep it set-based,
-- like publish_dirty (db/sql/publish_dirty.sql), and in the writers' own transactions:
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
