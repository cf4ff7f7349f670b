"""The mail outbox: a mail is a row written in the transaction that caused it.

A web request that mails (verification, reset, "already registered") calls
:func:`enqueue` before it commits, so the mail exists exactly when the account change
does: a rolled-back request sends nothing, and a crash after the commit loses nothing.
After the response, :func:`send_soon` starts this process's background sender for the
app, which delivers committed rows (:func:`send_pending`) and deletes each one sent. A
failed delivery stays in the outbox and is tried again after a growing delay (one
minute, doubling, at most an hour). The publish scheduler of ``geomap serve`` and
``geomap mail send`` also send what is pending, so mails left by a process that died
go out on the next tick.

Sending happens outside the request, so a request costs the same whether it mails or
not (no timing oracle on who has an account). A pending row holds the whole message,
links included, until it is sent; logs name the kind of failure only, never an address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from flask import Flask, after_this_request, current_app
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.mail import MailError, deliver

log = logging.getLogger(__name__)

BATCH = 20
"""Rows locked and sent per transaction."""

RETRY_FIRST = 60
"""Seconds before the first retry of a failed delivery; doubled per attempt."""

RETRY_MAX = 3600
"""Longest delay between two attempts, in seconds."""


@dataclass(frozen=True)
class OutboxRun:
    """What one :func:`send_pending` did: mails sent, failed now, and still waiting."""

    sent: int
    failed: int
    waiting: int


def enqueue(session: Session, message: EmailMessage) -> None:
    """Add ``message`` to the outbox in ``session``'s transaction (sent after commit)."""
    session.execute(text("INSERT INTO mail_outbox (message) VALUES (:message)"),
                    {"message": message.as_bytes()})


def send_pending(sessions: Callable[[], Session], settings: Mapping[str, Any]) -> OutboxRun:
    """Deliver every committed mail that is due, oldest first; return the counts.

    ``sessions`` makes sessions on the app's database. Rows are locked with ``SKIP
    LOCKED``, so several processes may send at once without sending a mail twice. A
    delivery that raises :class:`geomap.mail.MailError` stays, with its attempt count
    and the kind of error, until its next attempt is due.
    """
    sent = failed = 0
    with sessions() as session:
        while True:
            rows = session.execute(text(
                "SELECT id, message, attempts FROM mail_outbox WHERE next_attempt_at <= now() "
                "ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED"), {"batch": BATCH}).all()
            if not rows:
                break
            for row_id, raw, attempts in rows:
                message = BytesParser(policy=policy.SMTP).parsebytes(bytes(raw))
                try:
                    deliver(settings, message)  # type: ignore[arg-type]
                except MailError as exc:
                    failed += 1
                    delay = min(RETRY_FIRST * 2 ** attempts, RETRY_MAX)
                    session.execute(text(
                        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = :error, "
                        "next_attempt_at = now() + make_interval(secs => :delay) "
                        "WHERE id = :id"), {"error": str(exc), "delay": delay, "id": row_id})
                    log.error("%s (outbox mail %s, attempt %s)", exc, row_id, attempts + 1)
                else:
                    sent += 1
                    session.execute(text("DELETE FROM mail_outbox WHERE id = :id"), {"id": row_id})
            session.commit()
        waiting = session.execute(text("SELECT count(*) FROM mail_outbox")).scalar_one()
        session.commit()
    return OutboxRun(sent, failed, waiting)


# --- the background sender of a web process ------------------------------------------

_lock = threading.Lock()
_senders: dict[int, _Sender] = {}


class _Sender:
    """One app's background sender: drains the outbox, then ends until the next kick."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.again = True
        self.thread = threading.Thread(target=self._run, name="geomap-mail", daemon=True)

    def _run(self) -> None:
        sessions = self.app.extensions["geomap.sessions"]
        while True:
            with _lock:
                if not self.again:
                    _senders.pop(id(self.app), None)
                    return
                self.again = False
            try:
                send_pending(sessions, self.app.config)
            except Exception as exc:  # the scheduler or the next request retries
                log.error("mail outbox: sending failed: %s", type(exc).__name__)


def send_soon() -> None:
    """After this request's response, start sending the current app's pending mails.

    Call it where a request enqueued a mail; the view must commit before it returns.
    Tests that bind the app to one shared connection (``GEOMAP_SESSIONS``) send in the
    request's own thread instead, since a connection cannot serve two threads.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    @after_this_request
    def _kick(response: Any) -> Any:
        if app.config.get("GEOMAP_SESSIONS") is not None:
            send_pending(app.extensions["geomap.sessions"], app.config)
            return response
        with _lock:
            sender = _senders.get(id(app))
            if sender is not None:
                sender.again = True
                return response
            sender = _senders[id(app)] = _Sender(app)
            sender.thread.start()  # under the lock: flush never sees an unstarted thread
        return response


def flush(timeout: float = 30.0) -> bool:
    """Wait until this process's background senders are done; False if ``timeout`` (s) passed."""
    with _lock:
        threads = [sender.thread for sender in _senders.values()]
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            return False
    return True
