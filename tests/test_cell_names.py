"""The cached area labels (cell_area_names) equal the per-request computation."""

from __future__ import annotations

import json

import h3.api.basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo import reference
from geomap.publish import published
from geomap.publish.cell_names import forget, name_new_cells

# The viewport query before the cache (every marker labelled by two spatial
# subqueries per request), verbatim: the cache must reproduce it.
_PER_REQUEST_SQL = (
    "SELECT m.cell, p.name, coalesce(pc.name, p.country_code), cc.name, "
    "p.country_code, cc.code FROM published_cells m "
    "LEFT JOIN LATERAL (SELECT name, country_code FROM places WHERE m.cell IS NOT NULL AND "
    "point && ST_Expand(ST_SetSRID(ST_MakePoint(m.lng, m.lat), 4326), "
    "(CAST(:radii AS float8[]))[m.cell_resolution + 1]) "
    "ORDER BY population DESC, id LIMIT 1) p ON true "
    "LEFT JOIN countries pc ON pc.code = p.country_code "
    "LEFT JOIN LATERAL (SELECT code, name FROM countries WHERE m.cell IS NOT NULL AND "
    "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(m.lng, m.lat), 4326)) "
    "ORDER BY code LIMIT 1) cc ON true "
    "WHERE m.condition_id = :c AND m.resolution = :r ORDER BY m.cell"
)

# Poles, both sides of the antimeridian (Fiji, the Bering Strait, Chukotka), open sea,
# capitals and a border region, at resolutions from 0 to 9.
POINTS = [(90.0, 0.0), (-90.0, 0.0), (89.9, 179.99), (0.0, 180.0), (0.0, -179.99),
          (-16.5, 179.9), (-16.8, -179.95), (65.5, -168.9), (66.0, 179.5), (71.0, -42.0),
          (0.0, 0.0), (45.46, 9.19), (48.85, 2.35), (35.68, 139.69), (-33.9, 151.2),
          (47.56, 7.59), (-54.8, -68.3)]
RESOLUTIONS = [0, 2, 4, 6, 7, 9]


def _add_cells(session: Session) -> tuple[int, int]:
    """Publish extra markers of condition 'all' at those cells; return (condition, resolution)."""
    condition_id = session.execute(
        text("SELECT id FROM conditions WHERE slug = 'all'")).scalar_one()
    resolution = session.execute(
        text("SELECT max(resolution) FROM published_cells WHERE condition_id = :c"),
        {"c": condition_id}).scalar_one()
    cells = {h3i.latlng_to_cell(lat, lng, r) for lat, lng in POINTS for r in RESOLUTIONS}
    for cell in sorted(cells):
        lat, lng = h3i.cell_to_latlng(cell)
        session.execute(
            text("INSERT INTO published_cells "
                 "(condition_id, resolution, cell, cell_resolution, count, lat, lng) "
                 "VALUES (:c, :r, :cell, :cr, 7, :lat, :lng) ON CONFLICT DO NOTHING"),
            {"c": condition_id, "r": resolution, "cell": cell,
             "cr": h3i.get_resolution(cell), "lat": lat, "lng": lng})
    return condition_id, resolution


def _per_request(session: Session, condition_id: int, resolution: int) -> dict:
    rows = session.execute(text(_PER_REQUEST_SQL), {
        "c": condition_id, "r": resolution, "radii": published._LABEL_RADII}).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_cached_labels_equal_the_per_request_computation(rollback_session: Session) -> None:
    session = rollback_session
    condition_id, resolution = _add_cells(session)
    expected = _per_request(session, condition_id, resolution)
    assert any(parts[0] for parts in expected.values())  # some place names
    assert any(parts[0] is None and parts[2] for parts in expected.values())  # country only
    assert any(not any(parts) for parts in expected.values())  # open sea, the poles

    forget(session)
    computed = published.viewport(session, "all", resolution)  # nothing cached yet
    assert name_new_cells(session).cells > 0
    assert name_new_cells(session).cells == 0  # a second naming finds nothing new
    cached = published.viewport(session, "all", resolution)
    assert cached == computed

    named = dict(session.execute(text(
        "SELECT cell, (place, place_country, country, place_country_code, country_code) "
        "FROM cell_area_names")).all())
    for cell, parts in expected.items():
        assert tuple(named[cell]) == parts
    by_cell = {c.cell: c for c in cached.cells}
    for cell, (place, place_country, country, place_code, code) in expected.items():
        label = (f"{place} area, {place_country}" if place
                 else f"{country} area" if country else None)
        assert (by_cell[cell].label, by_cell[cell].place, by_cell[cell].country_code) == (
            label, place, place_code if place else code if country else None)


