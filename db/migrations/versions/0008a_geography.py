"""geography: first-level region names and searchable place names

Revision ID: 0008a_geography
Revises: 0011a_catalogue

GeoNames first-level (admin1) names by (country, admin1 code), and every folded name
of each gazetteer place (its name, ASCII name and alternate names) for the place
matcher shared by the type-ahead and the importer.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008a_geography"
down_revision = "0011a_catalogue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin1_names",
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("admin1_code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("country_code", "admin1_code", name=op.f("pk_admin1_names")),
    )
    op.create_table(
        "place_names",
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.Column("folded", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("folded", "place_id", name=op.f("pk_place_names")),
    )
    op.execute("CREATE INDEX ix_place_names_prefix ON place_names (folded text_pattern_ops)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_places_population ON places (population DESC)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_places_population")
    op.drop_table("place_names")
    op.drop_table("admin1_names")
