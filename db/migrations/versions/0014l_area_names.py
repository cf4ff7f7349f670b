"""area names in the viewer's language: floor-cell labels stored as their parts

Revision ID: 0014l_area_names
Revises: 0014p_pubinc

``cell_labels`` kept a ready English sentence ("Lyon area, France"). It now also keeps
what the sentence is made of (the kind of label, the gazetteer place, the country's
ISO 3166-1 alpha-2 code and English name), so that nearby and soulmates name the area
in the viewer's language. The table is a cache computed from cell centres: its rows
are dropped and recomputed on demand.
"""

from alembic import op

revision = "0014l_area_names"
down_revision = "0014p_pubinc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM cell_labels")
    op.execute(
        "ALTER TABLE cell_labels ADD COLUMN kind text NOT NULL DEFAULT 'remote' "
        "CHECK (kind IN ('area', 'near', 'rural', 'remote')), "
        "ADD COLUMN place text, ADD COLUMN country_code text, ADD COLUMN country text"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE cell_labels DROP COLUMN kind, DROP COLUMN place, "
        "DROP COLUMN country_code, DROP COLUMN country"
    )
