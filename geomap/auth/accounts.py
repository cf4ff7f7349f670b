"""Creating and finding accounts (query functions; no HTTP here)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geomap.auth.models import Account, normalise_email
from geomap.models import Member


class AccountError(ValueError):
    """An account cannot be created; the message says why (safe to show)."""


def find_by_email(session: Session, email: str) -> Account | None:
    """Return the account with ``email``, or None."""
    return session.scalars(
        select(Account).where(Account.email == normalise_email(email))
    ).one_or_none()


def create_member_account(session: Session, *, pseudonym: str, email: str,
                          password: str) -> Account:
    """Create a member (hidden until they join a map) and their account."""
    pseudonym = pseudonym.strip()
    if find_by_email(session, email):
        raise AccountError("An account with this email exists already.")
    if session.scalars(select(Member.id).where(Member.pseudonym == pseudonym)).first():
        raise AccountError("This pseudonym is taken; please choose another.")
    member = Member(pseudonym=pseudonym, role="patient", visibility="map", contactable=True)
    session.add(member)
    session.flush()
    account = Account(email=normalise_email(email), member_id=member.id, is_admin=False)
    account.set_password(password)
    session.add(account)
    session.flush()
    return account


def create_admin(session: Session, *, email: str, password: str) -> Account:
    """Create an admin account, or make an existing account an admin with this password."""
    account = find_by_email(session, email)
    if account is None:
        account = Account(email=normalise_email(email), is_admin=True)
        session.add(account)
    account.is_admin = True
    account.set_password(password)
    session.flush()
    return account
