"""Parsing map viewports (zoom and bounding box) from query strings."""

from __future__ import annotations

from dataclasses import dataclass

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
        raise ViewportError(f"zoom is required: a whole number from 0 to {MAX_ZOOM}")
    try:
        zoom = int(raw)
    except ValueError:
        raise ViewportError(f"zoom must be a whole number from 0 to {MAX_ZOOM}") from None
    if not 0 <= zoom <= MAX_ZOOM:
        raise ViewportError(f"zoom must be a whole number from 0 to {MAX_ZOOM}")
    return zoom


def _wrap(lng: float) -> float:
    wrapped = (lng + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 and lng > 0 else wrapped


def parse_bbox(raw: str | None) -> tuple[Box, ...] | None:
    """Return the boxes of ``bbox=W,S,E,N`` (split at the antimeridian), or None if absent.

    Longitudes may run past ±180 (a map panned across the antimeridian); a box wider
    than the world means the whole world, and latitudes are clamped to ±90.
    """
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) != 4:
        raise ViewportError("bbox must be four numbers: west,south,east,north")
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise ViewportError("bbox must be four numbers: west,south,east,north") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in (west, south, east, north)):
        raise ViewportError("bbox values must be finite numbers")
    if south > north:
        raise ViewportError("bbox south must not be greater than north")
    if west > east:
        # A box given across the antimeridian as west > east (e.g. 170,-10,-170,10).
        east += 360.0
    south, north = max(south, -90.0), min(north, 90.0)
    if south > 90.0 or north < -90.0:
        raise ViewportError("bbox latitudes must overlap -90..90")
    if east - west >= 360.0:
        return ((-180.0, south, 180.0, north),)
    w, e = _wrap(west), _wrap(east)
    if w <= e:
        return ((w, south, e, north),)
    return ((w, south, 180.0, north), (-180.0, south, e, north))
