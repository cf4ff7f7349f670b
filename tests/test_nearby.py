"""Nearby on a real PostGIS: who is listed, bands, the searcher's order, pages, and privacy.

The privacy properties: moving any other member's exact point inside their floor cell
changes no byte the observer can load (hypothesis), and an attacker who may put
themselves anywhere and search without limit learns nothing finer than a floor cell.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.members import nearby as nearby_queries
from geomap.members import queries, social
from geomap.models import ROLES
from geomap.privacy import DISTANCE_BANDS, cell_distance_km, distance_band, nearby_offset
from geomap.publish.nearby_index import refresh_nearby_members, update_nearby_members
from tests.conftest import FLOOR, app_config, sessions_on
from tests.members_helpers import add_member, sign_in

SECRET = "test-secret"
FRANKFURT = (50.11, 8.68)
BAND_LABELS = [label for _upper, label in DISTANCE_BANDS]
ORDER_KEY_SEED = 16  # hashint8extended's seed in nearby_members.order_key (0016n_nearbyx)


def unlimited_app(connection, tmp_path, **overrides):
    """The app over the transaction, rate limits lifted and CSRF off."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 RATELIMIT_ENABLED=False, WTF_CSRF_ENABLED=False,
                                 **overrides))


@pytest.fixture
def observer(session):
    """A member with ALL in Frankfurt: (account id, member id)."""
    ids = add_member(session, "frankfurt-finch", lat=FRANKFURT[0], lng=FRANKFURT[1])
    session.commit()
    return ids


def all_pages(session, member_id: int, slug: str = "all", max_km: float = 1000.0,
              role: str | None = None, band: int | None = None):
    pages, page = [], 1
    while True:
        result = nearby_queries.nearby(session, member_id=member_id, condition_slug=slug,
                                       page=page, secret=SECRET, max_km=max_km, role=role,
                                       band=band)
        pages.append(result)
        if not result.has_next:
            return pages
        page += 1


def expected_listing(session, member_id: int, max_km: float = 1000.0, role: str | None = None,
                     band: int | None = None) -> list[tuple]:
    """What nearby must list, by brute force over every listable member, in order.

    Sorted tuples (band, wrapped, order key, member id). Within a band, the order keys
    (the member id's hash, computed here from the id) from the searcher's offset up come
    first, then those below it (``wrapped``).
    """
    own = session.execute(text("SELECT floor_cell FROM member_locations WHERE member_id = :id"),
                          {"id": member_id}).scalar_one()
    rows = session.execute(text(
        "SELECT m.id, ml.floor_cell, hashint8extended(m.id, :seed) FROM members m "
        "JOIN member_locations ml ON ml.member_id = m.id "
        "JOIN member_conditions mc ON mc.member_id = m.id "
        "JOIN conditions c ON c.id = mc.condition_id AND c.slug = 'all' "
        "WHERE m.visibility = 'map' AND m.contactable AND m.suspended_at IS NULL "
        "AND m.id <> :me AND (CAST(:role AS text) IS NULL OR m.role = :role) "
        "AND NOT EXISTS (SELECT 1 FROM member_blocks b WHERE (b.blocker_id = :me AND "
        "b.blocked_id = m.id) OR (b.blocker_id = m.id AND b.blocked_id = :me))"),
        {"me": member_id, "seed": ORDER_KEY_SEED, "role": role}).all()
    offset = nearby_offset(SECRET, member_id)
    out = []
    for other, cell, key in rows:
        km = cell_distance_km(own, cell)
        index = BAND_LABELS.index(distance_band(km))
        if km < max_km and band in (None, index):
            out.append((index, key < offset, key, other))
    return sorted(out)


def listed_ids(session, pages) -> list[int]:
    """Return the member ids of ``pages``' members, in the order listed."""
    ids = dict(session.execute(text("SELECT pseudonym, id FROM members")).all())
    return [ids[m.pseudonym] for page in pages for m in page.members]


