"""Connections between members: requests, answers, threads, blocks and reports.

Members know each other only by pseudonym; nothing here reads an email or a location.
Every function takes the acting member's id and returns only what that member may see:
anything else is :class:`MemberNotFoundError`, so ids of other people's threads leak nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.members.errors import MemberConflictError, MemberInputError, MemberNotFoundError
from geomap.members.models import MESSAGE_MAX, REPORT_MAX, REQUEST_MAX
from geomap.members.pseudonyms import pseudonym_key


@dataclass(frozen=True)
class ConnectionSummary:
    """A connection as one of its two members sees it."""

    id: int
    other: str
    other_role: str
    incoming: bool
    status: str
    message: str
    created_at: datetime
    unread: int
    blocked: bool
    other_introduction: str = ""  # the other member's optional profile
    other_age_group: str | None = None
    other_treatment_phase: str | None = None


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a thread (a message a moderator hid has an empty body)."""

    id: int
    sender: str
    mine: bool
    body: str
    created_at: datetime
    hidden: bool = False
    connection_id: int | None = None


@dataclass(frozen=True)
class Thread:
    """An accepted connection's messages, as one of its members sees them."""

    connection: ConnectionSummary
    messages: tuple[ThreadMessage, ...]
    can_write: bool


@dataclass(frozen=True)
class UnreadCounts:
    """What waits for a member: connection requests and unread messages."""

    requests: int
    messages: int

    @property
    def total(self) -> int:
        """Return requests plus messages."""
        return self.requests + self.messages


def _text(value: str | None, name: str, limit: int, *, required: bool) -> str:
    """Return member text trimmed; raise MemberInputError if empty (when required) or long."""
    cleaned = (value or "").strip()
    if "\x00" in cleaned:
        raise MemberInputError(_('The %(name)s holds a NUL character.', name=name))
    if required and not cleaned:
        raise MemberInputError(_('The %(name)s is empty.', name=name))
    if len(cleaned) > limit:
        raise MemberInputError(_('The %(name)s is too long: at most %(limit)s characters.',
                                 name=name, limit=limit))
    return cleaned


def member_id_by_pseudonym(session: Session, pseudonym: str) -> int:
    """Return the id of the member called ``pseudonym``; raise MemberNotFoundError otherwise."""
    if len(pseudonym) > 64 or "\x00" in pseudonym:
        raise MemberNotFoundError(_("There is no such member."))
    # Through the key's unique index (the pseudonym has none of its own).
    found = session.execute(
        text("SELECT id FROM members WHERE pseudonym_key = :key AND pseudonym = :p"),
        {"key": pseudonym_key(pseudonym), "p": pseudonym},
    ).scalar_one_or_none()
    if found is None:
        raise MemberNotFoundError(_("There is no such member."))
    return int(found)


NOT_FINDABLE = _l(
    "Only members who can be found can search nearby and send requests: choose "
    "\"On the map\" under Visibility in your settings. It is fair both ways: people you "
    "find can find you too, and your exact location is never shown to anyone."
)
SUSPENDED = _l("A moderator has suspended your account: you cannot contact members for now. "
               "You can still read your conversations, export or delete your data.")


# A connection's status as the members on either end see it.
CONNECTION_STATES = {"pending": "requested", "accepted": "connected", "declined": "declined"}


def reach_problem(session: Session, member_id: int) -> str | None:
    """Return why ``member_id`` may not search nearby or send requests, or None if they may.

    Reciprocity: only members who can be found (visibility "map") may look for others;
    suspended members may contact nobody.
    """
    visibility, suspended = session.execute(
        text("SELECT visibility, suspended_at IS NOT NULL FROM members WHERE id = :id"),
        {"id": member_id},
    ).one()
    return reach_problem_of(visibility, suspended)


def reach_problem_of(visibility: str, suspended: bool) -> str | None:
    """Return :func:`reach_problem` from a member's visibility and suspension, read already."""
    if suspended:
        return SUSPENDED
    if visibility != "map":
        return NOT_FINDABLE
    return None


def connection_states(session: Session, member_id: int, others: list[int]) -> dict[int, str]:
    """Return, for each of ``others`` ``member_id`` has a connection with, its state.

    States: ``"requested"`` (a request waits, either way), ``"connected"`` (accepted) or
    ``"declined"``. Members with no connection are absent.
    """
    if not others:
        return {}
    rows = session.execute(
        text("SELECT CASE WHEN requester_id = :me THEN recipient_id ELSE requester_id END, "
             "status FROM connections WHERE (requester_id = :me AND recipient_id = ANY(:ids)) "
             "OR (recipient_id = :me AND requester_id = ANY(:ids))"),
        {"me": member_id, "ids": others},
    ).all()
    return {int(other): CONNECTION_STATES[status] for other, status in rows}


def blocked_either_way(session: Session, a: int, b: int) -> bool:
    """Return whether either member has blocked the other."""
    return bool(session.execute(
        text("SELECT EXISTS (SELECT 1 FROM member_blocks WHERE "
             "(blocker_id = :a AND blocked_id = :b) OR (blocker_id = :b AND blocked_id = :a))"),
        {"a": a, "b": b},
    ).scalar_one())


