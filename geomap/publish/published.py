"""Queries of the public read path: published aggregates only.

Public pages, embeds and the public API import this module and nothing that reads
member tables, so the exact locations are out of their reach by construction
(tests/test_public_path.py checks the tables each public query touches).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import h3.api.basic_int as h3i
from flask_babel import gettext as _
from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from geomap.i18n.formats import with_names

PUBLIC_TABLES = frozenset(
    {"conditions", "published_cells", "published_totals", "publish_runs", "published_regions",
     "published_symptoms",
     # public reference data: GeoNames places, Natural Earth countries, HPO terms, the
     # ICD-10 / Orphanet catalogue
     "places", "countries", "hpo_terms", "cell_area_names",
     "catalogue_entries", "catalogue_names", "catalogue_codes"}
)


@dataclass(frozen=True)
class ConditionSummary:
    """A condition with its published total."""

    id: int
    slug: str
    name: str
    icd10: str
    published: int


@dataclass(frozen=True)
class PublishState:
    """The version and time of the latest publish (version 0: never published)."""

    version: int
    published_at: datetime | None


def conditions(session: Session, limit: int | None = None) -> list[ConditionSummary]:
    """Return the enabled conditions (with a map), most members on the map first.

    ``limit`` keeps the first ones only (the home page's most active conditions).
    """
    rows = session.execute(
        text(
            "SELECT c.id, c.slug, c.name, c.icd10, coalesce(t.published, 0) "
            "FROM conditions c LEFT JOIN published_totals t "
            "ON t.condition_id = c.id AND t.resolution = 0 WHERE c.enabled "
            "ORDER BY coalesce(t.published, 0) DESC, c.name LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    return [ConditionSummary(*row) for row in rows]


def condition(session: Session, slug: str) -> ConditionSummary | None:
    """Return the enabled condition ``slug`` with its published total, or None.

    A disabled condition (its map closed by an admin) is None like an unknown one;
    :func:`missing_condition_message` tells them apart for the 404.
    """
    row = session.execute(
        text(
            "SELECT c.id, c.slug, c.name, c.icd10, coalesce(t.published, 0) "
            "FROM conditions c LEFT JOIN published_totals t "
            "ON t.condition_id = c.id AND t.resolution = 0 WHERE c.slug = :slug AND c.enabled"
        ),
        {"slug": slug},
    ).one_or_none()
    return ConditionSummary(*row) if row else None


def missing_condition_message(session: Session, slug: str) -> str:
    """Return the sentence a 404 gives for ``slug``: closed map, catalogue entry or unknown.

    A catalogue entry's name comes isolated in ``<bdi>`` (the sentence is ``Markup``; the
    JSON error body strips the tags).
    """
    name = session.execute(
        text("SELECT name FROM catalogue_entries WHERE slug = :slug"), {"slug": slug[:64]}
    ).scalar_one_or_none()
    if name is None:
        return _("There is no condition %(slug)r. See the list of conditions.", slug=slug)
    return with_names(
        _("%(name)s has no map on this site at the moment; members may ask for one."),
        name=name)


def condition_version(session: Session, slug: str) -> int | None:
    """Return the latest publish version (0: never published), None if ``slug`` has no map.

    One round trip: the condition and the version are read by one statement.
    """
    row = session.execute(
        text("SELECT (SELECT coalesce(max(version), 0) FROM publish_runs) "
             "FROM conditions WHERE slug = :slug AND enabled"),
        {"slug": slug},
    ).one_or_none()
    return int(row[0]) if row else None


def publish_state(session: Session) -> PublishState:
    """Return the latest publish's version and time."""
    row = session.execute(
        text("SELECT version, published_at FROM publish_runs ORDER BY version DESC LIMIT 1")
    ).one_or_none()
    return PublishState(*row) if row else PublishState(0, None)


def published_total(session: Session, condition_id: int, resolution: int) -> int:
    """Return how many members the markers of ``resolution`` show in all."""
    return session.execute(
        text(
            "SELECT coalesce(sum(count), 0) FROM published_cells "
            "WHERE condition_id = :c AND resolution = :r"
        ),
        {"c": condition_id, "r": resolution},
    ).scalar_one()


@dataclass(frozen=True)
class PublishedCell:
    """A published marker."""

    cell: int
    cell_resolution: int
    count: int
    lat: float
    lng: float


