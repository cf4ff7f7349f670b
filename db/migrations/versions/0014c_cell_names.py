"""area labels cached per H3 cell: cell_area_names

Revision ID: 0014c_cell_names
Revises: 0014r_rss

A marker's area label (the most populous gazetteer place within about one cell edge of
its centre, else the country outline containing the centre) depends on its H3 cell
alone: its centre is the cell's centre. The viewport query computed it per marker and
per request (two spatial subqueries, 50–100 ms of a 1,000,000-member cache miss). The
labels' parts are now kept per cell, filled after each publish for the cells not yet
named (geomap.publish.cell_names) and emptied when places or outlines are re-imported.
Public reference data derived from places and countries: the public role reads it.
"""

from alembic import op

revision = "0014c_cell_names"
down_revision = "0014r_rss"
branch_labels = None
depends_on = None


def _if_public_role(statement: str) -> str:
    return (
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN "
        f"EXECUTE '{statement}'; END IF; END $$"
    )


def upgrade() -> None:
    op.execute(
        "CREATE TABLE cell_area_names ("
        "cell bigint PRIMARY KEY, place text, place_country text, place_country_code text, "
        "country text, country_code text)"
    )
    op.execute(_if_public_role("GRANT SELECT ON cell_area_names TO geomap_public"))


def downgrade() -> None:
    op.execute("DROP TABLE cell_area_names")
