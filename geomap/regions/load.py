"""Loading an operator's first-level region polygons, and re-deriving members' regions.

Polygons come from a GeoJSON file (Natural Earth, GADM, geoBoundaries ...); each is
stored whole in name only (``regions``) and as subdivided parts (``region_parts``) so
containment tests touch few vertices. Once loaded, :class:`geomap.geo.derive.KeyDeriver`
uses them for the region of every point in their countries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver, forget_derivers
from geomap.geo.reference import split_at_antimeridian
from geomap.ingest import validators

SUBDIVIDE_VERTICES = 128
REASSIGN_BATCH = 50_000
_ISO_3166_2 = re.compile(r"^([A-Z]{2})-[A-Z0-9]{1,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RegionFileError(ValueError):
    """A region file cannot be loaded; the message says why."""


@dataclass(frozen=True)
class LoadSummary:
    """What one ``regions load`` did."""

    regions: int
    parts: int
    countries: tuple[str, ...]


@dataclass(frozen=True)
class ReassignSummary:
    """What one ``regions reassign`` did."""

    members: int
    changed: int


def load_regions(session: Session, path: Path, *, level: str, code_field: str,
                 name_field: str | None = None) -> LoadSummary:
    """Load (or replace, code by code) the region polygons of a GeoJSON file.

    All or nothing: any bad feature raises :class:`RegionFileError` before anything is
    replaced (the caller's transaction rolls back), and so does a file whose features
    give no usable polygon. A ``crs`` other than WGS 84 is refused.
    """
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RegionFileError(
            f"{path}: not a readable GeoJSON file ({exc.__class__.__name__})"
        ) from None
    if isinstance(collection, dict) and not validators.geojson_crs_ok(collection):
        raise RegionFileError(f"{path}: {validators.CRS_RULE}")
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list) or not features:
        raise RegionFileError(f"{path}: no features in this GeoJSON file")
    session.execute(
        text(
            "CREATE TEMP TABLE region_features (code text PRIMARY KEY, name text, "
            "country_code text, geom geometry) ON COMMIT DROP"
        )
    )
    # Messages name the feature by number, never a value (it could be a coordinate).
    for number, feature in enumerate(features, start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        properties = properties if isinstance(properties, dict) else {}
        code = properties.get(code_field)
        if not isinstance(code, str | int) or isinstance(code, bool) or not str(code).strip():
            raise RegionFileError(f"feature {number} has no {code_field!r} property")
        code = str(code).strip()
        if len(code) > 24 or _CONTROL.search(code):
            raise RegionFileError(f"feature {number}: the {code_field!r} property is not a code")
        geometry = feature.get("geometry") or {}
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon",
                                                                           "MultiPolygon"):
            raise RegionFileError(f"feature {number} is not a (multi)polygon")
        try:
            raw_bounds = shapely.geometry.shape(geometry).bounds
            if not all(np.isfinite(raw_bounds)) or max(map(abs, raw_bounds)) > 540:
                raise RegionFileError(
                    f"feature {number}: coordinates are not longitude/latitude degrees"
                )
            shape = split_at_antimeridian(geometry)
        except (TypeError, ValueError, IndexError, KeyError, shapely.errors.ShapelyError):
            raise RegionFileError(f"feature {number} has malformed coordinates") from None
        minx, miny, maxx, maxy = shape.bounds if not shape.is_empty else (0, 0, 0, 0)
        if shape.is_empty or shapely.area(shape) == 0:
            raise RegionFileError(f"feature {number} gives no usable polygon")
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise RegionFileError(
                f"feature {number}: coordinates are not longitude/latitude degrees"
            )
        raw_name = properties.get(name_field) if name_field else None
        name = str(raw_name) if isinstance(raw_name, str) and raw_name.strip() else code
        match = _ISO_3166_2.match(code)
        session.execute(
            text(
                "INSERT INTO region_features VALUES (:code, :name, :country, "
                "ST_GeomFromWKB(:wkb, 4326)) ON CONFLICT (code) DO UPDATE "
                "SET geom = ST_Union(region_features.geom, EXCLUDED.geom)"
            ),
            {"code": code, "name": name[:200], "country": match.group(1) if match else None,
             "wkb": shape.wkb},
        )
    # Codes that do not start with an ISO country: the country containing the region.
    session.execute(
        text(
            "UPDATE region_features f SET country_code = ("
            "SELECT c.code FROM countries c WHERE ST_Intersects(c.geom, ST_PointOnSurface(f.geom)) "
            "LIMIT 1) WHERE f.country_code IS NULL"
        )
    )
    session.execute(
        text("DELETE FROM region_parts WHERE level = :level AND code IN "
             "(SELECT code FROM region_features)"), {"level": level})
    session.execute(
        text("DELETE FROM regions WHERE level = :level AND code IN "
             "(SELECT code FROM region_features)"), {"level": level})
    session.execute(
        text("INSERT INTO regions (level, code, country_code, name) "
             "SELECT :level, code, country_code, name FROM region_features"), {"level": level})
    parts = session.execute(
        text(
            "INSERT INTO region_parts (level, code, geom) "
            "SELECT :level, code, (ST_Dump(ST_Subdivide("
            "ST_CollectionExtract(ST_MakeValid(geom), 3), :vertices))).geom FROM region_features"
        ),
        {"level": level, "vertices": SUBDIVIDE_VERTICES},
    ).rowcount
    if not parts:
        raise RegionFileError(f"{path}: no feature gives a usable polygon; nothing changed")
    countries = session.execute(
        text("SELECT DISTINCT coalesce(country_code, '??') FROM region_features ORDER BY 1")
    ).scalars().all()
    session.execute(text("DROP TABLE region_features"))
    session.execute(text("ANALYZE region_parts"))
    # Published region counts depend on the polygons: let the next scheduled publish run,
    # and recount every condition (floor cell 0 marks a whole condition dirty).
    session.execute(text("UPDATE data_changes SET changed_at = clock_timestamp()"))
    session.execute(text("INSERT INTO publish_dirty (condition_id, floor_cell, delta) "
                         "SELECT id, 0, 0 FROM conditions ON CONFLICT DO NOTHING"))
    forget_derivers()
    return LoadSummary(regions=len(features), parts=parts, countries=tuple(countries))


def members_to_reassign(session: Session) -> int:
    """Return how many member locations a reassign goes through."""
    return session.execute(text("SELECT count(*) FROM member_locations")).scalar_one()


def reassign_regions(session: Session, deriver: KeyDeriver,
                     progress: Callable[[int], None] | None = None,
                     batch: int = REASSIGN_BATCH) -> ReassignSummary:
    """Re-derive every member's country and region; return how many changed.

    Exact points are read here only to derive the keys again (the one place besides
    the write paths that may), in batches by member id.
    """
    last_id = 0
    members = changed = 0
    session.execute(
        text("CREATE TEMP TABLE region_updates (member_id bigint PRIMARY KEY, "
             "country_code text, region_code text) ON COMMIT DROP")
    )
    while True:
        rows = session.execute(
            text(
                "SELECT member_id, ST_Y(location::geometry), ST_X(location::geometry), "
                "country_code, region_code FROM member_locations WHERE member_id > :last "
                "ORDER BY member_id LIMIT :n"
            ),
            {"last": last_id, "n": batch},
        ).all()
        if not rows:
            break
        ids = [row[0] for row in rows]
        keys = deriver.derive(
            np.array([row[1] for row in rows]), np.array([row[2] for row in rows])
        )
        updates = [
            {"id": member_id, "country": country, "region": region}
            for member_id, country, region, row in zip(
                ids, keys.country_codes.tolist(), keys.region_codes.tolist(), rows, strict=True
            )
            if (country, region) != (row[3], row[4])
        ]
        if updates:
            session.execute(text("TRUNCATE region_updates"))
            session.execute(
                text("INSERT INTO region_updates VALUES (:id, :country, :region)"), updates
            )
            session.execute(
                text(
                    "UPDATE member_locations ml SET country_code = u.country_code, "
                    "region_code = u.region_code FROM region_updates u "
                    "WHERE ml.member_id = u.member_id"
                )
            )
        members += len(rows)
        changed += len(updates)
        last_id = ids[-1]
        if progress:
            progress(len(rows))
    session.execute(text("DROP TABLE region_updates"))
    return ReassignSummary(members=members, changed=changed)
