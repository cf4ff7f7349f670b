-- One row that says when member data last changed, kept by statement-level triggers
-- (cheap even for bulk loads). The scheduled publish skips work when nothing changed.
CREATE TABLE IF NOT EXISTS data_changes (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO data_changes (id) VALUES (true) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION geomap_touch_data_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_changes SET changed_at = clock_timestamp();
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS touch_data_changes ON members;
CREATE TRIGGER touch_data_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_touch_data_changes();
DROP TRIGGER IF EXISTS touch_data_changes ON member_conditions;
CREATE TRIGGER touch_data_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_conditions
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_touch_data_changes();
DROP TRIGGER IF EXISTS touch_data_changes ON member_locations;
CREATE TRIGGER touch_data_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_locations
    FOR EACH STATEMENT EXECUTE FUNCTION geomap_touch_data_changes();
