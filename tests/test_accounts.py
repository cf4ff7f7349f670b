"""Account safety: verification and reset mails, no enumeration, throttles, sessions.

Mail goes through a real SMTP server started in the test process (aiosmtpd).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.auth import passwords, tokens
from geomap.auth.accounts import create_member_account
from geomap.mail.notifications import send_notifications
from geomap.members import social
from tests.conftest import app_config
from tests.mail_helpers import link_in

PASSWORD = "correct horse battery"
NEW_PASSWORD = "lantern quietly orbits marmalade"


@pytest.fixture
def mail_app(fresh_db_url, tmp_path, smtp_server):
    """The app over an empty community, sending mail to the in-test SMTP server."""
    return create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                 **smtp_server.settings))


@pytest.fixture
def verified_member(fresh_db_url) -> str:
    """Email of a verified member account ("known-otter") in the fresh database."""
    engine = create_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        create_member_account(session, pseudonym="known-otter", email="known@example.org",
                              password=PASSWORD, email_verified=True, consented=True)
    engine.dispose()
    return "known@example.org"


def csrf_token(client, url: str) -> str:  # noqa: ANN001
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def post_form(client, url: str, **data: str):  # noqa: ANN001, ANN201
    return client.post(url, data={"csrf_token": csrf_token(client, url), **data})


def sign_up(client, pseudonym: str, email: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    return post_form(client, "/signup", pseudonym=pseudonym, email=email, password=password,
                     confirm=password, consent="y", terms="y")


def sign_in(client, email: str, password: str = PASSWORD):  # noqa: ANN001, ANN201
    return post_form(client, "/login", email=email, password=password)


def scalar(url: str, sql: str, **params: object) -> object:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar()
    engine.dispose()
    return value


def without_tokens(html: str) -> str:
    """Return a page without its per-session CSRF token."""
    return re.sub(r'value="[^"]*"', 'value=""', html)


# --- verification ---------------------------------------------------------------------


def test_sign_up_mails_a_single_use_verification_link(mail_app, smtp_server,
                                                      fresh_db_url) -> None:
    client = mail_app.test_client()
    assert sign_up(client, "new-otter", "new@example.org").status_code == 302
    message = smtp_server.wait_for("new@example.org")[0]
    assert message["Subject"] == "Confirm your email address for geomap"
    link = link_in(message, "/verify/")
    path = urlsplit(link).path
    followed = client.get(path)
    assert followed.status_code == 302 and "/login" in followed.headers["Location"]
    assert scalar(fresh_db_url, "SELECT email_verified_at IS NOT NULL FROM accounts "
                  "WHERE email = 'new@example.org'")
    again = client.get(path, follow_redirects=True)
    assert b"used up or has expired" in again.data
    # only the hash is stored
    token = path.rsplit("/", 1)[1]
    assert not scalar(fresh_db_url, "SELECT count(*) FROM account_tokens WHERE token_hash = :t",
                      t=token)


def test_unverified_member_can_fill_settings_but_not_join_or_search(mail_app, smtp_server,
                                                                   fresh_db_url) -> None:
    client = mail_app.test_client()
    sign_up(client, "new-otter", "new@example.org")
    sign_in(client, "new@example.org")
    assert client.get("/settings").status_code == 200
    assert b"confirm your email address" in client.get("/settings").data
    refused = client.put("/api/v1/me/location", json={"lat": 53.55, "lng": 9.99},
                         headers={"X-CSRFToken": csrf_token(client, "/settings")})
    assert refused.status_code == 403
    assert "confirm your email" in refused.get_json()["error"]["message"]
    assert client.get("/nearby?condition=all").status_code == 403
    assert scalar(fresh_db_url, "SELECT count(*) FROM member_locations") == 0
    link = link_in(smtp_server.wait_for("new@example.org")[0], "/verify/")
    client.get(urlsplit(link).path)
    allowed = client.put("/api/v1/me/location", json={"lat": 53.55, "lng": 9.99},
                         headers={"X-CSRFToken": csrf_token(client, "/settings")})
    assert allowed.status_code == 200, allowed.data
    assert scalar(fresh_db_url, "SELECT count(*) FROM member_locations") == 1


def test_export_holds_the_consent_time(mail_app, smtp_server) -> None:
    client = mail_app.test_client()
    sign_up(client, "new-otter", "new@example.org")
    sign_in(client, "new@example.org")
    account = client.get("/api/v1/me/export").get_json()["account"]
    assert account["health_data_consent_at"] and account["terms_accepted_at"]
    assert account["email_verified_at"] is None


# --- password reset -------------------------------------------------------------------


def test_reset_sets_a_new_password_and_ends_every_session(mail_app, smtp_server,
                                                          verified_member) -> None:
    old_device = mail_app.test_client()
    sign_in(old_device, verified_member)
    assert old_device.get("/account").status_code == 200
    client = mail_app.test_client()
    assert post_form(client, "/reset", email=verified_member).status_code == 302
    link = link_in(smtp_server.wait_for(verified_member)[0], "/reset/")
    path = urlsplit(link).path
    weak = post_form(client, path, password="1234567890", confirm="1234567890")
    assert weak.status_code == 400 and b"too easy to guess" in weak.data
    done = post_form(client, path, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert old_device.get("/account").status_code == 302  # signed out
    assert b"wrong" in sign_in(mail_app.test_client(), verified_member).data
    assert sign_in(mail_app.test_client(), verified_member, NEW_PASSWORD).status_code == 302
    assert client.get(path).status_code == 410  # single use


def test_expired_and_unknown_reset_tokens_are_refused(mail_app, fresh_db_url,
                                                      verified_member) -> None:
    engine = create_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        account_id = session.execute(text("SELECT id FROM accounts")).scalar_one()
        old = tokens.issue(session, account_id, "reset",
                           now=datetime.now(UTC) - timedelta(hours=2))
        fresh = tokens.issue(session, account_id, "reset")
    with Session(engine) as session, session.begin():
        assert tokens.peek(session, old, "reset") is None
        assert tokens.peek(session, fresh, "verify") is None  # purpose is part of the token
        assert tokens.consume(session, fresh, "reset") == account_id
        assert tokens.consume(session, fresh, "reset") is None
    engine.dispose()
    client = mail_app.test_client()
    assert client.get(f"/reset/{old}").status_code == 410
    assert client.get("/reset/not-a-token").status_code == 410
    assert client.post("/reset/x", data={}).status_code == 400  # no CSRF token


# --- no enumeration -------------------------------------------------------------------


def test_sign_up_answers_alike_for_known_and_unknown_emails(mail_app, smtp_server,
                                                            verified_member) -> None:
    known = sign_up(mail_app.test_client(), "other-otter", verified_member)
    unknown = sign_up(mail_app.test_client(), "third-otter", "nobody@example.org")
    assert (known.status_code, known.headers["Location"]) == (
        unknown.status_code, unknown.headers["Location"])
    assert known.data == unknown.data
    # the owner learns of the attempt by mail; nobody else does
    message = smtp_server.wait_for(verified_member)[0]
    assert "already has one" in message.get_content()


def test_login_answers_alike_for_known_and_unknown_emails(mail_app, verified_member) -> None:
    known = sign_in(mail_app.test_client(), verified_member, "wrong password here")
    unknown = sign_in(mail_app.test_client(), "nobody@example.org", "wrong password here")
    assert known.status_code == unknown.status_code == 200
    assert without_tokens(known.get_data(as_text=True)) == without_tokens(
        unknown.get_data(as_text=True))


def test_reset_answers_alike_for_known_and_unknown_emails(mail_app, verified_member) -> None:
    known = post_form(mail_app.test_client(), "/reset", email=verified_member)
    unknown = post_form(mail_app.test_client(), "/reset", email="nobody@example.org")
    assert (known.status_code, known.headers["Location"], known.data) == (
        unknown.status_code, unknown.headers["Location"], unknown.data)


def test_unknown_emails_cost_the_same_hashing_work(mail_app, verified_member,
                                                   monkeypatch) -> None:
    checks: list[str] = []
    hashes: list[str] = []
    real_check, real_hash = passwords.check_password_hash, passwords.generate_password_hash

    def counting_check(pwhash: str, password: str) -> bool:
        checks.append(pwhash.split("$", 1)[0])  # method and cost parameters
        return real_check(pwhash, password)

    def counting_hash(password: str) -> str:
        result = real_hash(password)
        hashes.append(result.split("$", 1)[0])
        return result

    monkeypatch.setattr(passwords, "check_password_hash", counting_check)
    monkeypatch.setattr(passwords, "generate_password_hash", counting_hash)
    passwords.verify_or_dummy(None, "warm the dummy hash")
    checks.clear(), hashes.clear()
    sign_in(mail_app.test_client(), verified_member, "wrong password here")
    known_checks = list(checks)
    checks.clear()
    sign_in(mail_app.test_client(), "nobody@example.org", "wrong password here")
    assert known_checks == checks and len(checks) == 1 and checks[0].startswith("scrypt")
    sign_up(mail_app.test_client(), "other-otter", verified_member)
    known_hashes = list(hashes)
    hashes.clear()
    sign_up(mail_app.test_client(), "third-otter", "nobody@example.org")
    assert known_hashes == hashes and len(hashes) == 1


# --- password strength ----------------------------------------------------------------


@pytest.mark.parametrize("password", ["aaaaaaaaaa", "1234567890", "password123",
                                      "otter@example.org", "brave-otter-1", "qwertyuiop"])
def test_weak_passwords_are_refused(password: str) -> None:
    assert passwords.weakness(password, email="otter@example.org", pseudonym="brave-otter")


def test_strong_passwords_pass() -> None:
    assert passwords.weakness(PASSWORD, email="otter@example.org", pseudonym="brave-otter") is None
    assert passwords.weakness(NEW_PASSWORD, email="a@example.org") is None


def test_sign_up_refuses_a_weak_password(mail_app, fresh_db_url) -> None:
    response = sign_up(mail_app.test_client(), "brave-otter", "otter@example.org",
                       password="brave-otter-2024")
    assert response.status_code == 400 and b"email or pseudonym" in response.data
    assert scalar(fresh_db_url, "SELECT count(*) FROM accounts") == 0
    # Too short: the rule in words, not WTForms' "Field must be between 10 and 200
    # characters long." (a newcomer's report).
    response = sign_up(mail_app.test_client(), "brave-otter", "otter@example.org",
                       password="short-1")
    assert response.status_code == 400
    assert "Use a password of 10 to 200 characters." in response.get_data(as_text=True)
    assert b"Field must be" not in response.data


# --- sessions -------------------------------------------------------------------------


def _session_cookie(client) -> str:  # noqa: ANN001
    return client.get_cookie("session").value


def test_logout_ends_every_session_copied_cookies_included(mail_app, verified_member) -> None:
    laptop, phone = mail_app.test_client(), mail_app.test_client()
    sign_in(laptop, verified_member)
    sign_in(phone, verified_member)
    saved = _session_cookie(laptop)
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop, "/account")})
    assert laptop.get("/account").status_code == 302
    replay = mail_app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/account").status_code == 302
    assert phone.get("/account").status_code == 302


def test_password_change_keeps_this_session_and_ends_the_others(mail_app,
                                                                verified_member) -> None:
    laptop, phone = mail_app.test_client(), mail_app.test_client()
    sign_in(laptop, verified_member)
    sign_in(phone, verified_member)
    wrong = post_form(laptop, "/account/password", current="not my password",
                      password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert wrong.status_code == 400
    changed = post_form(laptop, "/account/password", current=PASSWORD,
                        password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert changed.status_code == 302
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").status_code == 302


def test_account_deletion_ends_saved_sessions(mail_app, verified_member) -> None:
    client = mail_app.test_client()
    sign_in(client, verified_member)
    saved = _session_cookie(client)
    deleted = client.post(
        "/my-data/delete", data={"csrf_token": csrf_token(client, "/my-data"),
                                 "confirm": "DELETE"})
    assert deleted.status_code == 302
    replay = mail_app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/account").status_code == 302
    assert replay.get("/api/v1/me/export").status_code == 401


# --- throttles ------------------------------------------------------------------------


def client_from(app, address: str):  # noqa: ANN001, ANN201
    """Return a test client whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def fake_clock(monkeypatch):
    """A clock the rate limiter reads (time.time), moved by hand."""
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def test_failed_logins_per_account_wait_longer_and_longer(fresh_db_url, tmp_path,
                                                          verified_member, fake_clock) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                GEOMAP_LOGIN_ACCOUNT_RATE_LIMIT="2 per minute; 4 per hour"))

    def attempt(password: str, address: str):  # noqa: ANN202
        client = client_from(app, address)
        return sign_in(client, verified_member, password)

    assert attempt("wrong password 1", "10.0.0.1").status_code == 200
    assert attempt("wrong password 2", "10.0.0.2").status_code == 200
    blocked = attempt(PASSWORD, "10.0.0.3")  # even the right password, from elsewhere
    assert blocked.status_code == 429
    first_wait = int(blocked.headers["Retry-After"])
    assert 0 < first_wait <= 60
    # another account is not affected
    assert sign_in(client_from(app, "10.0.0.3"),
                   "nobody@example.org").status_code == 200
    fake_clock[0] += 61
    assert attempt("wrong password 3", "10.0.0.4").status_code == 200
    assert attempt("wrong password 4", "10.0.0.5").status_code == 200
    blocked = attempt(PASSWORD, "10.0.0.6")
    assert blocked.status_code == 429
    fake_clock[0] += 61
    assert attempt(PASSWORD, "10.0.0.7").status_code == 429  # the hour window: a longer wait
    fake_clock[0] += 3601
    assert attempt(PASSWORD, "10.0.0.7").status_code == 302


