"""The place matcher: one way to turn what people type into gazetteer places.

Shared by the type-ahead (prefix search) and the importer (whole-name match). Both
compare *folded* names (:func:`fold`): NFKC, case folding, Latin look-alikes
(ø→o, ł→l, ß→ss, æ→ae …), accents dropped, punctuation and hyphens as spaces, and
Saint/St./Ste/Sankt as one word. Every name of a place is searchable: its GeoNames
name, ASCII name and alternate names (exonyms such as "Cologne", older names such as
"Bombay", and names in other scripts such as "Москва"), stored folded in
``place_names`` by :func:`geomap.geo.reference.import_places`. Results are ranked by
population and each carries its first-level region and country, so a member (or the
importer's report) can tell the many Springfields apart.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import h3.api.basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.i18n.formats import localised_country_name, region_name
from geomap.regions.names import country_name, region_names

_LOOKALIKES = str.maketrans({
    "ø": "o", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th",
    "ı": "i", "ħ": "h", "ŀ": "l", "ŧ": "t", "ŋ": "n", "ſ": "s",
    "‘": "'", "’": "'", "ʻ": "'", "ʼ": "'", "`": "'",
})
_SAINT = re.compile(r"(?<!\w)(?:saint|sainte|sankt|st|ste)(?!\w)")
_NOT_WORD = re.compile(r"[\W_]+")
NAME_MAX = 200


def fold(name: str) -> str:
    """Return the search form of a place name ('' for nothing searchable).

    >>> fold("Sankt Gallen") == fold("St. Gallen") == fold("saint-gallen")
    True
    """
    value = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES)
    value = "".join(ch for ch in unicodedata.normalize("NFKD", value)
                    if not unicodedata.combining(ch))
    value = unicodedata.normalize("NFC", value).replace("'", "")
    value = _NOT_WORD.sub(" ", value)
    value = _SAINT.sub("st", value)
    return " ".join(value.split())[:NAME_MAX]


def folded_names(names: Iterable[str]) -> set[str]:
    """Return the distinct non-empty folded forms of ``names``."""
    return {folded for folded in map(fold, names) if folded}


@dataclass(frozen=True)
class PlaceMatch:
    """A gazetteer place as a suggestion: names, region and country.

    ``lat``/``lng``: its centre (GeoNames, public; degrees to 0.01), given by
    :func:`search` for the pin map; None from the exact lookups.
    """

    id: int
    name: str
    country_code: str
    country: str
    region_code: str | None
    region: str
    label: str  # "Springfield, Illinois, United States"
    population: int
    lat: float | None = None
    lng: float | None = None


def _matches(session: Session, rows: list) -> list[PlaceMatch]:
    """Return place rows (id, name, country, admin1, population) as matches."""
    codes = {f"{row[2]}.{row[3]}" for row in rows if row[3] and row[3] != "00"}
    regions = region_names(session, codes)
    out = []
    for place_id, name, country_code, admin1, population in rows:
        code = f"{country_code}.{admin1}" if admin1 and admin1 != "00" else None
        country = localised_country_name(country_name(country_code), country_code)
        region = region_name(regions.get(code, "")) if code else ""
        label = ", ".join(part for part in (name, region, country) if part and part != name)
        out.append(PlaceMatch(int(place_id), name, country_code, country, code, region,
                              f"{name}, {label}" if label else name, int(population)))
    return out


_SELECT = "SELECT p.id, p.name, p.country_code, p.admin1_code, p.population FROM places p "


DISTRICT_KM = 25.0
"""A place this close to one at least twice as populous in the same list is taken for one
of its districts or suburbs (GeoNames lists "Lyon 03", "Hamburg-Nord" or "Budapest XI.
kerület" as places of their own, and a query for the city finds them by their names)."""


def search(session: Session, query: str, limit: int = 10) -> list[PlaceMatch]:
    """Return places one of whose names starts with ``query`` (folded), most populous first.

    Each place appears once. An empty folded query returns no places. Districts of a
    city in the list are left out (:func:`without_districts`): typing "lyon" offers
    Lyon, not also "Lyon 01" to "Lyon 09"; typing "lyon 3" still offers "Lyon 03".
    """
    folded = fold(query)
    if not folded:
        return []
    pattern = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = session.execute(
        text(
            "SELECT p.id, p.name, p.country_code, p.admin1_code, p.population, "
            "ST_Y(p.point), ST_X(p.point) FROM places p "
            "WHERE p.id IN (SELECT place_id FROM place_names WHERE folded LIKE :p) "
            "ORDER BY (p.id IN (SELECT place_id FROM place_names WHERE folded = :f)) DESC, "
            "p.population DESC, p.id LIMIT :limit"
        ),
        {"p": pattern, "f": folded, "limit": limit * 3},
    ).all()
    kept = without_districts(rows)[:limit]
    return [replace(match, lat=round(row[5], 2), lng=round(row[6], 2))
            for match, row in zip(_matches(session, [row[:5] for row in kept]), kept,
                                  strict=True)]


def without_districts(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Return place rows without those that are districts of another row.

    Rows: (id, name, country code, admin1 code, population, lat, lng in degrees). A row
    is a district when another row of its country has at least twice its population
    and lies within :data:`DISTRICT_KM` of it: the list offers the city once.
    """
    return [row for row in rows if not any(
        other[2] == row[2] and other[4] >= 2 * row[4]
        and h3i.great_circle_distance((row[5], row[6]), (other[5], other[6]), unit="km")
        <= DISTRICT_KM
        for other in rows
    )]


def exact(session: Session, names: Iterable[str], country_codes: Iterable[str] | None = None,
          ) -> dict[str, list[PlaceMatch]]:
    """Return {folded name: places with exactly that name}, most populous first.

    With ``country_codes`` only places of those countries are returned.
    """
    wanted = sorted(folded_names(names))
    if not wanted:
        return {}
    countries = sorted({c.upper() for c in country_codes}) if country_codes is not None else None
    rows = session.execute(
        text(
            "SELECT n.folded, p.id, p.name, p.country_code, p.admin1_code, p.population "
            "FROM place_names n JOIN places p ON p.id = n.place_id "
            "WHERE n.folded = ANY(:names) "
            + ("AND p.country_code = ANY(:countries) " if countries is not None else "")
            + "ORDER BY n.folded, p.population DESC, p.id"
        ),
        {"names": wanted, "countries": countries},
    ).all()
    matches = _matches(session, [row[1:] for row in rows])
    out: dict[str, list[PlaceMatch]] = {}
    for row, match in zip(rows, matches, strict=True):
        out.setdefault(row[0], []).append(match)
    return out


def by_id(session: Session, place_id: int) -> PlaceMatch | None:
    """Return the place ``place_id``, or None."""
    rows = session.execute(text(_SELECT + "WHERE p.id = :id"), {"id": place_id}).all()
    return _matches(session, rows)[0] if rows else None


def settle(candidates: list[PlaceMatch], region: str = "") -> list[PlaceMatch]:
    """Return the candidates a region name or code leaves (all of them without one)."""
    if not region:
        return candidates
    wanted = fold(region)
    return [c for c in candidates
            if wanted and (fold(c.region) == wanted
                           or (c.region_code or "").lower() == region.strip().lower()
                           or fold((c.region_code or "").split(".")[-1]) == wanted)]


LABEL_MIN_ZOOM = 5
"""Place labels are drawn from this zoom on (the 1:10m outlines start here too)."""
LABEL_LIMIT = 60
"""At most this many labels per box: the most populous places in it."""


@dataclass(frozen=True)
class PlaceLabel:
    """A gazetteer place to write on the map: name, point (degrees) and population."""

    name: str
    country_code: str
    lat: float
    lng: float
    population: int


def labels_in_boxes(session: Session, boxes: Iterable[tuple[float, float, float, float]],
                    limit: int = LABEL_LIMIT) -> list[PlaceLabel]:
    """Return the ``limit`` most populous gazetteer places in any of ``boxes``.

    Boxes are (west, south, east, north) degrees with west <= east (split at 180°).
    Public reference data (GeoNames ``cities1000``), never a member; ties in
    population are broken by place id, so the answer is the same every time.
    """
    boxes = list(boxes)
    if not boxes:
        return []
    clauses = " OR ".join(
        f"point && ST_MakeEnvelope(:w{i}, :s{i}, :e{i}, :n{i}, 4326)" for i in range(len(boxes))
    )
    params: dict[str, float | int] = {"limit": limit}
    for i, (west, south, east, north) in enumerate(boxes):
        params.update({f"w{i}": west, f"s{i}": south, f"e{i}": east, f"n{i}": north})
    rows = session.execute(
        text(
            "SELECT name, country_code, ST_Y(point), ST_X(point), population FROM places "
            f"WHERE {clauses} ORDER BY population DESC, id LIMIT :limit"
        ),
        params,
    ).all()
    return [PlaceLabel(row[0], row[1], round(row[2], 4), round(row[3], 4), int(row[4]))
            for row in rows]


def gazetteer_points(session: Session) -> tuple:
    """Return (lats, lngs, country codes, populations) arrays of every gazetteer place.

    Public reference data (GeoNames ``cities1000``), ordered by place id.
    """
    import numpy as np

    rows = session.execute(
        text("SELECT ST_Y(point), ST_X(point), country_code, population FROM places ORDER BY id")
    ).all()
    return (np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.float64),
            np.array([r[2] for r in rows], dtype=object),
            np.array([int(r[3]) for r in rows], dtype=np.int64))
