"""The public JSON API: conditions and their published cells (GeoJSON)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict

import h3.api.basic_int as h3i
from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import ServiceUnavailable

from geomap.database import db
from geomap.geo import places
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
    answers,
    contract,
)
from geomap.web.viewport import ViewportError, parse_bbox, parse_zoom

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_CACHE_SIZE = 4096
# Bound the cache by the bytes it holds too: at a million members a world view is
# ~100 kB, and each worker must stay small (see docs/scaling.md).
_CACHE_BYTES = 16 * 1024 * 1024
_VERSION_TTL = 1.0  # seconds a worker trusts its idea of the publish version
# Cache misses of the cells API rendered at once per worker process; a miss waits up to
# GEOMAP_CELLS_MISS_WAIT seconds for a slot, then is answered 503.
CELLS_MISS_SLOTS = threading.BoundedSemaphore(2)


class _CellsCache:
    """Per-process cache of cells responses, keyed by version and viewport."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._version: tuple[float, int] = (0.0, -1)

    def version(self) -> int:
        now = time.monotonic()
        checked, version = self._version
        if now - checked > _VERSION_TTL:
            try:
                version = published.publish_state(db.public_session).version
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

    def get(self, key: tuple) -> tuple[bytes, str] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: tuple[bytes, str]) -> None:
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous[0])
            self._entries[key] = entry
            self._bytes += len(entry[0])
            while len(self._entries) > _CACHE_SIZE or self._bytes > _CACHE_BYTES:
                _key, (body, _etag) = self._entries.popitem(last=False)
                self._bytes -= len(body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._version = (0.0, -1)


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
    version = cache.version()
    # Every value the body holds is in the key (the body echoes the zoom).
    key = (slug, zoom, resolution, boxes, version)
    entry = cache.get(key)
    if entry is None:
        # Bound the work of cache misses: a client asking a new box each time waits
        # its turn instead of taking every thread (and the database) from the others.
        if not CELLS_MISS_SLOTS.acquire(timeout=current_app.config["GEOMAP_CELLS_MISS_WAIT"]):
            raise ServiceUnavailable("The map is busy; please try again in a moment.",
                                     retry_after=2)
        try:
            entry = _render_cells(slug, zoom, resolution, boxes, version)
        finally:
            CELLS_MISS_SLOTS.release()
        cache.put(key, entry)
    body, etag = entry
    response = Response(body, mimetype="application/geo+json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response.make_conditional(request)


@bp.get("/conditions/<slug>/regions")
@contract.validate(query=RegionsQuery, resp=answers(RegionCounts, 404), tags=["public"])
def regions(slug: str) -> Response:
    """Return the published counts per country or first-level region of a condition."""
    level = request.args.get("level", "country")
    if level not in ("country", "admin1"):
        abort(400, description="level must be 'country' or 'admin1'.")
    condition = _condition_or_404(slug)
    version = cells_cache().version()
    rows = published.region_counts(db.public_session, condition.id, level)
    response = jsonify(
        condition=condition.slug,
        level=level,
        k=current_app.config["GEOMAP_K"],
        publish_version=version,
        note="Each count is a sum of the same areas of at least k members as the map "
             "markers, each area counted in the region of its centre; a count that a "
             "map marker centred in it would undercut by fewer than k is hidden.",
        regions=[
            {"code": row.code, "name": row.name, "country_code": row.country_code}
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
        abort(400, description="bbox is required: west,south,east,north")
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


def _render_cells(slug: str, zoom: int, resolution: int, boxes: tuple | None,
                  version: int) -> tuple[bytes, str]:
    condition = _condition_or_404(slug)
    session = db.public_session
    rows = published.cells(session, condition.id, resolution, list(boxes) if boxes else None)
    total = published.published_total(session, condition.id, resolution)
    labels = published.area_labels(session, rows)
    features = [
        {
            "type": "Feature",
            "id": h3i.int_to_str(row.cell),
            "geometry": {"type": "Point", "coordinates": [round(row.lng, 5), round(row.lat, 5)]},
            "properties": {"count": row.count, "cell_resolution": row.cell_resolution}
            | ({"label": labels[row.cell]} if row.cell in labels else {}),
        }
        for row in rows
    ]
    collection = {
        "type": "FeatureCollection",
        "properties": {
            "condition": condition.slug,
            "zoom": zoom,
            "resolution": resolution,
            "publish_version": version,
            "total": total,
            "bbox": [list(box) for box in boxes] if boxes else None,
        },
        "features": features,
    }
    body = json.dumps(collection, separators=(",", ":")).encode()
    etag = hashlib.sha256(body).hexdigest()[:32]
    return body, etag


def healthz() -> Response:
    """Say that the service is alive (liveness): 200 even while the database is down."""
    try:
        state = published.publish_state(db.public_session)
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
        db.public_session.execute(text("SELECT 1"))
    except DBAPIError:
        response = jsonify(status="unavailable", database="unavailable")
        response.headers["Retry-After"] = "30"
        return response, 503
    return jsonify(status="ok", database="ok")
