"""The embed in a real Chromium, framed by a page on another origin (another port)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from werkzeug.wrappers import Request, Response

from tests.conftest import LiveServer


def partner_page(snippet: str, framed_map_url: str) -> str:
    """Return a plain HTML page as a site editor would write it around our snippet."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Partner site</title></head>
<body>
<h1>Living with ALL</h1>
<div id="embedded">{snippet}</div>
<iframe id="framed-map-page" src="{framed_map_url}" width="400" height="300"></iframe>
</body></html>"""


@pytest.fixture
def partner(live_server) -> Iterator[LiveServer]:
    """A second origin (another port on 127.0.0.1) serving a page with our snippet."""
    query = urllib.parse.urlencode({"url": f"{live_server.url}/conditions/all/map",
                                    "maxwidth": 700, "maxheight": 450})
    with urllib.request.urlopen(f"{live_server.url}/oembed?{query}") as answer:  # noqa: S310
        snippet = json.load(answer)["html"]
    html = partner_page(snippet, f"{live_server.url}/conditions/all/map")

    @Request.application
    def site(request: Request) -> Response:
        return Response(html, mimetype="text/html")

    with LiveServer(site) as server:
        yield server


def _frame(page, path: str):  # noqa: ANN001, ANN202
    # A lazy iframe may attach its document a little after the page's load event.
    for _ in range(600):
        for frame in page.frames:
            if urlsplit(frame.url).path == path:
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no frame showing {path}")


def test_snippet_on_another_origin_shows_the_map(live_server, partner, page) -> None:
    assert urlsplit(partner.url).port != urlsplit(live_server.url).port
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(partner.url)
    page.wait_for_load_state("load")
    embed = _frame(page, "/embed/conditions/all/map")
    embed.wait_for_selector(".geomap-count", timeout=45_000)
    embed.wait_for_function(
        "() => document.querySelector('.geomap-map').dataset.loadedZoom === '2'")
    labels = embed.locator(".geomap-count span[aria-hidden=true]").all_inner_texts()
    counts = [int(label.replace(",", "")) for label in labels]
    assert counts and all(count >= 5 for count in counts)
    box = page.locator("#embedded iframe").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (700, 450)
    assert embed.locator(".leaflet-outlines-pane path").count() > 100
    page.wait_for_load_state("networkidle")
    # Nothing off 127.0.0.1, and no cookie from the embed or anything it loaded.
    hosts = {urlsplit(url).hostname for url in page.requested_urls if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}
    assert page.context.cookies() == []
    ours = [r for r in responses if r.url.startswith(live_server.url)]
    assert ours and all("set-cookie" not in r.all_headers() for r in ours)


def test_a_non_embed_route_in_a_frame_is_refused(live_server, partner, page) -> None:
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(partner.url)
    page.wait_for_load_state("load")
    _frame(page, "/embed/conditions/all/map").wait_for_selector(".geomap-count",
                                                                 timeout=45_000)
    map_page_frames = [f for f in page.frames if f.url.startswith(f"{live_server.url}/conditions")]
    # Chromium replaces a refused frame's document with an error page.
    assert not map_page_frames or all(
        f.locator(".geomap-map").count() == 0 for f in map_page_frames
    )
    framed = page.locator("#framed-map-page").element_handle().content_frame()
    assert framed is None or framed.locator(".site-header").count() == 0
    assert any("frame-ancestors" in text or "Refused" in text for text in console), console


def test_editor_updates_snippet_and_preview(live_server, page) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto(f"{live_server.url}/embed")
    page.select_option("#embed-condition", "cll")
    page.select_option("#embed-size", "small")
    snippet_box = page.locator("#embed-snippet")
    expect(snippet_box).to_have_value(re.compile(r'/embed/conditions/cll/map".* width="400"'))
    snippet = page.input_value("#embed-snippet")
    assert 'height="300"' in snippet and snippet.startswith("<iframe ")
    preview = page.locator("#embed-preview iframe")
    assert preview.get_attribute("src").endswith("/embed/conditions/cll/map")
    frame = preview.element_handle().content_frame()
    frame.wait_for_selector(".geomap-map", timeout=45_000)
    page.click("#embed-copy")
    expect(page.locator("#embed-copied")).to_have_text(re.compile(r"\S"))
