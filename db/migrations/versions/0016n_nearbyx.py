"""nearby: a search's cost independent of how many members live near the searcher

Revision ID: 0016n_nearbyx
Revises: 0015b_import

A search read every member of each distance band until its page was full and sent
them all to Python, which ordered them by the searcher's keyed rank: at 10,000,000
members a dense band meant tens of thousands of rows per search. Now the order is
kept in the table and the database returns the page itself:

- ``nearby_members.order_key``: a hash of the member id (``hashint8extended``, what
  hash partitioning uses: immutable, the same on every PostgreSQL version), a generated
  column, so it does not depend on the location and a re-insert keeps it. The primary
  key becomes (condition_id, floor_cell, order_key, member_id): within a cell the index
  is in order_key order, and the key stays unique (member_id is in it). Its index tuple
  is as large as before (alignment: 40 bytes), so no second index is needed.
- ``nearby_members.role``: a copy of ``members.role``, so the role filter reads no
  other table (kept in step like the rest of the row by geomap.publish.nearby_index).
- A searcher's order is the cyclic rotation of order_key starting at their secret
  offset (one HMAC per searcher, geomap.privacy.nearby_offset): order_key >= offset
  ascending, then order_key < offset ascending, ties by member id.
- ``geomap_nearby_page`` returns one page, already in that order (see NEARBY_PAGE_SQL).

The table is rebuilt from the member tables (it is derived data: members on the map,
contactable, not suspended). ``geomap_nearby_candidates`` and ``geomap_nearby_band``
(0014r_rss) are left in place so that web workers still running the previous code keep
working during a deploy; a later migration may drop them.
"""

from alembic import op

revision = "0016n_nearbyx"
down_revision = "0015b_import"
branch_labels = None
depends_on = None

ORDER_KEY_SEED = 16  # hashint8extended's seed: any constant; changing it reorders nearby

REBUILD_SQL = f"""
TRUNCATE nearby_members;
ALTER TABLE nearby_members DROP CONSTRAINT pk_nearby_members,
    ADD COLUMN role text NOT NULL,
    ADD COLUMN order_key bigint NOT NULL
        GENERATED ALWAYS AS (hashint8extended(member_id, {ORDER_KEY_SEED})) STORED;
DROP INDEX ix_nearby_members_member;
INSERT INTO nearby_members (condition_id, floor_cell, member_id, role)
SELECT mc.condition_id, ml.floor_cell, m.id, m.role FROM members m
JOIN member_locations ml ON ml.member_id = m.id
JOIN member_conditions mc ON mc.member_id = m.id
WHERE m.visibility = 'map' AND m.contactable AND m.suspended_at IS NULL;
ALTER TABLE nearby_members ADD CONSTRAINT pk_nearby_members
    PRIMARY KEY (condition_id, floor_cell, order_key, member_id);
CREATE INDEX ix_nearby_members_member ON nearby_members (member_id);
ANALYZE nearby_members;
"""