def test_failed_logins_per_client_are_limited(fresh_db_url, tmp_path, verified_member,
                                              fake_clock) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                GEOMAP_LOGIN_RATE_LIMIT="3 per minute"))
    client = client_from(app, "10.0.0.9")
    for number in range(3):
        assert sign_in(client, f"guess{number}@example.org").status_code == 200
    assert sign_in(client, verified_member).status_code == 429
    other = client_from(app, "10.0.0.10")
    assert sign_in(other, verified_member).status_code == 302


def test_sign_up_is_rate_limited_per_client(fresh_db_url, tmp_path, fake_clock) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                GEOMAP_SIGNUP_RATE_LIMIT="3 per hour"))
    client = app.test_client()
    for number in range(3):
        assert sign_up(client, f"otter-{number}", f"o{number}@example.org").status_code == 302
    assert sign_up(client, "otter-9", "o9@example.org").status_code == 429
    assert scalar(fresh_db_url, "SELECT count(*) FROM accounts") == 3


# --- notifications --------------------------------------------------------------------


def test_two_messages_within_an_hour_make_one_mail(fresh_db_url, tmp_path,
                                                   smtp_server) -> None:
    settings = app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                          GEOMAP_BASE_URL="http://geomap.test", **smtp_server.settings)
    from geomap.config import load_settings

    settings = load_settings(settings)
    engine = create_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        ada = create_member_account(session, pseudonym="ada-otter", email="ada@example.org",
                                    password=PASSWORD, email_verified=True)
        bo = create_member_account(session, pseudonym="bo-heron", email="bo@example.org",
                                   password=PASSWORD, email_verified=True)
        session.execute(text("UPDATE accounts SET notify_by_email = true, "
                             "notified_until = now() - interval '1 minute' WHERE id = :id"),
                        {"id": ada.id})
        ada_member, bo_member = ada.member_id, bo.member_id
    with Session(engine) as session, session.begin():
        connection_id = social.request_connection(session, bo_member, "ada-otter", "Hello Ada")
        social.respond(session, ada_member, connection_id, accept=True)
        social.send_message(session, bo_member, connection_id, "First message")
        social.send_message(session, bo_member, connection_id, "Second message")
    now = datetime.now(UTC)  # after the messages were committed
    assert send_notifications(engine, settings, now=now).sent == 1
    assert send_notifications(engine, settings, now=now + timedelta(minutes=5)).sent == 0
    [message] = smtp_server.wait_for("ada@example.org")
    body = message.get_content()
    assert "2 new messages" in body and "First message" not in body
    assert message["List-Unsubscribe"].strip().startswith("<http://geomap.test/unsubscribe/")
    assert smtp_server.messages_to("bo@example.org") == []  # bo did not opt in
    with Session(engine) as session, session.begin():
        social.send_message(session, bo_member, connection_id, "Third message")
    later = datetime.now(UTC)
    assert send_notifications(engine, settings, now=later + timedelta(minutes=30)).sent == 0
    assert send_notifications(engine, settings, now=now + timedelta(minutes=61)).sent == 1
    second = smtp_server.wait_for("ada@example.org", 2)[1].get_content()
    assert "1 new message " in second
    engine.dispose()


