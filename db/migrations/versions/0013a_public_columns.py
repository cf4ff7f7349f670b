"""public role: published totals without the true member count

Revision ID: 0013a_public_columns
Revises: 0012s_soulmates_speed

``published_totals.members_on_map`` and ``publish_runs.members_on_map`` hold the true
number of memberships on a map, the remainder that the k-anonymous partition
publishes nowhere included (docs/privacy.md). They are for operators. The public
role (migration 0001_initial_schema) could read them; no public route did, but a future one
could subtract the published total from them and learn the remainder. The public role
now reads the other columns of both tables only (column privileges).
"""

from alembic import op

revision = "0013a_public_columns"
down_revision = "0012s_soulmates_speed"
branch_labels = None
depends_on = None

PUBLIC_COLUMNS = {
    "published_totals": "condition_id, resolution, published, version",
    "publish_runs": "version, kind, published_at, data_changed_at, seconds",
}


def _if_public_role(statement: str) -> str:
    return (
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'geomap_public') THEN "
        f"EXECUTE '{statement}'; END IF; END $$"
    )


def upgrade() -> None:
    for table, columns in PUBLIC_COLUMNS.items():
        op.execute(_if_public_role(f"REVOKE SELECT ON {table} FROM geomap_public"))
        op.execute(_if_public_role(f"GRANT SELECT ({columns}) ON {table} TO geomap_public"))


def downgrade() -> None:
    for table, columns in PUBLIC_COLUMNS.items():
        op.execute(_if_public_role(f"REVOKE SELECT ({columns}) ON {table} FROM geomap_public"))
        op.execute(_if_public_role(f"GRANT SELECT ON {table} TO geomap_public"))
