"""regions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 23:00:00

First-level region polygons (loaded by operators, subdivided for containment),
published region counts (floor-cell centres, small counts suppressed) and admin-only
snapshots of exact counts per region, role and month.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("level", "code", name=op.f("pk_regions")),
    )
    op.create_geospatial_table(
        "region_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("geom", Geometry(geometry_type="POLYGON", srid=4326, spatial_index=False,
                                   from_text="ST_GeomFromEWKT", name="geometry",
                                   nullable=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region_parts")),
    )
    op.create_geospatial_index("ix_region_parts_geom", "region_parts", ["geom"], unique=False,
                               postgresql_using="gist", postgresql_ops={})
    op.create_table(
        "published_regions",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("level IN ('country', 'admin1')",
                           name=op.f("ck_published_regions_level")),
        sa.CheckConstraint("count IS NULL OR count > 0",
                           name=op.f("ck_published_regions_count_positive")),
        sa.PrimaryKeyConstraint("condition_id", "level", "code",
                                name=op.f("pk_published_regions")),
    )
    # Admin-only snapshots of exact counts (refreshed with each publish); no public grant.
    op.create_table(
        "admin_region_counts",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("region_code", sa.String(length=24), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("region_name", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("condition_id", "country_code", "region_code", "role",
                                name=op.f("pk_admin_region_counts")),
    )
    op.create_table(
        "admin_monthly_joins",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("condition_id", "country_code", "month",
                                name=op.f("pk_admin_monthly_joins")),
    )
    op.create_table(
        "admin_counts_refresh",
        sa.Column("id", sa.Boolean(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_admin_counts_refresh_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_counts_refresh")),
    )
    # The public read path's role may read the published region counts (and no more).
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') "
        "THEN GRANT SELECT ON published_regions TO geomap_public; END IF; END $$"
    )


def downgrade() -> None:
    op.drop_table("admin_counts_refresh")
    op.drop_table("admin_monthly_joins")
    op.drop_table("admin_region_counts")
    op.drop_table("published_regions")
    op.drop_geospatial_index("ix_region_parts_geom", table_name="region_parts",
                             postgresql_using="gist", column_name="geom")
    op.drop_geospatial_table("region_parts")
    op.drop_table("regions")