def request_connection(session: Session, requester_id: int, pseudonym: str,
                       message: str | None) -> int:
    """Send a connection request with a short message; return the connection id."""
    body = _text(message, "message", REQUEST_MAX, required=False)
    recipient = member_id_by_pseudonym(session, pseudonym)
    if recipient == requester_id:
        raise MemberInputError(_("You cannot connect with yourself."))
    problem = reach_problem(session, requester_id)
    if problem:
        raise MemberConflictError(problem)
    contactable = session.execute(
        text("SELECT contactable AND suspended_at IS NULL FROM members WHERE id = :id"),
        {"id": recipient},
    ).scalar_one()
    if not contactable or blocked_either_way(session, requester_id, recipient):
        raise MemberConflictError(_("This member cannot be contacted."))
    existing = session.execute(
        text("SELECT id, status FROM connections WHERE least(requester_id, recipient_id) = "
             "least(CAST(:a AS bigint), CAST(:b AS bigint)) AND greatest(requester_id, "
             "recipient_id) = greatest(CAST(:a AS bigint), CAST(:b AS bigint))"),
        {"a": requester_id, "b": recipient},
    ).one_or_none()
    if existing is not None:
        raise MemberConflictError(_("You already have a connection or request with this member."))
    return int(session.execute(
        text("INSERT INTO connections (requester_id, recipient_id, status, message) "
             "VALUES (:a, :b, 'pending', :message) RETURNING id"),
        {"a": requester_id, "b": recipient, "message": body},
    ).scalar_one())


_SUMMARY = (
    "SELECT c.id, o.pseudonym, o.role, c.recipient_id = :me, c.status, c.message, "
    "c.created_at, (SELECT count(*) FROM messages m WHERE m.connection_id = c.id "
    "AND m.recipient_id = :me AND m.read_at IS NULL), EXISTS (SELECT 1 FROM member_blocks b "
    "WHERE (b.blocker_id = :me AND b.blocked_id = o.id) OR "
    "(b.blocker_id = o.id AND b.blocked_id = :me)), o.introduction, o.age_group, "
    "o.treatment_phase FROM connections c JOIN members o ON o.id = CASE WHEN c.requester_id = :me "
    "THEN c.recipient_id ELSE c.requester_id END "
    "WHERE :me IN (c.requester_id, c.recipient_id)"
)


def connections(session: Session, member_id: int) -> list[ConnectionSummary]:
    """Return a member's connections and requests, newest first."""
    rows = session.execute(text(_SUMMARY + " ORDER BY c.created_at DESC, c.id DESC"),
                           {"me": member_id}).all()
    return [ConnectionSummary(*row) for row in rows]


def connection(session: Session, member_id: int, connection_id: int) -> ConnectionSummary:
    """Return one of a member's connections; raise MemberNotFoundError for anyone else's."""
    row = session.execute(text(_SUMMARY + " AND c.id = :cid"),
                          {"me": member_id, "cid": connection_id}).one_or_none()
    if row is None:
        raise MemberNotFoundError(_("There is no such connection."))
    return ConnectionSummary(*row)


def respond(session: Session, member_id: int, connection_id: int, accept: bool) -> None:
    """Accept or decline a request addressed to ``member_id``."""
    summary = connection(session, member_id, connection_id)
    if not summary.incoming or summary.status != "pending":
        raise MemberConflictError(_("This request is not waiting for your answer."))
    if accept and summary.blocked:
        raise MemberConflictError(_("This member cannot be contacted."))
    session.execute(
        text("UPDATE connections SET status = :status, responded_at = now() WHERE id = :id"),
        {"status": "accepted" if accept else "declined", "id": connection_id},
    )


def thread(session: Session, member_id: int, connection_id: int) -> Thread:
    """Return an accepted connection's messages and mark those to ``member_id`` read."""
    summary = connection(session, member_id, connection_id)
    if summary.status != "accepted":
        raise MemberNotFoundError(_("There is no conversation here yet."))
    rows = session.execute(
        text("SELECT m.id, s.pseudonym, m.sender_id = :me, "
             "CASE WHEN m.hidden_at IS NULL THEN m.body ELSE '' END, m.created_at, "
             "m.hidden_at IS NOT NULL FROM messages m JOIN members s ON s.id = m.sender_id "
             "WHERE m.connection_id = :cid ORDER BY m.id"),
        {"me": member_id, "cid": connection_id},
    ).all()
    session.execute(
        text("UPDATE messages SET read_at = now() WHERE connection_id = :cid "
             "AND recipient_id = :me AND read_at IS NULL"),
        {"me": member_id, "cid": connection_id},
    )
    suspended = reach_problem(session, member_id) == SUSPENDED
    return Thread(summary, tuple(ThreadMessage(*row) for row in rows),
                  not summary.blocked and not suspended)


