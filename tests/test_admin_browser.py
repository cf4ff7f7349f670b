"""The admin region page in a real Chromium: choropleth, sorting and filtering."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine

from geomap import create_app
from geomap.auth.accounts import create_admin
from geomap.geo.derive import KeyDeriver
from geomap.publish import publish
from geomap.session import session_scope
from tests.conftest import FLOOR, K, LiveServer, app_config
from tests.journey_helpers import broken_table_words
from tests.test_regions import _batch

# (lat, lng, members): a few countries with different counts.
PLACES = [(52.52, 13.40, 12), (48.86, 2.35, 7), (41.90, 12.50, 3), (40.42, -3.70, 9)]


@pytest.fixture
def admin_site(fresh_db_url, tmp_path):  # noqa: ANN001, ANN201
    """A live site over a small community with an admin account."""
    from geomap.ingest.members_bulk import load_members

    engine = create_engine(fresh_db_url)
    lats = np.concatenate([np.full(n, lat) for lat, _, n in PLACES])
    lngs = np.concatenate([np.full(n, lng) for _, lng, n in PLACES])
    with session_scope(engine) as session:
        load_members(session, _batch(lats, lngs), KeyDeriver(session, FLOOR))
        publish(session, k=K, floor=FLOOR)
        create_admin(session, email="boss@example.org", password="a long password")
    engine.dispose()
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    with LiveServer(app) as server:
        yield server


def test_admin_sorts_filters_and_colours_countries(admin_site, page) -> None:
    page.goto(f"{admin_site.url}/login")
    page.fill("input[name=email]", "boss@example.org")
    page.fill("input[name=password]", "a long password")
    page.click("form.stacked button[type=submit]")
    page.goto(f"{admin_site.url}/admin/regions?condition=every")
    page.wait_for_selector("#map_choropleth[data-coloured='4']", timeout=45_000)

    def countries() -> list[str]:
        names = page.locator("#region-table tbody:not([hidden]) tr.country-row th")
        return [name.split(" ")[0] for name in names.all_inner_texts()]

    assert countries() == ["Germany", "Spain", "France", "Italy"]  # by members
    page.click("button.sort[data-column='0']")
    assert countries() == ["France", "Germany", "Italy", "Spain"]
    page.click("button.sort[data-column='0']")
    assert countries() == ["Spain", "Italy", "Germany", "France"]
    page.fill("#region-filter", "ital")
    assert countries() == ["Italy"]
    assert page.locator("#grand-total").inner_text() == "31"
    # On a phone the table's headings and numbers keep their words whole (they broke
    # as "M e m be rs" and "1,0 00", a newcomer's report); the table scrolls instead.
    page.fill("#region-filter", "")
    page.set_viewport_size({"width": 390, "height": 844})
    broken = broken_table_words(page, "#region-table thead th, #region-table td.num")
    assert broken["cells"] >= 10 and broken["broken"] == [], broken
