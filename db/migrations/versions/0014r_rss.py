"""nearby in one round trip for its candidates: geomap_nearby_candidates()

Revision ID: 0014r_rss
Revises: 0014l_area_names

A search read its candidates band by band, one statement per band, and asked once
more (per band) whether a next page exists: up to eight round trips at 1,000,000
members. db/sql/nearby_candidates.sql does the same reads in one call
(geomap_nearby_candidates, band by band through geomap_nearby_band).
"""

from pathlib import Path

from alembic import op

revision = "0014r_rss"
down_revision = "0014l_area_names"
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parents[2] / "sql"


def upgrade() -> None:
    op.execute((SQL / "nearby_candidates.sql").read_text())


def downgrade() -> None:
    op.execute("DROP FUNCTION geomap_nearby_candidates(integer, bigint, bigint[], bigint[], "
               "integer[], integer[], integer, text)")
    op.execute("DROP FUNCTION geomap_nearby_band(integer, bigint, bigint[], bigint[], text)")
