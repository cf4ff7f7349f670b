"""The public JSON API: conditions and their published cells (GeoJSON)."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import OrderedDict

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.http import parse_accept_header

from geomap.database import db, read_retrying
from geomap.geo import places
from geomap.i18n.formats import country_name, region_name
from geomap.privacy import map_resolution
from geomap.publish import published
from geomap.web.openapi import (
    CellCollection,
    CellsQuery,
    ConditionList,
    PlaceLabels,
    PlaceLabelsQuery,
    RegionCounts,
    RegionsQuery,
    TileCollection,
    TilesVersion,
    answers,
    contract,
)
from geomap.web.viewport import (
    ViewportError,
    parse_bbox,
    parse_zoom,
    tile_bounds,
    tile_box,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Tiles live outside /api/v1 so an HTTP cache can be told "cache all of /tiles/".
tiles_bp = Blueprint("tiles", __name__, url_prefix="/tiles")
VERSION_MAX_AGE = 5  # seconds the version document may be cached (and tile redirects)

_CACHE_SIZE = 4096
# Bound the cache by the bytes it holds too: at a million members a world view is
# ~100 kB, and each worker must stay small (see docs/scaling.md).
_CACHE_BYTES = 16 * 1024 * 1024
_VERSION_TTL = 1.0  # seconds a worker trusts its idea of the publish version
# Cache misses of the cells API rendered at once per worker process; a miss waits up to
# GEOMAP_CELLS_MISS_WAIT seconds for a slot, then is answered 503.
CELLS_MISS_SLOTS = threading.BoundedSemaphore(2)


class _CellsCache:
    """Per-process cache of cells and tile responses, keyed by version and viewport."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[bytes, str]] = OrderedDict()
        self._gzipped: dict[tuple, bytes] = {}  # compressed on the first ask, per entry
        self._bytes = 0
        self._version: tuple[float, int] = (0.0, -1)

    def fresh_version(self) -> int | None:
        """Return the version seen less than a second ago, or None (then ask :meth:`version`)."""
        checked, version = self._version
        if version < 0 or time.monotonic() - checked > _VERSION_TTL:
            return None
        return version

    def version(self, force: bool = False) -> int:
        """Return the latest publish version, read at most once a second (``force``: now)."""
        now = time.monotonic()
        checked, version = self._version
        if force or now - checked > _VERSION_TTL:
            try:
                version = read_retrying(
                    db.public_session, lambda s: published.publish_state(s).version)
            except DBAPIError:
                # The database is down: keep serving what is cached under the last
                # version seen (published data changes only by a publish anyway).
                if version < 0:
                    raise
                db.public_session.rollback()
                self._version = (now, version)
                return version
            self._version = (now, version)
        return version

    def saw_version(self, version: int) -> None:
        """Remember ``version``, read just now with the data of a response."""
        if version >= self._version[1]:
            self._version = (time.monotonic(), version)

    def get(self, key: tuple) -> tuple[bytes, str] | None:
        """Return the cached (body, etag) of ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: tuple[bytes, str]) -> None:
        """Keep (body, etag) under ``key``, dropping the least recently used past the caps."""
        with self._lock:
            self._forget(key)
            self._entries[key] = entry
            self._bytes += len(entry[0])
            while len(self._entries) > _CACHE_SIZE or self._bytes > _CACHE_BYTES:
                self._forget(next(iter(self._entries)))

    def gzipped(self, key: tuple, body: bytes) -> bytes:
        """Return ``body`` (the entry of ``key``) gzip-compressed, compressing it only once.

        The viewport GeoJSON shrinks ~6-8x; a miss is answered before anyone asks for
        this, so its cost falls on the first hit of a browser that accepts gzip.
        """
        with self._lock:
            packed = self._gzipped.get(key)
        if packed is not None:
            return packed
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            if key in self._entries and key not in self._gzipped:
                self._gzipped[key] = packed
                self._bytes += len(packed)
        return packed

    def _forget(self, key: tuple) -> None:
        """Drop ``key``'s entry and its compressed body (call with the lock held)."""
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous[0])
        packed = self._gzipped.pop(key, None)
        if packed is not None:
            self._bytes -= len(packed)

    def clear(self) -> None:
        """Forget every entry and the version."""
        with self._lock:
            self._entries.clear()
            self._gzipped.clear()
            self._bytes = 0
            self._version = (0.0, -1)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header value accepts gzip (RFC 9110 q-values)."""
    if not accept_encoding or "gzip" not in accept_encoding and "*" not in accept_encoding:
        return False
    accepted = parse_accept_header(accept_encoding)
    return accepted["gzip"] > 0 if "gzip" in accepted else accepted["*"] > 0


def gzip_etag(etag: str) -> str:
    """Return the strong validator of the gzip-coded form of the body tagged ``etag``."""
    return f"{etag}-gzip"


def cells_key(slug: str, zoom: int, resolution: int, boxes: tuple | None,
              version: int) -> tuple:
    """Return the cache key of a cells answer: every value its body depends on."""
    return ("cells", slug, zoom, resolution, boxes, version)


def tile_key(slug: str, version: int, zoom: int, x: int, y: int) -> tuple:
    """Return the cache key of a tile (the floor resolution is fixed per app)."""
    return ("tile", slug, version, zoom, x, y)


def cells_cache() -> _CellsCache:
    """Return the current app's cells cache."""
    return current_app.extensions.setdefault("geomap.cells_cache", _CellsCache())


