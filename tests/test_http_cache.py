"""A real nginx (Debian's) in front of geomap, with the shipped configuration template.

Tiles are served from nginx's cache on the second request (Flask does not see it), and a
publish reaches visitors through the short-lived version document while the old tiles
keep their bytes.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.http_cache import NGINX, NginxSite, nginx_prefix, start_nginx
from geomap.ingest import demo
from geomap.ingest.members_bulk import load_members
from geomap.publish import publish
from geomap.session import session_scope
from geomap.web.api import VERSION_MAX_AGE
from tests.conftest import FLOOR, K, LiveServer, app_config, free_port

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason="Debian's nginx is not installed")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:
        return None


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """Return status, headers and body of a GET (redirects not followed)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def add_members(url: str, members: int, seed: int) -> None:
    """Add demo members and publish."""
    engine = create_engine(url)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        batch, prefixes = demo.generate(session, members, seed, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()


@pytest.fixture
def nginx_in_front(fresh_db_url, tmp_path):
    """(nginx URL, list of paths Flask served, database URL): nginx before a live app."""
    add_members(fresh_db_url, 1500, seed=3)
    app = create_app(app_config(tmp_path / "app", GEOMAP_DATABASE_URL=fresh_db_url))
    served: list[str] = []

    @app.before_request
    def _count() -> None:
        from flask import request

        served.append(request.path)

    with LiveServer(app) as server:
        upstream = server.url.removeprefix("http://")
        port = free_port()
        site = NginxSite(listen=f"127.0.0.1:{port}", upstream=upstream,
                         prefix=nginx_prefix(tmp_path))
        process = None
        base = f"http://127.0.0.1:{port}"
        try:
            process = start_nginx(site)
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    time.sleep(0.1)
            yield base, served, fresh_db_url
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
            shutil.rmtree(site.prefix, ignore_errors=True)
            if site.prefix.parent.parent == Path("/var/lib/geomap"):
                shutil.rmtree(site.prefix.parent, ignore_errors=True)


def test_nginx_serves_a_tile_from_its_cache_and_a_publish_reaches_visitors(
        nginx_in_front) -> None:
    base, served, db_url = nginx_in_front
    status, headers, body = fetch(base + "/api/v1/conditions/all/version")
    assert status == 200 and headers["Cache-Control"] == f"public, max-age={VERSION_MAX_AGE}"
    document = json.loads(body)
    before = document["publish_version"]
    tile_url = base + document["tiles"].format(z=2, x=2, y=1)

    status, headers, first = fetch(tile_url)
    assert status == 200 and headers["X-Cache-Status"] == "MISS"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    flask_requests = len(served)
    status, headers, second = fetch(tile_url)
    assert status == 200 and headers["X-Cache-Status"] == "HIT"
    assert second == first
    assert len(served) == flask_requests, "the cached tile reached Flask"

    old_total = json.loads(first)["properties"]["total"]
    add_members(db_url, 1500, seed=4)
    time.sleep(VERSION_MAX_AGE)  # what a visitor's browser may keep the document for
    status, _, body = fetch(base + "/api/v1/conditions/all/version")
    document = json.loads(body)
    assert document["publish_version"] == before + 1
    status, headers, fresh = fetch(base + document["tiles"].format(z=2, x=2, y=1))
    assert status == 200 and headers["X-Cache-Status"] == "MISS"
    assert json.loads(fresh)["properties"]["total"] > old_total
    # The old URL keeps its old bytes from the cache; never a body of another version.
    status, headers, again = fetch(tile_url)
    assert headers["X-Cache-Status"] == "HIT" and again == first


def test_nginx_redirects_an_old_uncached_tile_to_the_current_version(nginx_in_front) -> None:
    base, _served, db_url = nginx_in_front
    before = json.loads(fetch(base + "/api/v1/conditions/all/version")[2])["publish_version"]
    add_members(db_url, 10, seed=5)
    time.sleep(1.5)  # past the worker's one-second trust in the version it read
    status, headers, _ = fetch(f"{base}/tiles/all/{before}/3/4/2.json")
    assert status == 302
    assert headers["Location"].endswith(f"/tiles/all/{before + 1}/3/4/2.json")
