"""deep zoom: the key deriver's prepared structures, stored once per database

Revision ID: 0013g_deepzoom
Revises: 0013i_locale

``geo_prepared`` holds one ``.npz`` archive (no pickles) of the structures a key
deriver needs (subdivided outlines, densified coast vertices, gazetteer places and the
outline each lies in), written by ``geomap geo import`` or by the first deriver, and
deleted whenever places or outlines are reloaded (geomap/geo/prepared.py). Stored
uncompressed (EXTERNAL): the archive is float vectors that do not compress, and reading
it must be fast.
"""

from alembic import op

revision = "0013g_deepzoom"
down_revision = "0013i_locale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE geo_prepared (name text PRIMARY KEY, data bytea NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("ALTER TABLE geo_prepared ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("DROP TABLE geo_prepared")
