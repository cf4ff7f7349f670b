"""The world map in a real Chromium: it renders, counts add up, nothing leaves 127.0.0.1."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import text


def visible_counts(page) -> list[int]:  # noqa: ANN001
    labels = page.locator(".geomap-count span[aria-hidden=true]").all_inner_texts()
    return [int(label.replace(",", "")) for label in labels]


def test_map_of_all_renders_with_counts_that_add_up(live_server, page, community_engine) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.wait_for_function("document.querySelector('.geomap-map').dataset.loadedZoom === '2'")
    with community_engine.connect() as conn:
        total = conn.execute(
            text("SELECT published FROM published_totals t JOIN conditions c "
                 "ON c.id = t.condition_id WHERE c.slug = 'all' AND t.resolution = 1")
        ).scalar_one()
    counts = visible_counts(page)
    assert counts and all(c >= 5 for c in counts)
    assert sum(counts) == total
    # The country outlines are drawn (SVG paths in the outlines pane), after the markers.
    page.wait_for_function(
        "document.querySelectorAll('.leaflet-outlines-pane path').length > 100"
    )


def test_zooming_in_loads_finer_cells(live_server, page) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.evaluate("map_world.setView([50.1, 8.7], 7)")
    page.wait_for_function("document.querySelector('.geomap-map').dataset.loadedZoom === '7'")
    # Markers come from version-stamped tiles of the new zoom, not from a box query.
    assert any(re.search(r"/tiles/all/[0-9]+/7/[0-9]+/[0-9]+\.json$", url)
               for url in page.requested_urls)
    assert not any("/cells?" in url for url in page.requested_urls)
    assert all(c >= 5 for c in visible_counts(page))


def test_the_map_requests_nothing_from_other_hosts(live_server, page) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.wait_for_load_state("networkidle")
    hosts = {urlsplit(url).hostname for url in page.requested_urls if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}
