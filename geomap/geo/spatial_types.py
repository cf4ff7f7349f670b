"""GeoAlchemy2's column types, imported without Shapely (and numpy) behind them.

GeoAlchemy2 0.15 and later import Shapely as soon as their types load (for
``geoalchemy2.shape`` and the bind processors of plain-WKB values). geomap never
uses either: geometry crosses the database boundary as EWKT, GeoJSON or bare
coordinates made by PostGIS, and no ``WKBElement`` or ``from_shape`` value is ever
bound. Importing the types with Shapely hidden keeps ~27 MB of Shapely and numpy out
of every web worker (tests/test_worker_footprint.py). Code that needs Shapely
(``geomap.geo``, ``geomap.regions.load``) imports it itself, unaffected; only
``geoalchemy2.shape.to_shape`` is unavailable in a process that imported the types
here first (it raises GeoAlchemy2's "shapely is required" error).
"""

from __future__ import annotations

import sys


def _import_geoalchemy2_without_shapely() -> None:
    """Import geoalchemy2 with ``import shapely`` failing meanwhile (if neither is loaded)."""
    if "geoalchemy2" in sys.modules or "shapely" in sys.modules:
        return
    sys.modules["shapely"] = None  # type: ignore[assignment]  # `import shapely` raises
    try:
        import geoalchemy2  # noqa: F401
    finally:
        del sys.modules["shapely"]


_import_geoalchemy2_without_shapely()

from geoalchemy2 import Geography, Geometry, WKBElement  # noqa: E402

__all__ = ["Geography", "Geometry", "WKBElement"]
