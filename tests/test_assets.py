"""Static assets: content-hashed URLs, a year of caching, compression."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable

import brotli
import pytest


def test_static_urls_carry_a_content_hash_and_are_kept_a_year(client) -> None:
    page = client.get("/conditions/all/map").get_data(as_text=True)
    match = re.search(r'/static/geomap/map\.js\?v=([0-9a-f]{12})', page)
    assert match, "map.js has no content hash"
    topo = re.search(r'/static/vendor/world-atlas/countries-50m\.json\?v=[0-9a-f]{12}', page)
    assert topo, "the country outlines have no content hash"
    hashed = client.get(match.group(0))
    assert hashed.status_code == 200
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = client.get("/static/geomap/map.js?v=000000000000")
    assert "immutable" not in stale.headers.get("Cache-Control", "")


@pytest.mark.parametrize("accepts, decompress", [
    ("br", brotli.decompress),
    ("gzip", gzip.decompress),  # alone: curl --compressed, proxies, HTTP libraries
    ("deflate", zlib.decompress),
    ("gzip, deflate", gzip.decompress),
])
def test_static_files_are_compressed_for_every_client_that_accepts_it(
        client, accepts: str, decompress: Callable[[bytes], bytes]) -> None:
    page = client.get("/conditions/all/map").get_data(as_text=True)
    url = re.search(r'/static/vendor/world-atlas/countries-50m\.json\?v=[0-9a-f]{12}',
                    page).group(0)
    plain = client.get(url)
    packed = client.get(url, headers={"Accept-Encoding": accepts})
    assert packed.headers["Content-Encoding"] == accepts.split(",")[0]
    body = decompress(packed.get_data())
    assert body == plain.get_data()
    assert len(packed.get_data()) < len(body) / 3
    assert "Accept-Encoding" in packed.headers["Vary"]


def test_pages_and_json_answers_are_compressed_for_browsers_that_accept_it(client) -> None:
    """The map page and JSON answers travel compressed too, not only the static files."""
    for url in ("/conditions/all/map", "/", "/api/v1/conditions/all/regions",
                "/api/v1/openapi.json"):
        plain = client.get(url)
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
        packed = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["Content-Encoding"] == "gzip", url
        assert "Accept-Encoding" in packed.headers["Vary"]
        body = gzip.decompress(packed.get_data())
        if url.endswith("/map") or url == "/":  # pages carry per-request nonces
            assert body.decode().startswith("<!doctype html>")
        else:
            assert body == plain.get_data()
        assert len(packed.get_data()) < len(body) / 2
