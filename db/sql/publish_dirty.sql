-- Dirty floor cells for incremental publish: every write that can change what a
-- condition publishes records (condition_id, floor_cell) here. Statement-level
-- triggers with transition tables keep it set-based (cheap for bulk writes); the bulk
-- loader switches them off with geomap.track_dirty = 'off' and records its own cells.
-- floor_cell 0 means "the whole condition" (after a TRUNCATE).

CREATE OR REPLACE FUNCTION geomap_tracking_dirty() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('geomap.track_dirty', true), '') <> 'off'
$$;

-- member_locations: the cells a member leaves and enters, for each of their conditions.
CREATE OR REPLACE FUNCTION geomap_dirty_locations_new() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT mc.condition_id, n.floor_cell
        FROM new_rows n JOIN member_conditions mc ON mc.member_id = n.member_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_locations_old() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT mc.condition_id, o.floor_cell
        FROM old_rows o JOIN member_conditions mc ON mc.member_id = o.member_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_locations_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT mc.condition_id, cell
        FROM old_rows o JOIN new_rows n ON n.member_id = o.member_id
        JOIN member_conditions mc ON mc.member_id = n.member_id
        CROSS JOIN LATERAL (VALUES (o.floor_cell), (n.floor_cell)) AS cells (cell)
        WHERE o.floor_cell <> n.floor_cell
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- member_conditions: the member's floor cell, for the conditions added or removed.
CREATE OR REPLACE FUNCTION geomap_dirty_conditions_new() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT n.condition_id, ml.floor_cell
        FROM new_rows n JOIN member_locations ml ON ml.member_id = n.member_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_conditions_old() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT o.condition_id, ml.floor_cell
        FROM old_rows o JOIN member_locations ml ON ml.member_id = o.member_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_conditions_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT r.condition_id, ml.floor_cell
        FROM (SELECT condition_id, member_id FROM old_rows
              UNION SELECT condition_id, member_id FROM new_rows) r
        JOIN member_locations ml ON ml.member_id = r.member_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- members: a visibility change moves a member on or off every map they are on.
CREATE OR REPLACE FUNCTION geomap_dirty_members_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT mc.condition_id, ml.floor_cell
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN member_conditions mc ON mc.member_id = n.id
        JOIN member_locations ml ON ml.member_id = n.id
        WHERE o.visibility IS DISTINCT FROM n.visibility
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- A deleted member's rows go by cascade, in no fixed order: record the cells before.
CREATE OR REPLACE FUNCTION geomap_dirty_member_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF geomap_tracking_dirty() THEN
        INSERT INTO publish_dirty (condition_id, floor_cell)
        SELECT DISTINCT mc.condition_id, ml.floor_cell
        FROM member_conditions mc JOIN member_locations ml ON ml.member_id = mc.member_id
        WHERE mc.member_id = OLD.id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION geomap_dirty_everything() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO publish_dirty (condition_id, floor_cell)
    SELECT id, 0 FROM conditions ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER dirty_insert AFTER INSERT ON member_locations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_new();
CREATE TRIGGER dirty_delete AFTER DELETE ON member_locations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_old();
CREATE TRIGGER dirty_update AFTER UPDATE ON member_locations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_locations_moved();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON member_locations
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();

CREATE TRIGGER dirty_insert AFTER INSERT ON member_conditions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_new();
CREATE TRIGGER dirty_delete AFTER DELETE ON member_conditions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_old();
CREATE TRIGGER dirty_update AFTER UPDATE ON member_conditions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_conditions_changed();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON member_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();

CREATE TRIGGER dirty_update AFTER UPDATE ON members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_members_changed();
CREATE TRIGGER dirty_delete BEFORE DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION geomap_dirty_member_deleted();
CREATE TRIGGER dirty_truncate AFTER TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_dirty_everything();
