"""Embedding the world map: the embed page, the editor that makes snippets, oEmbed 1.0.

Embed pages carry no site chrome and set no cookie (they never touch the session),
load nothing from another host unless the operator turned tiles on, are cacheable
(an ETag from the publish version and the options), and may be framed by the
origins in ``GEOMAP_FRAME_ANCESTORS``; every other route keeps denying framing.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from flask import url_for as flask_url_for
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from geomap.auth import stateless
from geomap.database import db
from geomap.i18n.names import localised, localised_one
from geomap.privacy import MAX_ZOOM, map_resolution
from geomap.publish import published
from geomap.web.embed_options import (
    SIZES,
    EmbedOptionError,
    EmbedOptions,
    iframe_snippet,
    parse_embed_options,
    parse_max_size,
    parse_size,
)
from geomap.web.openapi import OEmbedAnswer, OEmbedQuery, answers, contract
from geomap.web.preview import HEIGHT as PREVIEW_HEIGHT
from geomap.web.preview import WIDTH as PREVIEW_WIDTH
from geomap.web.preview import PreviewRenderError, render_preview_apart
from geomap.web.security import content_security_policy, tile_url

bp = Blueprint("embed", __name__)

EMBED_REVISION = "3"  # bump when the embed page's markup changes
EMBED_MAX_AGE = 300  # seconds browsers and proxies may reuse an embed page
# URLs oEmbed turns into the map's embed: the map pages, and a condition's own page
# (what an editor most likely copies; a condition without a map answers 404).
MAP_ENDPOINTS = ("pages.condition_map", "embed.map", "catalogue.entry")


def _tiles_enabled() -> bool:
    """Return whether the operator turned a tile server on."""
    return tile_url(current_app.config["GEOMAP_TILES"]) is not None


def _frame_ancestors() -> str:
    """Return the CSP frame-ancestors sources for embeds (GEOMAP_FRAME_ANCESTORS)."""
    return " ".join(current_app.config["GEOMAP_FRAME_ANCESTORS"]) or "'none'"


def _embed_headers(response: Response) -> Response:
    """Let the configured origins frame ``response`` (the default CSP denies framing)."""
    response.headers["Content-Security-Policy"] = content_security_policy(_frame_ancestors())
    return response


def embed_url(slug: str, options: EmbedOptions | None = None) -> str:
    """Return the absolute URL of a condition's embedded map with ``options``."""
    query = (options or EmbedOptions()).query(_tiles_enabled())
    return flask_url_for("embed.map", slug=slug, _external=True, **query)


def map_title(name: str, lang: str | None = None) -> str:
    """Return the title of a condition's world map, in ``lang`` (default: the request's)."""
    if lang:
        with force_locale(lang):
            return _("%(name)s world map", name=name)
    return _("%(name)s world map", name=name)


@bp.get("/embed/conditions/<slug>/map", endpoint="map")
@stateless
def embedded_map(slug: str) -> Response:
    """Show a condition's world map without site chrome, filling its frame."""
    condition = published.condition(db.public_session, slug)
    if condition is None:
        return _embed_error(404, published.missing_condition_message(db.public_session, slug))
    try:
        options = parse_embed_options(request.args, _tiles_enabled())
    except EmbedOptionError as exc:
        return _embed_error(400, str(exc))
    condition = localised_one(db.public_session, condition)
    version = published.publish_state(db.public_session).version
    config = current_app.config
    fingerprint = "|".join(
        (EMBED_REVISION, str(version), slug, options.query_string(_tiles_enabled()),
         config["GEOMAP_TILES"], _frame_ancestors(), request.host, str(get_locale()))
    )
    etag = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
    # Rendered for a 304 too: its CSP must list the hashes of the page the client keeps.
    # Imported where a map page is built, not at start-up.
    from geomap.web.maps import first_fetch_urls, world_map

    parts = world_map(
        slug=slug,
        tiles=config["GEOMAP_TILES"] if options.tiles else "off",
        tiles_attribution=config["GEOMAP_TILES_ATTRIBUTION"],
        center=(options.lat, options.lng),
        zoom=options.zoom,
        height=f"{options.height}px" if options.height else "100%",
        # In a frame on someone else's page: joining opens our site in a new tab.
        join_url=flask_url_for("members.join", slug=slug, _external=True),
        join_target="_blank",
    )
    html = render_template("embed/map.html", condition=condition, map=parts, options=options,
                           k=config["GEOMAP_K"], canonical_url=embed_url(slug, options),
                           preload_urls=first_fetch_urls(slug, options.zoom))
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(html)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={EMBED_MAX_AGE}"
    if options.lang is None:  # in the viewer's browser language
        response.vary.add("Accept-Language")
    return _embed_headers(response)


def _embed_error(status: int, message: str) -> Response:
    """Return a small, frameable error page (the editor's preview shows it)."""
    response = Response(render_template("embed/error.html", status=status, message=message),
                        status=status)
    response.headers["Cache-Control"] = "no-cache"
    return _embed_headers(response)


