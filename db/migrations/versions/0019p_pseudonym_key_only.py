"""Pseudonyms are unique through their folded key alone: drop members (pseudonym)'s unique index

Revision ID: 0019p_pseudonym_key_only
Revises: 0018d_dead_indexes

``members.pseudonym_key`` is a pure function of ``pseudonym``
(:func:`geomap.members.pseudonyms.pseudonym_key`) and has its own unique index, so two
members with one pseudonym would share a key: the unique index on ``pseudonym`` itself
could never refuse a row the key's index lets in. It was only kept up to date, and a
bulk load rebuilt it (0.65-0.75 s of a 1,000,000-member import). The one lookup by
pseudonym (a member's page, ``geomap.members.social.member_id_by_pseudonym``) now goes
through the key's index.
"""

from alembic import op

revision = "0019p_pseudonym_key_only"
down_revision = "0018d_dead_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE members DROP CONSTRAINT IF EXISTS uq_members_pseudonym")


def downgrade() -> None:
    op.execute("ALTER TABLE members ADD CONSTRAINT uq_members_pseudonym UNIQUE (pseudonym)")