def assert_pages_as_expected(session, pages, expected: list[tuple]) -> None:
    """Assert that ``pages`` list ``expected`` (see expected_listing) page by page."""
    size = nearby_queries.PAGE_SIZE
    assert listed_ids(session, pages) == [e[3] for e in expected]
    assert [m.distance_band for p in pages for m in p.members] == [
        BAND_LABELS[e[0]] for e in expected]
    assert len(pages) == max(1, -(-len(expected) // size))
    assert all(len(page.members) == size and page.has_next for page in pages[:-1])
    assert not pages[-1].has_next


def test_nearby_lists_opted_in_members_by_band_then_the_searchers_order(session,
                                                                        observer) -> None:
    pages = all_pages(session, observer[1])
    expected = expected_listing(session, observer[1])
    assert_pages_as_expected(session, pages, expected)
    assert len(pages) >= 2  # several pages, so page boundaries are exercised too
    assert 0 < len(pages[-1].members) <= nearby_queries.PAGE_SIZE


def test_role_and_band_filters_keep_the_searchers_order(session, observer) -> None:
    for role in ("patient", "carer", "organisation"):
        pages = all_pages(session, observer[1], role=role)
        assert_pages_as_expected(session, pages, expected_listing(session, observer[1],
                                                                  role=role))
        assert {m.role for p in pages for m in p.members} <= {role}
    for band in (0, 2, 3):
        pages = all_pages(session, observer[1], band=band)
        assert_pages_as_expected(session, pages, expected_listing(session, observer[1],
                                                                  band=band))


def test_blocked_members_leave_the_order_of_the_others_unchanged(session, observer) -> None:
    before = expected_listing(session, observer[1])
    blocked = [e[3] for e in before[1::5][:8]]
    assert len(blocked) >= 4
    names = dict(session.execute(text("SELECT id, pseudonym FROM members")).all())
    for index, other in enumerate(blocked):
        if index % 2:
            social.block(session, observer[1], names[other])
        else:
            social.block(session, other, names[observer[1]])
    expected = expected_listing(session, observer[1])
    assert [e for e in before if e[3] not in blocked] == expected
    assert_pages_as_expected(session, all_pages(session, observer[1]), expected)


def test_different_searchers_in_one_cell_see_different_first_pages(session, observer) -> None:
    _, neighbour = add_member(session, "frankfurt-fox", lat=FRANKFURT[0], lng=FRANKFURT[1])
    firsts = [all_pages(session, me)[0] for me in (observer[1], neighbour)]
    assert [m.pseudonym for m in firsts[0].members] != [m.pseudonym for m in firsts[1].members]
    assert_pages_as_expected(session, all_pages(session, neighbour),
                             expected_listing(session, neighbour))


def add_members_in_cell(session, cell: int, count: int, prefix: str) -> list[int]:
    """Add ``count`` members with ALL at ``cell``'s centre, listable, roles in turn; ids."""
    lat, lng = h3i.cell_to_latlng(cell)
    ids = session.execute(text(
        "INSERT INTO members (pseudonym, pseudonym_key, role, visibility, contactable) "
        "SELECT :prefix || i, :prefix || i, (CAST(:roles AS text[]))[1 + i % 6], 'map', true "
        "FROM generate_series(1, :count) i RETURNING id"),
        {"prefix": prefix, "count": count, "roles": list(ROLES)}).scalars().all()
    session.execute(text(
        "INSERT INTO member_locations (member_id, location, floor_cell) "
        "SELECT id, ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)::geography, :cell "
        "FROM unnest(CAST(:ids AS bigint[])) id"),
        {"ids": ids, "lat": lat, "lng": lng, "cell": cell})
    session.execute(text(
        "INSERT INTO member_conditions (condition_id, member_id) "
        "SELECT (SELECT id FROM conditions WHERE slug = 'all'), id "
        "FROM unnest(CAST(:ids AS bigint[])) id"), {"ids": ids})
    update_nearby_members(session, ids)
    return ids


def test_a_cell_holding_far_more_than_a_page_is_read_in_the_searchers_order(
        session, observer) -> None:
    # 700 more members in the searcher's own cell: the nearest band holds more than a
    # page's read cap, so its first pages are read cell by cell (two ordered probes per
    # cell), its later pages by ranges; both must give the brute-force order.
    cell = h3i.latlng_to_cell(*FRANKFURT, FLOOR)
    dense = add_members_in_cell(session, cell, 700, "dense-")
    expected = expected_listing(session, observer[1])
    assert sum(1 for e in expected if e[0] == 0) >= 700
    pages = all_pages(session, observer[1])
    assert_pages_as_expected(session, pages, expected)
    # With a role filter and blocks, inside the dense cell too.
    social.block(session, observer[1], f"dense-{6}")
    social.block(session, dense[12], "frankfurt-finch")
    for role in ("carer", "researcher"):
        pages = all_pages(session, observer[1], role=role)
        assert_pages_as_expected(session, pages, expected_listing(session, observer[1],
                                                                  role=role))
    # A later page on its own equals the same slice of the whole list.
    expected = expected_listing(session, observer[1])
    for page in (1, 2, 7, 30):
        result = nearby_queries.nearby(session, member_id=observer[1], condition_slug="all",
                                       page=page, secret=SECRET, max_km=1000.0)
        size = nearby_queries.PAGE_SIZE
        assert listed_ids(session, [result]) == [
            e[3] for e in expected[(page - 1) * size:page * size]]


def test_the_order_key_follows_the_member_not_the_location_or_a_reinsert(session,
                                                                          observer) -> None:
    from geomap.publish.nearby_index import sync_member

    def rows() -> list[tuple]:
        return session.execute(text(
            "SELECT condition_id, floor_cell, order_key, role FROM nearby_members "
            "WHERE member_id = :id ORDER BY 1"), {"id": observer[1]}).all()

    first = rows()
    assert first and all(r[2] == session.execute(
        text("SELECT hashint8extended(CAST(:id AS bigint), :seed)"),
        {"id": observer[1], "seed": ORDER_KEY_SEED}).scalar_one() for r in first)
    sync_member(session, observer[1])
    assert rows() == first
    queries.set_location(session, observer[1], FRANKFURT[0] + 0.5, FRANKFURT[1], floor=FLOOR)
    moved = rows()
    assert [r[2] for r in moved] == [r[2] for r in first] and moved[0][1] != first[0][1]


def test_a_role_change_reaches_the_role_filter(session, observer) -> None:
    from geomap.publish import publish
    from tests.conftest import K

    _, carer = add_member(session, "caring-crane", lat=50.2, lng=8.7, role="carer")
    roles = {m.pseudonym: m.role for p in all_pages(session, observer[1], role="carer")
             for m in p.members}
    assert roles.get("caring-crane") == "carer"
    queries.update_profile(session, carer, role="relative", visibility="map", contactable=True,
                           condition_slugs=["all"])
    listed = {m.pseudonym for p in all_pages(session, observer[1], role="carer")
              for m in p.members}
    assert "caring-crane" not in listed
    # A bulk path (an import, an admin tool) reaches it at the next publish.
    session.execute(text("UPDATE members SET role = 'carer' WHERE id = :id"), {"id": carer})
    publish(session, k=K, floor=FLOOR)
    listed = {m.pseudonym for p in all_pages(session, observer[1], role="carer")
              for m in p.members}
    assert "caring-crane" in listed
    assert session.execute(text("SELECT role FROM nearby_members WHERE member_id = :id"),
                           {"id": carer}).scalar_one() == "carer"


def test_hidden_country_only_not_contactable_and_blocked_members_are_not_listed(
        session, observer) -> None:
    for name, kwargs in (("hidden-hare", {"visibility": "hidden"}),
                         ("country-crow", {"visibility": "country"}),
                         ("silent-seal", {"contactable": False}),
                         ("other-ill-owl", {"conditions": ("cll",)}),
                         ("blocked-bee", {}), ("blocker-bat", {}), ("listed-lynx", {})):
        add_member(session, name, lat=FRANKFURT[0] + 0.01, lng=FRANKFURT[1], **kwargs)
    social.block(session, observer[1], "blocked-bee")
    blocker = social.member_id_by_pseudonym(session, "blocker-bat")
    social.block(session, blocker, "frankfurt-finch")
    listed = {m.pseudonym for page in all_pages(session, observer[1]) for m in page.members}
    assert "listed-lynx" in listed
    assert not listed & {"hidden-hare", "country-crow", "silent-seal", "other-ill-owl",
                         "blocked-bee", "blocker-bat", "frankfurt-finch"}


def test_place_labels_come_from_the_cell_and_say_where_roughly(session, observer) -> None:
    add_member(session, "local-lynx", lat=50.12, lng=8.69)
    first = all_pages(session, observer[1])[0]
    local = [m for m in first.members if m.pseudonym == "local-lynx"][0]
    assert local.distance_band == "<25 km"
    cell = h3i.latlng_to_cell(50.12, 8.69, FLOOR)
    name = nearby_queries.label_for_cell(session, cell)
    assert name.kind == "area" and name.country_code == "DE"
    assert local.place == name.english == f"{name.place} area, Germany"
    assert "Frankfurt" in name.place


def test_place_labels_are_written_in_the_viewers_language(connection, tmp_path, session,
                                                          observer) -> None:
    add_member(session, "local-lynx", lat=50.12, lng=8.69)
    session.commit()
    name = nearby_queries.label_for_cell(session, h3i.latlng_to_cell(50.12, 8.69, FLOOR))
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, observer[0])
    expected = {"en": f"{name.place} area, Germany", "es": f"Zona de {name.place}, Alemania",
                "de": f"Gegend um {name.place}, Deutschland",
                "fr": f"Région de {name.place}, Allemagne"}
    for lang, label in expected.items():
        body = client.get(f"/api/v1/nearby?condition=all&lang={lang}").get_json()
        places = {m["pseudonym"]: m["place"] for m in body["members"]}
        assert places["local-lynx"] == label, lang
        assert label in client.get(f"/nearby?condition=all&lang={lang}").get_data(as_text=True)


def test_page_query_reads_the_nearby_index_in_order(fresh_db_url) -> None:
    # At a realistic size (200,000 members over 19,441 cells, a third with ALL) the
    # planner must answer from the nearby index's key (condition, floor cell, order key,
    # member): ranges of cells for a sparse band, ordered probes per cell for a dense one.
    from sqlalchemy import create_engine

    centre = h3i.latlng_to_cell(*FRANKFURT, FLOOR)
    world = sorted(h3i.grid_disk(centre, 80))
    engine = create_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO members (id, pseudonym, pseudonym_key, role, visibility, contactable) "
            "SELECT i, 'm' || i, 'm' || i, 'patient', "
            "CASE WHEN i % 10 = 0 THEN 'hidden' ELSE 'map' END, i % 5 <> 0 "
            "FROM generate_series(1, 200000) i"))
        conn.execute(text(
            "INSERT INTO member_conditions (condition_id, member_id) "
            "SELECT 1 + i % 3, i FROM generate_series(1, 200000) i"))
        conn.execute(text(
            "INSERT INTO member_locations (member_id, location, floor_cell) "
            "SELECT i, ST_MakePoint(0, 0)::geography, (CAST(:cells AS bigint[]))[1 + i % :n] "
            "FROM generate_series(1, 200000) i"), {"cells": world, "n": len(world)})
        refresh_nearby_members(Session(bind=conn))
        for table in ("nearby_members", "member_blocks"):
            conn.execute(text(f"ANALYZE {table}"))
        for band in range(4):
            runs = nearby_queries.band_runs(centre, 1000.0)[band]
            params = {"condition": 1, "hidden": [1], "lo": [r[0] for r in runs],
                      "hi": [r[1] for r in runs]}
            # Ranges: an index scan per run (a bitmap one will do: the rows are not
            # wanted in order).
            plan = "\n".join(conn.execute(text(
                "EXPLAIN SELECT * FROM geomap_nearby_runs(:condition, "
                "CAST(:hidden AS bigint[]), CAST(:lo AS bigint[]), CAST(:hi AS bigint[]), "
                "NULL, 200)"), params).scalars())
            assert re.search(r"(Index (Only )?Scan using|Bitmap Index Scan on) "
                             r"pk_nearby_members", plan), plan
            assert "Seq Scan" not in plan, plan
            # Per cell: ordered index scans under a LIMIT, never a whole cell sorted.
            plan = "\n".join(conn.execute(text(
                "EXPLAIN SELECT * FROM geomap_nearby_firsts(:condition, "
                "CAST(:hidden AS bigint[]), CAST(:lo AS bigint[]), CAST(:hi AS bigint[]), "
                "NULL, 0, 21)"), params).scalars())
            assert re.search(r"Index (Only )?Scan using pk_nearby_members", plan), plan
            assert "Seq Scan" not in plan and "Bitmap" not in plan, plan
            assert len(re.findall(r"Sort Key", plan)) == 1, plan  # the merge of the cells
    engine.dispose()


