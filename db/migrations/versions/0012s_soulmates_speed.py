"""soulmates speed: a version token for the soulmates candidate cache

Revision ID: 0012s_soulmates_speed
Revises: 0012g_gaps

Web workers keep the opted-in, listable soulmate profiles of a condition in memory
(geomap/symptoms/candidates.py) and score them all exactly in one numpy pass. The
cache is valid while ``soulmate_state.token`` is unchanged: statement-level triggers
give it a fresh random token on any change to the profiles (symptoms, opt-in,
withdrawal), to the nearby index (publish, a member's own settings) or to the terms.
A random token, not a counter, so two databases never share one.
"""

from alembic import op

revision = "0012s_soulmates_speed"
down_revision = "0012g_gaps"
branch_labels = None
depends_on = None

TABLES = ("soulmate_profiles", "nearby_members", "hpo_terms")


def upgrade() -> None:
    op.execute(
        "CREATE TABLE soulmate_state (id boolean PRIMARY KEY DEFAULT true CHECK (id), "
        "token uuid NOT NULL DEFAULT gen_random_uuid())"
    )
    op.execute("INSERT INTO soulmate_state (id) VALUES (true)")
    op.execute(
        "CREATE FUNCTION geomap_touch_soulmate_state() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE soulmate_state SET token = gen_random_uuid(); RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER touch_soulmate_state AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION geomap_touch_soulmate_state()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS touch_soulmate_state ON {table}")
    op.execute("DROP FUNCTION IF EXISTS geomap_touch_soulmate_state()")
    op.execute("DROP TABLE IF EXISTS soulmate_state")
