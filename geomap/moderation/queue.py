"""Query functions of moderation: open reports in context, actions, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.i18n import N_
from geomap.members.errors import MemberInputError, MemberNotFoundError
from geomap.members.models import REPORT_ACTIONS
from geomap.members.queries import delete_member
from geomap.publish.nearby_index import sync_member

CONTEXT_BEFORE = 3  # messages shown before the reported one
CONTEXT_AFTER = 2
QUEUE_PAGE = 50
NOTE_MAX = 1000
# Stored as written here (in English) and shown in the reader's language
# (geomap.members.social.moderation_notice translates it); a moderator's own note is
# shown as written.
DEFAULT_WARNING = N_("Please keep to the community rules: be kind, no advertising, no "
                     "medical advice that could harm.")


@dataclass(frozen=True)
class ContextMessage:
    """A message of the reported thread, as the moderator sees it."""

    id: int
    sender: str
    body: str
    created_at: datetime
    hidden: bool
    reported: bool


@dataclass(frozen=True)
class QueuedReport:
    """An open report with the reported message in its thread."""

    id: int
    created_at: datetime
    reason: str
    reporter: str
    sender: str
    sender_suspended: bool
    message_id: int
    context: tuple[ContextMessage, ...]


@dataclass(frozen=True)
class LogEntry:
    """One line of the moderation audit log."""

    id: int
    created_at: datetime
    moderator: str
    action: str
    report_id: int | None
    subject: str | None
    note: str


def open_reports(session: Session, limit: int = QUEUE_PAGE) -> list[QueuedReport]:
    """Return the oldest open reports first, each with its message in context."""
    rows = session.execute(
        text("SELECT r.id, r.created_at, r.reason, rep.pseudonym, snd.pseudonym, "
             "snd.suspended_at IS NOT NULL, m.id, m.connection_id FROM message_reports r "
             "JOIN messages m ON m.id = r.message_id "
             "JOIN members rep ON rep.id = r.reporter_id "
             "JOIN members snd ON snd.id = m.sender_id "
             "WHERE r.status = 'open' ORDER BY r.id LIMIT :limit"),
        {"limit": limit},
    ).all()
    return [QueuedReport(*row[:7], _context(session, row[7], row[6])) for row in rows]


def _context(session: Session, connection_id: int, message_id: int) -> tuple[ContextMessage, ...]:
    """Return the reported message with a few messages before and after it."""
    rows = session.execute(
        text("(SELECT m.id, s.pseudonym, m.body, m.created_at, m.hidden_at IS NOT NULL "
             "FROM messages m JOIN members s ON s.id = m.sender_id "
             "WHERE m.connection_id = :cid AND m.id <= :mid ORDER BY m.id DESC LIMIT :before) "
             "UNION ALL (SELECT m.id, s.pseudonym, m.body, m.created_at, "
             "m.hidden_at IS NOT NULL FROM messages m JOIN members s ON s.id = m.sender_id "
             "WHERE m.connection_id = :cid AND m.id > :mid ORDER BY m.id LIMIT :after) "
             "ORDER BY 1"),
        {"cid": connection_id, "mid": message_id, "before": CONTEXT_BEFORE + 1,
         "after": CONTEXT_AFTER},
    ).all()
    return tuple(ContextMessage(*row, row[0] == message_id) for row in rows)


def act(session: Session, *, report_id: int, action: str, moderator: str,
        note: str | None = None) -> str:
    """Carry out ``action`` on an open report, log it, close the report; return a summary.

    Actions: ``dismiss`` (nothing wrong), ``warn`` (the sender sees ``note`` or a default
    warning until they acknowledge it), ``hide`` (the message shows as hidden to both),
    ``suspend`` (the sender can contact nobody and is listed nowhere) and ``delete``
    (the sender's account and everything about them). Raises MemberInputError for an
    unknown action or a long note, MemberNotFoundError for a report that is not open.
    """
    if action not in REPORT_ACTIONS:
        raise MemberInputError(_('The action must be one of %(value)s.',
                                 value=', '.join(REPORT_ACTIONS)))
    note = (note or "").strip()
    if len(note) > NOTE_MAX or "\x00" in note:
        raise MemberInputError(_('The note has at most %(note_max)s characters.',
                                 note_max=NOTE_MAX))
    row = session.execute(
        text("SELECT r.message_id, m.sender_id, s.pseudonym FROM message_reports r "
             "JOIN messages m ON m.id = r.message_id JOIN members s ON s.id = m.sender_id "
             "WHERE r.id = :id AND r.status = 'open' FOR UPDATE OF r"),
        {"id": report_id},
    ).one_or_none()
    if row is None:
        raise MemberNotFoundError(_("This report is not open any more."))
    message_id, sender_id, sender = row
    session.execute(
        text("INSERT INTO moderation_log (moderator, action, report_id, subject, note) "
             "VALUES (:moderator, :action, :report, :subject, :note)"),
        {"moderator": moderator, "action": action, "report": report_id, "subject": sender,
         "note": note},
    )
    session.execute(
        text("UPDATE message_reports SET status = 'handled', handled_at = now() "
             "WHERE id = :id"), {"id": report_id},
    )
    if action == "warn":
        session.execute(text("UPDATE members SET warning = :warning WHERE id = :id"),
                        {"warning": note or DEFAULT_WARNING, "id": sender_id})
        return _("%(name)s is warned.", name=sender)
    if action == "hide":
        session.execute(text("UPDATE messages SET hidden_at = now() WHERE id = :id"),
                        {"id": message_id})
        return _("The message is hidden.")
    if action == "suspend":
        session.execute(text("UPDATE members SET suspended_at = now() WHERE id = :id"),
                        {"id": sender_id})
        sync_member(session, sender_id)
        return _("%(name)s is suspended.", name=sender)
    if action == "delete":
        delete_member(session, sender_id)
        return _("%(name)s's account is deleted.", name=sender)
    return _("The report is dismissed.")


@dataclass(frozen=True)
class SuspendedMember:
    """A suspended member, as the moderation page lists them."""

    id: int
    pseudonym: str
    suspended_at: datetime


def suspended_members(session: Session, limit: int = QUEUE_PAGE) -> list[SuspendedMember]:
    """Return suspended members, longest suspended first."""
    rows = session.execute(
        text("SELECT id, pseudonym, suspended_at FROM members "
             "WHERE suspended_at IS NOT NULL ORDER BY suspended_at, id LIMIT :limit"),
        {"limit": limit},
    ).all()
    return [SuspendedMember(*row) for row in rows]


def lift_suspension(session: Session, *, member_id: int, moderator: str,
                    note: str | None = None) -> str:
    """Lift a member's suspension, log it as ``unsuspend``; return a summary.

    The member may contact others again and is listed in nearby again (if their own
    choices allow it). Raises MemberInputError for a long note, MemberNotFoundError for
    a member who does not exist or is not suspended.
    """
    note = (note or "").strip()
    if len(note) > NOTE_MAX or "\x00" in note:
        raise MemberInputError(_('The note has at most %(note_max)s characters.',
                                 note_max=NOTE_MAX))
    pseudonym = session.execute(
        text("UPDATE members SET suspended_at = NULL "
             "WHERE id = :id AND suspended_at IS NOT NULL RETURNING pseudonym"),
        {"id": member_id},
    ).scalar_one_or_none()
    if pseudonym is None:
        raise MemberNotFoundError(_("This member is not suspended."))
    session.execute(
        text("INSERT INTO moderation_log (moderator, action, report_id, subject, note) "
             "VALUES (:moderator, 'unsuspend', NULL, :subject, :note)"),
        {"moderator": moderator, "subject": pseudonym, "note": note},
    )
    sync_member(session, member_id)
    return _("%(name)s's suspension is lifted.", name=pseudonym)


def audit_log(session: Session, limit: int = 200) -> list[LogEntry]:
    """Return the newest moderation log entries first."""
    rows = session.execute(
        text("SELECT id, created_at, moderator, action, report_id, subject, note "
             "FROM moderation_log ORDER BY id DESC LIMIT :limit"),
        {"limit": limit},
    ).all()
    return [LogEntry(*row) for row in rows]
