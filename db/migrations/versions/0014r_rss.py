"""nearby in one round trip for its candidates: geomap_nearby_candidates()

Revision ID: 0014r_rss
Revises: 0014l_area_names

A search read its candidates band by band, one statement per band, and asked once
more (per band) whether a next page exists: up to eight round trips at 1,000,000
members. NEARBY_CANDIDATES_SQL below does the same reads in one call
(geomap_nearby_candidates, band by band through geomap_nearby_band).
"""

from alembic import op

revision = "0014r_rss"
down_revision = "0014l_area_names"
branch_labels = None
depends_on = None

# The SQL as this migration ran it, kept here: a later change is a new migration.
NEARBY_CANDIDATES_SQL = r"""
-- Nearby's candidates (geomap.members.nearby.nearby).
--
-- geomap_nearby_band: who may be listed in a set of cells given as runs of consecutive
-- H3 indexes (p_lo[i]..p_hi[i]): on the map and contactable, with the condition
-- (nearby_members holds exactly those), not the searcher, no block either way, of role
-- p_role if set. One index range scan of nearby_members' primary key per run (LATERAL
-- with OFFSET 0 keeps the subquery from being flattened, whatever the planner guesses
-- about the unnest). A plain SQL function: the planner inlines it where it is called.
CREATE OR REPLACE FUNCTION geomap_nearby_band(
    p_condition integer, p_me bigint, p_lo bigint[], p_hi bigint[], p_role text)
RETURNS TABLE (member_id bigint, floor_cell bigint)
LANGUAGE sql STABLE AS $$
    SELECT n.member_id, n.floor_cell
    FROM unnest(p_lo, p_hi) AS r(lo, hi)
    CROSS JOIN LATERAL (
        SELECT m.member_id, m.floor_cell FROM nearby_members m
        WHERE m.condition_id = p_condition AND m.floor_cell BETWEEN r.lo AND r.hi
        OFFSET 0) AS n
    WHERE n.member_id <> p_me
    AND NOT EXISTS (SELECT 1 FROM member_blocks k WHERE
        (k.blocker_id = p_me AND k.blocked_id = n.member_id) OR
        (k.blocker_id = n.member_id AND k.blocked_id = p_me))
    AND (p_role IS NULL OR EXISTS (
        SELECT 1 FROM members o WHERE o.id = n.member_id AND o.role = p_role))
$$;

-- geomap_nearby_candidates: the searcher's bands, nearest first, in one round trip.
-- p_lo/p_hi hold every band's runs one band after the other; band p_bands[i] ends at
-- run p_ends[i]. Bands are read in order until more than p_want members are listed (a
-- page's end); a last row with band -1 (and no member) says that someone is listed
-- further out, i.e. that the page has a next one.
CREATE OR REPLACE FUNCTION geomap_nearby_candidates(
    p_condition integer, p_me bigint, p_lo bigint[], p_hi bigint[], p_bands integer[],
    p_ends integer[], p_want integer, p_role text)
RETURNS TABLE (band integer, member_id bigint, floor_cell bigint)
LANGUAGE plpgsql STABLE
-- One plan per statement for every call: planning the band query anew for each call
-- (plpgsql's first custom plans) cost more than reading the band.
SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    i integer;
    first_run integer := 1;
    seen bigint := 0;
    got bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_bands, 1), 0) LOOP
        IF seen >= p_want THEN
            IF EXISTS (SELECT 1 FROM geomap_nearby_band(
                    p_condition, p_me, p_lo[first_run:], p_hi[first_run:], p_role)) THEN
                RETURN QUERY SELECT -1, NULL::bigint, NULL::bigint;
            END IF;
            RETURN;
        END IF;
        RETURN QUERY SELECT p_bands[i], c.member_id, c.floor_cell FROM geomap_nearby_band(
            p_condition, p_me, p_lo[first_run:p_ends[i]], p_hi[first_run:p_ends[i]],
            p_role) AS c;
        GET DIAGNOSTICS got = ROW_COUNT;
        seen := seen + got;
        first_run := p_ends[i] + 1;
        IF seen > p_want THEN
            RETURN QUERY SELECT -1, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
    END LOOP;
END
$$;
"""


def upgrade() -> None:
    op.execute(NEARBY_CANDIDATES_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION geomap_nearby_candidates(integer, bigint, bigint[], bigint[], "
               "integer[], integer[], integer, text)")
    op.execute("DROP FUNCTION geomap_nearby_band(integer, bigint, bigint[], bigint[], text)")