@settings(max_examples=15, deadline=None)
@given(lat=st.floats(-85, 85), lng=st.floats(-180, 180))
@example(lat=0.25, lng=-179.0)  # a centre 299.99999 km away, across 180°: one distance rule
def test_band_rings_match_the_bands_of_every_cell_centre(lat, lng) -> None:
    from geomap.privacy import band_rings

    centre = h3i.latlng_to_cell(lat, lng, FLOOR)
    rings = band_rings(centre, 300.0)
    expected: list[list[int]] = [[] for _ in DISTANCE_BANDS]
    for cell in h3i.grid_disk(centre, 40):
        km = cell_distance_km(centre, cell)
        if km < 300.0:
            expected[BAND_LABELS.index(distance_band(km))].append(cell)
    assert [sorted(ring) for ring in expected] == [list(ring) for ring in rings]


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(-89, 89), lng=st.floats(-180, 180), k=st.integers(0, 12),
       resolution=st.sampled_from([3, 5]))
def test_cell_runs_cover_exactly_the_cells(lat, lng, k, resolution) -> None:
    cells = tuple(h3i.grid_disk(h3i.latlng_to_cell(lat, lng, resolution), k))
    runs = nearby_queries.cell_runs(cells)
    covered = []
    for first, last in runs:
        cell = first
        while cell <= last:
            covered.append(cell)
            cell = nearby_queries.next_cell(cell)
        assert cell > last
    assert sorted(covered) == sorted(set(cells))
    # A pentagon's missing children and unused digits are the only integers in between.
    assert all(h3i.is_valid_cell(c) for c in covered)


