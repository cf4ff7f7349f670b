"""The deriver's prepared reference structures, computed once and kept in PostgreSQL.

Building a :class:`geomap.geo.derive.KeyDeriver` from the raw tables means subdividing
every country outline, densifying ~1 million coast vertices and locating each of the
~170,000 gazetteer places in an outline or off its coast: seconds in every process
that derives keys. ``geomap geo import`` (and, failing that, the first deriver of a database) stores
the result as one ``numpy`` archive (``.npz``, no pickles) in the ``geo_prepared`` table;
every later process loads it in a fraction of that time. Reloading places or outlines
(:mod:`geomap.geo.reference`) deletes the stored copy, so it is never stale.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

PREPARED_NAME = "deriver-v1"
"""Row of ``geo_prepared`` holding the deriver's structures (bump when they change)."""
BOUNDARY_STEP_DEG = 0.02
"""Densified outline vertices are at most this far apart (~2.3 km)."""
EARTH_KM = 6371.0088
TERRITORY_SHARE = 0.5
"""A country most of whose places lie in another's outline is that outline's territory."""


def unit_vectors(lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
    """Return (n, 3) unit-sphere vectors of points given in degrees."""
    lat = np.radians(lats)
    lng = np.radians(lngs)
    return np.column_stack((np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)))


def chord(km: float) -> float:
    """Return the unit-sphere chord length of a great-circle distance in km."""
    return 2.0 * np.sin(km / (2.0 * EARTH_KM))


@dataclass(frozen=True)
class PreparedReference:
    """Outline parts, coast vertices and gazetteer places, ready for spatial indexes.

    Object arrays hold ``None`` where a value is unknown. Vectors are unit-sphere
    (x, y, z) of (lat, lng) degrees. The coast vertices are not stored: they are
    quick to densify from ``parts`` (:func:`coast_vertices`) and are needed only for
    points outside every outline.
    """

    part_codes: np.ndarray  # object: alpha-2 code of each subdivided outline part
    parts: np.ndarray  # shapely polygons
    place_country: np.ndarray  # object
    place_region: np.ndarray  # object: 'DE.04' or None
    place_xyz: np.ndarray  # float64 (m, 3)
    place_outline: np.ndarray  # object: outline each place lies in (or off), or None
    territories: dict[str, frozenset[str]]  # outline code -> territory codes


def compute(session: Session, coast_km: float) -> PreparedReference:
    """Compute the structures from ``countries`` and ``places`` (seconds of CPU).

    A place is attached to the outline containing it, or to the outline whose coast
    is within ``coast_km`` (geodesic).
    """
    from scipy.spatial import cKDTree

    rows = session.execute(
        text("SELECT code, ST_AsBinary(ST_Subdivide(geom, 128)) FROM countries ORDER BY code")
    ).all()
    part_codes = np.array([code for code, _ in rows], dtype=object)
    parts = shapely.from_wkb([bytes(wkb) for _, wkb in rows])
    coast_xyz, owner = coast_vertices(parts)
    places = session.execute(
        text("SELECT country_code, admin1_code, ST_Y(point), ST_X(point) FROM places ORDER BY id")
    ).all()
    place_country = np.array([p[0] for p in places], dtype=object)
    place_region = np.array(
        [f"{p[0]}.{p[1]}" if p[1] and p[1] != "00" else None for p in places], dtype=object
    )
    lats = np.array([p[2] for p in places], dtype=np.float64)
    lngs = np.array([p[3] for p in places], dtype=np.float64)
    place_outline = np.full(len(places), None, dtype=object)
    if len(parts) and len(places):
        point_idx, part_idx = shapely.STRtree(parts).query(shapely.points(lngs, lats),
                                                           predicate="intersects")
        place_outline[point_idx] = part_codes[part_idx]
        missing = np.flatnonzero(np.equal(place_outline, None))
        if len(missing) and len(coast_xyz):
            distance, nearest = cKDTree(coast_xyz).query(
                unit_vectors(lats[missing], lngs[missing]), distance_upper_bound=chord(coast_km))
            close = np.isfinite(distance)
            place_outline[missing[close]] = part_codes[owner[nearest[close]]]
    return PreparedReference(
        part_codes=part_codes, parts=parts, place_country=place_country,
        place_region=place_region, place_xyz=unit_vectors(lats, lngs),
        place_outline=place_outline,
        territories=territories_of_outlines(place_country, place_outline),
    )


