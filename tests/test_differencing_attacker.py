"""A differencing attacker: no two nested public numbers differ by 1 to k-1 true members.

The attacker reads every public number of one publish through the public HTTP API
(markers at every zoom, each zoom's total, the condition totals, country and region
counts), subtracts every pair whose areas nest (a cell in a cell, a marker in a region
or country, a region in its country, totals across zooms, a cell against the world)
and compares each difference with the database's true count of the members in the
area between them. A true derived count between 1 and k-1 is a leak.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.privacy import MAX_ZOOM, cell_parents, map_resolution
from geomap.publish import publish
from geomap.session import session_scope
from geomap.web.api import cells_cache
from tests.conftest import FLOOR, K, app_config

# Places near borders and coasts, so parts, regions and countries cut across each other.
ANCHORS = (
    (47.56, 7.59),  # Basel: CH, DE, FR
    (50.78, 6.08),  # Aachen: DE, BE, NL
    (48.58, 7.75),  # Strasbourg
    (50.11, 8.68),  # Frankfurt
    (53.55, 9.99),  # Hamburg
    (46.20, 6.14),  # Geneva
    (51.92, 4.48),  # Rotterdam (coast)
    (41.39, 2.17),  # Barcelona (coast)
)


@dataclass
class Publication:
    """Every public number of one condition in one publish, as the attacker reads it."""

    markers: dict[int, dict[int, int]] = field(default_factory=dict)  # view res -> cell -> n
    totals: dict[int, int] = field(default_factory=dict)  # zoom -> total
    condition_total: int = 0
    countries: dict[str, int] = field(default_factory=dict)
    regions: dict[str, tuple[str, int]] = field(default_factory=dict)  # code -> (country, n)


def read_publication(client, slug: str) -> Publication:  # noqa: ANN001
    """Read one condition's public numbers through the public API, as anyone can."""
    seen = Publication()
    listed = client.get("/api/v1/conditions").get_json()["conditions"]
    seen.condition_total = next(c["published_members"] for c in listed if c["slug"] == slug)
    for zoom in range(MAX_ZOOM + 1):
        response = client.get(f"/api/v1/conditions/{slug}/cells?zoom={zoom}")
        assert response.status_code == 200
        body = response.get_json()
        seen.totals[zoom] = body["properties"]["total"]
        resolution = body["properties"]["resolution"]
        seen.markers[resolution] = {
            h3i.str_to_int(feature["id"]): feature["properties"]["count"]
            for feature in body["features"]
        }
    for level in ("country", "admin1"):
        body = client.get(f"/api/v1/conditions/{slug}/regions?level={level}").get_json()
        for row in body["regions"]:
            if row["suppressed"]:  # hidden: a marker centred there would undercut it by < k
                assert row["count"] is None
                continue
            assert row["count"] >= K
            if level == "country":
                seen.countries[row["code"]] = row["count"]
            else:
                seen.regions[row["code"]] = (row["country_code"], row["count"])
    return seen


@dataclass
class Truth:
    """The database's true counts, by floor cell and by each floor cell's place."""

    total: int
    in_cell: dict[int, int]  # any H3 cell (res 0..floor) -> members inside it
    in_cell_region: dict[tuple[int, str], int]  # (cell, region) -> members
    in_cell_country: dict[tuple[int, str], int]
    in_country: dict[str, int]
    in_region: dict[str, int]
    without_region: dict[str, int]  # country -> members with no region


def true_counts(session: Session, deriver: KeyDeriver, condition_id: int) -> Truth:
    """Count the members on the condition's map per cell and place, from the database."""
    rows = session.execute(
        text(
            "SELECT ml.floor_cell, count(*) FROM member_conditions mc "
            "JOIN members m ON m.id = mc.member_id AND m.visibility = 'map' "
            "JOIN member_locations ml ON ml.member_id = mc.member_id "
            "WHERE mc.condition_id = :c GROUP BY 1"
        ),
        {"c": condition_id},
    ).all()
    cells = np.array([row[0] for row in rows], dtype=np.int64)
    counts = [int(row[1]) for row in rows]
    places = deriver.cell_places(cells)
    truth = Truth(sum(counts), defaultdict(int), defaultdict(int), defaultdict(int),
                  defaultdict(int), defaultdict(int), defaultdict(int))
    for resolution in range(FLOOR + 1):
        ancestors = cell_parents(cells, resolution).tolist() if len(cells) else []
        for floor_cell, ancestor, count in zip(cells.tolist(), ancestors, counts, strict=True):
            country, region = places[floor_cell]
            truth.in_cell[ancestor] += count
            truth.in_cell_region[(ancestor, region or "")] += count
            truth.in_cell_country[(ancestor, country or "")] += count
    for floor_cell, count in zip(cells.tolist(), counts, strict=True):
        country, region = places[floor_cell]
        truth.in_country[country or ""] += count
        truth.in_region[region or ""] += count
        if country and not region:
            truth.without_region[country] += count
    return truth