def test_unsubscribe_link_stops_notifications(mail_app, fresh_db_url, verified_member) -> None:
    client = mail_app.test_client()
    sign_in(client, verified_member)
    client.post("/account/notifications",
                data={"csrf_token": csrf_token(client, "/account"), "notify": "y"})
    assert scalar(fresh_db_url, "SELECT notify_by_email FROM accounts")
    from geomap.mail.notifications import unsubscribe_token

    account_id = scalar(fresh_db_url, "SELECT id FROM accounts")
    token = unsubscribe_token(mail_app.config, account_id)
    anonymous = mail_app.test_client()
    assert anonymous.get(f"/unsubscribe/{token}").status_code == 200
    assert scalar(fresh_db_url, "SELECT notify_by_email FROM accounts")  # GET changes nothing
    assert anonymous.post(f"/unsubscribe/{token}").status_code == 200  # one-click, no CSRF
    assert not scalar(fresh_db_url, "SELECT notify_by_email FROM accounts")
    assert anonymous.post(f"/unsubscribe/{token}x").status_code == 404


# --- mail files and the CLI -----------------------------------------------------------


def test_without_smtp_mail_is_written_to_files_and_listed_by_the_cli(fresh_db_url,
                                                                      tmp_path) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    sign_up(app.test_client(), "file-otter", "file@example.org")
    from geomap import mail

    assert mail.flush()
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "geomap.cli", "mail", "list"], env=env,
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "file@example.org" in listed.stdout and "Confirm your email" in listed.stdout
    name = listed.stdout.split()[0]
    shown = subprocess.run([sys.executable, "-m", "geomap.cli", "mail", "show", name], env=env,
                           capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "/verify/" in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "geomap.cli", "mail", "show", "../x.eml"],
                             env=env, capture_output=True, text=True, check=False)
    assert missing.returncode != 0 and "No stored mail" in missing.stderr