def coast_vertices(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the outline parts' boundary vertices densified to :data:`BOUNDARY_STEP_DEG`.

    Returns (unit vectors (n, 3), index of the part each vertex belongs to).
    """
    boundaries = shapely.segmentize(shapely.boundary(parts), BOUNDARY_STEP_DEG)
    coords, owner = shapely.get_coordinates(boundaries, return_index=True)
    if not len(coords):
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    return unit_vectors(coords[:, 1], coords[:, 0]), owner


def territories_of_outlines(place_country: np.ndarray,
                            place_outline: np.ndarray) -> dict[str, frozenset[str]]:
    """Return, per outline country, the gazetteer countries that are its territories.

    A country at least :data:`TERRITORY_SHARE` of whose places are attached to another
    country's outline is a territory Natural Earth merged into it (GF in France).
    """
    by_country: dict[str, Counter] = {}
    for country, outline in zip(place_country.tolist(), place_outline.tolist(), strict=True):
        by_country.setdefault(country, Counter())[outline] += 1
    territories: dict[str, set[str]] = {}
    for country, outlines in by_country.items():
        total = sum(outlines.values())
        for outline, count in outlines.items():
            if outline and outline != country and count / total >= TERRITORY_SHARE:
                territories.setdefault(outline, set()).add(country)
    return {outline: frozenset(codes) for outline, codes in territories.items()}


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array(["" if v is None else v for v in values.tolist()], dtype=str)


def _objects(values: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[values == ""] = None
    return out


def to_bytes(ref: PreparedReference) -> bytes:
    """Return ``ref`` as an uncompressed ``.npz`` archive (no pickled objects)."""
    wkb = shapely.to_wkb(ref.parts)
    lengths = np.array([len(b) for b in wkb], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        part_codes=_strings(ref.part_codes),
        part_wkb=np.frombuffer(b"".join(wkb), dtype=np.uint8),
        part_lengths=lengths,
        place_country=_strings(ref.place_country),
        place_region=_strings(ref.place_region),
        place_xyz=ref.place_xyz,
        place_outline=_strings(ref.place_outline),
        territories=np.array(json.dumps({k: sorted(v) for k, v in ref.territories.items()})),
    )
    return buffer.getvalue()


def from_bytes(data: bytes) -> PreparedReference:
    """Return the structures stored by :func:`to_bytes`."""
    archive = np.load(io.BytesIO(data), allow_pickle=False)
    blob = archive["part_wkb"].tobytes()
    ends = np.cumsum(archive["part_lengths"]).tolist()
    starts = [0, *ends[:-1]]
    parts = shapely.from_wkb([blob[a:b] for a, b in zip(starts, ends, strict=True)])
    return PreparedReference(
        part_codes=_objects(archive["part_codes"]),
        parts=np.asarray(parts, dtype=object),
        place_country=_objects(archive["place_country"]),
        place_region=_objects(archive["place_region"]),
        place_xyz=archive["place_xyz"],
        place_outline=_objects(archive["place_outline"]),
        territories={k: frozenset(v)
                     for k, v in json.loads(str(archive["territories"])).items()},
    )


def _table_exists(session: Session) -> bool:
    return bool(session.execute(text("SELECT to_regclass('geo_prepared') IS NOT NULL")).scalar())


def store(session: Session, ref: PreparedReference) -> int:
    """Store ``ref`` in ``geo_prepared`` (in the session's transaction); return its bytes."""
    data = to_bytes(ref)
    session.execute(
        text("INSERT INTO geo_prepared (name, data) VALUES (:name, :data) "
             "ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, created_at = now()"),
        {"name": PREPARED_NAME, "data": data},
    )
    return len(data)


def forget(session: Session) -> None:
    """Delete the stored structures (the reference tables are being replaced)."""
    if _table_exists(session):
        session.execute(text("DELETE FROM geo_prepared"))


def load_or_compute(session: Session, coast_km: float) -> PreparedReference:
    """Return the stored structures, or compute them and store them when allowed.

    Storing happens in a savepoint of the caller's transaction, so it commits (or
    rolls back) with the data it was computed from; a role that may not write just
    computes.
    """
    if not _table_exists(session):
        return compute(session, coast_km)
    data = session.execute(text("SELECT data FROM geo_prepared WHERE name = :name"),
                           {"name": PREPARED_NAME}).scalar()
    if data is not None:
        return from_bytes(bytes(data))
    ref = compute(session, coast_km)
    try:
        with session.begin_nested():
            store(session, ref)
    except DBAPIError:
        log.info("geo_prepared not written (no write access); deriving without it")
    return ref