# The SQL as this migration ran it, kept here: a later change is a new migration.
NEARBY_PAGE_SQL = r"""
-- geomap_nearby_runs: who the searcher may list in a set of cells given as runs of
-- consecutive H3 indexes (p_lo[i]..p_hi[i]), in no order, at most p_limit of them:
-- nearby_members holds the members on the map and contactable with the condition;
-- p_hidden are the searcher and everyone blocked either way; p_role, if set, keeps one
-- role. One index range scan of pk_nearby_members per run. A plain SQL function: the
-- planner inlines it, so a literal NULL role leaves an index-only scan.
CREATE OR REPLACE FUNCTION geomap_nearby_runs(
    p_condition integer, p_hidden bigint[], p_lo bigint[], p_hi bigint[], p_role text,
    p_limit integer)
RETURNS TABLE (member_id bigint, floor_cell bigint, order_key bigint)
LANGUAGE sql STABLE AS $$
    SELECT n.member_id, n.floor_cell, n.order_key
    FROM unnest(p_lo, p_hi) AS r(lo, hi)
    CROSS JOIN LATERAL (
        SELECT m.member_id, m.floor_cell, m.order_key FROM nearby_members m
        WHERE m.condition_id = p_condition AND m.floor_cell BETWEEN r.lo AND r.hi
        AND m.member_id <> ALL (p_hidden) AND (p_role IS NULL OR m.role = p_role)
        OFFSET 0) AS n
    LIMIT p_limit
$$;

-- geomap_nearby_firsts: the first p_need members of a set of cells (runs, as above) in
-- the searcher's order (order_key from p_offset on, then the keys below it; ties by
-- member id), reading at most p_need rows per cell: the cells holding anyone are found
-- by one index descent each (a loose index scan: the next cell after the last one
-- found, within the run), and each is read by two ordered descents with LIMIT (keys
-- from the offset up, then from the lowest key). Cost follows the number of cells,
-- not how many members they hold.
CREATE OR REPLACE FUNCTION geomap_nearby_firsts(
    p_condition integer, p_hidden bigint[], p_lo bigint[], p_hi bigint[], p_role text,
    p_offset bigint, p_need integer)
RETURNS TABLE (member_id bigint, floor_cell bigint, order_key bigint)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE cells (run, cell) AS (
        SELECT r.run::integer, (SELECT min(m.floor_cell) FROM nearby_members m
            WHERE m.condition_id = p_condition AND m.floor_cell BETWEEN r.lo AND r.hi)
        FROM unnest(p_lo, p_hi) WITH ORDINALITY AS r(lo, hi, run)
        UNION ALL
        SELECT c.run, (SELECT min(m.floor_cell) FROM nearby_members m
            WHERE m.condition_id = p_condition AND m.floor_cell > c.cell
            AND m.floor_cell <= p_hi[c.run])
        FROM cells c WHERE c.cell IS NOT NULL
    )
    SELECT f.member_id, f.floor_cell, f.order_key FROM cells c
    CROSS JOIN LATERAL (
        (SELECT m.member_id, m.floor_cell, m.order_key FROM nearby_members m
         WHERE m.condition_id = p_condition AND m.floor_cell = c.cell
         AND m.order_key >= p_offset
         AND m.member_id <> ALL (p_hidden) AND (p_role IS NULL OR m.role = p_role)
         ORDER BY m.order_key, m.member_id LIMIT p_need)
        UNION ALL
        (SELECT m.member_id, m.floor_cell, m.order_key FROM nearby_members m
         WHERE m.condition_id = p_condition AND m.floor_cell = c.cell
         AND m.order_key < p_offset
         AND m.member_id <> ALL (p_hidden) AND (p_role IS NULL OR m.role = p_role)
         ORDER BY m.order_key, m.member_id LIMIT p_need)
        LIMIT p_need) AS f
    WHERE c.cell IS NOT NULL
    ORDER BY f.order_key < p_offset, f.order_key, f.member_id
    LIMIT p_need
$$;

-- geomap_nearby_page: one page of a search, in the searcher's order, in one call.
-- p_lo/p_hi hold every band's runs one band after the other; band p_bands[i] ends at
-- run p_ends[i]. Members are listed band after band (nearest first), within a band in
-- the searcher's order; the page is positions p_skip .. p_skip + p_take - 1 of that
-- list. Returns the page's (band, member, cell) in order, then one row with band -1
-- whose member_id is how many members the bands list, counted up to
-- p_skip + p_take + 1 (more than p_skip + p_take: a next page exists).
--
-- Per band, the first `need` members (up to the page's end, plus one) are read in one
-- of two ways. First the band is read by ranges (geomap_nearby_runs), at most `cap`
-- members: a sparse band is read whole, ordered here, and cut to `need`. A band
-- holding more than `cap` is dense: its first `need` are read cell by cell in order
-- (geomap_nearby_firsts), at most `need` rows per cell. `cap` is 8 x need or 64 rows
-- per run, whichever is more: reading `cap` rows by ranges costs about what the
-- per-cell descents of the band's cells cost, so neither way reads many more rows than
-- the other would, and neither reads more than a bound set by the band's cells and
-- the page, however many members live there.
CREATE OR REPLACE FUNCTION geomap_nearby_page(
    p_condition integer, p_me bigint, p_lo bigint[], p_hi bigint[], p_bands integer[],
    p_ends integer[], p_skip integer, p_take integer, p_role text, p_offset bigint)
RETURNS TABLE (band integer, member_id bigint, floor_cell bigint)
LANGUAGE plpgsql STABLE
-- One plan per statement for every call: planning anew for each call (plpgsql's first
-- custom plans) cost more than reading a band. No JIT: every statement here is a few
-- index probes, but a generic plan's estimates grow with the table (at 2,000,000 rows
-- the previous band query's passed jit_above_cost, and compiling it cost 17-40 ms a call).
SET plan_cache_mode = force_generic_plan
SET jit = off AS $$
#variable_conflict use_column
DECLARE
    hidden bigint[];
    i integer;
    first_run integer := 1;
    seen integer := 0;  -- members listed in the bands read so far
    page_end integer := p_skip + p_take;
    need integer;
    cap integer;
    total bigint;
    ids bigint[];
    cells bigint[];
    got integer;
BEGIN
    hidden := p_me || ARRAY(
        SELECT k.blocked_id FROM member_blocks k WHERE k.blocker_id = p_me
        UNION ALL SELECT k.blocker_id FROM member_blocks k WHERE k.blocked_id = p_me);
    FOR i IN 1 .. coalesce(array_length(p_bands, 1), 0) LOOP
        IF seen >= page_end THEN
            -- The page is full: is anyone listed further out?
            IF p_role IS NULL THEN
                PERFORM 1 FROM geomap_nearby_runs(p_condition, hidden, p_lo[first_run:],
                                                p_hi[first_run:], NULL, 1);
            ELSE
                PERFORM 1 FROM geomap_nearby_runs(p_condition, hidden, p_lo[first_run:],
                                                p_hi[first_run:], p_role, 1);
            END IF;
            IF FOUND THEN
                seen := seen + 1;
            END IF;
            EXIT;
        END IF;
        need := page_end + 1 - seen;
        cap := greatest(8 * need, 64 * (p_ends[i] - first_run + 1));
        IF p_role IS NULL THEN
            SELECT array_agg(s.member_id ORDER BY s.wrapped, s.order_key, s.member_id),
                   array_agg(s.floor_cell ORDER BY s.wrapped, s.order_key, s.member_id),
                   max(s.total)
            INTO ids, cells, total
            FROM (SELECT r.member_id, r.floor_cell, r.order_key,
                         r.order_key < p_offset AS wrapped, count(*) OVER () AS total
                  FROM geomap_nearby_runs(p_condition, hidden, p_lo[first_run:p_ends[i]],
                                          p_hi[first_run:p_ends[i]], NULL, cap + 1) r
                  ORDER BY r.order_key < p_offset, r.order_key, r.member_id LIMIT need) s;
        ELSE
            SELECT array_agg(s.member_id ORDER BY s.wrapped, s.order_key, s.member_id),
                   array_agg(s.floor_cell ORDER BY s.wrapped, s.order_key, s.member_id),
                   max(s.total)
            INTO ids, cells, total
            FROM (SELECT r.member_id, r.floor_cell, r.order_key,
                         r.order_key < p_offset AS wrapped, count(*) OVER () AS total
                  FROM geomap_nearby_runs(p_condition, hidden, p_lo[first_run:p_ends[i]],
                                          p_hi[first_run:p_ends[i]], p_role, cap + 1) r
                  ORDER BY r.order_key < p_offset, r.order_key, r.member_id LIMIT need) s;
        END IF;
        IF total > cap THEN
            IF p_role IS NULL THEN
                SELECT array_agg(f.member_id ORDER BY f.order_key < p_offset, f.order_key,
                                 f.member_id),
                       array_agg(f.floor_cell ORDER BY f.order_key < p_offset, f.order_key,
                                 f.member_id)
                INTO ids, cells
                FROM geomap_nearby_firsts(p_condition, hidden, p_lo[first_run:p_ends[i]],
                                          p_hi[first_run:p_ends[i]], NULL, p_offset, need) f;
            ELSE
                SELECT array_agg(f.member_id ORDER BY f.order_key < p_offset, f.order_key,
                                 f.member_id),
                       array_agg(f.floor_cell ORDER BY f.order_key < p_offset, f.order_key,
                                 f.member_id)
                INTO ids, cells
                FROM geomap_nearby_firsts(p_condition, hidden, p_lo[first_run:p_ends[i]],
                                          p_hi[first_run:p_ends[i]], p_role, p_offset,
                                          need) f;
            END IF;
        END IF;
        got := coalesce(array_length(ids, 1), 0);
        RETURN QUERY SELECT p_bands[i], ids[j], cells[j]
            FROM generate_series(greatest(p_skip - seen, 0) + 1, least(got, page_end - seen)) j;
        seen := seen + got;
        first_run := p_ends[i] + 1;
        EXIT WHEN seen > page_end;
    END LOOP;
    RETURN QUERY SELECT -1, seen::bigint, NULL::bigint;
END
$$;
"""


def upgrade() -> None:
    op.execute(REBUILD_SQL)
    op.execute(NEARBY_PAGE_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION geomap_nearby_page(integer, bigint, bigint[], bigint[], "
               "integer[], integer[], integer, integer, text, bigint)")
    op.execute("DROP FUNCTION geomap_nearby_firsts(integer, bigint[], bigint[], bigint[], "
               "text, bigint, integer)")
    op.execute("DROP FUNCTION geomap_nearby_runs(integer, bigint[], bigint[], bigint[], text, "
               "integer)")
    op.execute("ALTER TABLE nearby_members DROP CONSTRAINT pk_nearby_members, "
               "DROP COLUMN order_key, DROP COLUMN role")
    op.execute("ALTER TABLE nearby_members ADD CONSTRAINT pk_nearby_members "
               "PRIMARY KEY (condition_id, floor_cell, member_id)")
