"""member journey: pseudonym keys, moderation, optional profile

Revision ID: 0009a_journey
Revises: 0010a_symptoms

Pseudonyms unique by a case- and look-alike-folded key; a moderator role on accounts;
suspension and warnings of members; hidden messages; report status; the moderation
audit log; the optional member profile (introduction, age group, treatment phase).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009a_journey"
down_revision = "0010a_symptoms"
branch_labels = None
depends_on = None

AGE_GROUPS = "('child', 'teenager', 'adult')"
PHASES = "('induction', 'consolidation', 'maintenance', 'transplant', 'survivorship')"
ACTIONS = "('dismiss', 'warn', 'hide', 'suspend', 'delete')"


def _fill_pseudonym_keys() -> None:
    """Compute the key of every existing pseudonym; later duplicates get a unique suffix."""
    from geomap.members.pseudonyms import pseudonym_key

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, pseudonym FROM members ORDER BY id")).all()
    seen: set[str] = set()
    updates = []
    for member_id, pseudonym in rows:
        key = pseudonym_key(pseudonym)
        if key in seen:  # an older member keeps the name; this one keeps a working key
            key = f"{key}\x1f{member_id}"
        seen.add(key)
        updates.append({"id": member_id, "key": key})
    if updates:
        bind.execute(sa.text("CREATE TEMPORARY TABLE pseudonym_keys (id bigint, key text) "
                             "ON COMMIT DROP"))
        bind.execute(sa.text("INSERT INTO pseudonym_keys VALUES (:id, :key)"), updates)
        bind.execute(sa.text("UPDATE members m SET pseudonym_key = k.key FROM pseudonym_keys k "
                             "WHERE k.id = m.id"))
        bind.execute(sa.text("DROP TABLE pseudonym_keys"))


def upgrade() -> None:
    op.add_column("members", sa.Column("pseudonym_key", sa.String(length=256), nullable=True))
    _fill_pseudonym_keys()
    op.alter_column("members", "pseudonym_key", nullable=False)
    op.create_unique_constraint(op.f("uq_members_pseudonym_key"), "members", ["pseudonym_key"])
    op.add_column("members", sa.Column("introduction", sa.String(length=500),
                                       server_default="", nullable=False))
    op.add_column("members", sa.Column("age_group", sa.String(length=10), nullable=True))
    op.add_column("members", sa.Column("treatment_phase", sa.String(length=16), nullable=True))
    op.add_column("members", sa.Column("suspended_at", sa.DateTime(timezone=True),
                                       nullable=True))
    op.add_column("members", sa.Column("warning", sa.String(length=1000), nullable=True))
    op.create_check_constraint(op.f("ck_members_age_group"), "members",
                               f"age_group IN {AGE_GROUPS}")
    op.create_check_constraint(op.f("ck_members_treatment_phase"), "members",
                               f"treatment_phase IN {PHASES}")
    op.add_column("accounts", sa.Column("is_moderator", sa.Boolean(),
                                        server_default=sa.false(), nullable=False))
    op.add_column("messages", sa.Column("hidden_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("message_reports", sa.Column("status", sa.String(length=10),
                                               server_default="open", nullable=False))
    op.add_column("message_reports", sa.Column("handled_at", sa.DateTime(timezone=True),
                                               nullable=True))
    op.create_check_constraint(op.f("ck_message_reports_status"), "message_reports",
                               "status IN ('open', 'handled')")
    op.create_index("ix_message_reports_open", "message_reports", ["id"],
                    postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "moderation_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("moderator", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=1000), server_default="", nullable=False),
        sa.CheckConstraint(f"action IN {ACTIONS}", name=op.f("ck_moderation_log_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_log")),
    )


    # Map popups label published cells from public reference data (GeoNames places,
    # Natural Earth countries): the public read path may read those two tables.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN "
        "EXECUTE 'GRANT SELECT ON places, countries TO geomap_public'; END IF; END $$"
    )


def downgrade() -> None:
    op.drop_table("moderation_log")
    op.drop_index("ix_message_reports_open", table_name="message_reports")
    op.drop_constraint(op.f("ck_message_reports_status"), "message_reports", type_="check")
    op.drop_column("message_reports", "handled_at")
    op.drop_column("message_reports", "status")
    op.drop_column("messages", "hidden_at")
    op.drop_column("accounts", "is_moderator")
    op.drop_constraint(op.f("ck_members_treatment_phase"), "members", type_="check")
    op.drop_constraint(op.f("ck_members_age_group"), "members", type_="check")
    for column in ("warning", "suspended_at", "treatment_phase", "age_group", "introduction"):
        op.drop_column("members", column)
    op.drop_constraint(op.f("uq_members_pseudonym_key"), "members", type_="unique")
    op.drop_column("members", "pseudonym_key")
