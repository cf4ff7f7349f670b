"""condition catalogue

Revision ID: 0011a_catalogue
Revises: 0009a_journey

The condition catalogue (WHO ICD-10 and Orphanet entries, filled by
``geomap conditions import``), its names in each locale and synonyms, its codes,
the admins' audit log, members' requests for a condition to open, and the
``enabled`` flag of the conditions that have a map. The 11 conditions seeded by 0001
become catalogue entries with their synonyms; they stay enabled with every member link.
``conditions.id`` stays a SMALLINT: only conditions with a map (enabled once) have a
row there; the catalogue's entries have their own INTEGER ids.
"""

import sqlalchemy as sa
from alembic import op

# The SQL as this migration ran it, kept here: a later change is a new migration.
CATALOGUE_SEARCH_SQL = r"""
-- Accent- and case-folding for the condition catalogue's search (migration 0011a).
-- unaccent() is only STABLE (its dictionary could change), so a wrapper naming the
-- dictionary explicitly is declared IMMUTABLE: it may then feed a stored column and
-- a trigram index. Both extensions are trusted and ship with Debian's server package.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE OR REPLACE FUNCTION geomap_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, value)) $$;
"""

revision = "0011a_catalogue"
down_revision = "0009a_journey"
branch_labels = None
depends_on = None

# slug -> curated synonyms of the conditions seeded by 0001
SYNONYMS = {
    "all": ["ALL", "Acute lymphoblastic leukaemia", "Acute lymphoblastic leukemia"],
    "aml": ["AML", "Acute myeloid leukaemia", "Acute myelogenous leukemia"],
    "cll": ["CLL", "Chronic lymphocytic leukaemia"],
    "cml": ["CML", "Chronic myeloid leukaemia", "Chronic myelogenous leukemia"],
    "hodgkin-lymphoma": ["Hodgkin's disease", "Hodgkin disease"],
    "multiple-myeloma": ["Myeloma", "Kahler disease"],
    "cystic-fibrosis": ["CF", "Mucoviscidosis"],
    "multiple-sclerosis": ["MS"],
    "als": ["ALS", "Motor neurone disease", "Lou Gehrig's disease"],
    "sickle-cell-disease": ["SCD", "Sickle cell anaemia", "Sickle-cell anemia"],
    "huntingtons-disease": ["Huntington disease", "Huntington's chorea"],
}

PUBLIC_TABLES = "catalogue_entries, catalogue_names, catalogue_codes"


def upgrade() -> None:
    op.execute(CATALOGUE_SEARCH_SQL)
    op.add_column(
        "conditions",
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_table(
        "catalogue_entries",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("code", sa.String(24), nullable=False),
        sa.Column("parent_code", sa.String(24), nullable=True),
        sa.Column("condition_id", sa.SmallInteger(), nullable=True),
        sa.Column("sort_name", sa.Text(), sa.Computed("geomap_fold(name)", persisted=True), nullable=False),
        sa.Column("initial", sa.String(3), sa.Computed(
            "CASE WHEN geomap_fold(name) ~ '^[a-z]' THEN upper(left(geomap_fold(name), 1)) ELSE '0-9' END",
            persisted=True), nullable=False),
        sa.CheckConstraint("source IN ('icd10', 'orpha', 'local')", name=op.f("ck_catalogue_entries_source")),
        sa.CheckConstraint("kind IN ('chapter', 'block', 'category', 'disorder')", name=op.f("ck_catalogue_entries_kind")),
        sa.ForeignKeyConstraint(["condition_id"], ["conditions.id"], name=op.f("fk_catalogue_entries_condition_id_conditions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_entries")),
        sa.UniqueConstraint("slug", name=op.f("uq_catalogue_entries_slug")),
        sa.UniqueConstraint("source", "code", name=op.f("uq_catalogue_entries_source")),
        sa.UniqueConstraint("condition_id", name=op.f("uq_catalogue_entries_condition_id")),
    )
    op.execute("CREATE INDEX ix_catalogue_entries_az ON catalogue_entries (initial, sort_name, id) "
               "WHERE kind IN ('category', 'disorder')")
    op.create_table(
        "catalogue_names",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("folded", sa.Text(), sa.Computed("geomap_fold(name)", persisted=True), nullable=False),
        sa.CheckConstraint("kind IN ('official', 'synonym')", name=op.f("ck_catalogue_names_kind")),
        sa.ForeignKeyConstraint(["entry_id"], ["catalogue_entries.id"], name=op.f("fk_catalogue_names_entry_id_catalogue_entries"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry_id", "locale", "name", name=op.f("pk_catalogue_names")),
    )
    op.execute("CREATE INDEX ix_catalogue_names_trgm ON catalogue_names USING gin (folded gin_trgm_ops)")
    op.create_table(
        "catalogue_codes",
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("code", sa.String(24), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["catalogue_entries.id"], name=op.f("fk_catalogue_codes_entry_id_catalogue_entries"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("system", "code", "entry_id", name=op.f("pk_catalogue_codes")),
    )
    op.create_index("ix_catalogue_codes_entry", "catalogue_codes", ["entry_id"])
    op.execute("CREATE INDEX ix_catalogue_codes_code ON catalogue_codes (upper(code) text_pattern_ops)")
    op.create_table(
        "condition_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["catalogue_entries.id"], name=op.f("fk_condition_audit_entry_id_catalogue_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_condition_audit")),
    )
    op.create_index("ix_condition_audit_entry", "condition_audit", ["entry_id", "at"])
    op.create_table(
        "condition_requests",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["catalogue_entries.id"], name=op.f("fk_condition_requests_entry_id_catalogue_entries"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_condition_requests_member_id_members"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry_id", "member_id", name=op.f("pk_condition_requests")),
    )
    op.create_index("ix_condition_requests_member", "condition_requests", ["member_id"])
    # The seeded conditions become catalogue entries (local until the import merges
    # those whose code is a WHO ICD-10 code), keeping their slug and name.
    op.execute(
        "INSERT INTO catalogue_entries (slug, name, source, kind, code, condition_id) "
        "SELECT slug, name, 'icd10', 'category', icd10, id FROM conditions ORDER BY id"
    )
    op.execute(
        "INSERT INTO catalogue_names (entry_id, locale, name, kind) "
        "SELECT id, 'en', name, 'synonym' FROM catalogue_entries"
    )
    op.execute(
        "INSERT INTO catalogue_codes (system, code, entry_id) "
        "SELECT 'ICD-10', code, id FROM catalogue_entries"
    )
    names = sa.table("catalogue_names", sa.column("entry_id"), sa.column("locale"),
                     sa.column("name"), sa.column("kind"))
    connection = op.get_bind()
    ids = dict(connection.execute(sa.text("SELECT slug, id FROM catalogue_entries")).all())
    op.bulk_insert(names, [
        {"entry_id": ids[slug], "locale": "en", "name": synonym, "kind": "synonym"}
        for slug, synonyms in SYNONYMS.items() if slug in ids for synonym in synonyms
    ])
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN "
        f"EXECUTE 'GRANT SELECT ON {PUBLIC_TABLES} TO geomap_public'; END IF; END $$"
    )


def downgrade() -> None:
    for table in ("condition_requests", "condition_audit", "catalogue_codes",
                  "catalogue_names", "catalogue_entries"):
        op.drop_table(table)
    op.drop_column("conditions", "enabled")
    op.execute("DROP FUNCTION IF EXISTS geomap_fold(text)")
