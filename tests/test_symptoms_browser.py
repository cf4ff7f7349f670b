"""The soulmates journey in a real Chromium, against a real PostGIS.

A member with ALL signs up, joins via the city type-ahead, adds symptoms by typing
(keyboard only), opts in, sees their soulmates and the soulmates map, and connects.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.ingest import demo
from geomap.ingest.members_bulk import load_members
from geomap.publish import publish
from geomap.session import session_scope
from tests.conftest import FLOOR, K, LiveServer, app_config
from tests.test_members_browser import join_via_city, sign_up


@pytest.fixture
def soulmates_community_url(fresh_db_url: str) -> str:
    """A writable database with 1,500 published demo members with demo symptoms."""
    engine = create_engine(fresh_db_url)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        batch, prefixes = demo.generate(session, 1500, 11, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        demo.add_symptoms(session, 11)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()
    return fresh_db_url


def add_by_keyboard(page, typed: str, expected: str) -> None:  # noqa: ANN001
    """Type into the symptom combobox, arrow down to ``expected`` and press Enter."""
    box = page.locator("#symptom-input")
    box.fill("")
    box.type(typed, delay=30)
    page.locator("#symptom-options [role=option]").first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    for _ in range(10):
        box.press("ArrowDown")
        active = page.locator("#symptom-options [aria-selected=true]")
        if active.locator("span").first.inner_text() == expected:
            break
    else:
        pytest.fail(f"{expected} was not offered for {typed!r}")
    assert box.get_attribute("aria-activedescendant") == active.get_attribute("id")
    box.press("Enter")
    page.wait_for_selector(f"text=Added: {expected}.")


def settled(page) -> None:  # noqa: ANN001
    """Wait until the soulmates map has no zoom or markercluster animation running.

    While one runs, the markers of both zooms are in the page.
    """
    page.wait_for_function(
        "() => !document.querySelector('#map_soulmates .leaflet-zoom-anim, "
        "#map_soulmates .leaflet-cluster-anim')")


def open_an_area(page) -> int:  # noqa: ANN001
    """Click areas as a person would: a group zooms in, an area lists its soulmates.

    Returns the count shown on the area clicked.
    """
    for _ in range(12):
        areas = page.locator("#map_soulmates .geomap-cell")
        if areas.count():
            area = areas.first
            count = int(area.locator("span[aria-hidden=true]").inner_text())
            area.click()
            return count
        page.locator("#map_soulmates .geomap-cluster").first.click()
        settled(page)
    pytest.fail("no single area after zooming into twelve groups")


def test_soulmates_journey(soulmates_community_url, tmp_path, browser) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=soulmates_community_url))
    context = browser.new_context(viewport={"width": 1200, "height": 1100})
    context.set_default_timeout(60_000)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    with LiveServer(app) as server:
        base = server.url
        sign_up(page, base, "keyboard-kim", tmp_path)
        join_via_city(page, "Hamb", "Hamburg", "Hamburg, Germany")
        page.goto(f"{base}/symptoms")
        assert "Take part in matching" in page.inner_text("#matching")
        add_by_keyboard(page, "fatig", "Fatigue")
        add_by_keyboard(page, "FÉVER", "Fever")  # accents and case do not matter
        add_by_keyboard(page, "anemia", "Anemia")
        add_by_keyboard(page, "bone pa", "Bone pain")
        items = page.locator("#my-symptom-list .symptom")
        assert items.count() == 4
        assert "HP:0012378" in page.inner_text("#my-symptom-list")  # the HPO id, small
        page.focus("#matching-on")
        page.keyboard.press("Enter")
        page.wait_for_selector("#matching-state >> text=You take part in matching")
        page.click("#soulmates-link")
        page.wait_for_selector(".soulmate")
        first = page.locator(".soulmate").first
        assert first.locator(".similarity").inner_text() in ("very similar", "similar")
        assert first.locator(".band").inner_text().endswith("km")
        # The soulmates map: areas with counts, clicking lists who is there.
        page.wait_for_selector("#map_soulmates[data-areas]")
        marker = page.locator("#map_soulmates .geomap-count").first
        marker.wait_for()
        # The map zooms to fit the areas: while markercluster animates, the markers of
        # both zooms are in the page. Once it settles, the counts add up.
        settled(page)
        counts = page.locator("#map_soulmates .geomap-count span[aria-hidden=true]")
        total = sum(int(t) for t in counts.all_inner_texts())
        assert total == page.locator(".soulmate").count()
        # Clicking an area lists who is there; a group of areas zooms in first.
        area = open_an_area(page)
        listed = page.locator("#soulmate-area .area-soulmate")
        listed.first.wait_for()
        assert listed.count() == area
        # The area's heading isolates its place name for bidirectional text (FSI ... PDI).
        assert re.match("\u2068[^\u2069]*\u2069: ", page.inner_text("#soulmate-area h3"))
        # Connect with the first soulmate.
        name = first.locator(".pseudonym").inner_text()
        first.locator(".connect-link").click()
        page.fill("textarea[name=message]", "Hello, our symptoms look alike.")
        page.click("button[type=submit] >> text=Send")
        page.wait_for_selector(f"text=Your request was sent to {name}.")
    context.close()
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in requested)
