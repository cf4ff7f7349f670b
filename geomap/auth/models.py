"""Accounts: how a person signs in. Members are the public side (pseudonym)."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from geomap.database import Base


class Account(UserMixin, Base):
    """A sign-in: email and password hash, a member profile and/or the admin role."""

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

    @property
    def can_moderate(self) -> bool:
        """Return whether this account may use the moderation queue (moderators, admins)."""
        return bool(self.is_moderator or self.is_admin)

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)


def normalise_email(email: str) -> str:
    """Return ``email`` trimmed and lower-cased, the form accounts are stored in."""
    return email.strip().lower()
