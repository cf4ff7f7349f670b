"""Single-use, expiring tokens mailed to account owners (verification, password reset).

Only a token's SHA-256 is stored, so a copy of the database cannot be used to take over
accounts. A token is used up atomically (one ``UPDATE ... RETURNING``): two concurrent
uses of one token cannot both succeed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from geomap.auth.models import Account, AccountToken

LIFETIMES = {"verify": timedelta(hours=48), "reset": timedelta(hours=1)}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(session: Session, account_id: int, purpose: str, *,
          now: datetime | None = None) -> str:
    """Store a new token for ``account_id`` and ``purpose``; return the token to mail."""
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    session.add(AccountToken(token_hash=_digest(token), account_id=account_id,
                             purpose=purpose, created_at=now,
                             expires_at=now + LIFETIMES[purpose]))
    session.flush()
    return token


def _usable(token: str, purpose: str, now: datetime) -> list:
    return [AccountToken.token_hash == _digest(token), AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None), AccountToken.expires_at > now]


def peek(session: Session, token: str, purpose: str, *,
         now: datetime | None = None) -> Account | None:
    """Return the account of a usable ``token`` (unused, unexpired) without using it."""
    now = now or datetime.now(UTC)
    if len(token) > 100:
        return None
    return session.scalars(
        select(Account).join(AccountToken, AccountToken.account_id == Account.id)
        .where(*_usable(token, purpose, now))
    ).one_or_none()


def consume(session: Session, token: str, purpose: str, *,
            now: datetime | None = None) -> int | None:
    """Use up ``token``; return its account id, or None if it is unknown, used or expired.

    Every other unused token of the same purpose for that account is used up too
    (an older reset link stops working once a newer one, or itself, has been used).
    """
    now = now or datetime.now(UTC)
    if len(token) > 100:
        return None
    account_id = session.execute(
        update(AccountToken).where(*_usable(token, purpose, now))
        .values(used_at=now).returning(AccountToken.account_id)
    ).scalar_one_or_none()
    if account_id is not None:
        session.execute(
            update(AccountToken).where(AccountToken.account_id == account_id,
                                       AccountToken.purpose == purpose,
                                       AccountToken.used_at.is_(None)).values(used_at=now))
    return account_id
