"""moderation: lifting a suspension is logged

Revision ID: 0012g_gaps
Revises: 0008a_geography

The moderation audit log accepts the action ``unsuspend`` (a moderator lifts a
member's suspension).
"""

from alembic import op

revision = "0012g_gaps"
down_revision = "0008a_geography"
branch_labels = None
depends_on = None

BEFORE = "('dismiss', 'warn', 'hide', 'suspend', 'delete')"
AFTER = "('dismiss', 'warn', 'hide', 'suspend', 'delete', 'unsuspend')"


def upgrade() -> None:
    """Allow ``unsuspend`` in the moderation log."""
    op.drop_constraint(op.f("ck_moderation_log_action"), "moderation_log", type_="check")
    op.create_check_constraint(op.f("ck_moderation_log_action"), "moderation_log",
                               f"action IN {AFTER}")


def downgrade() -> None:
    """Forget lifted suspensions in the log, then restore the old check."""
    op.execute("DELETE FROM moderation_log WHERE action = 'unsuspend'")
    op.drop_constraint(op.f("ck_moderation_log_action"), "moderation_log", type_="check")
    op.create_check_constraint(op.f("ck_moderation_log_action"), "moderation_log",
                               f"action IN {BEFORE}")
