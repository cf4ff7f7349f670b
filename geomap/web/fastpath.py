"""Cache hits of the public cells and tile routes, answered in front of Flask.

A hit needs no session, login, CSRF check or rate limiter: this WSGI middleware looks
the request up in the per-process cells cache (geomap/web/api.py) and answers with the
headers Flask gave the same route's last full answer. Anything it does not recognise
exactly (another route, another query string, a stale version, a first request) goes
on to Flask unchanged, so every check the app makes still applies to every miss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_etags

from geomap.privacy import map_resolution
from geomap.web.api import accepts_gzip, cells_key, gzip_etag, tile_key
from geomap.web.viewport import ViewportError, parse_bbox, parse_zoom

_CELLS = re.compile(r"/api/v1/conditions/([a-z0-9][a-z0-9-]{0,63})/cells")
_TILE = re.compile(r"/tiles/([a-z0-9][a-z0-9-]{0,63})/([0-9]{1,18})/([0-9]{1,2})/"
                   r"([0-9]{1,9})/([0-9]{1,9})\.json")
_QUERY = re.compile(r"zoom=([0-9]{1,2})(?:&bbox=([-+0-9.,e]{1,200}))?")
# Headers that belong to one answer, not to the route: never replayed.
_OWN = frozenset({"etag", "content-length", "date", "set-cookie", "content-encoding"})

StartResponse = Callable[..., Any]


class CachedReads:
    """WSGI middleware answering cells and tile cache hits before Flask (see module doc)."""

    def __init__(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app``; the cache is the app's cells cache."""
        from geomap.web.api import _CellsCache

        self.flask_app = app
        self.wsgi_app = app.wsgi_app
        self.cache = app.extensions.setdefault("geomap.cells_cache", _CellsCache())
        self.floor = app.config["GEOMAP_FLOOR_RESOLUTION"]
        self.route_headers: dict[str, list[tuple[str, str]]] = {}

    def _key(self, environ: dict) -> tuple[str, tuple | None] | None:
        """Return (route, cache key or None when unknown yet), or None: not ours."""
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        match = _TILE.fullmatch(path)
        if match and not query:
            slug, version, zoom, x, y = match.groups()
            return "tile", tile_key(slug, int(version), int(zoom), int(x), int(y))
        match = _CELLS.fullmatch(path)
        if match:
            args = _QUERY.fullmatch(query)
            if args is None:
                return None
            version = self.cache.fresh_version()
            if version is None:
                return "cells", None
            try:
                zoom = parse_zoom(args.group(1))
                boxes = parse_bbox(args.group(2), zoom)
            except ViewportError:
                return None
            resolution = map_resolution(zoom, self.floor)
            return "cells", cells_key(match.group(1), zoom, resolution, boxes, version)
        return None

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a cache hit here; pass everything else to Flask."""
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        found = self._key(environ)
        if found is None:
            return self.wsgi_app(environ, start_response)
        route, key = found
        headers = self.route_headers.get(route)
        entry = self.cache.get(key) if key is not None and headers is not None else None
        if entry is None:
            return self.wsgi_app(environ, self._learning(route, start_response))
        body, etag = entry
        coding: list[tuple[str, str]] = []
        if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")):
            body = self.cache.gzipped(key, body)
            etag = gzip_etag(etag)
            coding = [("Content-Encoding", "gzip")]
        quoted = f'"{etag}"'
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm and parse_etags(inm).contains(etag):
            start_response("304 NOT MODIFIED", [
                (name, value) for name, value in headers
                if name.lower() not in ("content-type", "content-security-policy")
            ] + [("ETag", quoted)])
            return []
        start_response("200 OK", [*headers, *coding, ("ETag", quoted),
                                  ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]

    def _learning(self, route: str, start_response: StartResponse) -> StartResponse:
        """Return a start_response that keeps the route's headers from a public 200."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("200") and route not in self.route_headers:
                # Only a public answer that sets no cookie: the body of these routes never
                # depends on the session (a "Vary: Cookie" from reading it is kept as is).
                names = {name.lower() for name, _ in headers}
                control = next((v for n, v in headers if n.lower() == "cache-control"), "")
                if "set-cookie" not in names and control.startswith("public"):
                    self.route_headers[route] = [(n, v) for n, v in headers
                                                 if n.lower() not in _OWN]
            return start_response(status, headers, exc_info)

        return start


def init_app(app: Flask) -> None:
    """Put the cache-hit middleware in front of ``app`` (call after everything else)."""
    app.wsgi_app = CachedReads(app)  # type: ignore[method-assign]