def test_responses_hold_no_coordinates_or_email(connection, tmp_path, session, observer) -> None:
    app = unlimited_app(connection, tmp_path)
    client = app.test_client()
    sign_in(client, observer[0])
    body = client.get("/api/v1/nearby?condition=all").get_json()
    assert set(body) == {"condition", "page", "page_size", "has_next", "members"}
    for member in body["members"]:
        assert set(member) == {"pseudonym", "role", "place", "distance_band", "connection",
                               "introduction", "age_group", "treatment_phase"}
    raw = client.get("/api/v1/nearby?condition=all").get_data(as_text=True)
    assert "@" not in raw and not re.search(r"\d+\.\d{3,}", raw)


# --- indistinguishability within a floor cell -------------------------------------

def point_in_cell(cell: int, corner: int, a: float, b: float) -> tuple[float, float]:
    """Return a point inside ``cell``: barycentric in the triangle centre–corner–next corner."""
    centre = h3i.cell_to_latlng(cell)
    ring = h3i.cell_to_boundary(cell)
    p1, p2 = ring[corner % len(ring)], ring[(corner + 1) % len(ring)]
    if a + b > 1:
        a, b = 1 - a, 1 - b
    a, b = a * 0.98, b * 0.98  # stay off the edges
    lat = centre[0] + a * (p1[0] - centre[0]) + b * (p2[0] - centre[0])
    lng = centre[1] + a * (p1[1] - centre[1]) + b * (p2[1] - centre[1])
    return lat, lng


