"""mail outbox: mails written in the transaction that caused them

Revision ID: 0013b_mail_outbox
Revises: 0013a_public_columns

A web request used to hand its mail (verification, reset, "already registered") to an
in-memory queue: a crash between the commit and the send lost the mail, and an SMTP
failure dropped it. The request now writes the mail into ``mail_outbox`` in its own
transaction; a background sender delivers committed rows and deletes them, retrying
failures with a growing delay (geomap/mail/outbox.py).
"""

from alembic import op

revision = "0013b_mail_outbox"
down_revision = "0013a_public_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE mail_outbox ("
        " id bigserial PRIMARY KEY,"
        " message bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " attempts integer NOT NULL DEFAULT 0,"
        " next_attempt_at timestamptz NOT NULL DEFAULT now(),"
        " last_error text)"
    )
    op.execute("CREATE INDEX ix_mail_outbox_next_attempt_at ON mail_outbox (next_attempt_at)")


def downgrade() -> None:
    op.execute("DROP TABLE mail_outbox")
