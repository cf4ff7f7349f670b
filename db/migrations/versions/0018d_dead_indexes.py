"""Drop two indexes no query uses: members (updated_at), member_locations (country, region)

Revision ID: 0018d_dead_indexes
Revises: 0017f_regions_fill

Both came with the first schema, when admin counts were read from the member tables.
Since the admin counts and the region counts are snapshots (0013s_snapshots), no
statement filters or sorts ``members`` by ``updated_at`` or ``member_locations`` by
``(country_code, region_code)``: the indexes were only kept up to date. Every location
change and every import paid for them (1.4 s of a 1,000,000-member bulk load rebuilt
them; pg_stat_user_indexes counted no scan). ``member_locations (floor_cell)`` stays:
the snapshots read the distinct floor cells through it.
"""

from alembic import op

revision = "0018d_dead_indexes"
down_revision = "0017f_regions_fill"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_members_updated_at")
    op.execute("DROP INDEX IF EXISTS ix_member_locations_region")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_members_updated_at ON members (updated_at)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_member_locations_region "
               "ON member_locations (country_code, region_code)")
