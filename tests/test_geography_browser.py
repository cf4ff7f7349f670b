"""Maps across 180° and at the poles, in a real Chromium (map page and embed)."""

from __future__ import annotations

from datetime import UTC, datetime

import h3
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import publish
from geomap.session import session_scope
from tests.conftest import FLOOR, K, LiveServer, app_config, set_view

SPOTS = {  # 10 members each
    "suva": (-18.14, 178.42),  # Fiji, west of 180°
    "lakeba": (-18.2, -178.8),  # Fiji, east of 180°
    "anadyr": (64.73, 177.5),  # Chukotka, west of 180°
    "nome": (64.5, -165.4),  # Alaska, east of 180°
    "pole": (88.0, 30.0),  # near the North Pole
}
DEEPEST = 12  # floor resolution 5 is reached at zoom 10; two levels of context


@pytest.fixture(scope="module")
def antimeridian_server(server_url, reference_template, tmp_path_factory):
    from tests.conftest import _create_database, _drop_database

    name = "geomap_test_antimeridian"
    url = _create_database(server_url, name, template=reference_template)
    engine = create_engine(url)
    with session_scope(engine) as session:
        condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")
                                    ).scalar_one()
        points = np.array([p for p in SPOTS.values() for _ in range(10)])
        n = len(points)
        batch = MemberBatch(pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
                            contactable=[True] * n,
                            joined_at=[datetime(2025, 1, 1, tzinfo=UTC)] * n,
                            lats=points[:, 0], lngs=points[:, 1], conditions=[[condition]] * n)
        load_members(session, batch, KeyDeriver(session, FLOOR))
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()
    app = create_app(app_config(tmp_path_factory.mktemp("am"), GEOMAP_DATABASE_URL=url))
    with LiveServer(app) as server:
        yield server
    _drop_database(server_url, name)


SIDES = """(centre) => {
  const box = document.querySelector('.geomap-map').getBoundingClientRect();
  const mid = box.left + box.width / 2;
  const inside = (r) => r.right > box.left && r.left < box.right && r.bottom > box.top
                        && r.top < box.bottom && r.width > 0;
  const paths = [...document.querySelectorAll('.leaflet-outlines-pane path')]
    .map((p) => p.getBoundingClientRect()).filter(inside);
  const markers = [...document.querySelectorAll('.geomap-count')]
    .map((m) => m.getBoundingClientRect()).filter(inside);
  return {
    landWest: paths.some((r) => r.left < mid - 20), landEast: paths.some((r) => r.right > mid + 20),
    markersWest: markers.filter((r) => r.right < mid).length,
    markersEast: markers.filter((r) => r.left > mid).length,
  };
}"""


def wait_loaded(page, zoom: int) -> None:  # noqa: ANN001
    """Wait for markers at ``zoom`` and drawn outlines, polling from Python.

    (``wait_for_function`` polls with ``new Function``, which the page's CSP refuses.)
    """
    for _ in range(240):
        if page.evaluate(
                f"document.querySelector('.geomap-map').dataset.loadedZoom === '{zoom}' && "
                "(document.querySelectorAll('.leaflet-outlines-pane path').length > 0"
                # at deep zoom over open sea no 1:10m outline is near the view
                " || document.querySelector('.geomap-map').dataset.outlineScale === '10m')"):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the map did not load zoom {zoom}")


@pytest.mark.parametrize("where,lat,lng,zoom", [
    ("fiji", -17.5, 180.0, 7),
    ("bering strait", 65.0, -172.0, 5),
])
def test_map_and_embed_centred_on_180_show_land_and_markers_on_both_sides(
        antimeridian_server, page, where, lat, lng, zoom) -> None:
    for url in (f"{antimeridian_server.url}/conditions/all/map",
                f"{antimeridian_server.url}/embed/conditions/all/map?lat={lat}&lng="
                f"{min(lng, 180.0)}&zoom={zoom}"):
        page.goto(url)
        page.wait_for_selector(".geomap-map")
        set_view(page, lat, lng, zoom)
        wait_loaded(page, zoom)
        page.wait_for_function("() => document.querySelectorAll('.geomap-count').length >= 2")
        sides = page.evaluate(SIDES)
        assert sides["landWest"] and sides["landEast"], (where, url, sides)
        assert sides["markersWest"] >= 1 and sides["markersEast"] >= 1, (where, url, sides)


def test_a_polar_marker_is_drawn_at_zoom_3_and_at_the_deepest_zoom(antimeridian_server,
                                                                    page) -> None:
    page.goto(f"{antimeridian_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-map")
    assert page.evaluate("map_world.getMaxZoom()") == DEEPEST
    # At zoom 3 the polar marker is a coarse published cell: found in the whole Arctic.
    cells = page.evaluate("fetch('/api/v1/conditions/all/cells?zoom=3&bbox=-180,80,180,90')"
                          ".then(r => r.json())")
    polar = [f for f in cells["features"] if f["geometry"]["coordinates"][1] > 80]
    assert polar
    # At the deepest zoom it is the pole spot's own floor cell (10 members >= k), whose
    # centre lies north of the Mercator edge (85.05°): the map draws it on the edge.
    floor_lat, floor_lng = h3.cell_to_latlng(h3.latlng_to_cell(*SPOTS["pole"], FLOOR))
    assert floor_lat > 85.06
    for zoom, lng in ((3, polar[0]["geometry"]["coordinates"][0]), (DEEPEST, floor_lng)):
        set_view(page, 84.99, lng, zoom)
        wait_loaded(page, zoom)
        visible = page.evaluate("""() => {
          const box = document.querySelector('.geomap-map').getBoundingClientRect();
          return [...document.querySelectorAll('.geomap-count')].some((m) => {
            const r = m.getBoundingClientRect();
            return r.width > 0 && r.bottom > box.top && r.top < box.bottom
                   && r.right > box.left && r.left < box.right;
          });
        }""")
        assert visible, zoom
        # The map asked for the top row of tiles, which reaches the pole (its north
        # edge is +inf: geomap.web.viewport.tile_bounds), however deep the zoom.
        asked = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)"
                              ".filter((n) => n.includes('/tiles/all/'))")
        rows = {tuple(url.rsplit("/", 3)[1:]) for url in asked}
        assert any(z == str(zoom) and y == "0.json" for z, _x, y in rows), asked
