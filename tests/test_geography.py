"""One geography: countries, regions and their names, for every example of issue 8.

Each example from the issue is a test with the right value as its assertion; the
self-consistency figures over every gazetteer place are printed (they show in the
``make test`` summary through ``-ra``'s captured output and the terminal summary hook).
"""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import REGION_BOUND_KM, KeyDeriver, haversine_km
from geomap.regions.names import country_name, region_names
from tests.conftest import FLOOR

# Places whose own coordinates derive another first-level region, and why.
REGION_EXCEPTIONS = {
    574675: "Bol'shaya Setun' (RU.47, Moscow Oblast) shares its exact coordinates with "
            "Setun' (RU.48, Moscow): two regions at one point, a true border",
}
COUNTRY_EXCEPTIONS: dict[int, str] = {}
FIGURES: list[str] = []


@pytest.fixture(scope="module")
def session(community_engine):
    with Session(community_engine) as session:
        yield session


@pytest.fixture(scope="module")
def deriver(community_deriver: KeyDeriver) -> KeyDeriver:
    return community_deriver


def place_of(deriver: KeyDeriver, lat: float, lng: float) -> tuple[str | None, str | None]:
    countries, regions = deriver.point_places(np.array([lat]), np.array([lng]))
    return countries[0], regions[0]


def place_row(session: Session, name: str, country: str) -> tuple[int, float, float, str]:
    """Return (id, lat, lng, region code) of the most populous place of that name."""
    row = session.execute(
        text("SELECT id, ST_Y(point), ST_X(point), country_code || '.' || admin1_code "
             "FROM places WHERE name = :n AND country_code = :c ORDER BY population DESC"),
        {"n": name, "c": country},
    ).first()
    assert row is not None, f"{name} ({country}) is not in the gazetteer"
    return row


@pytest.mark.parametrize("lat,lng,country,region_name", [
    (4.9381, -52.33455, "GF", "Guyane"),  # Cayenne: not France's "Bordeaux region"
    (78.22334, 15.64689, "SJ", "Svalbard"),  # Longyearbyen: not Norway's "Alta region"
    (36.14474, -5.35257, "GI", None),  # Gibraltar: not Spain
    (41.9029, 12.4534, "VA", None),  # Vatican City: not Italy
    (44.95719, 34.11079, "UA", "Crimea"),  # Simferopol: the gazetteer says UA
    (42.67272, 21.16688, "XK", None),  # Pristina: Kosovo is XK
    (-86.5, 120.0, "AQ", None),  # south of 85.19°S: Antarctica
    (-89.9, -45.0, "AQ", None),
    (22.54, 114.06, "CN", "Guangdong"),  # Shenzhen: a region, not "Shenzhen region"
    (53.55, 10.0, "DE", "Hamburg"),  # DE.04 shown by name
    (-23.55, -46.63, "BR", "São Paulo"),  # BR.27 shown by name
])
def test_example_points_get_the_gazetteer_country_and_a_named_region(
        deriver, session, lat, lng, country, region_name) -> None:
    got_country, got_region = place_of(deriver, lat, lng)
    assert got_country == country
    if region_name is not None:
        assert region_names(session, [got_region])[got_region] == region_name


def test_kiritimati_is_kiribati_and_never_tarawas_region(deriver, session) -> None:
    tarawa = place_row(session, "Tarawa", "KI")
    country, region = place_of(deriver, 1.87, -157.43)
    assert country == "KI"
    assert region != tarawa[3]  # 3,300 km away: a known nearer place or unknown


def test_sea_points_off_fiji_across_180_get_fiji(deriver, session) -> None:
    # Outline vertices of Fiji within ~7 km west of 180°; points 8 km east of them lie
    # across the antimeridian, at sea, with the nearest land on the other side.
    vertices = session.execute(
        text("SELECT DISTINCT ST_Y(d.geom), ST_X(d.geom) FROM countries c, "
             "ST_DumpPoints(c.geom) d WHERE c.code = 'FJ' AND ST_X(d.geom) BETWEEN 179.93 "
             "AND 179.999")
    ).all()
    checked = 0
    for lat, lng in vertices:
        east = lng + 8 / (111.32 * np.cos(np.radians(lat))) - 360
        inside = session.execute(
            text("SELECT EXISTS (SELECT 1 FROM countries WHERE "
                 "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)))"),
            {"x": east, "y": lat},
        ).scalar_one()
        if inside:
            continue
        checked += 1
        assert place_of(deriver, lat, east)[0] == "FJ"
    assert checked > 0


def test_sea_points_off_northern_russia_get_russia(deriver) -> None:
    # A few km off Cape Chelyuskin (77.72°N 104.25°E), north of the coast.
    assert place_of(deriver, 77.75, 104.3)[0] == "RU"
    # Off Chukotka's Arctic coast near Uelen, east of 180° in longitude.
    assert place_of(deriver, 66.19, -169.8)[0] == "RU"


def test_mid_ocean_has_no_country(deriver) -> None:
    assert place_of(deriver, 30.0, -40.0) == (None, None)
    assert place_of(deriver, -50.0, -120.0) == (None, None)


