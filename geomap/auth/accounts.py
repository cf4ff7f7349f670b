"""Creating and finding accounts (query functions; no HTTP here)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geomap.auth.models import Account, normalise_email
from geomap.members.pseudonyms import pseudonym_key
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
    key = pseudonym_key(pseudonym)
    if session.scalars(select(Member.id).where(Member.pseudonym_key == key)).first():
        raise AccountError("This pseudonym is taken (or one that looks the same); "
                           "please choose another.")
    member = Member(pseudonym=pseudonym, pseudonym_key=key, role="patient", visibility="map",
                    contactable=True)
    session.add(member)
    session.flush()
    account = Account(email=normalise_email(email), member_id=member.id, is_admin=False)
    account.set_password(password)
    session.add(account)
    session.flush()
    return account


STAFF_ROLES = ("admin", "moderator")


def create_admin(session: Session, *, email: str, password: str,
                 role: str = "admin") -> Account:
    """Create a staff account (``role`` admin or moderator), or give an existing one the role.

    Admins read counts and the moderation log and may moderate; moderators handle the
    report queue only. Raises AccountError for another role.
    """
    if role not in STAFF_ROLES:
        raise AccountError(f"The role must be one of {', '.join(STAFF_ROLES)}.")
    account = find_by_email(session, email)
    if account is None:
        account = Account(email=normalise_email(email), is_admin=False, is_moderator=False)
        session.add(account)
    if role == "admin":
        account.is_admin = True
    else:
        account.is_moderator = True
    account.set_password(password)
    session.flush()
    return account
