"""Accounts: sign up, sign in, sign out, CSRF, admin creation from the CLI.

Mail, verification, reset, enumeration, throttles and sessions: tests/test_accounts.py.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from geomap import create_app
from tests.conftest import app_config


@pytest.fixture
def fresh_app(fresh_db_url, tmp_path):
    """The app over an empty community database (CSRF on, as in production)."""
    return create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))


def csrf_token(client, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def sign_up(client, pseudonym: str = "brave-otter", email: str = "otter@example.org"):
    token = csrf_token(client, "/signup")
    return client.post("/signup", data={
        "csrf_token": token, "pseudonym": pseudonym, "email": email,
        "password": "correct horse battery", "confirm": "correct horse battery",
        "consent": "y", "terms": "y",
    })


def test_sign_up_creates_an_unverified_member_with_consent(fresh_app, fresh_db_url) -> None:
    client = fresh_app.test_client()
    response = sign_up(client)
    assert response.status_code == 302 and response.headers["Location"] == "/signup/sent"
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT a.email, a.password_hash, m.pseudonym, a.email_verified_at, "
            "a.health_data_consent_at, a.terms_accepted_at FROM accounts a "
            "JOIN members m ON m.id = a.member_id")).one()
    engine.dispose()
    assert row.email == "otter@example.org" and row.pseudonym == "brave-otter"
    assert "correct horse" not in row.password_hash and row.password_hash.startswith("scrypt")
    assert row.email_verified_at is None
    assert row.health_data_consent_at is not None and row.terms_accepted_at is not None
    assert "Check your mail" in client.get("/signup/sent").get_data(as_text=True)


def test_sign_up_without_consent_is_refused(fresh_app, fresh_db_url) -> None:
    client = fresh_app.test_client()
    token = csrf_token(client, "/signup")
    response = client.post("/signup", data={
        "csrf_token": token, "pseudonym": "brave-otter", "email": "otter@example.org",
        "password": "correct horse battery", "confirm": "correct horse battery",
        "terms": "y"})
    assert response.status_code == 400
    assert b"without your consent" in response.data
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0
    engine.dispose()


def test_session_cookie_is_httponly_and_samesite(fresh_app) -> None:
    sign_up(fresh_app.test_client())
    client = fresh_app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token, "email": "otter@example.org",
                                           "password": "correct horse battery"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_taken_pseudonym_is_refused(fresh_app) -> None:
    sign_up(fresh_app.test_client())
    taken = sign_up(fresh_app.test_client(), email="else@example.org")
    assert taken.status_code == 400 and b"pseudonym is taken" in taken.data


def test_post_without_csrf_token_is_refused(fresh_app) -> None:
    response = fresh_app.test_client().post("/signup", data={
        "pseudonym": "x-y-z", "email": "a@example.org", "password": "0123456789",
        "confirm": "0123456789"})
    assert response.status_code == 400
    assert b"CSRF" in response.data


def test_wrong_password_is_refused_and_right_one_signs_in(fresh_app) -> None:
    sign_up(fresh_app.test_client())
    client = fresh_app.test_client()
    token = csrf_token(client, "/login")
    bad = client.post("/login", data={"csrf_token": token, "email": "otter@example.org",
                                      "password": "wrong password"})
    assert b"Email or password is wrong" in bad.data
    good = client.post("/login?next=/conditions/all/map", data={
        "csrf_token": token, "email": "OTTER@example.org", "password": "correct horse battery"})
    assert good.status_code == 302 and good.headers["Location"] == "/conditions/all/map"


def test_login_ignores_offsite_next(fresh_app) -> None:
    sign_up(fresh_app.test_client())
    client = fresh_app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login?next=https://evil.example/", data={
        "csrf_token": token, "email": "otter@example.org", "password": "correct horse battery"})
    assert response.headers["Location"] == "/"


def test_admin_create_from_the_cli(fresh_db_url, tmp_path) -> None:
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "geomap.cli", "admin", "create", "boss@example.org"],
        input="a long admin password\n", env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    short = subprocess.run(
        [sys.executable, "-m", "geomap.cli", "admin", "create", "boss2@example.org"],
        input="short\n", env=env, capture_output=True, text=True, check=False)
    assert short.returncode != 0 and "at least 10" in short.stderr
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        assert conn.execute(text(
            "SELECT is_admin FROM accounts WHERE email = 'boss@example.org'")).scalar_one()
    engine.dispose()
