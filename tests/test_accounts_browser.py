"""Account journeys in a real Chromium, at desktop and phone sizes, with real mail.

Mail goes through an SMTP server started in the test process (aiosmtpd); the browser
follows the links it received.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.auth.accounts import create_member_account
from geomap.config import load_settings
from geomap.mail.notifications import send_notifications
from geomap.members import social
from tests.conftest import LiveServer, app_config
from tests.mail_helpers import link_in, sign_in_in_browser, sign_up_in_browser

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
PASSWORD = "correct horse battery"
NEW_PASSWORD = "lantern quietly orbits marmalade"


@pytest.fixture(params=list(SIZES))
def context(request, browser):  # noqa: ANN001, ANN201
    """A browser context at desktop or phone size."""
    width, height = SIZES[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(60_000)
    yield context
    context.close()


@pytest.fixture
def server(fresh_db_url, tmp_path, smtp_server):
    """The app over an empty community, mailing through the in-test SMTP server."""
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                **smtp_server.settings))
    with LiveServer(app) as live:
        yield live


def add_verified(url: str, pseudonym: str) -> str:
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        create_member_account(session, pseudonym=pseudonym, email=f"{pseudonym}@example.org",
                              password=PASSWORD, email_verified=True, consented=True)
    engine.dispose()
    return f"{pseudonym}@example.org"


def assert_fits(page, selector: str = "html") -> None:  # noqa: ANN001
    """The page (or the part ``selector`` names) has no horizontal scroll at this width."""
    overflow = page.evaluate(
        "(s) => { const e = document.querySelector(s);"
        " return Math.max(e.scrollWidth, e.getBoundingClientRect().right)"
        " - document.documentElement.clientWidth; }", selector)
    assert overflow <= 0, f"{page.url}: {selector} is {overflow}px too wide"


def test_sign_up_with_consent_and_follow_the_verification_mail(
        server, context, smtp_server, fresh_db_url) -> None:
    page = context.new_page()
    page.goto(f"{server.url}/privacy")
    assert "at least 5 members" in page.inner_text("#privacy")
    assert_fits(page)
    page.goto(f"{server.url}/terms")
    assert_fits(page)
    page.goto(f"{server.url}/signup")
    assert_fits(page)
    # Without consent the form comes back with a reason.
    page.fill("#pseudonym", "new-otter")
    page.fill("#email", "new-otter@example.org")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.check("#terms")
    page.click("form.stacked button[type=submit]")
    page.wait_for_selector("text=We cannot store health data without your consent.")
    sign_up_in_browser(page, server.url, "new-otter", "new-otter@example.org", PASSWORD)
    assert "Check your mail" in page.inner_text("h1")
    assert_fits(page)
    message = smtp_server.wait_for("new-otter@example.org")[0]
    link = link_in(message, "/verify/")
    assert link.startswith(server.url)
    page.goto(link)
    page.wait_for_selector("text=your email address is confirmed")
    sign_in_in_browser(page, "new-otter@example.org", PASSWORD)
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#unverified-notice").count() == 0
    page.goto(f"{server.url}/account")
    assert page.inner_text("#email-status") == "confirmed"
    assert_fits(page, "main")  # the signed-in header's wrapping is the member pages' work
    page.goto(link)  # a used link is refused
    page.wait_for_selector("text=used up or has expired")
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        consent = conn.execute(text("SELECT health_data_consent_at FROM accounts")).scalar_one()
    engine.dispose()
    assert consent is not None


def test_reset_the_password_by_mail_and_old_sessions_end(
        server, context, browser, smtp_server, fresh_db_url) -> None:
    email = add_verified(fresh_db_url, "forgetful-otter")
    old = browser.new_context(viewport={"width": 1280, "height": 800})
    old.set_default_timeout(60_000)
    old_page = old.new_page()
    old_page.goto(f"{server.url}/login")
    sign_in_in_browser(old_page, email, PASSWORD)
    old_page.wait_for_url(f"{server.url}/")
    old_page.goto(f"{server.url}/account")
    assert email in old_page.inner_text("main")

    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.click("text=Forgot your password?")
    page.wait_for_url(f"{server.url}/reset")
    assert_fits(page)
    page.fill("#email", email)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{server.url}/reset/sent")
    link = link_in(smtp_server.wait_for(email)[0], "/reset/")
    page.goto(link)
    assert_fits(page)
    page.fill("#password", "1234567890")
    page.fill("#confirm", "1234567890")
    page.click("form.stacked button[type=submit]")
    page.wait_for_selector("text=too easy to guess")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_selector("text=signed out everywhere")
    sign_in_in_browser(page, email, NEW_PASSWORD)
    page.wait_for_url(f"{server.url}/")

    old_page.goto(f"{server.url}/account")  # the old session is gone
    assert "/login" in old_page.url
    old.close()
    page.goto(link)  # single use
    page.wait_for_selector("#link-invalid")


def test_notifications_are_batched_and_the_unsubscribe_link_works(
        server, context, smtp_server, fresh_db_url, tmp_path) -> None:
    email = add_verified(fresh_db_url, "busy-otter")
    add_verified(fresh_db_url, "chatty-heron")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    sign_in_in_browser(page, email, PASSWORD)
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/account")
    page.check("#notify")
    page.click("#notifications-form button[type=submit]")
    page.wait_for_selector("text=we will mail you")
    engine = create_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        ids = dict(session.execute(text(
            "SELECT m.pseudonym, m.id FROM members m")).all())
        connection_id = social.request_connection(session, ids["chatty-heron"], "busy-otter",
                                                  "Hi there")
        social.respond(session, ids["busy-otter"], connection_id, accept=True)
        social.send_message(session, ids["chatty-heron"], connection_id, "One")
        social.send_message(session, ids["chatty-heron"], connection_id, "Two")
    settings = load_settings(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                        GEOMAP_BASE_URL=server.url, **smtp_server.settings))
    now = datetime.now(UTC)
    assert send_notifications(engine, settings, now=now).sent == 1
    assert send_notifications(engine, settings, now=now).sent == 0
    [message] = smtp_server.wait_for(email)
    assert "2 new messages" in message.get_content()
    page.goto(link_in(message, "/unsubscribe/"))
    assert_fits(page, "main")
    page.click("#unsubscribe-button")
    page.wait_for_selector("#unsubscribed")
    with engine.connect() as conn:
        assert not conn.execute(text(
            "SELECT notify_by_email FROM accounts WHERE email = :e"), {"e": email}).scalar_one()
    engine.dispose()
