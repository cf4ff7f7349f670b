"""Embedding: the embed page's headers and options, the editor, and oEmbed 1.0."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from geomap import create_app
from tests.conftest import app_config

EMBED = "/embed/conditions/all/map"
OEMBED_REQUIRED = {"type", "version", "html", "width", "height"}


def test_embed_page_is_frameable_cacheable_and_sets_no_cookie(client) -> None:
    response = client.get(EMBED)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp
    assert "X-Frame-Options" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    assert response.headers["ETag"]
    assert "public" in response.headers["Cache-Control"]
    html = response.get_data(as_text=True)
    assert 'class="site-header"' not in html  # no site chrome
    # Absolute URLs only of this site (the map link, oEmbed discovery, og:image).
    assert "http://" not in re.sub(r"http://localhost/", "", html)


def test_embed_answers_304_for_its_etag(client) -> None:
    etag = client.get(EMBED).headers["ETag"]
    again = client.get(EMBED, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    assert "frame-ancestors *" in again.headers["Content-Security-Policy"]
    other = client.get(f"{EMBED}?zoom=4", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag


def test_embed_options_set_the_initial_view(client) -> None:
    html = client.get(f"{EMBED}?lat=50.1&lng=8.7&zoom=6&height=400").get_data(as_text=True)
    assert "[50.1, 8.7]" in html
    assert '"zoom": 6' in html or "zoom: 6" in html
    assert "400.0px" in html or "400px" in html


@pytest.mark.parametrize("query", [
    "zoom=0", "zoom=99", "zoom=x", "lat=91&lng=0", "lat=10", "lng=nan&lat=1", "height=5",
    "tiles=maybe", "tiles=on",
])
def test_bad_embed_options_get_a_readable_400(client, query: str) -> None:
    response = client.get(f"{EMBED}?{query}")
    assert response.status_code == 400
    assert "This map cannot be shown" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


def test_unknown_condition_embed_is_404(client) -> None:
    assert client.get("/embed/conditions/no-such/map").status_code == 404


def test_frame_ancestors_come_from_the_setting(community_url, tmp_path) -> None:
    app = create_app(app_config(
        tmp_path, GEOMAP_DATABASE_URL=community_url,
        GEOMAP_FRAME_ANCESTORS="https://patients.example.org https://*.example.net"))
    csp = app.test_client().get(EMBED).headers["Content-Security-Policy"]
    assert "frame-ancestors https://patients.example.org https://*.example.net" in csp


def test_tiles_follow_the_operator(community_url, tmp_path) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url, GEOMAP_TILES="osm"))
    client = app.test_client()
    assert "tile.openstreetmap.org" in client.get(EMBED).get_data(as_text=True)
    off = client.get(f"{EMBED}?tiles=off").get_data(as_text=True)
    assert "tile.openstreetmap.org/{z}" not in off


@pytest.mark.parametrize("path", ["/", "/conditions/all/map", "/embed", "/login",
                                  "/api/v1/conditions", "/oembed?url=x"])
def test_every_other_route_denies_framing(client, path: str) -> None:
    response = client.get(path)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_editor_gives_a_snippet_for_the_chosen_condition_and_size(client) -> None:
    response = client.get("/embed?condition=cll&size=large")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "embed-editor.js" in html
    assert ('&lt;iframe src=&#34;http://localhost/embed/conditions/cll/map&#34; width=&#34;960'
            '&#34; height=&#34;600&#34;') in html
    assert client.get("/embed?size=custom&width=10").status_code == 400
    assert client.get("/embed?condition=nope").status_code == 400


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "link":
            self.links.append(dict(attrs))


def test_map_pages_carry_oembed_discovery_links(client) -> None:
    parser = _Links()
    parser.feed(client.get("/conditions/all/map").get_data(as_text=True))
    found = [link for link in parser.links if link.get("type") == "application/json+oembed"]
    assert len(found) == 1 and found[0]["rel"] == "alternate"
    href = urlsplit(found[0]["href"])
    assert href.path == "/oembed"
    answer = client.get(f"{href.path}?{href.query}").get_json()
    assert answer["type"] == "rich"


def _assert_oembed_rich(answer: dict) -> None:
    """Check the fields oEmbed 1.0 requires of a rich response (spec §2.3.4, §2.3.4.4)."""
    assert OEMBED_REQUIRED <= answer.keys()
    assert answer["type"] == "rich" and answer["version"] == "1.0"
    assert isinstance(answer["width"], int) and isinstance(answer["height"], int)
    assert answer["width"] > 0 and answer["height"] > 0
    for optional in ("title", "provider_name", "provider_url"):
        assert isinstance(answer[optional], str)
    assert isinstance(answer.get("cache_age", 0), int)
    assert answer["html"].startswith("<iframe ") and answer["html"].endswith("</iframe>")
    assert f'width="{answer["width"]}"' in answer["html"]
    assert f'height="{answer["height"]}"' in answer["html"]


@pytest.mark.parametrize("url", [
    "http://localhost/conditions/all/map",
    "http://localhost/conditions/all",  # the condition's page (a newcomer pasted it)
    "http://localhost/embed/conditions/all/map",
    "http://localhost/embed/conditions/all/map?zoom=5&lat=48&lng=2",
])
def test_oembed_answers_rich_json_for_map_urls(client, url: str) -> None:
    response = client.get("/oembed", query_string={"url": url, "format": "json"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    answer = response.get_json()
    _assert_oembed_rich(answer)
    assert answer["title"] == "Acute lymphocytic leukemia world map"
    assert answer["provider_name"] == "geomap"
    src = re.search(r'src="([^"]+)"', answer["html"]).group(1)
    assert src.startswith("http://localhost/embed/conditions/all/map")
    if "zoom=5" in url:
        assert parse_qs(urlsplit(src.replace("&amp;", "&")).query)["zoom"] == ["5"]


def test_oembed_respects_maxwidth_and_maxheight(client) -> None:
    answer = client.get("/oembed", query_string={
        "url": "http://localhost/conditions/cll/map", "maxwidth": 300, "maxheight": 250,
    }).get_json()
    _assert_oembed_rich(answer)
    assert (answer["width"], answer["height"]) == (300, 250)


@pytest.mark.parametrize(("url", "status"), [
    ("http://localhost/conditions/no-such/map", 404),
    ("http://elsewhere.example/conditions/all/map", 404),
    ("http://localhost/", 404),
    ("http://localhost/api/v1/conditions", 404),
    ("ftp://localhost/conditions/all/map", 404),
    ("not a url", 404),
    ("http://localhost/embed/conditions/all/map?zoom=99", 400),
])
def test_oembed_refuses_urls_that_are_not_our_maps(client, url: str, status: int) -> None:
    response = client.get("/oembed", query_string={"url": url})
    assert response.status_code == status
    assert response.get_json()["error"]["status"] == status


def test_oembed_error_codes(client) -> None:
    url = "http://localhost/conditions/all/map"
    assert client.get("/oembed", query_string={"url": url, "format": "xml"}).status_code == 501
    assert client.get("/oembed").status_code == 400
    assert client.get("/oembed", query_string={"url": url, "maxwidth": "wide"}).status_code == 400


def test_embed_etag_follows_the_publish_version(community_engine, tmp_path) -> None:
    from geomap.publish import publish
    from tests.conftest import FLOOR, K, sessions_on

    connection = community_engine.connect()
    transaction = connection.begin()
    try:
        sessions = sessions_on(connection)
        client = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions)).test_client()
        before = client.get(EMBED).headers["ETag"]
        assert client.get(EMBED).headers["ETag"] == before  # same question, same answer
        with sessions() as session:
            publish(session, k=K, floor=FLOOR)
            session.commit()
        after = client.get(EMBED, headers={"If-None-Match": before})
        assert after.status_code == 200 and after.headers["ETag"] != before
    finally:
        transaction.rollback()
        connection.close()
