"""Response headers that keep every page first-party and unframeable.

Every route denies framing and loads nothing from another host (Content-Security-
Policy); embed routes (added by their blueprint) relax only ``frame-ancestors``.
A tile server, when the operator turns tiles on, is the one host images may come from.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


def tile_url(setting: str) -> str | None:
    """Return the tile URL template the setting names, or None when tiles are off."""
    if setting == "off":
        return None
    return OSM_TILES if setting == "osm" else setting


def _tile_origin() -> str:
    url = tile_url(current_app.config["GEOMAP_TILES"])
    if not url:
        return ""
    parts = urlsplit(url.replace("{s}", "a"))
    host = parts.netloc.replace("a.", "*.", 1) if "{s}" in url else parts.netloc
    return f" {parts.scheme}://{host}"


def content_security_policy(frame_ancestors: str = "'none'") -> str:
    """Return the CSP for a page: first-party only, and framed only by ``frame_ancestors``."""
    return (
        "default-src 'self'; "
        "script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:{_tile_origin()}; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    if "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]:
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if _holds_member_data(response):
        response.headers["Cache-Control"] = "private, no-store"
        response.vary.add("Cookie")
    elif request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def _holds_member_data(response: Response) -> bool:
    """Return whether a response may hold member data: any answer to a signed-in member.

    Only answers marked public (published aggregates, embeds) are exempt; every other
    answer to a request with a member's session (settings, connections, exports, the
    members API) must not be kept by a browser or a shared cache.
    """
    if response.headers.get("Cache-Control", "").startswith("public"):
        return False
    return "_user_id" in session or request.blueprint in ("members", "members_api")


def init_app(app: Flask) -> None:
    """Add the security headers to every response."""
    app.after_request(_headers)
