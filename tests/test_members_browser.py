"""The whole member journey in a real Chromium, against a real PostGIS.

Sign up, join via the city type-ahead, count on the map after a publish, find a nearby
member, send a request, accept, exchange messages, block, delete the account.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.ingest import demo
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import publish
from geomap.session import session_scope
from tests.conftest import FLOOR, K, LiveServer, app_config
from tests.mail_helpers import sign_in_in_browser, sign_up_in_browser, stored_link


@pytest.fixture
def small_community_url(fresh_db_url: str) -> str:
    """A writable database with 1,500 published demo members."""
    engine = create_engine(fresh_db_url)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        batch, prefixes = demo.generate(session, 1500, 11, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        # k members at the centres of Hamburg and Lübeck: their floor cells are parts of
        # their own, so a newcomer there is published as exactly one more (a sparse
        # cell's newcomer may stay in the unpublished remainder: docs/privacy.md).
        all_id = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")).scalar()
        for city in ("Hamburg", "Lübeck"):
            lat, lng = session.execute(text(
                "SELECT ST_Y(point), ST_X(point) FROM places WHERE country_code = 'DE' "
                "AND name = :city ORDER BY population DESC LIMIT 1"), {"city": city}).one()
            load_members(session, MemberBatch(
                pseudonyms=None, roles=["patient"] * K, visibilities=["map"] * K,
                contactable=[True] * K, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * K,
                lats=np.full(K, lat), lngs=np.full(K, lng), conditions=[[all_id]] * K,
            ), deriver, pseudonym_prefix=["neighbour"] * K)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()
    return fresh_db_url


def publish_now(url: str) -> None:
    engine = create_engine(url)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()
    # A worker trusts its idea of the publish version for a second (web/api.py).
    time.sleep(1.2)


def sign_up(page, base: str, pseudonym: str, data_dir) -> None:  # noqa: ANN001
    """Sign up, follow the mailed verification link (file backend) and sign in."""
    email = f"{pseudonym}@example.org"
    sign_up_in_browser(page, base, pseudonym, email, "correct horse battery")
    page.goto(stored_link(data_dir, email, "/verify/"))
    sign_in_in_browser(page, email, "correct horse battery")
    page.wait_for_url(f"{base}/settings")


def join_via_city(page, typed: str, option_text: str, expected: str) -> None:  # noqa: ANN001
    page.fill("#city-input", "")
    page.type("#city-input", typed, delay=30)
    option = page.locator(".city-option", has_text=option_text).first
    option.wait_for(timeout=30_000)
    option.click()
    page.click("#save-location")
    page.wait_for_selector(f"text=Your location is now {expected}")
    page.check("#profile-form input[value=all]")
    page.check("#visibility-0")
    page.check("#contactable")
    page.click("#save-profile")
    page.wait_for_selector("text=Saved.")


def published_total(page, base: str) -> int:  # noqa: ANN001
    # The map page may come from the browser's cache for a while after a publish; the
    # public API answers no-cache, so it tells what a publish changed at once.
    answer = page.request.get(f"{base}/api/v1/conditions").json()
    return next(c["published_members"] for c in answer["conditions"] if c["slug"] == "all")


def test_member_journey(small_community_url, tmp_path, browser) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=small_community_url))
    ada_context = browser.new_context(viewport={"width": 1200, "height": 1000})
    bo_context = browser.new_context(viewport={"width": 1200, "height": 1000})
    for context in (ada_context, bo_context):
        context.set_default_timeout(60_000)
    requested: list[str] = []
    for context in (ada_context, bo_context):
        context.on("request", lambda request: requested.append(request.url))
    ada, bo = ada_context.new_page(), bo_context.new_page()
    with LiveServer(app) as server:
        base = server.url
        # Sign up and join the ALL map via the type-ahead.
        sign_up(ada, base, "ada-otter", tmp_path)
        assert "publish" in ada.inner_text("#publish-timing")
        join_via_city(ada, "Hamb", "Hamburg", "Hamburg, Germany")
        assert "only you see this" in ada.inner_text("#own-location")
        before = published_total(ada, base)
        publish_now(small_community_url)
        assert published_total(ada, base) == before + 1

        # A second member joins nearby (the type-ahead folds accents: "Lübeck").
        sign_up(bo, base, "bo-heron", tmp_path)
        join_via_city(bo, "Lübe", "Lübeck", "Lübeck, Schleswig-Holstein, Germany")

        # Ada finds Bo nearby and sends a request.
        ada.goto(f"{base}/nearby?condition=all")
        entry = ada.locator(".nearby-member", has_text="bo-heron")
        entry.wait_for()
        assert "km" in entry.inner_text()
        entry.locator(".connect-link").click()
        ada.fill("#message", "Hi Bo, I live near you. <b>not bold</b>")
        ada.click("#connect-form button[type=submit]")
        ada.wait_for_selector("text=Your request was sent to bo-heron.")

        # Bo sees the request in the header and accepts it.
        bo.goto(f"{base}/")
        assert bo.inner_text("#unread-count") == "1"
        bo.goto(f"{base}/connections")
        assert "<b>not bold</b>" in bo.inner_text(".request-message")
        bo.click(".accept-button")
        bo.wait_for_selector("text=Accepted")
        bo.fill("#body", "Hello Ada! Coffee in Hamburg?")
        bo.click("#message-form button[type=submit]")
        bo.wait_for_selector("text=Hello Ada! Coffee in Hamburg?")

        # Ada reads and answers.
        ada.goto(f"{base}/")
        assert ada.inner_text("#unread-count") == "1"
        ada.goto(f"{base}/connections")
        ada.click(".thread-link")
        ada.wait_for_selector("text=Hello Ada! Coffee in Hamburg?")
        ada.fill("#body", "Gladly!")
        ada.click("#message-form button[type=submit]")
        ada.wait_for_selector(".message.mine >> text=Gladly!")
        bo.reload()
        bo.wait_for_selector("text=Gladly!")

        # Ada blocks Bo: the thread closes for both.
        ada.click(".block-button")
        ada.click("#confirm-block")  # blocking asks first
        ada.wait_for_selector("text=bo-heron is blocked.")
        bo.reload()
        bo.wait_for_selector("#thread-closed")

        # Ada deletes her account.
        ada.goto(f"{base}/my-data")
        ada.fill("#confirm", "DELETE")
        ada.click("#delete-button")
        ada.wait_for_selector("text=Your account and all your data are deleted")
        assert ada.locator("text=Sign out").count() == 0
        publish_now(small_community_url)
        assert published_total(bo, base) == before + 1  # Bo joined, Ada left
    engine = create_engine(small_community_url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM members WHERE pseudonym = 'ada-otter'"))
        assert left.scalar_one() == 0
    engine.dispose()
    ada_context.close()
    bo_context.close()
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}


# How many outline paths of the pin map are drawn inside its box.
VISIBLE_OUTLINES = """() => {
  const box = document.getElementById('pin-map').getBoundingClientRect();
  return [...document.querySelectorAll('#pin-map .leaflet-overlay-pane path')]
    .filter((p) => p.getAttribute('d') && p.getAttribute('d') !== 'M0 0')
    .map((p) => p.getBoundingClientRect())
    .filter((r) => r.right > box.left && r.left < box.right && r.bottom > box.top
                   && r.top < box.bottom).length;
}"""


def test_join_by_dropping_a_pin(small_community_url, tmp_path, page) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=small_community_url))
    with LiveServer(app) as server:
        sign_up(page, server.url, "pin-dropper", tmp_path)
        # Outlines are drawn in three world copies; wait for one drawn in view.
        # (polled from Python: wait_for_function needs 'unsafe-eval', which the CSP refuses)
        for _ in range(450):
            if page.evaluate(
                    "() => [...document.querySelectorAll('#pin-map .leaflet-overlay-pane path')]"
                    ".some((p) => p.getAttribute('d') && p.getAttribute('d') !== 'M0 0')"):
                break
            page.wait_for_timeout(100)
        else:
            pytest.fail("no land outline was drawn in the pin map")
        page.evaluate("document.getElementById('pin-map').scrollIntoView()")
        box = page.locator("#pin-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert "Pin dropped at" in page.inner_text("#location-choice")
        page.click("#save-location")
        page.wait_for_selector("text=Your location is now the pin you dropped.")
        assert "only you see this" in page.inner_text("#own-location")
        # The saved place opens at country scale, its neighbours' borders around it
        # (closer in, a map without tiles is all land), under a one-line credit.
        page.goto(f"{server.url}/settings")
        page.evaluate("document.getElementById('pin-map').scrollIntoView()")
        # (polled until the outlines are drawn: the first poll can catch them half drawn)
        visible = 0
        for _ in range(450):
            visible = page.evaluate(VISIBLE_OUTLINES)
            if visible >= 3:
                break
            page.wait_for_timeout(100)
        assert visible >= 3, visible
        credit = page.inner_text("#pin-map .leaflet-control-attribution")
        assert credit == "Leaflet · Natural Earth", credit
        page.screenshot(path="/tmp/members_settings.png", full_page=True)
    hosts = {urlsplit(url).hostname for url in page.requested_urls
             if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}
