"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 22:29:24.670311

Tables for conditions, members and their private locations, reference data
(gazetteer places, countries) and published aggregates; the conditions catalog.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography, Geometry

# The SQL as this migration ran it, kept here: a later change is a new migration.
CHANGE_TRACKING_SQL = r"""
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
"""

PUBLIC_ROLE_SQL = r"""
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
"""

# (slug, name, ICD-10 code)
CATALOG = [
    ("all", "Acute lymphocytic leukemia", "C91.0"),
    ("aml", "Acute myeloid leukemia", "C92.0"),
    ("cll", "Chronic lymphocytic leukemia", "C91.1"),
    ("cml", "Chronic myeloid leukemia", "C92.1"),
    ("hodgkin-lymphoma", "Hodgkin lymphoma", "C81"),
    ("multiple-myeloma", "Multiple myeloma", "C90.0"),
    ("cystic-fibrosis", "Cystic fibrosis", "E84"),
    ("multiple-sclerosis", "Multiple sclerosis", "G35"),
    ("als", "Amyotrophic lateral sclerosis", "G12.21"),
    ("sickle-cell-disease", "Sickle-cell disease", "D57"),
    ("huntingtons-disease", "Huntington's disease", "G10"),
]

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table('conditions',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('icd10', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conditions')),
    sa.UniqueConstraint('slug', name=op.f('uq_conditions_slug'))
    )
    op.create_geospatial_table('countries',
    sa.Column('code', sa.String(length=2), nullable=False),
    sa.Column('numeric', sa.String(length=3), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_countries'))
    )
    op.create_geospatial_index('ix_countries_geom', 'countries', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('members',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('visibility', sa.String(length=8), nullable=False),
    sa.Column('contactable', sa.Boolean(), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('patient', 'relative', 'carer', 'professional', 'researcher', 'organisation')", name=op.f('ck_members_role')),
    sa.CheckConstraint("visibility IN ('map', 'country', 'hidden')", name=op.f('ck_members_visibility')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('pseudonym', name=op.f('uq_members_pseudonym'))
    )
    op.create_index(op.f('ix_members_updated_at'), 'members', ['updated_at'], unique=False)
    op.create_geospatial_table('places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('ascii_name', sa.String(length=200), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('admin1_code', sa.String(length=20), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('point', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_places'))
    )
    op.create_index('ix_places_country_name', 'places', ['country_code', 'name'], unique=False)
    op.create_geospatial_index('ix_places_point', 'places', ['point'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('publish_runs',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('members_on_map', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_publish_runs'))
    )
    op.create_table('published_cells',
    sa.Column('condition_id', sa.SmallInteger(), nullable=False),
    sa.Column('resolution', sa.SmallInteger(), nullable=False),
    sa.Column('cell', sa.BigInteger(), nullable=False),
    sa.Column('cell_resolution', sa.SmallInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lng', sa.Float(), nullable=False),
    sa.CheckConstraint('count > 0', name=op.f('ck_published_cells_count_positive')),
    sa.PrimaryKeyConstraint('condition_id', 'resolution', 'cell', name=op.f('pk_published_cells'))
    )
    op.create_index('ix_published_cells_box', 'published_cells', ['condition_id', 'resolution', 'lng', 'lat'], unique=False)
    op.create_table('published_totals',
    sa.Column('condition_id', sa.SmallInteger(), nullable=False),
    sa.Column('resolution', sa.SmallInteger(), nullable=False),
    sa.Column('members_on_map', sa.Integer(), nullable=False),
    sa.Column('published', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('condition_id', 'resolution', name=op.f('pk_published_totals'))
    )
    op.create_table('member_conditions',
    sa.Column('condition_id', sa.SmallInteger(), nullable=False),
    sa.Column('member_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['condition_id'], ['conditions.id'], name=op.f('fk_member_conditions_condition_id_conditions')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_conditions_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('condition_id', 'member_id', name=op.f('pk_member_conditions'))
    )
    op.create_index('ix_member_conditions_member', 'member_conditions', ['member_id'], unique=False)
    op.create_geospatial_table('member_locations',
    sa.Column('member_id', sa.BigInteger(), nullable=False),
    sa.Column('location', Geography(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeogFromText', name='geography', nullable=False), nullable=False),
    sa.Column('floor_cell', sa.BigInteger(), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('region_code', sa.String(length=24), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_locations_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_locations'))
    )
    op.create_index('ix_member_locations_floor_cell', 'member_locations', ['floor_cell'], unique=False)
    op.create_index('ix_member_locations_region', 'member_locations', ['country_code', 'region_code'], unique=False)
    op.execute("CREATE INDEX ix_places_prefix ON places (lower(ascii_name) text_pattern_ops)")
    op.execute(CHANGE_TRACKING_SQL)
    op.execute(PUBLIC_ROLE_SQL)
    conditions = sa.table(
        "conditions",
        sa.column("id", sa.SmallInteger),
        sa.column("slug", sa.String),
        sa.column("name", sa.String),
        sa.column("icd10", sa.String),
    )
    op.bulk_insert(
        conditions,
        [
            {"id": i, "slug": slug, "name": name, "icd10": icd10}
            for i, (slug, name, icd10) in enumerate(CATALOG, start=1)
        ],
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS data_changes")
    op.execute("DROP FUNCTION IF EXISTS geomap_touch_data_changes() CASCADE")
    op.execute("DROP INDEX IF EXISTS ix_places_prefix")
    op.drop_index('ix_member_locations_region', table_name='member_locations')
    op.drop_index('ix_member_locations_floor_cell', table_name='member_locations')
    op.drop_geospatial_table('member_locations')
    op.drop_index('ix_member_conditions_member', table_name='member_conditions')
    op.drop_table('member_conditions')
    op.drop_table('published_totals')
    op.drop_index('ix_published_cells_box', table_name='published_cells')
    op.drop_table('published_cells')
    op.drop_table('publish_runs')
    op.drop_geospatial_index('ix_places_point', table_name='places', postgresql_using='gist', column_name='point')
    op.drop_index('ix_places_country_name', table_name='places')
    op.drop_geospatial_table('places')
    op.drop_index(op.f('ix_members_updated_at'), table_name='members')
    op.drop_table('members')
    op.drop_geospatial_index('ix_countries_geom', table_name='countries', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('countries')
    op.drop_table('conditions')
