-- The role the public read path (pages, embeds, public API) runs as: it can read the
-- published aggregates and the conditions catalog, and nothing else. Exact member
-- locations are out of its reach by construction. Later migrations that add a
-- published table grant SELECT on it here too.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN
        CREATE ROLE geomap_public NOLOGIN;
    END IF;
    EXECUTE format('GRANT geomap_public TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'geomap: cannot create role geomap_public; the public read path will use the main role';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN
        EXECUTE 'GRANT USAGE ON SCHEMA public TO geomap_public';
        EXECUTE 'GRANT SELECT ON conditions, published_cells, published_totals, publish_runs TO geomap_public';
    END IF;
END
$$;
