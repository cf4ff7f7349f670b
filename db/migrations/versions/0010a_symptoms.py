"""symptoms

Revision ID: 0010a_symptoms
Revises: 0009m_accounts

The HPO vocabulary (terms, labels, information content, ancestors) loaded by
``geomap symptoms import``; members' symptoms, their matching opt-in, the soulmates
candidate index (informative ancestors under a GIN index) and the published symptom
picture per condition.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010a_symptoms"
down_revision = "0009m_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS intarray")
    op.create_table(
        "hpo_terms",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("hpo_id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("layperson", sa.String(300), nullable=True),
        sa.Column("ic", sa.Float(), nullable=False),
        # max IC over the ancestors (self included): a term's Resnik similarity with itself
        sa.Column("self_ic", sa.Float(), nullable=False),
        sa.Column("parents", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("ancestors", postgresql.ARRAY(sa.Integer()), nullable=False),
        # the ancestors with IC >= hpo_vocabulary.informative_ic (soulmates candidates)
        sa.Column("informative", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hpo_terms")),
    )
    op.create_table(
        "hpo_labels",
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("folded", sa.String(300), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),  # 0 layperson, 1 name, 2 synonym
        sa.ForeignKeyConstraint(["term_id"], ["hpo_terms.id"], ondelete="CASCADE",
                                name=op.f("fk_hpo_labels_term_id_hpo_terms")),
        sa.PrimaryKeyConstraint("term_id", "folded", name=op.f("pk_hpo_labels")),
    )
    op.create_table(
        "hpo_vocabulary",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("terms", sa.Integer(), nullable=False),
        sa.Column("informative_ic", sa.Float(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hpo_vocabulary")),
    )
    op.create_table(
        "member_symptoms",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE",
                                name=op.f("fk_member_symptoms_member_id_members")),
        sa.ForeignKeyConstraint(["term_id"], ["hpo_terms.id"],
                                name=op.f("fk_member_symptoms_term_id_hpo_terms")),
        sa.PrimaryKeyConstraint("member_id", "term_id", name=op.f("pk_member_symptoms")),
    )
    op.create_table(
        "symptom_matching",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("opted_in_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE",
                                name=op.f("fk_symptom_matching_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_symptom_matching")),
    )
    # One row per opted-in member with symptoms: their terms and informative ancestors.
    op.create_table(
        "soulmate_profiles",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("terms", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("informative", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE",
                                name=op.f("fk_soulmate_profiles_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_soulmate_profiles")),
    )
    op.execute("CREATE INDEX ix_soulmate_profiles_informative ON soulmate_profiles "
               "USING gin (informative gin__int_ops)")
    # The public symptom picture counts opted-in profiles: a change to them is a data
    # change for the scheduled publish (see migration 0001_initial_schema).
    op.execute("CREATE TRIGGER touch_data_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
               "ON soulmate_profiles FOR EACH STATEMENT "
               "EXECUTE FUNCTION geomap_touch_data_changes()")
    op.create_table(
        "published_symptoms",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("reporting", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", "term_id", name=op.f("pk_published_symptoms")),
    )
    # The public read path may read the published symptom picture and the term names.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') "
        "THEN GRANT SELECT ON published_symptoms, hpo_terms TO geomap_public; END IF; END $$"
    )


def downgrade() -> None:
    op.drop_table("published_symptoms")
    op.drop_table("soulmate_profiles")
    op.drop_table("symptom_matching")
    op.drop_table("member_symptoms")
    op.drop_table("hpo_vocabulary")
    op.drop_table("hpo_labels")
    op.drop_table("hpo_terms")
