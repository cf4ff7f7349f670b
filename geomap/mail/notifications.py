"""Batched notifications: at most one mail an hour per member about requests and messages.

Members opt in (``accounts.notify_by_email``). Each run finds, for every opted-in,
verified member not mailed in the last hour, the pending connection requests and unread
messages addressed to them since the last mail, and sends one mail with the counts only
(never what anyone wrote), a sign-in link and an unsubscribe link (also as
``List-Unsubscribe`` with one-click ``List-Unsubscribe-Post``, RFC 8058). Rows are
claimed with ``FOR UPDATE SKIP LOCKED``, so several processes may run it at once.
Runs from the serve-time scheduler, or by hand with ``geomap mail notify``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import text
from sqlalchemy.engine import Engine

from geomap import mail
from geomap.config import secret_key
from geomap.i18n import N_
from geomap.session import session_scope

log = logging.getLogger(__name__)

MIN_GAP = timedelta(hours=1)

_DUE = text(
    """
    SELECT a.id, a.email, a.locale, m.pseudonym,
           (SELECT count(*) FROM connections c
             WHERE c.recipient_id = a.member_id AND c.status = 'pending'
               AND c.created_at > coalesce(a.notified_until, a.created_at)
               AND c.created_at <= :now) AS requests,
           (SELECT count(*) FROM messages x
             WHERE x.recipient_id = a.member_id AND x.read_at IS NULL
               AND x.created_at > coalesce(a.notified_until, a.created_at)
               AND x.created_at <= :now) AS messages
      FROM accounts a JOIN members m ON m.id = a.member_id
     WHERE a.notify_by_email AND a.email_verified_at IS NOT NULL
       AND (a.notified_at IS NULL OR a.notified_at <= :now - :gap)
       AND a.id > :after
     ORDER BY a.id
     LIMIT 1
       FOR UPDATE OF a SKIP LOCKED
    """
)


@dataclass(frozen=True)
class NotifyRun:
    """What one run did: mails sent and failed."""

    sent: int
    failed: int


def unsubscribe_token(settings: Mapping[str, Any], account_id: int) -> str:
    """Return the signed token of ``account_id``'s unsubscribe link."""
    return _serializer(settings).dumps(account_id)


def unsubscribe_account(settings: Mapping[str, Any], token: str) -> int | None:
    """Return the account id signed into an unsubscribe ``token``, or None if forged."""
    try:
        value = _serializer(settings).loads(token)
    except BadData:
        return None
    return value if isinstance(value, int) else None


def _serializer(settings: Mapping[str, Any]) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key(settings), salt="geomap-unsubscribe")


def send_notifications(engine: Engine, settings: Mapping[str, Any], *,
                       now: datetime | None = None) -> NotifyRun:
    """Mail every member who is due a notification; return how many mails went out.

    ``now`` (default: the clock) bounds which requests and messages count and when the
    hourly gap ends. Each member is handled in their own transaction: a failed mail leaves
    them due for the next run.
    """
    now = now or datetime.now(UTC)
    base = mail.base_url(settings)
    sent = failed = 0
    after = 0
    while True:
        with session_scope(engine) as session:
            row = session.execute(_DUE, {"now": now, "gap": MIN_GAP, "after": after}).first()
            if row is None:
                break
            after = row.id
            if row.requests + row.messages == 0:
                continue
            unsubscribe = f"{base}/unsubscribe/{unsubscribe_token(settings, row.id)}"
            body = mail.render("notification", locale=row.locale, pseudonym=row.pseudonym,
                               requests=row.requests, messages=row.messages,
                               link=f"{base}/connections", unsubscribe_link=unsubscribe)
            subject = mail.translate(N_("New on geomap: connection requests and messages"),
                                     row.locale)
            message = mail.build(settings, to=row.email, subject=subject, body=body, headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            })
            try:
                mail.deliver(settings, message)
            except mail.MailError as exc:
                log.error("notification not sent: %s", exc)
                failed += 1
                continue
            session.execute(
                text("UPDATE accounts SET notified_at = :now, notified_until = :now "
                     "WHERE id = :id"), {"now": now, "id": row.id})
            sent += 1
    return NotifyRun(sent=sent, failed=failed)