@bp.get("/embed")
def editor() -> str:
    """Let a site editor pick a condition and a size and copy the iframe snippet."""
    conditions = localised(db.public_session, published.conditions(db.public_session))
    if not conditions:
        abort(404, description=_("There are no conditions to embed yet."))
    slug = request.args.get("condition") or conditions[0].slug
    chosen = next((c for c in conditions if c.slug == slug), None)
    if chosen is None:
        abort(400, description=_('There is no condition %(slug)r.', slug=slug))
    size = request.args.get("size", "medium")
    try:
        if size in SIZES:
            width, height = SIZES[size]
        else:
            width, height = parse_size(request.args, "width", "height")
            size = "custom"
    except EmbedOptionError as exc:
        abort(400, description=str(exc))
    try:
        chosen_view = {name: request.args[name] for name in ("lat", "lng", "zoom")
                       if name in request.args}
        if request.args.get("embed_lang"):  # the page's own language is ?lang=
            chosen_view["lang"] = request.args["embed_lang"]
        view = parse_embed_options(chosen_view, _tiles_enabled())
    except EmbedOptionError as exc:
        abort(400, description=str(exc))
    src = embed_url(chosen.slug, view)
    title = map_title(chosen.name, view.lang)
    return render_template(
        "embed/editor.html",
        conditions=conditions,
        chosen=chosen,
        size=size,
        sizes=SIZES,
        width=width,
        height=height,
        src=src,
        snippet=iframe_snippet(src, width, height, title),
        preview=iframe_snippet(src, width, height, title, styled=False),
        view=view if view != EmbedOptions(tiles=view.tiles, lang=view.lang) else None,
        embed_lang=view.lang or "",
        max_zoom=MAX_ZOOM,
    )


def _map_of_url(url: str) -> tuple[published.ConditionSummary, EmbedOptions]:
    """Return the condition and embed options of one of our map URLs, or abort 404."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        abort(404, description=_("That URL is not a map on this site."))
    if parts.scheme not in ("http", "https") or parts.netloc != request.host:
        abort(404, description=_("That URL is not a map on this site."))
    adapter = current_app.url_map.bind(request.host, url_scheme=parts.scheme)
    try:
        endpoint, args = adapter.match(parts.path, method="GET")
    except HTTPException:
        abort(404, description=_("That URL is not a map on this site."))
    if endpoint not in MAP_ENDPOINTS:
        abort(404, description=_("That URL is not a map on this site."))
    condition = published.condition(db.public_session, args["slug"])
    if condition is None:
        abort(404, description=_('There is no condition %(args)r.', args=args['slug']))
    query = dict(parse_qsl(parts.query)) if endpoint == "embed.map" else {}
    try:
        options = parse_embed_options(query, _tiles_enabled())
    except EmbedOptionError as exc:
        abort(400, description=str(exc))
    return condition, options


PREVIEW_ZOOM = 2  # the world view's cells
PREVIEW_SIZE = (PREVIEW_WIDTH, PREVIEW_HEIGHT)
_previews: dict[tuple[str, int], tuple[bytes, str]] = {}


@bp.get("/conditions/<slug>/preview.png", endpoint="preview")
@stateless
def preview(slug: str) -> Response:
    """Return a PNG preview of a condition's world map (og:image, oEmbed thumbnail)."""
    condition = published.condition(db.public_session, slug)
    if condition is None:
        abort(404, description=_('There is no condition %(slug)r.', slug=slug))
    version = published.publish_state(db.public_session).version
    key = (slug, version)
    if key not in _previews:
        resolution = map_resolution(PREVIEW_ZOOM, current_app.config["GEOMAP_FLOOR_RESOLUTION"])
        cells = published.cells(db.public_session, condition.id, resolution)
        outlines = published.country_outlines(db.public_session)
        try:
            body = render_preview_apart(outlines, cells)
        except PreviewRenderError:
            current_app.logger.exception("preview of %s not drawn", slug)
            abort(503, description=_(
                "The service is not available just now; please try again in a minute."))
        del outlines
        if len(_previews) > 64:
            _previews.clear()
        _previews[key] = (body, hashlib.sha256(body).hexdigest()[:32])
    body, etag = _previews[key]
    response = Response(body, mimetype="image/png")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={EMBED_MAX_AGE}"
    return response.make_conditional(request)


@bp.get("/oembed")
@stateless
@contract.validate(query=OEmbedQuery, resp=answers(OEmbedAnswer, 404, 501), tags=["embed"])
def oembed() -> Response:
    """Answer oEmbed 1.0 for a map or embed URL: a rich response with the iframe."""
    url = request.args.get("url")
    if not url:
        abort(400, description=_("url is required: the address of a map on this site."))
    if request.args.get("format", "json") != "json":
        abort(501, description=_("Only format=json is supported."))
    condition, options = _map_of_url(url)
    try:
        width, height = parse_max_size(request.args)
    except EmbedOptionError as exc:
        abort(400, description=str(exc))
    with force_locale(options.lang or str(get_locale())):
        title = map_title(localised_one(db.public_session, condition).name)
    response = jsonify(
        type="rich",
        version="1.0",
        title=title,
        provider_name="geomap",
        provider_url=flask_url_for("pages.index", _external=True),
        cache_age=EMBED_MAX_AGE,
        html=str(iframe_snippet(embed_url(condition.slug, options), width, height, title)),
        width=width,
        height=height,
        thumbnail_url=flask_url_for("embed.preview", slug=condition.slug, _external=True),
        thumbnail_width=PREVIEW_SIZE[0],
        thumbnail_height=PREVIEW_SIZE[1],
    )
    response.headers["Cache-Control"] = f"public, max-age={EMBED_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