def test_region_names_never_show_a_city_or_a_bare_code(session) -> None:
    codes = [row[0] for row in session.execute(
        text("SELECT DISTINCT country_code || '.' || admin1_code FROM places "
             "WHERE admin1_code NOT IN ('', '00')")
    ).all()]
    names = region_names(session, codes)
    bare = [code for code, name in names.items() if name == code or code.split(".")[1] == name]
    assert bare == []
    unnamed = sum(name.startswith("A region of ") for name in names.values())
    FIGURES.append(f"admin1 names: {len(codes) - unnamed:,} of {len(codes):,} codes named "
                   f"({unnamed} shown as 'A region of <country>')")
    assert unnamed / len(codes) < 0.05
    assert country_name("XK") == "Kosovo"


def test_every_gazetteer_place_derives_its_own_country_and_region(deriver, session) -> None:
    rows = session.execute(
        text("SELECT id, country_code, admin1_code, ST_Y(point), ST_X(point) FROM places "
             "ORDER BY id")
    ).all()
    ids = np.array([r[0] for r in rows])
    countries, regions = deriver.point_places(np.array([r[3] for r in rows]),
                                              np.array([r[4] for r in rows]))
    own_country = np.array([r[1] for r in rows], dtype=object)
    own_region = np.array([f"{r[1]}.{r[2]}" if r[2] and r[2] != "00" else None for r in rows],
                          dtype=object)
    country_ok = countries == own_country
    region_ok = regions == own_region
    country_share, region_share = country_ok.mean(), region_ok.mean()
    # The floor cell's keys (what is stored and counted) for the same places.
    cells = h3i_cells(rows)
    cell_places = deriver.cell_places(cells)
    cell_country = np.array([cell_places[int(c)][0] for c in cells], dtype=object)
    FIGURES.append(
        f"self-consistency over {len(rows):,} gazetteer places: own country "
        f"{country_share:.4%}, own first-level region {region_share:.4%}; "
        f"floor cell (res {FLOOR}) country = place's country "
        f"{np.mean(cell_country == own_country):.3%}, "
        f"floor cells holding a place with no country: {int(sum(c is None for c in cell_country))}"
    )
    print(FIGURES[-1])
    assert country_share >= 0.999 and region_share >= 0.99
    assert set(ids[~country_ok].tolist()) <= set(COUNTRY_EXCEPTIONS)
    assert set(ids[~region_ok].tolist()) <= set(REGION_EXCEPTIONS)
    # A floor cell holding a city always has a country (issue 12, item 3).
    assert all(c is not None for c in cell_country)


def h3i_cells(rows: list) -> np.ndarray:
    """Return the floor cells of place rows (id, country, admin1, lat, lng)."""
    from geomap.privacy import floor_cells

    return floor_cells(np.array([r[3] for r in rows]), np.array([r[4] for r in rows]), FLOOR)


def test_a_sea_centre_cell_takes_the_land_it_covers(deriver, session) -> None:
    rows = session.execute(
        text("SELECT id, country_code, admin1_code, ST_Y(point), ST_X(point) FROM places "
             "ORDER BY id")
    ).all()
    cells = np.unique(h3i_cells(rows))
    centres = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
    countries, _ = deriver.point_places(centres[:, 0], centres[:, 1])
    at_sea = cells[np.array([c is None for c in countries])]
    FIGURES.append(f"floor cells holding a gazetteer place whose centre is at sea: {len(at_sea):,}")
    assert len(at_sea) > 0  # islands and capes: the rule is exercised
    places = deriver.cell_places(at_sea)
    assert all(places[int(c)][0] is not None for c in at_sea)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lat=st.floats(min_value=-90, max_value=90), lng=st.floats(min_value=-180, max_value=180))
def test_a_derived_region_is_within_its_bound_or_unknown(deriver, session, lat, lng) -> None:
    _country, region = place_of(deriver, lat, lng)
    if region is None:
        return
    country, admin1 = region.split(".", 1)
    points = session.execute(
        text("SELECT ST_Y(point), ST_X(point) FROM places "
             "WHERE country_code = :c AND admin1_code = :a"), {"c": country, "a": admin1}
    ).all()
    lats = np.array([p[0] for p in points])
    lngs = np.array([p[1] for p in points])
    nearest = haversine_km(np.full(len(lats), lat), np.full(len(lats), lng), lats, lngs).min()
    assert nearest <= REGION_BOUND_KM + 1e-6


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lat=st.floats(min_value=-90, max_value=90), lng=st.floats(min_value=-180, max_value=180))
def test_stored_keys_are_the_floor_cells(deriver, lat, lng) -> None:
    keys = deriver.derive(np.array([lat]), np.array([lng]))
    cell = int(keys.floor_cells[0])
    assert deriver.cell_places(np.array([cell]))[cell] == (keys.country_codes[0],
                                                           keys.region_codes[0])


def figures() -> list[str]:
    """Figures this module measured (printed at the end of the run by conftest)."""
    return list(FIGURES)


def test_cached_cells_answers_equal_uncached_ones_in_any_order(community_url, tmp_path) -> None:
    from geomap import create_app
    from tests.conftest import app_config

    cached = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url)).test_client()
    box = "0,40,22.5,60"
    orders = [[3, 4, 5, 6, 10], [10, 6, 5, 4, 3], [5, 3, 10, 4, 6, 3, 5]]
    expected = {}
    for zoom in sorted({z for order in orders for z in order}):
        fresh = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url))
        expected[zoom] = fresh.test_client().get(
            f"/api/v1/conditions/all/cells?zoom={zoom}&bbox={box}").data
    for order in orders:
        for zoom in order:
            body = cached.get(f"/api/v1/conditions/all/cells?zoom={zoom}&bbox={box}").data
            assert body == expected[zoom], zoom