def strip_csrf(html: str) -> str:
    # CSRF tokens are signed with a timestamp: they change by the second, never with data.
    return re.sub(r'<input[^>]*name="csrf_token"[^>]*>', "<csrf>", html)


def observe(client, max_pages: int = 60) -> list[bytes]:
    """Everything the observer can load about others: nearby (API and pages) and more."""
    seen: list[bytes] = []
    for page in range(1, max_pages + 1):
        api = client.get(f"/api/v1/nearby?condition=all&page={page}")
        html = client.get(f"/nearby?condition=all&page={page}")
        assert api.status_code == 200 and html.status_code == 200
        seen += [api.data, strip_csrf(html.get_data(as_text=True)).encode()]
        if not api.get_json()["has_next"]:
            break
    for url in ("/connections", "/settings", "/api/v1/connections", "/api/v1/me/export",
                "/api/v1/conditions/all/cells?zoom=6", "/conditions/all/map"):
        response = client.get(url)
        assert response.status_code == 200, url
        seen.append(strip_csrf(response.get_data(as_text=True)).encode())
    return seen


@pytest.fixture
def victims(session, observer):
    """Demo members with ALL listed for the observer, with their floor cells."""
    listed = {m.pseudonym for page in all_pages(session, observer[1], max_km=300)
              for m in page.members}
    rows = session.execute(text(
        "SELECT m.id, m.pseudonym, ml.floor_cell FROM members m JOIN member_locations ml "
        "ON ml.member_id = m.id WHERE m.pseudonym = ANY(:names) ORDER BY m.id"),
        {"names": sorted(listed)}).all()
    return [(row[0], row[2]) for row in rows]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_moving_a_member_inside_its_cell_changes_no_byte_the_observer_sees(
        connection, tmp_path, session, observer, victims, monkeypatch, data) -> None:
    # The settings page says when the next publish is due: a clock, not data.
    monkeypatch.setattr(queries, "utc_now", lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    app = unlimited_app(connection, tmp_path, GEOMAP_NEARBY_MAX_KM="300")
    client = app.test_client()
    sign_in(client, observer[0])
    before = observe(client)
    victim, cell = data.draw(st.sampled_from(victims), label="victim")
    lat, lng = point_in_cell(cell, data.draw(st.integers(0, 5), label="corner"),
                             data.draw(st.floats(0, 1), label="a"),
                             data.draw(st.floats(0, 1), label="b"))
    assert h3i.latlng_to_cell(lat, lng, FLOOR) == cell
    queries.set_location(session, victim, lat, lng, floor=FLOOR)
    session.commit()
    assert observe(client) == before


# --- the attacker ----------------------------------------------------------------

def attacker_positions(target: tuple[float, float]) -> list[tuple[float, float]]:
    """Points around a target just inside and outside every band boundary, on 4 bearings."""
    out = [target]
    for km in (3, 12, 24, 26, 49, 51, 99, 101, 249, 251):
        for bearing in (0, 90, 180, 270):
            out.append(offset(target, km, bearing))
    return out


def offset(point: tuple[float, float], km: float, bearing_deg: float) -> tuple[float, float]:
    import math

    lat, lng = map(math.radians, point)
    d, b = km / 6371.0088, math.radians(bearing_deg)
    lat2 = math.asin(math.sin(lat) * math.cos(d) + math.cos(lat) * math.sin(d) * math.cos(b))
    lng2 = lng + math.atan2(math.sin(b) * math.sin(d) * math.cos(lat),
                            math.cos(d) - math.sin(lat) * math.sin(lat2))
    return math.degrees(lat2), (math.degrees(lng2) + 540) % 360 - 180


def attack(client, positions) -> list[bytes]:
    """Move the attacker to every position and read every nearby page at each."""
    vector = []
    for lat, lng in positions:
        assert client.put("/api/v1/me/location", json={"lat": lat, "lng": lng}).status_code == 200
        page = 1
        while True:
            response = client.get(f"/api/v1/nearby?condition=all&page={page}")
            vector.append(response.data)
            if not response.get_json()["has_next"]:
                break
            page += 1
    return vector


def test_an_attacker_cannot_place_a_victim_inside_its_floor_cell(connection, tmp_path,
                                                                  session) -> None:
    # A victim in a sparse place (Hohe Tauern), so the attacker sees them on few pages,
    # and the order around them is not drowned out by a city.
    victim_cell = h3i.latlng_to_cell(47.08, 12.69, FLOOR)
    corner_a = point_in_cell(victim_cell, 0, 0.97, 0.0)
    corner_b = point_in_cell(victim_cell, 3, 0.97, 0.0)
    assert cell_distance_km(h3i.latlng_to_cell(*corner_a, FLOOR),
                            h3i.latlng_to_cell(*corner_b, FLOOR)) == 0
    _, victim = add_member(session, "alpine-ibex", lat=corner_a[0], lng=corner_a[1])
    attacker_account, _ = add_member(session, "prying-magpie", lat=0.0, lng=0.0)
    session.commit()
    app = unlimited_app(connection, tmp_path, GEOMAP_NEARBY_MAX_KM="300")
    client = app.test_client()
    sign_in(client, attacker_account)
    # The attacker aims at the two places the victim might be, and at the cell centre.
    positions = (attacker_positions(corner_a) + attacker_positions(corner_b)
                 + attacker_positions(h3i.cell_to_latlng(victim_cell)))
    seen_at_a = attack(client, positions)
    assert any(b"alpine-ibex" in body for body in seen_at_a)
    queries.set_location(session, victim, corner_b[0], corner_b[1], floor=FLOOR)
    session.commit()
    seen_at_b = attack(client, positions)
    assert seen_at_b == seen_at_a
    # The same attack tells neighbouring cells apart: it is not blind, only coarse.
    elsewhere = point_in_cell(h3i.grid_ring(victim_cell, 2)[0], 0, 0.1, 0.1)
    queries.set_location(session, victim, elsewhere[0], elsewhere[1], floor=FLOOR)
    session.commit()
    assert attack(client, positions) != seen_at_a


def test_changes_made_around_geomap_members_reach_nearby_at_the_next_publish(
        session, observer) -> None:
    from geomap.publish import publish
    from tests.conftest import K

    add_member(session, "imported-later", lat=50.2, lng=8.7)
    listed = {m.pseudonym for p in all_pages(session, observer[1]) for m in p.members}
    assert "imported-later" in listed
    # A bulk path (an import, an admin tool) writes the member tables directly...
    session.execute(text("UPDATE members SET visibility = 'hidden' "
                         "WHERE pseudonym = 'imported-later'"))
    # ...and the publish brings the nearby index in step, like the map.
    publish(session, k=K, floor=FLOOR)
    listed = {m.pseudonym for p in all_pages(session, observer[1]) for m in p.members}
    assert "imported-later" not in listed
    assert [m.pseudonym for p in all_pages(session, observer[1]) for m in p.members] == [
        name for name in (
            dict(session.execute(text("SELECT id, pseudonym FROM members")).all())[e[3]]
            for e in expected_listing(session, observer[1]))
    ]


# --- what a search costs: HMACs and the limiter ------------------------------------

def test_a_search_computes_one_hmac_per_searcher_and_none_per_candidate(
        session, observer, monkeypatch) -> None:
    import hmac

    from geomap import privacy

    calls = []
    real_digest, real_new = hmac.digest, hmac.new
    monkeypatch.setattr(hmac, "digest", lambda *a, **k: calls.append("digest") or
                        real_digest(*a, **k))
    monkeypatch.setattr(hmac, "new", lambda *a, **k: calls.append("new") or real_new(*a, **k))
    privacy.observer_key.cache_clear()
    pages = all_pages(session, observer[1])
    candidates = sum(len(page.members) for page in pages)
    assert len(pages) >= 2 and candidates > nearby_queries.PAGE_SIZE
    assert calls == ["digest"]  # the searcher's key, once, whatever the candidates


def test_a_search_over_its_budget_is_refused_before_any_search_query(connection, tmp_path,
                                                             observer) -> None:
    from sqlalchemy import event

    app = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                GEOMAP_NEARBY_RATE_LIMIT="1 per minute"))
    client = app.test_client()
    sign_in(client, observer[0])
    assert client.get("/api/v1/nearby?condition=all").status_code == 200
    statements = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        refused = client.get("/api/v1/nearby?condition=all")
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert refused.status_code == 429
    # The limiter keys on the session cookie and runs before the e-mail verification
    # check (which loads the account): nothing is read. The test harness's session
    # opens and closes its savepoint around the request.
    read = [s for s in statements if "SAVEPOINT" not in s]
    assert read == []


def test_band_runs_keep_every_run_of_every_band_flat() -> None:
    # Cached per searcher's cell as flat 64-bit integers (16 bytes a run): the same
    # runs, band by band, as the rings they come from.
    from geomap.privacy import band_rings

    cell = h3i.latlng_to_cell(*FRANKFURT, FLOOR)
    runs = nearby_queries.band_runs(cell, 1000.0)
    rings = band_rings.__wrapped__(cell, 1000.0)
    assert [list(band) for band in runs] == [list(nearby_queries.cell_runs(ring))
                                             for ring in rings]
    assert [len(band) for band in runs] == [len(nearby_queries.cell_runs(ring))
                                            for ring in rings]
    assert runs[2][0] == nearby_queries.cell_runs(rings[2])[0]
    assert runs[2][-1] == nearby_queries.cell_runs(rings[2])[-1]
