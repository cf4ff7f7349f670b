"""account safety: email verification, consent, session versions, tokens, notifications

Revision ID: 0009m_accounts
Revises: 0005
Create Date: 2026-11-30 18:00:00

Accounts gain: when the email was verified, when the member consented to storing health
data and accepted the terms, a session version (bumped to end every session), and the
notification choice with the last mail sent. ``account_tokens`` holds the hashes of
single-use, expiring tokens mailed for verification and password reset. Accounts that
existed before count as verified (they were made before verification existed).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009m_accounts"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("health_data_consent_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("terms_accepted_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("session_version", sa.Integer(), nullable=False,
                                        server_default="0"))
    op.add_column("accounts", sa.Column("notify_by_email", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column("accounts", sa.Column("notified_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("notified_until", sa.DateTime(timezone=True)))
    op.execute("UPDATE accounts SET email_verified_at = created_at")
    op.create_table(
        "account_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("purpose IN ('verify', 'reset')", name=op.f("ck_account_tokens_purpose")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_account_tokens_account_id_accounts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_account_tokens")),
    )
    op.create_index("ix_account_tokens_account_id", "account_tokens", ["account_id"])


def downgrade() -> None:
    op.drop_table("account_tokens")
    for column in ("notified_until", "notified_at", "notify_by_email", "session_version",
                   "terms_accepted_at", "health_data_consent_at", "email_verified_at"):
        op.drop_column("accounts", column)
