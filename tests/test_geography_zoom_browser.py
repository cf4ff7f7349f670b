"""Deep zoom in a real Chromium: place labels and 1:10m outlines, nothing from elsewhere."""

from __future__ import annotations

import pytest

from tests.conftest import set_view
from tests.journey_helpers import DESKTOP, PHONE, axe_violations, describe

MUNICH = (48.137, 11.575)
PAGES = ["/conditions/all/map", "/embed/conditions/all/map"]


def _open(browser, live_server, viewport, path, bypass_csp):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.requested_urls = []
    page.console = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    page.on("console", lambda message: page.console.append(message.text))
    page.goto(live_server.url + path)
    page.wait_for_selector(".geomap-map[data-loaded-zoom]")
    return page


def _wait(page, expression: str) -> None:  # noqa: ANN001
    """Poll ``expression`` from Python (``wait_for_function`` needs 'unsafe-eval')."""
    for _ in range(240):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"never true: {expression}")


def _zoom_to(page, lat: float, lng: float, zoom: int) -> None:  # noqa: ANN001
    set_view(page, lat, lng, zoom)
    _wait(page,
        f"document.querySelector('.geomap-map').dataset.loadedZoom === '{zoom}'")


def _visible_labels(page) -> list[str]:  # noqa: ANN001
    return page.evaluate("""() => {
      const box = document.querySelector('.geomap-map').getBoundingClientRect();
      return [...document.querySelectorAll('.geomap-place-label span')].filter((s) => {
        const r = s.getBoundingClientRect();
        return r.width > 0 && r.left >= box.left && r.right <= box.right
               && r.top >= box.top && r.bottom <= box.bottom;
      }).map((s) => s.textContent);
    }""")


# Each page at one size and the other page at the other (both pages and both sizes are
# covered; the 1:10m outlines take a while to draw on a shared CI machine).
@pytest.mark.parametrize("path,viewport", [(PAGES[0], DESKTOP), (PAGES[1], PHONE)],
                         ids=["map-desktop", "embed-phone"])
def test_a_city_at_deep_zoom_shows_its_name_and_finer_outlines(browser, live_server, viewport,
                                                               path) -> None:
    page = _open(browser, live_server, viewport, path, bypass_csp=False)
    try:
        # The first paint does not fetch the fine outlines or any labels.
        assert not [u for u in page.requested_urls if "countries-10m" in u or "labels" in u]
        for zoom in (9, 11):
            _zoom_to(page, *MUNICH, zoom)
            _wait(page,
                "document.querySelector('.geomap-map').dataset.outlineScale === '10m'")
            _wait(page,
                "Number(document.querySelector('.geomap-map').dataset.placeLabels) > 0")
            labels = _visible_labels(page)
            assert "Munich" in labels, (zoom, labels)
            # Labels do not overlap one another.
            rects = page.evaluate("""() => [...document.querySelectorAll(
                '.geomap-place-label span')].map((s) => s.getBoundingClientRect().toJSON())""")
            for i, a in enumerate(rects):
                for b in rects[i + 1:]:
                    assert not (a["left"] < b["right"] - 1 and b["left"] < a["right"] - 1
                                and a["top"] < b["bottom"] - 1 and b["top"] < a["bottom"] - 1)
        assert page.locator(".leaflet-outlines-pane path").count() > 0
        # Back at world zoom: 1:50m outlines again and no labels.
        _zoom_to(page, 30.0, 10.0, 3)
        _wait(page,
            "document.querySelector('.geomap-map').dataset.outlineScale === '50m'")
        assert page.locator(".geomap-place-label").count() == 0
        page.wait_for_load_state("networkidle")
        assert [u for u in page.requested_urls if "countries-10m" in u]
        assert all(u.startswith(live_server.url) or u.startswith("data:")
                   for u in page.requested_urls), page.requested_urls
        assert not [m for m in page.console if "Content Security Policy" in m]
    finally:
        page.context.close()


@pytest.mark.parametrize("path,viewport", [(PAGES[0], PHONE), (PAGES[1], DESKTOP)],
                         ids=["map-phone", "embed-desktop"])
