"""Helpers shared by the members tests: accounts, sign-in and JSON calls."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.auth.accounts import create_member_account
from geomap.members import queries
from tests.conftest import FLOOR


def add_member(session: Session, pseudonym: str, *, lat: float | None = None,
               lng: float | None = None, conditions: tuple[str, ...] = ("all",),
               visibility: str = "map", contactable: bool = True,
               role: str = "patient") -> tuple[int, int]:
    """Create a member with an account (and a location); return (account id, member id)."""
    account = create_member_account(session, pseudonym=pseudonym,
                                    email=f"{pseudonym}@example.org",
                                    password="correct horse battery",
                                    email_verified=True)
    queries.update_profile(session, account.member_id, role=role, visibility=visibility,
                           contactable=contactable, condition_slugs=list(conditions))
    if lat is not None:
        queries.set_location(session, account.member_id, lat, lng, floor=FLOOR,
                              allow_sea=True)
    session.flush()
    return account.id, account.member_id


def sign_in(client, account_id: int) -> None:  # noqa: ANN001
    """Sign a test client in as ``account_id`` (Flask-Login's session keys)."""
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(account_id)
        flask_session["_fresh"] = True


def csrf_token(client, url: str = "/settings") -> str:  # noqa: ANN001
    """Return a CSRF token from a page's form."""
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def member_point(session: Session, member_id: int) -> tuple[float, float]:
    """Return a member's exact point (tests only)."""
    return session.execute(
        text("SELECT ST_Y(location::geometry), ST_X(location::geometry) FROM member_locations "
             "WHERE member_id = :id"), {"id": member_id}).one()
