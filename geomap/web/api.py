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

from geomap import published
from geomap.database import db
from geomap.privacy import map_resolution
from geomap.web.viewport import ViewportError, parse_bbox, parse_zoom

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_CACHE_SIZE = 4096
# Bound the cache by the bytes it holds too: at a million members a world view is
# ~100 kB, and each worker must stay small (see docs/scaling.md).
_CACHE_BYTES = 16 * 1024 * 1024
_VERSION_TTL = 1.0  # seconds a worker trusts its idea of the publish version


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
            version = published.publish_state(db.public_session).version
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
        abort(404, description=f"There is no condition {slug!r}.")
    return condition


@bp.get("/conditions")
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
def cells(slug: str) -> Response:
    """Return the published cells of a condition at a zoom, optionally in a box."""
    try:
        zoom = parse_zoom(request.args.get("zoom"))
        boxes = parse_bbox(request.args.get("bbox"))
    except ViewportError as exc:
        abort(400, description=str(exc))
    resolution = map_resolution(zoom, current_app.config["GEOMAP_FLOOR_RESOLUTION"])
    cache = cells_cache()
    version = cache.version()
    # Every value the body holds is in the key (the body echoes the zoom).
    key = (slug, zoom, resolution, boxes, version)
    entry = cache.get(key)
    if entry is None:
        entry = _render_cells(slug, zoom, resolution, boxes, version)
        cache.put(key, entry)
    body, etag = entry
    response = Response(body, mimetype="application/geo+json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response.make_conditional(request)


@bp.get("/conditions/<slug>/regions")
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
        note="Counts are by the centre of each member's coarse area; counts below k are "
             "suppressed.",
        regions=[
            {"code": row.code, "name": row.name, "country_code": row.country_code}
            | ({"count": None, "suppressed": True} if row.count is None
               else {"count": row.count, "suppressed": False})
            for row in rows
        ],
    )
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def _render_cells(slug: str, zoom: int, resolution: int, boxes: tuple | None,
                  version: int) -> tuple[bytes, str]:
    condition = _condition_or_404(slug)
    session = db.public_session
    rows = published.cells(session, condition.id, resolution, list(boxes) if boxes else None)
    total = published.published_total(session, condition.id, resolution)
    features = [
        {
            "type": "Feature",
            "id": h3i.int_to_str(row.cell),
            "geometry": {"type": "Point", "coordinates": [round(row.lng, 5), round(row.lat, 5)]},
            "properties": {"count": row.count, "cell_resolution": row.cell_resolution},
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
        },
        "features": features,
    }
    body = json.dumps(collection, separators=(",", ":")).encode()
    etag = hashlib.sha256(body).hexdigest()[:32]
    return body, etag


def healthz() -> Response:
    """Say whether the service and its database answer."""
    db.public_session.execute(text("SELECT 1"))
    state = published.publish_state(db.public_session)
    return jsonify(
        status="ok",
        publish_version=state.version,
        published_at=state.published_at.isoformat() if state.published_at else None,
    )