def test_deep_zoom_has_no_axe_violations(browser, live_server, viewport, path) -> None:
    page = _open(browser, live_server, viewport, path, bypass_csp=True)
    try:
        _zoom_to(page, *MUNICH, 10)
        _wait(page,
            "Number(document.querySelector('.geomap-map').dataset.placeLabels) > 0")
        _wait(page,
            "document.querySelector('.geomap-map').dataset.outlineScale === '10m'")
        violations = axe_violations(page)
        assert violations == [], describe(violations)
    finally:
        page.context.close()


# (lat, lng, members): French Guiana (GF, inside France's 1:50m outline), Paris (FR),
# Réunion (RE) and Fakaofo, Tokelau (TK: no 1:50m polygon at all).
TERRITORY_MEMBERS = [(4.93, -52.33, 6), (48.86, 2.35, 9), (-20.88, 55.45, 5),
                     (-9.38, -171.22, 5)]


@pytest.fixture
def territory_admin_site(fresh_db_url, tmp_path):  # noqa: ANN001, ANN201
    """A live site whose members live in France, French Guiana, Réunion and Tokelau."""
    import numpy as np
    from sqlalchemy import create_engine

    from geomap import create_app
    from geomap.auth.accounts import create_admin
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest.members_bulk import load_members
    from geomap.publish import publish
    from geomap.session import session_scope
    from tests.conftest import FLOOR, K, LiveServer, app_config
    from tests.test_regions import _batch

    engine = create_engine(fresh_db_url)
    lats = np.concatenate([np.full(n, lat) for lat, _, n in TERRITORY_MEMBERS])
    lngs = np.concatenate([np.full(n, lng) for _, lng, n in TERRITORY_MEMBERS])
    with session_scope(engine) as session:
        load_members(session, _batch(lats, lngs), KeyDeriver(session, FLOOR))
        publish(session, k=K, floor=FLOOR)
        create_admin(session, email="boss@example.org", password="a long password")
    engine.dispose()
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    with LiveServer(app) as server:
        yield server


DRAWN = """() => {
      const out = {};
      map_choropleth.eachLayer((layer) => {
        const code = layer.feature ? layer.feature.properties.code
                   : (layer.options.className === 'choropleth-dot' ? 'dot' : null);
        if (!code || !layer._path) return;
        const r = layer._path.getBoundingClientRect();
        (out[code] = out[code] || []).push([layer._path.getAttribute('fill'), r.width]);
      });
      return out;
    }"""


def test_the_choropleth_draws_every_counted_territory(territory_admin_site, page) -> None:
    page.goto(f"{territory_admin_site.url}/login")
    page.fill("input[name=email]", "boss@example.org")
    page.fill("input[name=password]", "a long password")
    page.click("form.stacked button[type=submit]")
    page.goto(f"{territory_admin_site.url}/admin/regions?condition=every")
    page.wait_for_selector("#map_choropleth[data-coloured]", timeout=45_000)
    drawn = page.evaluate(DRAWN)
    coloured = page.evaluate("Number(document.querySelector('#map_choropleth')"
                             ".dataset.coloured)")
    assert coloured == 4  # FR, GF, RE, TK
    # French Guiana and Réunion are their own polygons, coloured (not the white of 0).
    for code, (lat, lng) in (("GF", (4.0, -53.0)), ("RE", (-21.1, 55.5))):
        assert drawn.get(code), (code, drawn)
        assert all(fill.lower() != "#ffffff" for fill, _ in drawn[code]), (code, drawn)
        # Zoomed onto it, it is drawn (Leaflet clips copies off screen and drops shapes
        # smaller than a pixel, as Réunion is at world zoom).
        set_view(page, lat, lng, 6, map_name="map_choropleth")
        page.wait_for_timeout(500)
        assert any(width > 0 for _, width in page.evaluate(DRAWN)[code]), code
    # Tokelau has no polygon: a dot.
    assert drawn.get("dot") and all(fill.lower() != "#ffffff" for fill, _ in drawn["dot"])
