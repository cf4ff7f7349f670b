"""Deriving a member's public keys from an exact point: floor cell, country, region.

One implementation serves every write path (a member's location change, bulk import,
demo data, region reassignment) and the counts: it takes arrays of points and works
vectorised. The rules, their sources and their bounds are written down in
``docs/geography.md``; in short:

* **Country of a point.** The Natural Earth outline containing it, or, off a coast, the
  outline nearest within :data:`COAST_KM` (geodesic, so correct across 180° and at the
  poles). The gazetteer (GeoNames) then has the last word, because we follow its
  country codes: inside an outline, the nearest gazetteer place attached to that
  outline gives its own country when it is a territory Natural Earth merges into the
  outline (French Guiana in France, Svalbard in Norway) or when it is within
  :data:`FOREIGN_PLACE_KM` (Gibraltar, Vatican City, Crimea). Where no outline is
  near, a gazetteer place within :data:`PLACE_LAND_KM` marks land (small islands);
  south of :data:`ANTARCTIC_LAT` is Antarctica.
* **Region of a point.** In a country whose region polygons an operator loaded
  (``geomap regions load``), the polygon containing it (or the nearest of that country
  within :data:`COAST_KM`). Elsewhere the GeoNames first-level code (``CC.admin1``) of
  the nearest gazetteer place of the same country, when that place is within
  :data:`REGION_BOUND_KM`; otherwise the region is unknown (``None``).
* **Stored keys are the floor cell's.** A member's stored country and region are those
  of their floor cell (:meth:`KeyDeriver.cell_places`): the cell centre's, or, for a
  cell whose centre is at sea, the land the cell covers.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h3.api.basic_int as h3i
import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo import prepared
from geomap.geo.prepared import EARTH_KM, chord, unit_vectors
from geomap.geo.prepared import TERRITORY_SHARE as TERRITORY_SHARE  # re-exported
from geomap.privacy import floor_cells

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

COAST_KM = 10.0
"""A point this close (geodesic km) to a country outline belongs to it (coasts)."""
COAST_FALLBACK_KM = COAST_KM  # older name, kept for callers
PLACE_LAND_KM = 10.0
"""Away from every outline, a gazetteer place this close marks land (small islands)."""
FOREIGN_PLACE_KM = 25.0
"""Inside an outline, a place of another country this close gives its country."""
REGION_BOUND_KM = 100.0
"""A region is taken from a gazetteer place at most this far away, else unknown."""
ANTARCTIC_LAT = -85.0
"""South of this latitude everything is Antarctica (AQ); the outline stops near 85.2°S."""
NEAR_LAND_CELLS_MIN = 5_000
"""From this many points on, :meth:`KeyDeriver.near_land` checks floor cells first."""
SEA_SAMPLES_RES = 2
"""A sea-centre cell is sampled at its children this many resolutions finer."""
_EARTH_KM = EARTH_KM
_chord = chord
_unit_vectors = unit_vectors


def _chord_to_km(chord: np.ndarray) -> np.ndarray:
    return 2.0 * _EARTH_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


@dataclass(frozen=True)
class DerivedKeys:
    """Public keys of a batch of points, aligned with the input arrays."""

    floor_cells: np.ndarray  # int64 H3 cells
    country_codes: np.ndarray  # object: 'DE' or None
    region_codes: np.ndarray  # object: 'DE.04' or None


class KeyDeriver:
    """Derives public keys; holds outlines and gazetteer trees in memory."""

    def __init__(self, session: Session, floor: int) -> None:
        """Load country outlines and gazetteer places (prepared, see :mod:`.prepared`)."""
        # scipy is imported here, not at module level: web workers that only serve maps
        # never build a deriver and so never pay its ~60 MB.
        from scipy.spatial import cKDTree

        self.floor = floor
        self._cell_places: dict[int, tuple[str | None, str | None]] = {}
        self._cell_places_lock = threading.Lock()
        self._place_cells: dict[int, np.ndarray] = {}  # resolution -> gazetteer places' cells
        self._last_cells: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        ref = prepared.load_or_compute(session, COAST_KM)
        self._part_codes = ref.part_codes
        self._parts = ref.parts
        self._country_tree = shapely.STRtree(self._parts)
        self._place_country = ref.place_country
        self._place_region = ref.place_region
        self._place_vectors = ref.place_xyz
        self._all_places = cKDTree(self._place_vectors) if len(self._place_vectors) else None
        # Which outline each place lies in (or off whose coast): the place is "attached"
        # to that outline, and a country most of whose places are attached to another
        # outline is a territory Natural Earth merged into it.
        self._place_outline = ref.place_outline
        self._territories = ref.territories
        # Per-outline and per-country trees are built on first use (lazily): most
        # processes derive keys in a few countries only.
        self._kdtree = cKDTree
        self._trees_lock = threading.Lock()
        self._coast: tuple[cKDTree | None] | None = None
        self._coast_codes = np.array([], object)
        self._attached_rows = _group(self._place_outline)
        self._region_rows = _group(self._place_country)
        self._attached: dict[str, tuple[cKDTree, np.ndarray]] = {}
        self._regions: dict[str, tuple[cKDTree, np.ndarray]] = {}
        self._load_region_polygons(session)

    # -- set-up -------------------------------------------------------------------

    @property
    def _coast_tree(self) -> cKDTree | None:
        """Return the tree of densified coast vertices, built on first use.

        Only points outside every outline need it (coasts, sea cells, plausibility).
        """
        if self._coast is None:
            with self._trees_lock:
                if self._coast is None:
                    vectors, owner = prepared.coast_vertices(self._parts)
                    self._coast_codes = self._part_codes[owner] if len(owner) else \
                        np.array([], object)
                    self._coast = (self._kdtree(vectors) if len(vectors) else None,)
        return self._coast[0]

    def _tree(self, trees: dict, rows: dict[str, np.ndarray],
              code: str) -> tuple[cKDTree, np.ndarray] | None:
        """Return (tree, place rows) of ``code`` in ``rows``, built once on first use."""
        found = trees.get(code)
        if found is not None or code not in rows:
            return found
        with self._trees_lock:
            if code not in trees:
                index = rows[code]
                trees[code] = (self._kdtree(self._place_vectors[index]), index)
            return trees[code]

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

    # -- public -------------------------------------------------------------------

    def derive(self, lats: np.ndarray, lngs: np.ndarray) -> DerivedKeys:
        """Return the floor cell of each point and that cell's country and region.

        The stored country and region are the floor cell's (:meth:`cell_places`), so a
        member moving inside one floor cell changes no key anyone but them can see.
        """
        lats = np.asarray(lats, dtype=np.float64)
        lngs = np.asarray(lngs, dtype=np.float64)
        cells = self._floor_cells(lats, lngs)
        # One lookup per distinct cell, spread to the points by index (vectorised).
        distinct, inverse = np.unique(cells, return_inverse=True)
        places = self.cell_places(distinct)
        keys = distinct.tolist()
        countries = np.array([places[c][0] for c in keys], dtype=object)[inverse]
        regions = np.array([places[c][1] for c in keys], dtype=object)[inverse]
        return DerivedKeys(floor_cells=cells, country_codes=countries, region_codes=regions)

    def point_places(self, lats: np.ndarray, lngs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (countries, regions) of exact points: object arrays, None if unknown."""
        lats = np.asarray(lats, dtype=np.float64)
        lngs = np.asarray(lngs, dtype=np.float64)
        countries = self._countries(lats, lngs)
        return countries, self._regions_of(lats, lngs, countries)

    def cell_places(self, cells: np.ndarray) -> dict[int, tuple[str | None, str | None]]:
        """Return {cell: (country, region)} of each H3 cell.

        A cell takes its centre's place; a cell whose centre is at sea takes the land it
        covers: the most common country among its gazetteer places and its children
        :data:`SEA_SAMPLES_RES` resolutions finer (so a cell holding a city always has a
        country), and the most common known region of that country among them. Each
        cell is derived once per deriver and remembered, so an incremental publish of a
        long-running service derives only the cells it has not seen.
        """
        wanted = [int(cell) for cell in np.unique(np.asarray(cells, dtype=np.int64)).tolist()]
        with self._cell_places_lock:
            missing = [cell for cell in wanted if cell not in self._cell_places]
            if missing:
                self._cell_places.update(self._derive_cells(missing))
            return {cell: self._cell_places[cell] for cell in wanted}

    def on_land(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return, per point, whether it has a country (land, or within the coast bound)."""
        return ~pd_isnull(self._countries(np.asarray(lats, float), np.asarray(lngs, float)))

    def cell_on_land(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return, per point, whether its floor cell has a country (:meth:`cell_places`).

        Coarser than :meth:`on_land` (a point at sea in a coastal cell counts as land)
        and much cheaper for many points: one lookup per distinct cell, remembered, so
        deriving the same points' keys afterwards costs no place lookup. Meant for
        synthetic points (``geomap demo``), where only the cell is ever visible.
        """
        cells = floor_cells(np.asarray(lats, float), np.asarray(lngs, float), self.floor)
        distinct, inverse = np.unique(cells, return_inverse=True)
        places = self.cell_places(distinct)
        land = np.fromiter((places[c][0] is not None for c in distinct.tolist()), dtype=bool,
                           count=len(distinct))
        return land[inverse]

    def near_land(self, lats: np.ndarray, lngs: np.ndarray, limit_km: float) -> np.ndarray:
        """Return, per point, whether land is within ``limit_km``: ``km_to_land`` finite.

        Exactly that, computed faster for many points: a point is near land for sure
        when its floor cell's centre is within ``limit_km`` minus the cell's radius
        (the farthest vertex) minus the coast vertices' spacing (triangle inequality;
        a path from a centre inside an outline to the point crosses its boundary);
        only the other points are measured one by one.
        """
        lats = np.asarray(lats, dtype=np.float64)
        lngs = np.asarray(lngs, dtype=np.float64)
        if len(lats) < NEAR_LAND_CELLS_MIN or not (np.isfinite(lats).all()
                                                   and np.isfinite(lngs).all()):
            return np.isfinite(self.km_to_land(lats, lngs, limit_km))
        cells = self._floor_cells(lats, lngs)
        distinct, inverse = np.unique(cells, return_inverse=True)
        from h3ronpy.vector import cells_to_coordinates, cells_to_wkb_polygons

        indexes = distinct.view(np.uint64)
        centre_table = cells_to_coordinates(indexes)
        centres = np.column_stack((np.asarray(centre_table.column("lat")),
                                   np.asarray(centre_table.column("lng"))))
        outlines = shapely.from_wkb(np.asarray(cells_to_wkb_polygons(indexes)))
        vertices, owner = shapely.get_coordinates(outlines, return_index=True)
        radius = np.zeros(len(distinct))
        np.maximum.at(radius, owner, haversine_km(centres[owner, 0], centres[owner, 1],
                                                  vertices[:, 1], vertices[:, 0]))
        centre_km = self.km_to_land(centres[:, 0], centres[:, 1], limit_km)
        slack_km = prepared.BOUNDARY_STEP_DEG * 111.32  # twice the farthest vertex spacing
        sure = (centre_km + radius * 1.01 + slack_km <= limit_km) & \
            (centres[:, 0] >= ANTARCTIC_LAT)
        near = sure[inverse]
        rest = np.flatnonzero(~near)
        if len(rest):
            near[rest] = np.isfinite(self.km_to_land(lats[rest], lngs[rest], limit_km))
        return near

    def _floor_cells(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return :func:`geomap.privacy.floor_cells` of the points, the last answer reused.

        An import asks twice for the same million points (the near-land check of its
        validation, then the keys of its load): the second ask costs two comparisons
        (milliseconds) instead of H3 indexing them again (0.7 s per million). The
        points are kept as copies, so a caller changing its arrays afterwards (a demo
        batch settling its points) is indexed anew; a reused answer is let go (a
        long-running process keeps no million points).
        """
        last, self._last_cells = self._last_cells, None
        if (last is not None and len(last[0]) == len(lats)
                and np.array_equal(last[0], lats) and np.array_equal(last[1], lngs)):
            return last[2]
        cells = floor_cells(lats, lngs, self.floor)
        self._last_cells = (lats.copy(), lngs.copy(), cells.copy())
        return cells

    def km_to_land(self, lats: np.ndarray, lngs: np.ndarray, limit_km: float) -> np.ndarray:
        """Return geodesic km from each point to the nearest land, ``inf`` past ``limit_km``.

        Land is a country outline or a gazetteer place; points inside an outline are 0.
        """
        lats = np.asarray(lats, dtype=np.float64)
        lngs = np.asarray(lngs, dtype=np.float64)
        km = np.full(len(lats), np.inf)
        inside = self._contained(lats, lngs)
        km[~pd_isnull(inside)] = 0.0
        rest = np.flatnonzero(pd_isnull(inside))
        if len(rest):
            vectors = _unit_vectors(lats[rest], lngs[rest])
            for tree in (self._coast_tree, self._all_places):
                if tree is None:
                    continue
                chord, _ = tree.query(vectors, distance_upper_bound=_chord(limit_km))
                km[rest] = np.minimum(km[rest], _chord_to_km(np.where(np.isinf(chord), 9, chord)))
            km[rest[km[rest] > limit_km]] = np.inf
            km[rest[lats[rest] < ANTARCTIC_LAT]] = 0.0
        return km

    # -- countries ------------------------------------------------------------------

    def _contained(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return the outline country containing each point, or None."""
        codes = np.full(len(lats), None, dtype=object)
        if len(self._parts) == 0 or len(lats) == 0:
            return codes
        point_idx, part_idx = self._country_tree.query(shapely.points(lngs, lats),
                                                       predicate="intersects")
        codes[point_idx] = self._part_codes[part_idx]
        return codes

    def _outline_countries(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return the outline containing each point, else the one within COAST_KM."""
        codes = self._contained(lats, lngs)
        missing = np.flatnonzero(pd_isnull(codes))
        if len(missing) and self._coast_tree is not None:
            chord, nearest = self._coast_tree.query(
                _unit_vectors(lats[missing], lngs[missing]), distance_upper_bound=_chord(COAST_KM)
            )
            close = np.isfinite(chord)
            codes[missing[close]] = self._coast_codes[nearest[close]]
        return codes

    def _countries(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Return the country of each point (see the module docstring), or None."""
        codes = self._outline_countries(lats, lngs)
        if self._all_places is None or len(lats) == 0:
            return codes
        vectors = _unit_vectors(lats, lngs)
        for outline, rows in _group(codes).items():
            attached = self._tree(self._attached, self._attached_rows, outline)
            if attached is None:
                continue
            tree, index = attached
            chord, nearest = tree.query(vectors[rows])
            place_countries = self._place_country[index[nearest]]
            km = _chord_to_km(chord)
            territories = list(self._territories.get(outline, ()))
            foreign = (place_countries != outline) & (
                np.isin(place_countries, territories) | (km <= FOREIGN_PLACE_KM)
            )
            codes[rows[foreign]] = place_countries[foreign]
        missing = np.flatnonzero(pd_isnull(codes))
        if len(missing):
            chord, nearest = self._all_places.query(
                vectors[missing], distance_upper_bound=_chord(PLACE_LAND_KM)
            )
            close = np.isfinite(chord)
            codes[missing[close]] = self._place_country[nearest[close]]
            polar = missing[~close & (lats[missing] < ANTARCTIC_LAT)]
            codes[polar] = "AQ"
        return codes

    # -- regions --------------------------------------------------------------------

    def _regions_of(self, lats: np.ndarray, lngs: np.ndarray, countries: np.ndarray) -> np.ndarray:
        """Return the region of each point: polygon containment or a near gazetteer place."""
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
        for country, rows in _group(countries[known]).items():
            tree_and_index = self._tree(self._regions, self._region_rows, country)
            if tree_and_index is None:
                continue
            tree, index = tree_and_index
            chord, nearest = tree.query(vectors[rows], distance_upper_bound=_chord(REGION_BOUND_KM))
            close = np.isfinite(chord)
            regions[known[rows[close]]] = self._place_region[index[nearest[close]]]
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
            # same country within COAST_KM.
            radius = COAST_KM / 111.32 / max(np.cos(np.radians(lats[row])), 0.05)
            candidates = self._polygon_tree.query(points[row].buffer(min(radius, 180.0)))
            best: tuple[float, str] | None = None
            for part in candidates.tolist():
                if self._polygon_countries[part] != countries[row]:
                    continue
                km = _km_to_geometry(points[row], self._polygons[part])
                if km <= COAST_KM and (best is None or km < best[0]):
                    best = (km, self._polygon_codes[part])
            if best is not None:
                codes[row] = best[1]
        return codes

    # -- floor cells ------------------------------------------------------------------

    def _derive_cells(self, cells: list[int]) -> dict[int, tuple[str | None, str | None]]:
        """Derive (country, region) of cells not seen yet (see :meth:`cell_places`)."""
        centres = np.array([h3i.cell_to_latlng(cell) for cell in cells],
                           dtype=np.float64).reshape(-1, 2)
        countries, regions = self.point_places(centres[:, 0], centres[:, 1])
        out = dict(zip(cells, zip(countries.tolist(), regions.tolist(), strict=True),
                       strict=True))
        at_sea = [cell for cell, country in zip(cells, countries.tolist(), strict=True)
                  if country is None]
        if not at_sea:
            return out
        owners: list[int] = []
        points: list[tuple[float, float]] = []
        for cell in at_sea:
            res = h3i.get_resolution(cell)
            children = h3i.cell_to_children(cell, min(res + SEA_SAMPLES_RES, 15))
            points.extend(h3i.cell_to_latlng(child) for child in children)
            owners.extend([cell] * len(children))
        # Gazetteer places inside the sea-centre cells count too (a cell holding a city).
        if len(self._place_country):
            res_cells = {h3i.get_resolution(cell) for cell in at_sea}
            wanted = set(at_sea)
            place_latlng = self._place_latlng()
            for res in res_cells:
                if res not in self._place_cells:  # every place's cell, once per resolution
                    self._place_cells[res] = floor_cells(place_latlng[:, 0],
                                                         place_latlng[:, 1], res)
                place_cells = self._place_cells[res]
                for i in np.flatnonzero(np.isin(place_cells, list(wanted))).tolist():
                    owners.append(int(place_cells[i]))
                    points.append((place_latlng[i, 0], place_latlng[i, 1]))
        sample = np.array(points, dtype=np.float64).reshape(-1, 2)
        s_countries, s_regions = self.point_places(sample[:, 0], sample[:, 1])
        votes: dict[int, Counter] = {}
        region_votes: dict[int, Counter] = {}
        for owner, country, region in zip(owners, s_countries.tolist(), s_regions.tolist(),
                                          strict=True):
            if country is None:
                continue
            votes.setdefault(owner, Counter())[country] += 1
            if region is not None:
                region_votes.setdefault(owner, Counter())[(country, region)] += 1
        for cell in at_sea:
            if cell not in votes:
                continue
            country = _most_common(votes[cell])
            regions = Counter({r: n for (c, r), n in region_votes.get(cell, Counter()).items()
                               if c == country})
            out[cell] = (country, _most_common(regions) if regions else None)
        return out

    def _place_latlng(self) -> np.ndarray:
        """Return (lat, lng) degrees of every gazetteer place."""
        v = self._place_vectors
        return np.column_stack((np.degrees(np.arcsin(np.clip(v[:, 2], -1, 1))),
                                np.degrees(np.arctan2(v[:, 1], v[:, 0]))))


def _most_common(votes: Counter) -> str:
    """Return the key with most votes; ties go to the smallest key (deterministic)."""
    return min(votes.items(), key=lambda item: (-item[1], item[0]))[0]


def _group(codes: np.ndarray) -> dict[str, np.ndarray]:
    """Return {code: row indices} of the non-None entries of an object array."""
    groups: dict[str, list[int]] = {}
    for i, code in enumerate(codes.tolist()):
        if code is not None:
            groups.setdefault(code, []).append(i)
    return {code: np.array(rows, dtype=np.int64) for code, rows in groups.items()}


def pd_isnull(values: np.ndarray) -> np.ndarray:
    """Return a boolean mask of the None entries of an object array."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    return np.frompyfunc(lambda v: v is None, 1, 1)(values).astype(bool)


def _km_to_geometry(point: shapely.Geometry, geometry: shapely.Geometry) -> float:
    """Return the great-circle km from ``point`` to the nearest point of ``geometry``."""
    (lng1, lat1), (lng2, lat2) = shapely.get_coordinates(shapely.shortest_line(point, geometry))
    return float(haversine_km(np.array(lat1), np.array(lng1), np.array(lat2), np.array(lng2)))


def haversine_km(lat1: np.ndarray, lng1: np.ndarray, lat2: np.ndarray,
                 lng2: np.ndarray) -> np.ndarray:
    """Return great-circle distances in km between aligned arrays of points (degrees)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((phi2 - phi1) / 2) ** 2
        + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(a))


_haversine_km = haversine_km


_cache: dict[tuple[str, int, str], KeyDeriver] = {}
_cache_lock = threading.Lock()


def polygons_key(session: Session) -> str:
    """Return a short key that changes whenever region polygons are (re)loaded."""
    if not session.execute(text("SELECT to_regclass('region_parts') IS NOT NULL")).scalar():
        return ""
    return session.execute(
        text("SELECT count(*) || ':' || coalesce(max(id), 0) FROM region_parts")
    ).scalar_one()


def deriver_for(session: Session, floor: int) -> KeyDeriver:
    """Return a process-wide :class:`KeyDeriver` for this database and floor."""
    # Region polygons may be (re)loaded by another process: their ids are part of the key.
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    key = (url, floor, polygons_key(session))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = KeyDeriver(session, floor)
        return _cache[key]


def forget_derivers() -> None:
    """Drop cached derivers (after reference data is reloaded)."""
    with _cache_lock:
        _cache.clear()
