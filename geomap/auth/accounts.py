"""Creating, finding and securing accounts (query functions; no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from geomap.auth import passwords
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


def pseudonym_taken(session: Session, pseudonym: str) -> bool:
    """Return whether a member uses ``pseudonym`` or a look-alike of it (same pseudonym key)."""
    key = pseudonym_key(pseudonym.strip())
    return session.scalars(select(Member.id).where(Member.pseudonym_key == key)).first() is not None


def create_member_account(session: Session, *, pseudonym: str, email: str,
                          password: str, email_verified: bool = False,
                          consented: bool = False) -> Account:
    """Create a member (hidden until they join a map) and their account.

    ``consented`` records now as the time the member consented to storing health data
    and accepted the terms; ``email_verified`` marks the email verified (bulk and test
    accounts; sign-up leaves it to the mailed link).
    """
    pseudonym = pseudonym.strip()
    if find_by_email(session, email):
        raise AccountError(_("An account with this email exists already."))
    if pseudonym_taken(session, pseudonym):
        raise AccountError(_("This pseudonym is taken (or one that looks the same); "
                           "please choose another."))
    member = Member(pseudonym=pseudonym, pseudonym_key=pseudonym_key(pseudonym), role="patient",
                    visibility="map", contactable=True)
    session.add(member)
    session.flush()
    now = datetime.now(UTC)
    account = Account(email=normalise_email(email), member_id=member.id, is_admin=False,
                      email_verified_at=now if email_verified else None,
                      health_data_consent_at=now if consented else None,
                      terms_accepted_at=now if consented else None)
    account.set_password(password)
    session.add(account)
    session.flush()
    return account


@dataclass(frozen=True)
class Registration:
    """What a sign-up did: ``account`` is the new account, or None if the email had one."""

    account: Account | None
    existing: Account | None


def register(session: Session, *, pseudonym: str, email: str, password: str) -> Registration:
    """Sign up: create an unverified, consenting member account unless the email has one.

    Both outcomes do the same password hashing work. Raises AccountError for a taken
    pseudonym (pseudonyms are public, so saying so reveals nothing).
    """
    if pseudonym_taken(session, pseudonym):
        raise AccountError(_("This pseudonym is taken; please choose another."))
    existing = find_by_email(session, email)
    if existing is not None:
        passwords.dummy_hash_work(password)
        return Registration(account=None, existing=existing)
    account = create_member_account(session, pseudonym=pseudonym, email=email,
                                    password=password, consented=True)
    return Registration(account=account, existing=None)


def authenticate(session: Session, email: str, password: str) -> Account | None:
    """Return the account for ``email`` and ``password``, or None.

    An unknown email costs the same scrypt work as a wrong password.
    """
    account = find_by_email(session, email)
    ok = passwords.verify_or_dummy(account.password_hash if account else None, password)
    return account if ok else None


def end_sessions(account: Account) -> None:
    """End every session of ``account`` (their cookies carry the old session version)."""
    account.session_version = (account.session_version or 0) + 1


def change_password(account: Account, password: str) -> None:
    """Set a new password and end every session of the account."""
    account.set_password(password)
    end_sessions(account)


def mark_verified(account: Account) -> None:
    """Record now as the time the account's email was verified (kept if verified already)."""
    if account.email_verified_at is None:
        account.email_verified_at = datetime.now(UTC)


STAFF_ROLES = ("admin", "moderator")


def create_admin(session: Session, *, email: str, password: str,
                 role: str = "admin") -> Account:
    """Create a staff account (``role`` admin or moderator), or give an existing one the role.

    Admins read counts and the moderation log and may moderate; moderators handle the
    report queue only. An existing account gets the new password and its sessions end.
    Raises AccountError for another role.
    """
    if role not in STAFF_ROLES:
        raise AccountError(_('The role must be one of %(value)s.', value=', '.join(STAFF_ROLES)))
    account = find_by_email(session, email)
    if account is None:
        account = Account(email=normalise_email(email), is_admin=False, is_moderator=False,
                          session_version=0)
        session.add(account)
    else:
        end_sessions(account)  # a new password: the old sessions end
    if role == "admin":
        account.is_admin = True
    else:
        account.is_moderator = True
    if account.email_verified_at is None:
        account.email_verified_at = datetime.now(UTC)  # the operator vouches for it
    account.set_password(password)
    session.flush()
    return account