def send_message(session: Session, member_id: int, connection_id: int,
                 body: str | None) -> int:
    """Add a message to an accepted connection's thread; return its id."""
    cleaned = _text(body, "message", MESSAGE_MAX, required=True)
    summary = connection(session, member_id, connection_id)
    if summary.status != "accepted":
        raise MemberConflictError(_("You can write once your request is accepted."))
    if summary.blocked:
        raise MemberConflictError(_("This member cannot be contacted."))
    if reach_problem(session, member_id) == SUSPENDED:
        raise MemberConflictError(SUSPENDED)
    other = member_id_by_pseudonym(session, summary.other)
    return int(session.execute(
        text("INSERT INTO messages (connection_id, sender_id, recipient_id, body) "
             "VALUES (:cid, :me, :other, :body) RETURNING id"),
        {"cid": connection_id, "me": member_id, "other": other, "body": cleaned},
    ).scalar_one())


def block(session: Session, member_id: int, pseudonym: str) -> None:
    """Block a member: no requests, messages or nearby listing between the two any more."""
    other = member_id_by_pseudonym(session, pseudonym)
    if other == member_id:
        raise MemberInputError(_("You cannot block yourself."))
    session.execute(
        text("INSERT INTO member_blocks (blocker_id, blocked_id) VALUES (:me, :other) "
             "ON CONFLICT DO NOTHING"),
        {"me": member_id, "other": other},
    )
    session.execute(
        text("DELETE FROM connections WHERE status = 'pending' AND "
             "((requester_id = :me AND recipient_id = :other) OR "
             "(requester_id = :other AND recipient_id = :me))"),
        {"me": member_id, "other": other},
    )


def unblock(session: Session, member_id: int, pseudonym: str) -> None:
    """Lift a block ``member_id`` set."""
    other = member_id_by_pseudonym(session, pseudonym)
    session.execute(
        text("DELETE FROM member_blocks WHERE blocker_id = :me AND blocked_id = :other"),
        {"me": member_id, "other": other},
    )


def blocked_members(session: Session, member_id: int) -> list[str]:
    """Return the pseudonyms ``member_id`` has blocked."""
    return list(session.execute(
        text("SELECT o.pseudonym FROM member_blocks b JOIN members o ON o.id = b.blocked_id "
             "WHERE b.blocker_id = :me ORDER BY o.pseudonym"),
        {"me": member_id},
    ).scalars())


def reportable_message(session: Session, member_id: int, message_id: int) -> ThreadMessage:
    """Return a message someone else sent to ``member_id``; MemberNotFoundError otherwise."""
    row = session.execute(
        text("SELECT m.id, s.pseudonym, false, CASE WHEN m.hidden_at IS NULL THEN m.body "
             "ELSE '' END, m.created_at, m.hidden_at IS NOT NULL, m.connection_id "
             "FROM messages m JOIN members s ON s.id = m.sender_id "
             "WHERE m.id = :mid AND m.recipient_id = :me"),
        {"mid": message_id, "me": member_id},
    ).one_or_none()
    if row is None:
        raise MemberNotFoundError(_("There is no such message."))
    return ThreadMessage(*row)


def report_message(session: Session, member_id: int, message_id: int,
                   reason: str | None) -> None:
    """Report a message the member can see (one of their threads) to moderators.

    The reason is required (moderators act on it); MemberInputError without one.
    """
    cleaned = _text(reason, "reason", REPORT_MAX, required=True)
    visible = session.execute(
        text("SELECT EXISTS (SELECT 1 FROM messages m JOIN connections c "
             "ON c.id = m.connection_id WHERE m.id = :mid "
             "AND :me IN (c.requester_id, c.recipient_id))"),
        {"mid": message_id, "me": member_id},
    ).scalar_one()
    if not visible:
        raise MemberNotFoundError(_("There is no such message."))
    session.execute(
        text("INSERT INTO message_reports (message_id, reporter_id, reason) "
             "VALUES (:mid, :me, :reason)"),
        {"mid": message_id, "me": member_id, "reason": cleaned},
    )


@dataclass(frozen=True)
class ModerationNotice:
    """What a moderator told a member: a warning to read, or a suspension."""

    warning: str | None
    suspended: bool


def moderation_notice(session: Session, member_id: int) -> ModerationNotice | None:
    """Return the member's warning or suspension, None when there is neither."""
    row = session.execute(
        text("SELECT warning, suspended_at IS NOT NULL FROM members WHERE id = :id"),
        {"id": member_id},
    ).one_or_none()
    if row is None or not (row[0] or row[1]):
        return None
    from geomap.moderation.queue import DEFAULT_WARNING

    warning = _(DEFAULT_WARNING) if row[0] == DEFAULT_WARNING else row[0]
    return ModerationNotice(warning, bool(row[1]))


def unread_counts(session: Session, member_id: int) -> UnreadCounts:
    """Return the requests waiting for an answer and the unread messages of a member."""
    requests, messages = session.execute(
        text("SELECT (SELECT count(*) FROM connections WHERE recipient_id = :me "
             "AND status = 'pending'), (SELECT count(*) FROM messages WHERE "
             "recipient_id = :me AND read_at IS NULL)"),
        {"me": member_id},
    ).one()
    return UnreadCounts(int(requests), int(messages))