def test_coarse_markers_are_named_after_a_place_near_their_centre(
        rollback_session: Session) -> None:
    # The resolution-0 cell centred in Slovakia (48.76 N, 18.30 E) was "Istanbul area,
    # Türkiye" (1,000 km away): a place names a marker only within 50 km of its centre.
    session = rollback_session
    condition_id, resolution = _add_cells(session)
    slovakia = 0x801FFFFFFFFFFFF
    lat, lng = h3i.cell_to_latlng(slovakia)
    session.execute(
        text("INSERT INTO published_cells "
             "(condition_id, resolution, cell, cell_resolution, count, lat, lng) "
             "VALUES (:c, :r, :cell, 0, 7, :lat, :lng) ON CONFLICT DO NOTHING"),
        {"c": condition_id, "r": resolution, "cell": slovakia, "lat": lat, "lng": lng})
    name_new_cells(session)
    by_cell = {c.cell: c for c in published.viewport(session, "all", resolution).cells}
    assert by_cell[slovakia].country_code == "SK"
    assert "Istanbul" not in (by_cell[slovakia].label or "")
    cap = published.LABEL_PLACE_MAX_KM / 111.0
    for cell, marker in by_cell.items():
        if marker.place:  # the named place lies within the capped box around the centre
            near = session.execute(text(
                "SELECT count(*) FROM places WHERE name = :name AND point && ST_Expand("
                "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), :cap)"),
                {"name": marker.place, "lng": marker.lng, "lat": marker.lat,
                 "cap": cap + 1e-9}).scalar_one()
            assert near >= 1, (h3i.int_to_str(cell), marker.label)


def test_reimporting_outlines_empties_the_cache(rollback_session: Session) -> None:
    session = rollback_session
    name_new_cells(session)
    assert session.execute(text("SELECT count(*) FROM cell_area_names")).scalar_one() > 0
    reference.import_countries(session)
    assert session.execute(text("SELECT count(*) FROM cell_area_names")).scalar_one() == 0


def test_the_publish_schedule_names_the_published_cells(fresh_db_url, tmp_path) -> None:  # noqa: ANN001
    from sqlalchemy import create_engine

    from geomap.config import load_settings
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo
    from geomap.ingest.members_bulk import load_members
    from geomap.publish.schedule import PublishScheduler
    from geomap.session import session_scope
    from tests.conftest import FLOOR, app_config

    engine = create_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            deriver = KeyDeriver(session, FLOOR)
            batch, prefixes = demo.generate(session, 300, 7, on_land=deriver.on_land)
            load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        settings = load_settings(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
        PublishScheduler(engine, settings).run_once()
        with session_scope(engine) as session:
            published_cells = set(session.execute(
                text("SELECT DISTINCT cell FROM published_cells")).scalars())
            named = set(session.execute(text("SELECT cell FROM cell_area_names")).scalars())
        assert published_cells and named == published_cells
    finally:
        engine.dispose()


def _features_in_python(view: published.Viewport) -> list[dict]:
    """The API's GeoJSON Features of ``view``, written in Python (the reference)."""
    return [
        {"type": "Feature", "id": h3i.int_to_str(cell.cell),
         "geometry": {"type": "Point", "coordinates": [round(cell.lng, 5), round(cell.lat, 5)]},
         "properties": {"count": cell.count, "cell_resolution": cell.cell_resolution}
         | ({"label": cell.label} if cell.label else {})
         | ({"place": cell.place} if cell.place else {})
         | ({"country_code": cell.country_code} if cell.country_code else {})}
        for cell in view.cells
    ]


def test_features_written_by_postgresql_equal_the_markers(rollback_session: Session) -> None:
    session = rollback_session
    _condition_id, resolution = _add_cells(session)
    where = [{}, {"boxes": [(-180.0, 60.0, 180.0, 90.0), (170.0, -20.0, 180.0, -10.0)]},
             {"tile": (float("-inf"), 0.0, 0.0, float("inf"))},
             {"boxes": [(10.0, -1.0, 10.5, -0.5)]}]  # open sea: no marker
    for naming in ("unnamed", "named"):
        if naming == "unnamed":
            forget(session)
        else:
            name_new_cells(session)
        for kwargs in where:
            view = published.viewport(session, "all", resolution, **kwargs)
            written = published.viewport_features(session, "all", resolution, **kwargs)
            assert (written.condition_slug, written.version, written.total, written.markers) == (
                view.condition_slug, view.version, view.total, len(view.cells))
            features = json.loads(b"[" + written.features + b"]")
            assert features == _features_in_python(view), (naming, kwargs)
            if kwargs == {}:  # labels, places and countries and unlabelled markers alike
                assert {"label", "place", "country_code"} <= {
                    key for f in features for key in f["properties"]}
                assert any("label" not in f["properties"] for f in features)
            if "boxes" in kwargs and kwargs["boxes"][0][0] == 10.0:
                assert written.features == b""
    assert published.viewport_features(session, "no-such-condition", resolution) is None
