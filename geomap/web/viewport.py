"""Parsing map viewports (zoom and bounding box) from query strings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask_babel import gettext as _

from geomap.privacy import MAX_ZOOM


class ViewportError(ValueError):
    """A zoom or bounding box that cannot be used; the message says why."""


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Viewport:
    """A zoom level and the boxes (west <= east) it covers; None: the whole world."""

    zoom: int
    boxes: tuple[Box, ...] | None


def parse_zoom(raw: str | None) -> int:
    """Return the zoom level in ``raw``, or raise ViewportError."""
    if raw is None or raw == "":
        raise ViewportError(_('zoom is required: a whole number from 0 to %(max_zoom)s',
                              max_zoom=MAX_ZOOM))
    try:
        zoom = int(raw)
    except ValueError:
        raise ViewportError(_('zoom must be a whole number from 0 to %(max_zoom)s',
                              max_zoom=MAX_ZOOM)) from None
    if not 0 <= zoom <= MAX_ZOOM:
        raise ViewportError(_('zoom must be a whole number from 0 to %(max_zoom)s',
                              max_zoom=MAX_ZOOM))
    return zoom


# The widest map a client may ask for at once, in CSS pixels (a 4K screen plus the
# tile-aligned padding static/geomap/map.js adds). Tiles are 256 px.
MAX_VIEWPORT_PX = 8192
TILE_PX = 256


def max_span_degrees(zoom: int) -> float:
    """Return the widest box (degrees of longitude) a viewport can show at ``zoom``.

    Latitude spans are bounded by the same number: on a Web Mercator map a degree of
    latitude is never shorter on screen than a degree of longitude.
    """
    return 360.0 * MAX_VIEWPORT_PX / (TILE_PX * 2**zoom)


MERCATOR_LAT = 85.0511287798
"""Web Mercator maps end here; static/geomap/map.js draws cells beyond on the edge."""


def _clamp_latitudes(south: float, north: float, span: float) -> tuple[float, float]:
    """Return ``south..north`` shrunk to ``span`` degrees of the Mercator plane.

    Only the part of a box within ±:data:`MERCATOR_LAT` takes screen height; the polar
    caps beyond are drawn on the map's edge, so a box reaching a cap keeps the whole
    cap at every zoom (a marker near a pole stays reachable at the deepest zoom).
    """
    low, high = max(south, -MERCATOR_LAT), min(north, MERCATOR_LAT)
    if low > high:  # a box inside one polar cap (at most ~5° high)
        return south, north
    if high - low > span:
        centre = (low + high) / 2
        low, high = centre - span / 2, centre + span / 2
    return (south if low <= -MERCATOR_LAT else low), (north if high >= MERCATOR_LAT else high)


def _wrap(lng: float) -> float:
    wrapped = (lng + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 and lng > 0 else wrapped


def parse_bbox(raw: str | None, zoom: int | None = None) -> tuple[Box, ...] | None:
    """Return the boxes of ``bbox=W,S,E,N`` (split at the antimeridian), or None if absent.

    Longitudes may run past ±180 (a map panned across the antimeridian); a box wider
    than the world means the whole world, and latitudes are clamped to ±90. Given the
    ``zoom``, a box larger than a viewport can show there (``max_span_degrees``) is
    shrunk around its centre, so one request's work is bounded by what a screen shows;
    a polar cap the box reaches is kept whole (:func:`_clamp_latitudes`).
    """
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) != 4:
        raise ViewportError(_("bbox must be four numbers: west,south,east,north"))
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise ViewportError(_("bbox must be four numbers: west,south,east,north")) from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in (west, south, east, north)):
        raise ViewportError(_("bbox values must be finite numbers"))
    if south > north:
        raise ViewportError(_("bbox south must not be greater than north"))
    if west > east:
        # A box given across the antimeridian as west > east (e.g. 170,-10,-170,10).
        east += 360.0
    if zoom is not None:
        span = max_span_degrees(zoom)
        if east - west > span:
            centre = (west + east) / 2
            west, east = centre - span / 2, centre + span / 2
        south, north = _clamp_latitudes(south, north, span)
    south, north = max(south, -90.0), min(north, 90.0)
    if south > 90.0 or north < -90.0:
        raise ViewportError(_("bbox latitudes must overlap -90..90"))
    if east - west >= 360.0:
        return ((-180.0, south, 180.0, north),)
    w, e = _wrap(west), _wrap(east)
    if w <= e:
        return ((w, south, e, north),)
    return ((w, south, 180.0, north), (-180.0, south, e, north))


def tile_count(zoom: int) -> int:
    """Return how many tiles of the standard XYZ grid span the world at ``zoom`` per axis."""
    return 2**zoom


def _tile_lng(zoom: int, x: int) -> float:
    return x / 2**zoom * 360.0 - 180.0


def _tile_lat(zoom: int, y: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**zoom))))


def tile_bounds(zoom: int, x: int, y: int) -> Box:
    """Return tile ``zoom/x/y`` (XYZ, Web Mercator) as a half-open box of (lng, lat).

    A point belongs to the tile when west <= lng < east and south <= lat < north. Edges
    at the border of the world are ±inf, so the tiles of one zoom cover every longitude
    and latitude (the poles beyond Mercator's ±85.05° included) and each point lies in
    exactly one tile; neighbours share an edge computed by the same expression.
    Raises ViewportError for a tile outside the grid.
    """
    if not 0 <= zoom <= MAX_ZOOM:  # before 2**zoom: a zoom of 10**9 is a huge integer
        raise ViewportError(_("no such tile"))
    n = tile_count(zoom)
    if not (0 <= x < n and 0 <= y < n):
        raise ViewportError(_("no such tile"))
    west = -math.inf if x == 0 else _tile_lng(zoom, x)
    east = math.inf if x == n - 1 else _tile_lng(zoom, x + 1)
    north = math.inf if y == 0 else _tile_lat(zoom, y)
    south = -math.inf if y == n - 1 else _tile_lat(zoom, y + 1)
    return west, south, east, north


def tile_box(zoom: int, x: int, y: int) -> Box:
    """Return tile ``zoom/x/y`` as a finite box (west, south, east, north) for display."""
    west, south, east, north = tile_bounds(zoom, x, y)
    return (max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0))