def leaks(seen: Publication, truth: Truth, deriver: KeyDeriver) -> list[tuple]:
    """Return every nested difference that is a true count between 1 and k-1.

    Differences that are sums of whole parts by construction (cell in cell, totals,
    region in country) must moreover be 0 or at least k, whatever the truth.
    """
    found: list[tuple] = []

    def check(kind: str, derived: int, true: int, structural: bool) -> None:
        if 1 <= derived <= K - 1 and (structural or derived == true):
            found.append((kind, derived, true))

    # Totals of every zoom, and the condition's listed total: the same world.
    world = set(seen.totals.values()) | {seen.condition_total}
    for a in world:
        for b in world:
            check("total-total", a - b, 0, True)
    markers = [(view, cell, count) for view, by_cell in seen.markers.items()
               for cell, count in by_cell.items()]
    for by_cell in seen.markers.values():
        check("total-markers", seen.condition_total - sum(by_cell.values()), 0, True)
    by_cell: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for view, cell, count in markers:
        by_cell[cell].append((view, count))
    for view, cell, count in markers:
        # The world minus one marker.
        check("total-cell", seen.condition_total - count, truth.total - truth.in_cell[cell], True)
        resolution = h3i.get_resolution(cell)
        # A marker coarser than its zoom holds only what its finer markers do not (the
        # roll-up); it nests as a whole cell only at its own resolution.
        whole_cell = resolution == view
        # A cell minus each marker inside it (its own cell at another zoom included).
        for other_view, other_cell, other_count in markers:
            other_res = h3i.get_resolution(other_cell)
            if other_res < resolution or (other_view, other_cell) == (view, cell):
                continue
            if h3i.cell_to_parent(other_cell, resolution) != cell:
                continue
            check("cell-cell", count - other_count,
                  truth.in_cell[cell] - truth.in_cell[other_cell], whole_cell)
        # A cell minus every marker of a finer zoom inside it.
        for other_view, other in seen.markers.items():
            if other_view <= resolution:
                continue
            inside = [c for c in other if h3i.get_resolution(c) >= resolution
                      and h3i.cell_to_parent(c, resolution) == cell]
            if inside:
                true_inside = sum(truth.in_cell[c] for c in inside)
                check("cell-sum", count - sum(other[c] for c in inside),
                      truth.in_cell[cell] - true_inside, whole_cell)
        # A region or country minus a marker whose centre lies in it.
        country, region = deriver.cell_places(np.array([cell], dtype=np.int64))[cell]
        if region and region in seen.regions:
            check("region-cell", seen.regions[region][1] - count,
                  truth.in_region[region] - truth.in_cell_region[(cell, region)], False)
        if country and country in seen.countries:
            check("country-cell", seen.countries[country] - count,
                  truth.in_country[country] - truth.in_cell_country[(cell, country)], False)
    # A region in its country, and a country minus all its regions.
    regions_of: dict[str, int] = defaultdict(int)
    for code, (country, count) in seen.regions.items():
        regions_of[country] += count
        if country in seen.countries:
            check("country-region", seen.countries[country] - count,
                  truth.in_country[country] - truth.in_region[code], True)
    for country, count in seen.countries.items():
        check("country-regions", count - regions_of[country],
              truth.without_region[country], True)
        check("world-country", seen.condition_total - count,
              truth.total - truth.in_country[country], False)
    return found


def attack(client, session: Session, deriver: KeyDeriver, slug: str) -> list[tuple]:  # noqa: ANN001
    """Read the publication of ``slug`` over HTTP and return the leaks found."""
    condition_id = session.execute(
        text("SELECT id FROM conditions WHERE slug = :s"), {"s": slug}
    ).scalar_one()
    seen = read_publication(client, slug)
    truth = true_counts(session, deriver, condition_id)
    assert seen.condition_total <= truth.total
    return leaks(seen, truth, deriver)


def test_the_demo_community_leaks_no_small_count(client, community_engine: Engine,
                                                  community_deriver: KeyDeriver) -> None:
    with Session(community_engine) as session:
        for slug in ("all", "multiple-sclerosis"):
            assert attack(client, session, community_deriver, slug) == []


@pytest.fixture
def attacked_db(fresh_db_url: str, tmp_path) -> Iterator[tuple]:  # noqa: ANN001
    """An empty database with reference data, the app over it, and a key deriver."""
    engine = create_engine(fresh_db_url)
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    with Session(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
    yield engine, app, deriver
    engine.dispose()


@st.composite
def communities(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Clusters of members of varied size and spread around border and coastal places."""
    clusters = draw(st.lists(
        st.tuples(st.sampled_from(ANCHORS), st.integers(1, 40),
                  st.sampled_from((0.02, 0.1, 0.4, 1.5)), st.sampled_from(([1], [2], [1, 2]))),
        min_size=1, max_size=8,
    ))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    lats, lngs, conditions = [], [], []
    for (lat, lng), size, spread, condition in clusters:
        lats.append(lat + rng.normal(0, spread, size))
        lngs.append(lng + rng.normal(0, spread, size))
        conditions.extend([condition] * size)
    return np.clip(np.concatenate(lats), -85, 85), np.concatenate(lngs), conditions


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(community=communities())
def test_generated_communities_leak_no_small_count(attacked_db: tuple, community: tuple) -> None:
    engine, app, deriver = attacked_db
    lats, lngs, conditions = community
    n = len(lats)
    with session_scope(engine) as session:
        session.execute(text("TRUNCATE members CASCADE"))
        load_members(session, MemberBatch(
            pseudonyms=None,
            roles=["patient"] * n, visibilities=["map"] * n, contactable=[True] * n,
            joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
            lats=lats, lngs=lngs, conditions=conditions,
        ), deriver)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR, full=True)
    with app.app_context():
        cells_cache().clear()
    client = app.test_client()
    with Session(engine) as session:
        for slug in ("all", "multiple-sclerosis"):
            assert attack(client, session, deriver, slug) == []


def test_zoom_resolutions_cover_every_resolution_up_to_the_floor() -> None:
    # The attacker reads every zoom; every resolution up to the floor must be one of them.
    assert {map_resolution(zoom, FLOOR) for zoom in range(MAX_ZOOM + 1)} == set(range(FLOOR + 1))