def cells(session: Session, condition_id: int, resolution: int,
          boxes: list[tuple[float, float, float, float]] | None = None) -> list[PublishedCell]:
    """Return the published markers at ``resolution``, within any of ``boxes`` if given.

    A box is (west, south, east, north) with west <= east; callers split boxes that
    cross the antimeridian.
    """
    query = (
        "SELECT cell, cell_resolution, count, lat, lng FROM published_cells "
        "WHERE condition_id = :c AND resolution = :r"
    )
    params: dict[str, float | int] = {"c": condition_id, "r": resolution}
    if boxes is not None:
        clauses = []
        for i, (west, south, east, north) in enumerate(boxes):
            clauses.append(
                f"(lng BETWEEN :w{i} AND :e{i} AND lat BETWEEN :s{i} AND :n{i})"
            )
            params.update({f"w{i}": west, f"s{i}": south, f"e{i}": east, f"n{i}": north})
        query += " AND (" + " OR ".join(clauses or ["false"]) + ")"
    query += " ORDER BY cell"
    return [PublishedCell(*row) for row in session.execute(text(query), params).all()]


@dataclass(frozen=True)
class LabelledCell:
    """A published marker with its area label (None: no place or country near it).

    ``label`` is English ("Milan area, Italy" or "Italy area"); ``place`` (gazetteer name)
    and ``country_code`` (ISO 3166-1 alpha-2) are its parts, from which the map writes
    the label in the page's language.
    """

    cell: int
    cell_resolution: int
    count: int
    lat: float
    lng: float
    label: str | None
    place: str | None = None
    country_code: str | None = None


@dataclass(frozen=True)
class Viewport:
    """What one viewport query returns: the publish version read, the stored total, markers.

    ``version`` and the rows come from one statement, hence one snapshot: the markers
    are exactly those of that publish.
    """

    condition_slug: str
    version: int
    total: int
    cells: list[LabelledCell]


LABEL_PLACE_MAX_KM = 50.0
"""A marker is named after a place at most this far from its centre (else its country)."""

# Label search radius per H3 resolution, in degrees: about one cell edge, at most
# LABEL_PLACE_MAX_KM. A coarse cell's edge is hundreds of km (1,107 km at resolution 0):
# searched that wide, a marker centred in Slovakia was named "Istanbul area".
_LABEL_RADII = [min(h3i.average_hexagon_edge_length(r, "km"), LABEL_PLACE_MAX_KM) / 111.0
                for r in range(16)]

# The label parts of a marker ``m`` (cell_resolution, lat, lng), the one naming rule of
# the viewport query (cells not named yet) and geomap.publish.cell_names (the cache):
# PLACE_LOOKUP gives ARRAY[place, its country's name (or code when the outlines lack
# it), its country code] of the most populous gazetteer place within about one cell
# edge (at most 50 km) of the centre; COUNTRY_LOOKUP gives ARRAY[name, code] of the
# country outline containing the centre. Both are scalar subqueries (NULL when none).
PLACE_LOOKUP = (
    "SELECT ARRAY[p.name, coalesce(pc.name, p.country_code), p.country_code] "
    "FROM places p LEFT JOIN countries pc ON pc.code = p.country_code WHERE "
    "p.point && ST_Expand(ST_SetSRID(ST_MakePoint(m.lng, m.lat), 4326), "
    "(CAST(:radii AS float8[]))[m.cell_resolution + 1]) "
    "ORDER BY p.population DESC, p.id LIMIT 1"
)
COUNTRY_LOOKUP = (
    "SELECT ARRAY[name, code] FROM countries WHERE "
    "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(m.lng, m.lat), 4326)) "
    "ORDER BY code LIMIT 1"
)

