"""Response headers that keep every page first-party and unframeable.

Every route denies framing and loads nothing from another host (Content-Security-
Policy); embed routes (added by their blueprint) relax only ``frame-ancestors``.
A tile server, when the operator turns tiles on, is the one host images may come from.

No page may run an inline script or style it did not declare: the CSP has no
``'unsafe-inline'``. The inline blocks a page does hold (the Leaflet map set-up) are
listed by their SHA-256 hash, taken while the template renders (``inline_script``
and the ``csp_hashed`` filter); hashes, unlike nonces, keep cached embeds valid.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request, session
from markupsafe import Markup

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


_INLINE_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _allow(kind: str, text: str) -> None:
    """Add the hash of an inline ``kind`` ("script" or "style") block to this request's CSP."""
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    g.setdefault("csp_hashes", {"script": set(), "style": set()})[kind].add(
        f"'sha256-{digest}'")


def inline_script(code: str) -> Markup:
    """Return ``<script>code</script>`` and allow exactly that code in this page's CSP."""
    _allow("script", str(code))
    return Markup("<script>") + Markup(code) + Markup("</script>")  # noqa: S704


def csp_hashed(markup: str) -> Markup:
    """Allow the inline ``<script>`` and ``<style>`` blocks of ``markup`` (trusted HTML)."""
    for kind, text in _INLINE_BLOCK.findall(str(markup)):
        _allow(kind, text)
    return Markup(markup)  # noqa: S704


def _sources(kind: str) -> str:
    hashes = g.get("csp_hashes", {}).get(kind, ()) if g else ()
    return "".join(f" {digest}" for digest in sorted(hashes))


def content_security_policy(frame_ancestors: str = "'none'") -> str:
    """Return the CSP for a page: first-party only, and framed only by ``frame_ancestors``.

    Inline scripts and styles are allowed only by the hashes this request's templates
    declared; call it after the page is rendered.
    """
    return (
        "default-src 'self'; "
        f"script-src 'self'{_sources('script')}; "
        f"style-src 'self'{_sources('style')}; "
        f"img-src 'self' data:{_tile_origin()}; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


def _headers(response: Response) -> Response:
    # A 304 keeps the stored page and its policy (whose hashes match that page).
    if response.status_code != 304:
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
    if "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", ""):
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if _holds_member_data(response):
        response.headers["Cache-Control"] = "private, no-store"
        response.vary.add("Cookie")
    elif request.path.startswith(("/api/", "/tiles/")):
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
    if request.blueprint in ("members", "members_api"):
        return True
    # Look into the session only when the request brought one (reading it adds Vary).
    if not request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        return False
    return "_user_id" in session


def init_app(app: Flask) -> None:
    """Add the security headers to every response; give templates the CSP helpers."""
    app.after_request(_headers)
    app.add_template_global(inline_script)
    app.add_template_filter(csp_hashed)
