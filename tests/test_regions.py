"""Region counts: suppression (hypothesis), the public API, polygons load and reassign."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.privacy import (
    Partition,
    cell_resolutions,
    partition_many,
    partition_markers,
    suppressed_parts_many,
    unpack_keys,
)
from geomap.publish import publish
from geomap.publish.regions import region_counts
from geomap.regions.load import load_regions, reassign_regions
from geomap.session import session_scope
from tests.conftest import FLOOR, SHARED_DATA, K

GERMANY = SHARED_DATA / "germany_states.geojson"

# (lat, lng) of points in German states, and the ISO 3166-2 code of each state.
GERMAN_POINTS = {
    "DE-HH": (53.5511, 9.9937),  # Hamburg
    "DE-BY": (48.1374, 11.5755),  # Munich
    "DE-BE": (52.5200, 13.4050),  # Berlin
    "DE-NW": (50.9375, 6.9603),  # Cologne
    "DE-SN": (51.0504, 13.7373),  # Dresden
}


# The rule written plainly, one whole at a time: the reference the vectorised
# geomap.privacy.suppressed_parts_many is tested against.
def suppressed_parts(parts: Mapping[str, int], k: int) -> dict[str, int | None]:
    """Return the publishable count of each part of a whole (None: suppressed).

    Used for region counts within a country and country counts within the world:
    a part below k is suppressed, and so are the smallest remaining parts (ties by
    key) until what is hidden is 0 or at least k, so that the whole minus the shown
    parts never reveals a group of 1 to k-1 members either.
    """
    shown = {key: count for key, count in parts.items() if count >= k}
    hidden = sum(count for count in parts.values() if count > 0) - sum(shown.values())
    for key in sorted(shown, key=lambda key: (shown[key], key)):
        if hidden == 0 or hidden >= k:
            break
        hidden += shown.pop(key)
    return {key: shown.get(key) for key, count in sorted(parts.items()) if count > 0}


@settings(max_examples=300, deadline=None)
@given(
    parts=st.dictionaries(st.text(alphabet="ABCDEFGH", min_size=1, max_size=3),
                          st.integers(min_value=0, max_value=40), max_size=12),
    k=st.integers(min_value=2, max_value=12),
)
def test_suppressed_parts_never_show_or_reveal_a_small_group(parts: dict, k: int) -> None:
    published = suppressed_parts(parts, k)
    assert set(published) == {key for key, count in parts.items() if count > 0}
    shown = {key: count for key, count in published.items() if count is not None}
    assert all(count >= k for count in shown.values())
    assert all(parts[key] == count for key, count in shown.items())
    hidden = sum(parts.values()) - sum(shown.values())
    if sum(parts.values()) >= k:  # the whole is published: the difference must not leak
        assert hidden == 0 or hidden >= k
    else:  # the whole is suppressed itself, and so is every part
        assert not shown


def test_published_regions_hold_no_count_between_1_and_k_minus_1(community_engine) -> None:
    with community_engine.connect() as conn:
        small = conn.execute(
            text("SELECT count(*) FROM published_regions WHERE count < :k"), {"k": K}
        ).scalar_one()
        rows = conn.execute(text("SELECT count(*) FROM published_regions")).scalar_one()
        leaks = conn.execute(
            text(
                "SELECT c.condition_id, c.code, c.count, coalesce(sum(r.count), 0) "
                "FROM published_regions c LEFT JOIN published_regions r "
                "ON r.condition_id = c.condition_id AND r.level = 'admin1' "
                "AND r.country_code = c.code "
                "WHERE c.level = 'country' AND c.count IS NOT NULL "
                "GROUP BY 1, 2, 3 HAVING c.count - coalesce(sum(r.count), 0) BETWEEN 1 AND :k1"
            ),
            {"k1": K - 1},
        ).all()
    assert rows > 0 and small == 0
    assert leaks == []  # a country's count minus its shown regions is 0 or at least k


@pytest.mark.parametrize("level", ["country", "admin1"])
def test_public_regions_api_shows_no_small_count(client, level: str) -> None:
    response = client.get(f"/api/v1/conditions/all/regions?level={level}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["level"] == level and body["regions"]
    for region in body["regions"]:
        if region["suppressed"]:
            assert region["count"] is None
        else:
            assert region["count"] >= K
    # Region counts are sums of whole parts; the few hidden ones are those a marker
    # centred in them undercuts by 1..k-1 (checked by tests/test_differencing_attacker).
    assert sum(region["suppressed"] for region in body["regions"]) < len(body["regions"]) / 2
    assert "Set-Cookie" not in response.headers


def test_public_regions_api_errors(client) -> None:
    assert client.get("/api/v1/conditions/all/regions?level=city").status_code == 400
    missing = client.get("/api/v1/conditions/no-such/regions")
    assert missing.status_code == 404 and missing.get_json()["error"]["status"] == 404


def test_public_region_counts_use_floor_cell_centres_only(fresh_db_url) -> None:
    engine = create_engine(fresh_db_url)
    rng = np.random.default_rng(3)
    centre_lat, centre_lng = 50.11, 8.68  # Frankfurt
    lats = centre_lat + rng.normal(0, 0.3, 40)
    lngs = centre_lng + rng.normal(0, 0.3, 40)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        load_members(session, _batch(lats, lngs), deriver)
        publish(session, k=K, floor=FLOOR)
        before = _published_regions(session)
        # Move every member to another point of its own floor cell (its centre).
        cells = session.execute(
            text("SELECT member_id, floor_cell FROM member_locations")
        ).all()
        for member_id, cell in cells:
            lat, lng = h3i.cell_to_latlng(cell)
            session.execute(
                text("UPDATE member_locations SET location = "
                     "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)::geography "
                     "WHERE member_id = :id"),
                {"lat": lat, "lng": lng, "id": member_id},
            )
        reassign_regions(session, deriver)
        publish(session, k=K, floor=FLOOR)
        after = _published_regions(session)
    engine.dispose()
    assert before and before == after


def _published_regions(session) -> list:  # noqa: ANN001
    return session.execute(
        text("SELECT condition_id, level, code, count FROM published_regions ORDER BY 1, 2, 3")
    ).all()


def _batch(lats: np.ndarray, lngs: np.ndarray, condition_id: int = 1) -> MemberBatch:
    n = len(lats)
    return MemberBatch(
        pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
        contactable=[True] * n, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
        lats=np.asarray(lats, dtype=np.float64), lngs=np.asarray(lngs, dtype=np.float64),
        conditions=[[condition_id]] * n,
    )


needs_germany = pytest.mark.skipif(not GERMANY.exists(),
                                   reason=f"{GERMANY} is absent (shared test data)")


@needs_germany
def test_loaded_polygons_replace_the_nearest_place(fresh_db_url) -> None:
    engine = create_engine(fresh_db_url)
    codes = list(GERMAN_POINTS)
    lats = np.array([GERMAN_POINTS[c][0] for c in codes])
    lngs = np.array([GERMAN_POINTS[c][1] for c in codes])
    with session_scope(engine) as session:
        before = KeyDeriver(session, FLOOR).derive(lats, lngs)
        assert all(code.startswith("DE.") for code in before.region_codes)  # GeoNames style
        summary = load_regions(session, GERMANY, level="admin1", code_field="iso_3166_2",
                               name_field="label_en")
        assert summary.regions == 16 and summary.countries == ("DE",)
        assert summary.parts >= 16
        after = KeyDeriver(session, FLOOR).derive(lats, lngs)
        # Elsewhere, still the nearest gazetteer place.
        paris = KeyDeriver(session, FLOOR).derive(np.array([48.8566]), np.array([2.3522]))
    engine.dispose()
    assert after.region_codes.tolist() == codes
    assert after.country_codes.tolist() == ["DE"] * len(codes)
    assert paris.region_codes[0].startswith("FR.")


@needs_germany
def test_regions_load_and_reassign_from_the_cli(fresh_db_url, tmp_path) -> None:
    engine = create_engine(fresh_db_url)
    codes = list(GERMAN_POINTS)
    lats = np.repeat([GERMAN_POINTS[c][0] for c in codes], K)
    lngs = np.repeat([GERMAN_POINTS[c][1] for c in codes], K)
    with session_scope(engine) as session:
        load_members(session, _batch(lats, lngs), KeyDeriver(session, FLOOR))
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path),
           "GEOMAP_K": str(K), "PATH": "/usr/bin:/bin"}

    def geomap(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "geomap.cli", *args], env=env,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return result

    loaded = geomap("regions", "load", str(GERMANY), "--level", "admin1",
                    "--code-field", "iso_3166_2", "--name-field", "label_en")
    assert "Loaded 16 regions" in loaded.stdout
    reassigned = geomap("regions", "reassign")
    assert f"Checked {len(lats)} members" in reassigned.stdout
    assert f"{len(lats)} changed country or region" in reassigned.stdout
    geomap("publish")
    with engine.connect() as conn:
        stored = dict(conn.execute(text(
            "SELECT region_code, count(*) FROM member_locations GROUP BY 1")).all())
        names = dict(conn.execute(text(
            "SELECT code, name FROM published_regions WHERE level = 'admin1'")).all())
    engine.dispose()
    assert stored == dict.fromkeys(codes, K)
    assert names["DE-HH"] == "Hamburg" and names["DE-BY"] == "Bavaria"


def test_regions_load_refuses_a_file_without_the_code_field(fresh_db_url, tmp_path) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                    '"properties": {"name": "X"}, "geometry": {"type": "Polygon", '
                    '"coordinates": [[[0,0],[1,0],[1,1],[0,0]]]}}]}')
    result = subprocess.run(
        [sys.executable, "-m", "geomap.cli", "regions", "load", str(path), "--code-field", "id"],
        env={"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path),
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "no 'id' property" in result.stderr


@pytest.mark.parametrize("table", ["admin_region_counts", "admin_monthly_joins", "regions"])
def test_public_role_cannot_read_admin_counts(community_url: str, table: str) -> None:
    from sqlalchemy.exc import ProgrammingError

    from geomap.database import make_public_engine

    engine = make_public_engine(community_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM published_regions")).scalar() > 0
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT * FROM {table} LIMIT 1"))
    finally:
        engine.dispose()


@settings(max_examples=200, deadline=None)
@given(
    wholes=st.lists(st.dictionaries(st.text(alphabet="ABCD", min_size=1, max_size=2),
                                    st.integers(min_value=1, max_value=30), max_size=8),
                    max_size=6),
    k=st.integers(min_value=2, max_value=12),
)
def test_suppression_of_many_wholes_at_once_is_each_wholes_own(wholes: list, k: int) -> None:
    groups, ranks, counts = [], [], []
    for group, parts in enumerate(wholes):
        for rank, key in enumerate(sorted(parts)):
            groups.append(group)
            ranks.append(rank)
            counts.append(parts[key])
    shown = suppressed_parts_many(np.array(groups, np.int64), np.array(ranks, np.int64),
                                  np.array(counts, np.int64), k)
    expected = [suppressed_parts(parts, k)[key] is not None
                for parts in wholes for key in sorted(parts)]
    assert shown.tolist() == expected


class GridPlaces:
    """Places cells by their centre on a 1-degree grid: some at sea, some with no region.

    Stands in for the gazetteer so that random partitions cross many borders; the
    rules under test see places only through ``cell_places``.
    """

    def cell_places(self, cells: np.ndarray) -> dict[int, tuple[str | None, str | None]]:
        places = {}
        for cell in np.unique(np.asarray(cells, np.int64)).tolist():
            lat, lng = h3i.cell_to_latlng(cell)
            row, column = int(np.floor(lat)), int(np.floor(lng))
            if row == -1 and column == 1:
                places[cell] = (None, None)  # at sea
            else:
                country = "XY"[row % 2] + "AB"[column % 2]
                places[cell] = (country, None if column == 0 else f"{country}-{row}{column}")
        return places


def _region_counts_one_by_one(places: GridPlaces, parts: dict, k: int, floor: int) -> set:
    """The rules of geomap.publish.regions applied to each condition on its own."""
    rows = set()
    for condition, (cells, counts) in parts.items():
        place_of = places.cell_places(cells)
        by_country: dict = {}
        by_region: dict = {}
        for cell, count in zip(cells.tolist(), counts.tolist(), strict=True):
            country, region = place_of[cell]
            if country is None:
                continue
            by_country[country] = by_country.get(country, 0) + count
            in_country = by_region.setdefault(country, {})
            in_country[region or ""] = in_country.get(region or "", 0) + count
        countries = suppressed_parts(by_country, k)
        regions = {country: suppressed_parts(found, k) for country, found in by_region.items()}
        partition = Partition(cells=cells, cell_resolutions=cell_resolutions(cells),
                              counts=counts, remainder=0)
        hide = set()
        for resolution in range(floor + 1):
            markers = partition_markers(partition, resolution)
            marker_places = places.cell_places(markers.cells)
            for cell, count in zip(markers.cells.tolist(), markers.counts.tolist(),
                                   strict=True):
                country, region = marker_places[cell]
                if country is None:
                    continue
                for key, shown in ((("country", country), countries.get(country)),
                                   (("admin1", region), regions.get(country, {}).get(region)
                                    if region else None)):
                    if shown and 1 <= shown - count < k:
                        hide.add(key)
        rows |= {(condition, "country", code, None if ("country", code) in hide else count)
                 for code, count in countries.items()}
        rows |= {(condition, "admin1", code, None if ("admin1", code) in hide else count)
                 for found in regions.values() for code, count in found.items() if code}
    return rows


@settings(max_examples=60, deadline=None)
@given(
    members=st.lists(st.tuples(st.integers(min_value=1, max_value=3),
                               st.floats(min_value=-2.5, max_value=2.5),
                               st.floats(min_value=-2.5, max_value=2.5),
                               st.integers(min_value=1, max_value=9)),
                     min_size=1, max_size=60),
    k=st.integers(min_value=2, max_value=8),
)
def test_region_counts_of_all_conditions_at_once_follow_each_conditions_rules(
        members: list, k: int) -> None:
    floor = 4
    counts: dict = {}
    for condition, lat, lng, how_many in members:
        cell = h3i.latlng_to_cell(lat, lng, floor)
        counts[(condition, cell)] = counts.get((condition, cell), 0) + how_many
    keys = sorted(counts)
    many = partition_many(np.array([c for c, _ in keys], np.int64),
                          np.array([cell for _, cell in keys], np.int64),
                          np.array([counts[key] for key in keys], np.int64), floor, k)
    conditions, cells = unpack_keys(many.part_keys)
    parts = {condition: (cells[conditions == condition], many.part_counts[conditions == condition])
             for condition in np.unique(conditions).tolist()}
    places = GridPlaces()
    found = region_counts(places, conditions, cells, many.part_counts, k, floor)
    rows = {(condition, "country", code, count) for condition, code, count in found.countries}
    rows |= {(condition, "admin1", code, count) for condition, _c, code, count in found.regions}
    assert rows == _region_counts_one_by_one(places, parts, k, floor)


def test_public_regions_api_speaks_the_viewer_language(client) -> None:
    """Country names from CLDR, region names from pycountry, the note translated."""
    english = client.get("/api/v1/conditions/all/regions?level=country").get_json()
    german = client.get("/api/v1/conditions/all/regions?level=country",
                        headers={"Accept-Language": "de"})
    assert german.headers["Content-Language"] == "de"
    assert "Accept-Language" in german.headers["Vary"]  # a shared cache keeps both
    body = german.get_json()
    names = {r["code"]: r["name"] for r in body["regions"]}
    assert names["DE"] == "Deutschland" and names["FR"] == "Frankreich"
    assert {r["code"]: r["name"] for r in english["regions"]}["DE"] == "Germany"
    assert body["note"] != english["note"] and "k" in body["note"]
    assert [r["count"] for r in body["regions"]] == [r["count"] for r in english["regions"]]
    spanish = client.get("/api/v1/conditions/all/regions?level=admin1&lang=es").get_json()
    by_code = {r["code"]: r["name"] for r in spanish["regions"]}
    assert by_code["AU.02"] == "Nueva Gales del Sur"  # pycountry's ISO 3166-2 catalogue (es)


def test_a_language_cookie_makes_public_answers_vary_by_cookie(client) -> None:
    client.set_cookie("geomap_lang", "fr")
    response = client.get("/api/v1/conditions/all/regions")
    assert response.headers["Content-Language"] == "fr"
    assert {"Accept-Language", "Cookie"} <= {v.strip() for v in response.headers["Vary"].split(",")}