# Named cells read their parts from cell_area_names (one indexed join); a cell not named
# yet (published since the last naming, or places re-imported) gets them computed here,
# the subqueries gated off for the named ones.
_VIEWPORT_ROWS = (
    "WITH c AS (SELECT id, slug FROM conditions WHERE slug = :slug AND enabled), "
    "v AS (SELECT coalesce(max(version), 0) AS version FROM publish_runs) "
    "SELECT slug, version, total, cell, cell_resolution, count, lat, lng, "
    "coalesce(place, pp[1]) AS place, coalesce(place_country, pp[2]) AS place_country, "
    "coalesce(country, cp[1]) AS country, coalesce(place_code, pp[3]) AS place_code, "
    "coalesce(country_code, cp[2]) AS country_code FROM ("
    "SELECT c.slug, v.version, coalesce(t.published, 0) AS total, m.cell, "
    "m.cell_resolution, m.count, m.lat, m.lng, n.place, n.place_country, n.country, "
    "n.place_country_code AS place_code, n.country_code, "
    # The two lookups only an unnamed cell reaches (as scalar subqueries: a lateral
    # join re-scans its gated plan for every marker, a third of the query).
    "CASE WHEN m.cell IS NOT NULL AND n.cell IS NULL THEN (" + PLACE_LOOKUP + ") END AS pp, "
    "CASE WHEN m.cell IS NOT NULL AND n.cell IS NULL THEN (" + COUNTRY_LOOKUP + ") END AS cp "
    "FROM c CROSS JOIN v "
    "LEFT JOIN published_totals t ON t.condition_id = c.id AND t.resolution = :r "
    "LEFT JOIN LATERAL (SELECT cell, cell_resolution, count, lat, lng FROM published_cells "
    "WHERE condition_id = c.id AND resolution = :r AND ({where})) m ON true "
    "LEFT JOIN cell_area_names n ON n.cell = m.cell) named "
)
_VIEWPORT_SQL = _VIEWPORT_ROWS + "ORDER BY cell"

# The same rows as GeoJSON Features, written by PostgreSQL: one text of comma-separated
# Features in cell order (what viewport() returns, as the API writes it: the H3 index
# in hex, coordinates rounded to 5 decimals, label/place/country_code only when set).
# Rounding in float8 (a third of the cost of numeric) gives Python's round(x, 5) for
# every published centre of the 1M-member bench; tests compare with Python's rendering.
_FEATURE = (
    "'{{\"type\":\"Feature\",\"id\":\"' || to_hex(cell) || "
    "'\",\"geometry\":{{\"type\":\"Point\",\"coordinates\":[' || "
    "round(lng * 1e5) / 1e5 || ',' || round(lat * 1e5) / 1e5 || "
    "']}},\"properties\":{{\"count\":' || count || ',\"cell_resolution\":' || "
    "cell_resolution || coalesce(',\"label\":' || to_json(CASE "
    "WHEN place <> '' THEN format('%s area, %s', place, place_country) "
    "WHEN country <> '' THEN format('%s area', country) END)::text, '') || "
    "CASE WHEN place <> '' THEN ',\"place\":' || to_json(place)::text ELSE '' END || "
    "coalesce(',\"country_code\":' || to_json(CASE WHEN place <> '' THEN place_code "
    "WHEN country <> '' THEN country_code END)::text, '') || '}}}}'"
)
_VIEWPORT_JSON_SQL = (
    "SELECT slug, version, total, count(cell), coalesce(string_agg(" + _FEATURE
    + ", ',' ORDER BY cell) FILTER (WHERE cell IS NOT NULL), '') "
    "FROM (" + _VIEWPORT_ROWS + ") rows GROUP BY slug, version, total"
)


def viewport(session: Session, slug: str, resolution: int, *,
             boxes: list[tuple[float, float, float, float]] | None = None,
             tile: tuple[float, float, float, float] | None = None) -> Viewport | None:
    """Return the published markers of condition ``slug`` at ``resolution``, in one query.

    The condition, the latest publish version, the stored total (published_totals) and
    the markers with their area labels (the most populous gazetteer place within about
    one cell edge, at most 50 km, of the centre, else the country the centre lies in; read from
    cell_area_names, computed here only for cells not named there yet) come back in one
    round trip. Markers are those within any of ``boxes`` (closed boxes, west <= east), or
    within the half-open ``tile`` (west <= lng < east, south <= lat < north; pass
    ±inf at the edges of the world so that every marker lies in exactly one tile), or
    all of them. Returns None if there is no enabled condition ``slug``.
    """
    where, params = _viewport_where(slug, resolution, boxes, tile)
    rows = session.execute(_statement(_VIEWPORT_SQL, where), params).all()
    if not rows:
        return None
    slug_found, version, total = rows[0][0], rows[0][1], rows[0][2]
    cells = []
    for row in rows:
        if row[3] is None:
            continue
        place, place_country, country = row[8], row[9], row[10]
        label = (f"{place} area, {place_country}" if place
                 else f"{country} area" if country else None)
        code = row[11] if place else row[12] if country else None
        cells.append(LabelledCell(row[3], row[4], row[5], row[6], row[7], label, place, code))
    return Viewport(slug_found, int(version), int(total), cells)