def _condition_or_404(slug: str) -> published.ConditionSummary:
    condition = published.condition(db.public_session, slug)
    if condition is None:
        abort(404, description=published.missing_condition_message(db.public_session, slug))
    return condition


@bp.get("/conditions")
@contract.validate(resp=answers(ConditionList), tags=["public"])
def conditions() -> Response:
    """List the conditions with their published totals."""
    return jsonify(
        conditions=[
            {
                "slug": c.slug,
                "name": c.name,
                "icd10": c.icd10,
                "published_members": c.published,
                "map_url": url_for("pages.condition_map", slug=c.slug, _external=True),
                "cells_url": url_for("api.cells", slug=c.slug, _external=True),
            }
            for c in published.conditions(db.public_session)
        ]
    )


@bp.get("/conditions/<slug>/cells")
@contract.validate(query=CellsQuery, resp=answers(CellCollection, 404), tags=["public"])
def cells(slug: str) -> Response:
    """Return the published cells of a condition at a zoom, optionally in a box."""
    try:
        zoom = parse_zoom(request.args.get("zoom"))
        boxes = parse_bbox(request.args.get("bbox"), zoom)
    except ViewportError as exc:
        abort(400, description=str(exc))
    resolution = map_resolution(zoom, current_app.config["GEOMAP_FLOOR_RESOLUTION"])
    cache = cells_cache()
    key = cells_key(slug, zoom, resolution, boxes, cache.version())
    entry = cache.get(key)
    if entry is None:
        view = _read_viewport(slug, resolution, boxes=list(boxes) if boxes else None)
        properties = {"condition": view.condition_slug, "zoom": zoom, "resolution": resolution,
                      "publish_version": view.version, "total": view.total,
                      "bbox": [list(box) for box in boxes] if boxes else None}
        entry = _collection(view, properties)
        key = cells_key(slug, zoom, resolution, boxes, view.version)
        cache.put(key, entry)
    return _cached_answer(key, entry, "public, max-age=60")


@bp.get("/conditions/<slug>/version")
@contract.validate(resp=answers(TilesVersion, 404), tags=["public"])
def tiles_version(slug: str) -> Response:
    """Say which publish version the tiles of a condition are at (short-lived: a few seconds)."""
    version = read_retrying(db.public_session,
                            lambda session: published.condition_version(session, slug))
    if version is None:
        abort(404, description=published.missing_condition_message(db.public_session, slug))
    cells_cache().saw_version(version)
    response = jsonify(
        condition=slug,
        publish_version=version,
        tiles=_tile_template(slug, version),
        max_age=VERSION_MAX_AGE,
    )
    response.headers["Cache-Control"] = f"public, max-age={VERSION_MAX_AGE}"
    return response


