"""locale: an account's language and time zone settings

Revision ID: 0013i_locale
Revises: 0013s_snapshots

Both are optional: without them the site follows ``?lang=``, the language cookie and
the browser's Accept-Language, and shows times in the browser's time zone (a cookie its
script sets) or in UTC.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013i_locale"
down_revision = "0013s_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("locale", sa.String(8), nullable=True))
    op.add_column("accounts", sa.Column("time_zone", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "time_zone")
    op.drop_column("accounts", "locale")