def test_the_serve_scheduler_sends_due_notifications(fresh_db_url, tmp_path,
                                                     smtp_server) -> None:
    from geomap.config import load_settings
    from geomap.publish.schedule import PublishScheduler

    settings = load_settings(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                        **smtp_server.settings))
    engine = create_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        ada = create_member_account(session, pseudonym="ada-otter", email="ada@example.org",
                                    password=PASSWORD, email_verified=True)
        bo = create_member_account(session, pseudonym="bo-heron", email="bo@example.org",
                                   password=PASSWORD, email_verified=True)
        session.execute(text("UPDATE accounts SET notify_by_email = true, "
                             "notified_until = now() - interval '1 minute' WHERE id = :id"),
                        {"id": ada.id})
        bo_member = bo.member_id
    with Session(engine) as session, session.begin():
        social.request_connection(session, bo_member, "ada-otter", "Hello Ada")
    PublishScheduler(engine, settings)._notify()
    [message] = smtp_server.wait_for("ada@example.org")
    assert "1 new connection request on geomap" in message.get_content()
    assert "http://127.0.0.1:5000/connections" in message.get_content()  # no GEOMAP_BASE_URL
    engine.dispose()


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(min_size=1, max_size=300).filter(lambda t: "/" not in t))
def test_any_token_in_a_link_gets_a_page_never_a_500(mail_app, token: str) -> None:
    client = mail_app.test_client()
    quoted = quote(token, safe="")
    for path in (f"/verify/{quoted}", f"/reset/{quoted}", f"/unsubscribe/{quoted}"):
        response = client.get(path)
        assert response.status_code in (302, 404, 410), (path, response.status_code)


