"""perf: a change log for the soulmates candidate cache

Revision ID: 0013p_perf
Revises: 0013b_mail_outbox

Web workers keep the opted-in, listable soulmate profiles in memory
(geomap/symptoms/candidates.py). Until now any change gave ``soulmate_state`` a new
token and every worker re-read whole packs (1.2 s for one condition at 1,000,000
members). Now each statement on ``soulmate_profiles`` or ``nearby_members`` takes the
next ``soulmate_state.version`` (the row lock serialises writers, so versions commit in
order) and logs the members it touched in ``soulmate_changes``; a worker applies only
the members changed since the version it last saw. A statement touching more than
2,000 members, a change to ``hpo_terms`` or a TRUNCATE gives a new ``epoch`` instead:
workers rebuild. The log keeps the last 100,000 versions (``pruned_to``: workers
behind it rebuild). ``writer`` is the last writing transaction: a worker never keeps
a pack read by the transaction that wrote the state, whose changes may yet roll back.
"""

from alembic import op

revision = "0013p_perf"
down_revision = "0013b_mail_outbox"
branch_labels = None
depends_on = None

LOGGED = ("soulmate_profiles", "nearby_members")
LOG_LIMIT = 2000
KEEP_VERSIONS = 100_000


def _log_function(name: str, rows: str) -> str:
    """Return the SQL of a trigger function logging the members of transition ``rows``."""
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "DECLARE v bigint; n bigint; "
        "BEGIN "
        "UPDATE soulmate_state SET version = version + 1, token = gen_random_uuid(), "
        "writer = pg_current_xact_id() RETURNING version INTO v; "
        f"SELECT count(*) INTO n FROM ({rows}) r; "
        f"IF n > {LOG_LIMIT} THEN "
        "UPDATE soulmate_state SET epoch = gen_random_uuid(), pruned_to = v; "
        "DELETE FROM soulmate_changes; "
        "ELSIF n > 0 THEN "
        f"INSERT INTO soulmate_changes (version, member_id) SELECT DISTINCT v, member_id "
        f"FROM ({rows}) r; "
        "END IF; "
        f"IF v % 1000 = 0 AND v > {KEEP_VERSIONS} THEN "
        f"DELETE FROM soulmate_changes WHERE version <= v - {KEEP_VERSIONS}; "
        f"UPDATE soulmate_state SET pruned_to = greatest(pruned_to, v - {KEEP_VERSIONS}); "
        "END IF; "
        "RETURN NULL; END $$"
    )


def upgrade() -> None:
    op.execute("ALTER TABLE soulmate_state ADD COLUMN version bigint NOT NULL DEFAULT 0, "
               "ADD COLUMN epoch uuid NOT NULL DEFAULT gen_random_uuid(), "
               "ADD COLUMN pruned_to bigint NOT NULL DEFAULT 0, ADD COLUMN writer xid8")
    op.execute("CREATE TABLE soulmate_changes (version bigint NOT NULL, member_id bigint NOT NULL)")
    op.execute("CREATE INDEX ix_soulmate_changes_version ON soulmate_changes (version)")
    op.execute(_log_function("geomap_log_soulmates_new", "SELECT member_id FROM new_rows"))
    op.execute(_log_function("geomap_log_soulmates_old", "SELECT member_id FROM old_rows"))
    op.execute(_log_function(
        "geomap_log_soulmates_both",
        "SELECT member_id FROM new_rows UNION SELECT member_id FROM old_rows"))
    op.execute(
        "CREATE FUNCTION geomap_soulmates_new_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE soulmate_state SET version = version + 1, token = gen_random_uuid(), "
        "writer = pg_current_xact_id(), epoch = gen_random_uuid(), pruned_to = version + 1; "
        "DELETE FROM soulmate_changes; "
        "RETURN NULL; END $$"
    )
    for table in LOGGED:
        op.execute(f"DROP TRIGGER touch_soulmate_state ON {table}")
        op.execute(f"CREATE TRIGGER log_soulmates_insert AFTER INSERT ON {table} "
                   "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                   "EXECUTE FUNCTION geomap_log_soulmates_new()")
        op.execute(f"CREATE TRIGGER log_soulmates_delete AFTER DELETE ON {table} "
                   "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
                   "EXECUTE FUNCTION geomap_log_soulmates_old()")
        op.execute(f"CREATE TRIGGER log_soulmates_update AFTER UPDATE ON {table} "
                   "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
                   "EXECUTE FUNCTION geomap_log_soulmates_both()")
        op.execute(f"CREATE TRIGGER soulmates_truncate AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION geomap_soulmates_new_epoch()")
    op.execute("DROP TRIGGER touch_soulmate_state ON hpo_terms")
    op.execute("CREATE TRIGGER soulmates_new_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
               "ON hpo_terms FOR EACH STATEMENT EXECUTE FUNCTION geomap_soulmates_new_epoch()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS soulmates_new_epoch ON hpo_terms")
    for table in LOGGED:
        for trigger in ("log_soulmates_insert", "log_soulmates_delete", "log_soulmates_update",
                        "soulmates_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for table in (*LOGGED, "hpo_terms"):
        op.execute(
            f"CREATE TRIGGER touch_soulmate_state AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION geomap_touch_soulmate_state()"
        )
    for name in ("geomap_log_soulmates_new", "geomap_log_soulmates_old",
                 "geomap_log_soulmates_both", "geomap_soulmates_new_epoch"):
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP TABLE IF EXISTS soulmate_changes")
    op.execute("ALTER TABLE soulmate_state DROP COLUMN writer, DROP COLUMN pruned_to, "
               "DROP COLUMN epoch, DROP COLUMN version")
