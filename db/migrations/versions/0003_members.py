"""members

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:00:00

Connections between members, their messages, blocks, reports of messages, the nearby
index (condition, floor cell, member) and the place label of each floor cell (computed
from the cell centre, cached).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _member_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["members.id"], name=op.f(f"fk_{table}_{column}_members"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'declined')", name=op.f("ck_connections_status")),
        sa.CheckConstraint("requester_id <> recipient_id", name=op.f("ck_connections_not_self")),
        _member_fk("requester_id", "connections"),
        _member_fk("recipient_id", "connections"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_connections_pair ON connections "
        "(least(requester_id, recipient_id), greatest(requester_id, recipient_id))"
    )
    op.create_index("ix_connections_recipient", "connections", ["recipient_id", "status"])
    op.create_index("ix_connections_requester", "connections", ["requester_id", "status"])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("sender_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_messages_connection_id_connections"),
            ondelete="CASCADE",
        ),
        _member_fk("sender_id", "messages"),
        _member_fk("recipient_id", "messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index("ix_messages_connection", "messages", ["connection_id", "id"])
    op.create_index("ix_messages_unread", "messages", ["recipient_id"],
                    postgresql_where=sa.text("read_at IS NULL"))
    op.create_table(
        "member_blocks",
        sa.Column("blocker_id", sa.BigInteger(), nullable=False),
        sa.Column("blocked_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("blocker_id <> blocked_id", name=op.f("ck_member_blocks_not_self")),
        _member_fk("blocker_id", "member_blocks"),
        _member_fk("blocked_id", "member_blocks"),
        sa.PrimaryKeyConstraint("blocker_id", "blocked_id", name=op.f("pk_member_blocks")),
    )
    op.create_index("ix_member_blocks_blocked", "member_blocks", ["blocked_id"])
    op.create_table(
        "message_reports",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_reports_message_id_messages"),
            ondelete="CASCADE",
        ),
        _member_fk("reporter_id", "message_reports"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_reports")),
    )
    op.create_index(op.f("ix_message_reports_message_id"), "message_reports", ["message_id"])
    op.create_index(op.f("ix_message_reports_reporter_id"), "message_reports", ["reporter_id"])
    op.create_table(
        "nearby_members",
        sa.Column("condition_id", sa.SmallInteger(), nullable=False),
        sa.Column("floor_cell", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        _member_fk("member_id", "nearby_members"),
        sa.PrimaryKeyConstraint("condition_id", "floor_cell", "member_id",
                                name=op.f("pk_nearby_members")),
    )
    op.create_index("ix_nearby_members_member", "nearby_members", ["member_id"])
    op.execute(
        "INSERT INTO nearby_members (condition_id, floor_cell, member_id) "
        "SELECT mc.condition_id, ml.floor_cell, m.id FROM members m "
        "JOIN member_locations ml ON ml.member_id = m.id "
        "JOIN member_conditions mc ON mc.member_id = m.id "
        "WHERE m.visibility = 'map' AND m.contactable"
    )
    op.create_table(
        "cell_labels",
        sa.Column("floor_cell", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("label", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("floor_cell", name=op.f("pk_cell_labels")),
    )


def downgrade() -> None:
    op.drop_table("cell_labels")
    op.drop_table("nearby_members")
    op.drop_table("message_reports")
    op.drop_table("member_blocks")
    op.drop_table("messages")
    op.execute("DROP INDEX IF EXISTS uq_connections_pair")
    op.drop_table("connections")
