"""published_regions: room on each page, so that changed counts are updated in place

Revision ID: 0017f_regions_fill
Revises: 0016n_nearbyx

An incremental publish updates the count and version of every region row whose count
changed (~22,000 rows after a 1 % change at 1,000,000 members and 1,000 maps). Neither
column is in an index, so with free room on the row's page PostgreSQL updates it in
place (a HOT update) instead of adding an entry to the primary key, whose keys are
text. The other publish tables have had fillfactor 80 since 0014p_pubinc; rows written
from now on (the next full publish) leave the room.
"""

from alembic import op

revision = "0017f_regions_fill"
down_revision = "0016n_nearbyx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE published_regions SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE published_regions RESET (fillfactor)")
