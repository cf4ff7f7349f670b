"""Accounts: how a person signs in. Members are the public side (pseudonym)."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geomap.auth import passwords
from geomap.database import Base


class Account(UserMixin, Base):
    """A sign-in: email and password hash, a member profile and/or the admin role.

    ``session_version`` is part of every session cookie's user id: bumping it (sign-out,
    password change or reset) ends every session of the account at once.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    member_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), unique=True
    )
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_moderator: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    health_data_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    terms_accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    notify_by_email: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default="false")
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notified_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locale: Mapped[str | None] = mapped_column(String(8))  # "de"; None: follow the browser
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA; None: the browser's

    @property
    def email_verified(self) -> bool:
        """Whether the owner has followed the verification link (admins count as verified)."""
        return self.email_verified_at is not None

    def get_id(self) -> str:
        """Return the session's user id: ``"<account id>.<session version>"``."""
        return f"{self.id}.{self.session_version}"

    @property
    def can_moderate(self) -> bool:
        """Return whether this account may use the moderation queue (moderators, admins)."""
        return bool(self.is_moderator or self.is_admin)

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash of ``password``."""
        self.password_hash = passwords.hash_password(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` matches the stored hash."""
        return passwords.verify(self.password_hash, password)


class AccountToken(Base):
    """A mailed single-use token (its SHA-256 only): email verification or password reset."""

    __tablename__ = "account_tokens"
    __table_args__ = (CheckConstraint("purpose IN ('verify', 'reset')", name="purpose"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def normalise_email(email: str) -> str:
    """Return ``email`` trimmed and lower-cased, the form accounts are stored in."""
    return email.strip().lower()