def _tile_template(slug: str, version: int) -> str:
    path = url_for("tiles.tile", slug=slug, version=version, zoom=0, x=0, y=0)
    return path.replace("/0/0/0.json", "/{z}/{x}/{y}.json")


@tiles_bp.get("/<slug>/<int:version>/<int:zoom>/<int:x>/<int:y>.json")
@contract.validate(resp=answers(TileCollection, 302, 404), tags=["public"])
def tile(slug: str, version: int, zoom: int, x: int, y: int) -> Response:
    """Return the published cells of one XYZ tile at one publish version (immutable).

    A marker lies in exactly one tile of a zoom (tiles are half-open boxes). An older
    version answers 302 to the same tile at the current version (cacheable for a few
    seconds only); a version not published yet answers 404. A body is only ever the
    data of the version its URL names.
    """
    try:
        bounds = tile_bounds(zoom, x, y)
    except ViewportError as exc:
        abort(404, description=_("There is no tile %(tile)s: %(reason)s.",
                                 tile="/".join(map(str, (zoom, x, y))), reason=exc))
    cache = cells_cache()
    key = tile_key(slug, version, zoom, x, y)
    entry = cache.get(key)
    if entry is None:
        current = cache.version()
        if version > current:
            current = cache.version(force=True)
        if version > current:
            abort(404, description=_("Version %(version)s is not published yet.",
                                     version=version))
        if version == current:
            resolution = map_resolution(zoom, current_app.config["GEOMAP_FLOOR_RESOLUTION"])
            view = _read_viewport(slug, resolution, tile=bounds)
            properties = {"condition": view.condition_slug, "zoom": zoom,
                          "resolution": resolution, "publish_version": view.version,
                          "total": view.total, "bbox": [list(tile_box(zoom, x, y))],
                          "tile": [zoom, x, y]}
            rendered = _collection(view, properties)
            cache.put(tile_key(slug, view.version, zoom, x, y), rendered)
            cache.saw_version(view.version)
            if view.version == version:
                entry = rendered
            else:  # a publish landed since the version check: never a newer body here
                current = view.version
        elif published.condition_version(db.public_session, slug) is None:
            abort(404, description=published.missing_condition_message(db.public_session, slug))
        if entry is None:
            response = redirect(url_for("tiles.tile", slug=slug, version=current, zoom=zoom,
                                        x=x, y=y), code=302)
            response.headers["Cache-Control"] = f"public, max-age={VERSION_MAX_AGE}"
            return response
    return _cached_answer(key, entry, "public, max-age=31536000, immutable")


def _read_viewport(slug: str, resolution: int, **where: object) -> published.ViewportFeatures:
    """Read a viewport as GeoJSON in one round trip (404 for an unknown slug).

    Misses take a slot.
    """
    # Bound the work of cache misses: a client asking a new box each time waits
    # its turn instead of taking every thread (and the database) from the others.
    if not CELLS_MISS_SLOTS.acquire(timeout=current_app.config["GEOMAP_CELLS_MISS_WAIT"]):
        raise ServiceUnavailable(_("The map is busy; please try again in a moment."),
                                 retry_after=2)
    try:
        view = read_retrying(db.public_session, lambda session: published.viewport_features(
            session, slug, resolution, **where))
    finally:
        CELLS_MISS_SLOTS.release()
    if view is None:
        abort(404, description=published.missing_condition_message(db.public_session, slug))
    return view


def _collection(view: published.ViewportFeatures, properties: dict) -> tuple[bytes, str]:
    """Return the GeoJSON body of ``view``'s markers and its ETag.

    A FeatureCollection: ``properties`` (compact JSON), then the Features PostgreSQL
    wrote (published.viewport_features); no marker is parsed or re-encoded in Python.
    """
    head = json.dumps({"type": "FeatureCollection", "properties": properties},
                      separators=(",", ":")).encode()
    body = b"".join((head[:-1], b',"features":[', view.features, b"]}"))
    return body, hashlib.sha256(body).hexdigest()[:32]