@lru_cache(maxsize=32)
def _statement(template: str, where: str) -> TextClause:
    """Return ``template`` with its ``{where}`` filled in, as a statement made once.

    The clauses are few (a tile, one box, two boxes across the antimeridian, all);
    building a TextClause parses its bind parameters, a few % of an uncached viewport.
    """
    return text(template.format(where=where))


def _viewport_where(slug: str, resolution: int,
                    boxes: list[tuple[float, float, float, float]] | None,
                    tile: tuple[float, float, float, float] | None,
                    ) -> tuple[str, dict[str, object]]:
    """Return the markers' WHERE clause of a viewport query and the query's parameters."""
    params: dict[str, object] = {"slug": slug, "r": resolution, "radii": _LABEL_RADII}
    if tile is not None:
        where = "lng >= :tw AND lng < :te AND lat >= :ts AND lat < :tn"
        west, south, east, north = tile
        params.update(tw=west, ts=south, te=east, tn=north)
    elif boxes is not None:
        clauses = []
        for i, (west, south, east, north) in enumerate(boxes):
            clauses.append(f"(lng BETWEEN :w{i} AND :e{i} AND lat BETWEEN :s{i} AND :n{i})")
            params.update({f"w{i}": west, f"s{i}": south, f"e{i}": east, f"n{i}": north})
        where = " OR ".join(clauses or ["false"])
    else:
        where = "true"
    return where, params


@dataclass(frozen=True)
class ViewportFeatures:
    """A viewport as GeoJSON, written by PostgreSQL (see :func:`viewport_features`)."""

    condition_slug: str
    version: int
    total: int
    markers: int
    features: bytes  # UTF-8 JSON: the Features, comma-separated, without the brackets


def viewport_features(session: Session, slug: str, resolution: int, *,
                      boxes: list[tuple[float, float, float, float]] | None = None,
                      tile: tuple[float, float, float, float] | None = None,
                      ) -> ViewportFeatures | None:
    """Return what :func:`viewport` returns, its markers already written as GeoJSON.

    The same query (one round trip, same arguments), aggregated in PostgreSQL into one
    text of GeoJSON Features in cell order: ``id`` the H3 index in hex, coordinates
    [lng, lat] rounded to 5 decimals, properties ``count``, ``cell_resolution`` and,
    when set, ``label`` ("<place> area, <country>" or "<country> area"), ``place`` and
    ``country_code``. Building it there costs a few microseconds per marker instead of
    tens in Python. Returns None if there is no enabled condition ``slug``.
    """
    where, params = _viewport_where(slug, resolution, boxes, tile)
    row = session.execute(_statement(_VIEWPORT_JSON_SQL, where), params).first()
    if row is None:
        return None
    return ViewportFeatures(row[0], int(row[1]), int(row[2]), int(row[3]), row[4].encode())


@dataclass(frozen=True)
class PublishedRegionCount:
    """A published country or region count; ``count`` is None where it is suppressed."""

    code: str
    name: str
    country_code: str
    count: int | None


def region_counts(session: Session, condition_id: int, level: str) -> list[PublishedRegionCount]:
    """Return the published counts per country or first-level region of a condition."""
    rows = session.execute(
        text(
            "SELECT code, name, country_code, count FROM published_regions "
            "WHERE condition_id = :c AND level = :level ORDER BY country_code, code"
        ),
        {"c": condition_id, "level": level},
    ).all()
    return [PublishedRegionCount(*row) for row in rows]


def country_outlines(session: Session, tolerance_degrees: float = 0.25) -> list[bytes]:
    """Return every country outline, simplified by ``tolerance_degrees``, as WKB.

    Natural Earth reference data (no member data); used to draw preview images.
    """
    return list(session.execute(
        text("SELECT ST_AsBinary(ST_SimplifyPreserveTopology(geom, :tolerance)) "
             "FROM countries WHERE geom IS NOT NULL ORDER BY code"),
        {"tolerance": tolerance_degrees},
    ).scalars())
