"""Deriving a member's public keys from an exact point: floor cell, country, region.

One implementation serves every write path (a member's location change, bulk import,
demo data): it takes arrays of points and works vectorised. Country is by polygon
containment (Natural Earth, subdivided for speed); a point within ~10 km off a coast
falls back to the nearest country. The first-level region is, in a country whose
region polygons an operator loaded (``geomap regions load``), the polygon containing
the point (or the nearest one of that country within ~10 km, off a coast); elsewhere
the admin1 code of the nearest gazetteer place in the same country (``CC.admin1``,
GeoNames style).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h3.api.basic_int as h3i
import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.privacy import floor_cells

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

COAST_FALLBACK_KM = 10.0
_EARTH_KM = 6371.0088


@dataclass(frozen=True)
class DerivedKeys:
    """Public keys of a batch of points, aligned with the input arrays."""

    floor_cells: np.ndarray  # int64 H3 cells
    country_codes: np.ndarray  # object: 'DE' or None
    region_codes: np.ndarray  # object: 'DE.04' or None


def _unit_vectors(lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
    lat = np.radians(lats)
    lng = np.radians(lngs)
    return np.column_stack((np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)))


class KeyDeriver:
    """Derives public keys; holds country parts and gazetteer trees in memory."""

    def __init__(self, session: Session, floor: int) -> None:
        """Load country outlines and gazetteer places from the database."""
        self.floor = floor
        self._cell_places: dict[int, tuple[str | None, str | None]] = {}
        self._cell_places_lock = threading.Lock()
        rows = session.execute(
            text(
                "SELECT code, ST_AsBinary(ST_Subdivide(geom, 128)) FROM countries ORDER BY code"
            )
        ).all()
        self._part_codes = np.array([code for code, _ in rows], dtype=object)
        self._parts = shapely.from_wkb([bytes(wkb) for _, wkb in rows])
        self._country_tree = shapely.STRtree(self._parts)
        places = session.execute(
            text(
                "SELECT country_code, admin1_code, ST_Y(point), ST_X(point) FROM places "
                "ORDER BY country_code, id"
            )
        ).all()
        # scipy is imported here, not at module level: web workers that only serve maps
        # never build a deriver and so never pay its ~60 MB.
        from scipy.spatial import cKDTree

        self._regions: dict[str, tuple[cKDTree, np.ndarray]] = {}
        by_country: dict[str, list[tuple[str, float, float]]] = {}
        for country, admin1, lat, lng in places:
            by_country.setdefault(country, []).append((admin1, lat, lng))
        for country, entries in by_country.items():
            admin1 = np.array([f"{country}.{a}" if a else None for a, _, _ in entries], object)
            vectors = _unit_vectors(
                np.array([e[1] for e in entries]), np.array([e[2] for e in entries])
            )
            self._regions[country] = (cKDTree(vectors), admin1)
        self._load_region_polygons(session)

    def _load_region_polygons(self, session: Session) -> None:
        """Load the subdivided admin1 polygons, if an operator loaded any."""
        loaded = session.execute(text("SELECT to_regclass('region_parts') IS NOT NULL")).scalar()
        rows = session.execute(
            text(
                "SELECT r.country_code, r.code, ST_AsBinary(p.geom) FROM region_parts p "
                "JOIN regions r ON r.level = p.level AND r.code = p.code "
                "WHERE p.level = 'admin1' AND r.country_code IS NOT NULL ORDER BY p.id"
            )
        ).all() if loaded else []
        self._polygon_countries = np.array([row[0] for row in rows], dtype=object)
        self._polygon_codes = np.array([row[1] for row in rows], dtype=object)
        self._polygons = shapely.from_wkb([bytes(row[2]) for row in rows])
        self._polygon_tree = shapely.STRtree(self._polygons)
        self.countries_with_polygons = frozenset(self._polygon_countries.tolist())

    def derive(self, lats: np.ndarray, lngs: np.ndarray) -> DerivedKeys:
        """Return the floor cell, country and region of each point."""
        lats = np.asarray(lats, dtype=np.float64)
        lngs = np.asarray(lngs, dtype=np.float64)
        cells = floor_cells(lats, lngs, self.floor)
        countries = self._countries(lats, lngs)
        regions = self._regions_of(lats, lngs, countries)
        return DerivedKeys(floor_cells=cells, country_codes=countries, region_codes=regions)

    def cell_places(self, cells: np.ndarray) -> dict[int, tuple[str | None, str | None]]:
        """Return {cell: (country, region)} of each H3 cell's centre.

        Public region counts are a function of floor cells only, so each cell's place is
        derived once per deriver and remembered: an incremental publish of a long-running
        service derives only the cells it has not seen.
        """
        wanted = [int(cell) for cell in np.unique(np.asarray(cells, dtype=np.int64)).tolist()]
        with self._cell_places_lock:
            missing = [cell for cell in wanted if cell not in self._cell_places]
            if missing:
                centres = np.array([h3i.cell_to_latlng(cell) for cell in missing],
                                   dtype=np.float64).reshape(-1, 2)
                countries = self._countries(centres[:, 0], centres[:, 1])
                regions = self._regions_of(centres[:, 0], centres[:, 1], countries)
                self._cell_places.update(
                    zip(missing, zip(countries.tolist(), regions.tolist(), strict=True),
                        strict=True)
                )
            return {cell: self._cell_places[cell] for cell in wanted}

    def on_land(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return, per point, whether it falls in (or within ~10 km of) a country."""
        return ~pd_isnull(self._countries(np.asarray(lats, float), np.asarray(lngs, float)))

    def _countries(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        points = shapely.points(lngs, lats)
        codes = np.full(len(points), None, dtype=object)
        if len(self._parts) == 0:
            return codes
        point_idx, part_idx = self._country_tree.query(points, predicate="intersects")
        codes[point_idx] = self._part_codes[part_idx]
        missing = np.flatnonzero(pd_isnull(codes))
        if len(missing):
            # Off a coast: the nearest country within ~10 km (degrees of longitude
            # shrink with latitude, so the search radius widens accordingly).
            sub = points[missing]
            max_deg = COAST_FALLBACK_KM / 111.32
            near_point, near_part = self._country_tree.query_nearest(
                sub, max_distance=max_deg / np.cos(np.radians(75.0)), all_matches=False
            )
            if len(near_point):
                lines = shapely.shortest_line(sub[near_point], self._parts[near_part])
                ends = shapely.get_coordinates(lines).reshape(-1, 2, 2)
                km = _haversine_km(ends[:, 0, 1], ends[:, 0, 0], ends[:, 1, 1], ends[:, 1, 0])
                close = km <= COAST_FALLBACK_KM
                codes[missing[near_point[close]]] = self._part_codes[near_part[close]]
        return codes

    def _regions_of(self, lats: np.ndarray, lngs: np.ndarray, countries: np.ndarray) -> np.ndarray:
        """Return the region of each point: polygon containment or nearest gazetteer place."""
        regions = np.full(len(lats), None, dtype=object)
        by_polygon = np.zeros(len(countries), dtype=bool)
        with_polygons = self.countries_with_polygons
        if with_polygons:
            by_polygon = np.fromiter((c in with_polygons for c in countries), bool,
                                     len(countries))
            if by_polygon.any():
                rows = np.flatnonzero(by_polygon)
                regions[rows] = self._contained_regions(lats[rows], lngs[rows], countries[rows])
        known = np.flatnonzero(~pd_isnull(countries) & ~by_polygon)
        if len(known) == 0:
            return regions
        vectors = _unit_vectors(lats[known], lngs[known])
        # Group the points by country once (sorting), then one tree query per country.
        codes = countries[known].astype(str)
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            tree_and_codes = self._regions.get(sorted_codes[start])
            if tree_and_codes is None:
                continue
            tree, admin1 = tree_and_codes
            rows = order[start:end]
            _dist, nearest = tree.query(vectors[rows])
            regions[known[rows]] = admin1[nearest]
        return regions

    def _contained_regions(self, lats: np.ndarray, lngs: np.ndarray,
                           countries: np.ndarray) -> np.ndarray:
        """Return the loaded polygon of each point's own country that contains it."""
        points = shapely.points(lngs, lats)
        codes = np.full(len(points), None, dtype=object)
        point_idx, part_idx = self._polygon_tree.query(points, predicate="intersects")
        same = self._polygon_countries[part_idx] == countries[point_idx]
        codes[point_idx[same]] = self._polygon_codes[part_idx[same]]
        missing = np.flatnonzero(pd_isnull(codes))
        for row in missing.tolist():
            # Off a coast (or in a gap between two polygons): the nearest polygon of the
            # same country within ~10 km.
            candidates = self._polygon_tree.query(
                points[row].buffer(COAST_FALLBACK_KM / 111.32 / np.cos(np.radians(75.0)))
            )
            best: tuple[float, str] | None = None
            for part in candidates.tolist():
                if self._polygon_countries[part] != countries[row]:
                    continue
                km = _km_to_geometry(points[row], self._polygons[part])
                if km <= COAST_FALLBACK_KM and (best is None or km < best[0]):
                    best = (km, self._polygon_codes[part])
            if best is not None:
                codes[row] = best[1]
        return codes


def pd_isnull(values: np.ndarray) -> np.ndarray:
    """Return a boolean mask of the None entries of an object array."""
    return np.frompyfunc(lambda v: v is None, 1, 1)(values).astype(bool)


def _km_to_geometry(point: shapely.Geometry, geometry: shapely.Geometry) -> float:
    """Return the great-circle km from ``point`` to the nearest point of ``geometry``."""
    (lng1, lat1), (lng2, lat2) = shapely.get_coordinates(shapely.shortest_line(point, geometry))
    return float(_haversine_km(np.array(lat1), np.array(lng1), np.array(lat2), np.array(lng2)))


def _haversine_km(lat1: np.ndarray, lng1: np.ndarray, lat2: np.ndarray,
                  lng2: np.ndarray) -> np.ndarray:
    """Return great-circle distances in km between aligned arrays of points."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((phi2 - phi1) / 2) ** 2
        + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(a))


_cache: dict[tuple[str, int, str], KeyDeriver] = {}
_cache_lock = threading.Lock()


def deriver_for(session: Session, floor: int) -> KeyDeriver:
    """Return a process-wide :class:`KeyDeriver` for this database and floor."""
    # Region polygons may be (re)loaded by another process: their ids are part of the key.
    polygons = ""
    if session.execute(text("SELECT to_regclass('region_parts') IS NOT NULL")).scalar():
        polygons = session.execute(
            text("SELECT count(*) || ':' || coalesce(max(id), 0) FROM region_parts")
        ).scalar_one()
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    key = (url, floor, polygons)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = KeyDeriver(session, floor)
        return _cache[key]


def forget_derivers() -> None:
    """Drop cached derivers (after reference data is reloaded)."""
    with _cache_lock:
        _cache.clear()