def test_check_your_mail_says_where_mail_goes_when_the_server_sends_none(
        mail_app, fresh_db_url, tmp_path) -> None:
    # With an SMTP server: the usual advice. Without one (make run, a newcomer's first
    # try), mail is kept as files: the page says so and how to read them.
    kept = "it keeps each one as a file, which whoever runs it reads with"
    for app, mail_kept in ((mail_app, False),
                           (create_app(app_config(tmp_path / "files",
                                                  GEOMAP_DATABASE_URL=fresh_db_url)), True)):
        client = app.test_client()
        for path in ("/signup/sent", "/reset/sent"):
            page = client.get(path).get_data(as_text=True)
            assert (kept in page) is mail_kept, path
            assert ("<code>geomap mail show</code>" in page) is mail_kept, path
            assert ("Look in your spam folder" in page) is not mail_kept, path
    french = client.get("/signup/sent?lang=fr").get_data(as_text=True)
    assert "<code>geomap mail show</code>" in french and kept not in french


def test_joining_a_map_is_named_at_sign_up_and_carried_through_verification(
        mail_app, smtp_server) -> None:
    visitor = mail_app.test_client()
    assert visitor.get("/join/all").headers["Location"].endswith("/signup")
    page = visitor.get("/signup").get_data(as_text=True)
    assert re.search(r"You are joining the <strong><bdi>[^<]+</bdi></strong> map\.", page)
    assert sign_up(visitor, "joining-otter", "joining@example.org").status_code == 302
    assert "You are joining the" in visitor.get("/signup/sent").get_data(as_text=True)
    link = link_in(smtp_server.wait_for("joining@example.org")[0], "/verify/")
    assert link.endswith("?condition=all")
    # Opened elsewhere (no session): the link alone leads to settings with the map ticked.
    elsewhere = mail_app.test_client()
    answer = elsewhere.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert answer.headers["Location"] == "/login?next=/settings?condition%3Dall"
    assert sign_in(elsewhere, "joining@example.org").status_code == 302
    settings = elsewhere.get("/settings?condition=all").get_data(as_text=True)
    assert re.search(r'value="all"[^>]*checked|checked[^>]*value="all"', settings)
    # An unknown condition in the link is ignored, never echoed.
    other = mail_app.test_client()
    assert "You are joining" not in other.get("/signup").get_data(as_text=True)
