"""Tables of the members area: connections, messages, blocks, reports and cell labels.

Nothing here holds an exact location: ``nearby_members`` and ``cell_labels`` are keyed
by floor cell, and a cell's label is computed from the cell's centre.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geomap.database import Base

CONNECTION_STATUSES = ("pending", "accepted", "declined")
REPORT_STATUSES = ("open", "handled")
REPORT_ACTIONS = ("dismiss", "warn", "hide", "suspend", "delete")  # decisions on a report
MODERATION_ACTIONS = (*REPORT_ACTIONS, "unsuspend")  # what the audit log records
REQUEST_MAX = 500
MESSAGE_MAX = 2000
REPORT_MAX = 500


class Connection(Base):
    """A connection request from one member to another, and the thread it opens."""

    __tablename__ = "connections"
    __table_args__ = (
        CheckConstraint(f"status IN {CONNECTION_STATUSES!r}", name="status"),
        CheckConstraint("requester_id <> recipient_id", name="not_self"),
        # One connection per pair of members, whoever asked.
        Index("uq_connections_pair", text("least(requester_id, recipient_id)"),
              text("greatest(requester_id, recipient_id)"), unique=True),
        Index("ix_connections_recipient", "recipient_id", "status"),
        Index("ix_connections_requester", "requester_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requester_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE")
    )
    recipient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(10), default="pending")
    message: Mapped[str] = mapped_column(String(REQUEST_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """A message in the thread of an accepted connection."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_connection", "connection_id", "id"),
        Index("ix_messages_unread", "recipient_id", postgresql_where="read_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("connections.id", ondelete="CASCADE")
    )
    sender_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE")
    )
    recipient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE")
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # by a moderator


class Block(Base):
    """One member blocking another: no contact and no nearby listing, either way."""

    __tablename__ = "member_blocks"
    __table_args__ = (
        CheckConstraint("blocker_id <> blocked_id", name="not_self"),
        Index("ix_member_blocks_blocked", "blocked_id"),
    )

    blocker_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    blocked_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Report(Base):
    """A member's report of a message, with a reason, waiting in the moderation queue."""

    __tablename__ = "message_reports"
    __table_args__ = (
        CheckConstraint(f"status IN {REPORT_STATUSES!r}", name="status"),
        Index("ix_message_reports_open", "id", postgresql_where="status = 'open'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    reporter_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(REPORT_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[str] = mapped_column(String(10), default="open", server_default="open")
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModerationEntry(Base):
    """One moderator action, kept for admins to read (survives the accounts it names)."""

    __tablename__ = "moderation_log"
    __table_args__ = (CheckConstraint(f"action IN {MODERATION_ACTIONS!r}", name="action"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    moderator: Mapped[str] = mapped_column(String(254))  # the moderator's email
    action: Mapped[str] = mapped_column(String(10))
    report_id: Mapped[int | None] = mapped_column(BigInteger)  # no FK: reports may go
    subject: Mapped[str | None] = mapped_column(String(64))  # the pseudonym acted on
    note: Mapped[str] = mapped_column(String(1000), default="", server_default="")


class NearbyMember(Base):
    """Who nearby may list: members on the map and contactable, per condition and floor cell.

    Derived from the member tables (floor cells only, no points): kept in step by every
    change a member makes through geomap.members, and rebuilt by each publish (which
    brings in bulk imports). ``role`` is a copy of the member's, for the role filter;
    ``order_key`` a hash of the member id (generated by the database), the order a
    search rotates by the searcher's secret offset. Its primary key (condition, cell,
    order key, member) answers a nearby search by index alone, in order within a cell
    (migration 0016n_nearbyx).
    """

    __tablename__ = "nearby_members"
    __table_args__ = (Index("ix_nearby_members_member", "member_id"),)

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    floor_cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_key: Mapped[int] = mapped_column(
        BigInteger, Computed("hashint8extended(member_id, 16)", persisted=True),
        primary_key=True,
    )
    member_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(Text)


class CellLabel(Base):
    """The place label of a floor cell, computed once from the cell's centre.

    ``label`` is the English sentence; ``kind`` (area, near, rural, remote), ``place``
    (gazetteer name), ``country_code`` (ISO 3166-1 alpha-2) and ``country`` (English
    name) are its parts, from which :func:`geomap.i18n.formats.area_name` writes it in
    the viewer's language.
    """

    __tablename__ = "cell_labels"

    floor_cell: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(Text, server_default="remote")
    place: Mapped[str | None] = mapped_column(Text)
    country_code: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