def _cached_answer(key: tuple, entry: tuple[bytes, str], cache_control: str) -> Response:
    """Answer a cached viewport body, gzip-coded when the client accepts it."""
    body, etag = entry
    if accepts_gzip(request.headers.get("Accept-Encoding")):
        response = Response(cells_cache().gzipped(key, body), mimetype="application/geo+json")
        response.headers["Content-Encoding"] = "gzip"
        etag = gzip_etag(etag)
    else:
        response = Response(body, mimetype="application/geo+json")
    response.set_etag(etag)
    response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = cache_control
    return response.make_conditional(request)


@bp.get("/conditions/<slug>/regions")
@contract.validate(query=RegionsQuery, resp=answers(RegionCounts, 404), tags=["public"])
def regions(slug: str) -> Response:
    """Return the published counts per country or first-level region of a condition."""
    level = request.args.get("level", "country")
    if level not in ("country", "admin1"):
        abort(400, description=_("level must be 'country' or 'admin1'."))
    condition = _condition_or_404(slug)
    version = cells_cache().version()
    rows = published.region_counts(db.public_session, condition.id, level)
    # Names in the request's language: countries as CLDR names them, regions as
    # pycountry's ISO 3166-2 catalogues do (the stored names are English).
    def name_of(name: str | None, code: str) -> str | None:
        if not name:
            return name
        return country_name(code) if level == "country" else region_name(name)

    response = jsonify(
        condition=condition.slug,
        level=level,
        k=current_app.config["GEOMAP_K"],
        publish_version=version,
        note=_("Each count is a sum of the same areas of at least k members as the map "
               "markers, each area counted in the region of its centre; a count that a "
               "map marker centred in it would undercut by fewer than k is hidden."),
        regions=[
            {"code": row.code, "name": name_of(row.name, row.code),
             "country_code": row.country_code}
            | ({"count": None, "suppressed": True} if row.count is None
               else {"count": row.count, "suppressed": False})
            for row in rows
        ],
    )
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/places/labels")
@contract.validate(query=PlaceLabelsQuery, resp=answers(PlaceLabels), tags=["public"])
def place_labels() -> Response:
    """Return the most populous gazetteer places in a box, to write on the map.

    Public reference data (GeoNames), no member data: below
    :data:`~geomap.geo.places.LABEL_MIN_ZOOM` the list is empty. The body is a
    function of (zoom, box) and of the gazetteer, so it is cached for a day.
    """
    try:
        zoom = parse_zoom(request.args.get("zoom"))
        boxes = parse_bbox(request.args.get("bbox"), zoom)
    except ViewportError as exc:
        abort(400, description=str(exc))
    if boxes is None:
        abort(400, description=_("bbox is required: west,south,east,north"))
    labels = (places.labels_in_boxes(db.public_session, boxes)
              if zoom >= places.LABEL_MIN_ZOOM else [])
    response = jsonify(
        zoom=zoom,
        min_zoom=places.LABEL_MIN_ZOOM,
        limit=places.LABEL_LIMIT,
        bbox=[list(box) for box in boxes],
        labels=[label.__dict__ for label in labels],
    )
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.add_etag()
    return response.make_conditional(request)


def healthz() -> Response:
    """Say that the service is alive (liveness): 200 even while the database is down."""
    try:
        state = read_retrying(db.public_session, published.publish_state)
    except DBAPIError:
        return jsonify(status="ok", database="unavailable", publish_version=None,
                       published_at=None)
    return jsonify(
        status="ok",
        database="ok",
        publish_version=state.version,
        published_at=state.published_at.isoformat() if state.published_at else None,
    )


def readyz() -> Response | tuple[Response, int]:
    """Say whether the service can answer (readiness): 503 while the database is down."""
    try:
        read_retrying(db.public_session, lambda session: session.execute(text("SELECT 1")))
    except DBAPIError:
        response = jsonify(status="unavailable", database="unavailable")
        response.headers["Retry-After"] = "30"
        return response, 503
    return jsonify(status="ok", database="ok")
