"""Admin region counts: who may see them, and that the exports match the database."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.auth.accounts import create_admin, create_member_account
from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.models import ROLES
from geomap.publish.admin_counts import month_starts, refresh_admin_counts
from tests.conftest import FLOOR, app_config, sessions_on

ADMIN_URLS = ["/admin/regions", "/admin/regions.csv", "/admin/regions.json"]


@pytest.fixture
def accounts_app(community_engine, tmp_path) -> Iterator[tuple]:
    """The app over the demo community with an admin and a member (rolled back after)."""
    connection = community_engine.connect()
    transaction = connection.begin()
    sessions = sessions_on(connection)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        admin = create_admin(session, email="boss@example.org", password="a long password")
        member = create_member_account(session, pseudonym="calm-heron",
                                       email="heron@example.org", password="a long password")
        ids = (admin.id, member.id)
        session.commit()  # releases the savepoint; the outer transaction is rolled back
    app = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions))
    try:
        yield app, ids, connection
    finally:
        transaction.rollback()
        connection.close()


def _signed_in(app, account_id: int):  # noqa: ANN001, ANN202
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(account_id)
        session["_fresh"] = True
    return client


@pytest.fixture
def admin_client(accounts_app):  # noqa: ANN001, ANN201
    app, (admin_id, _), _ = accounts_app
    return _signed_in(app, admin_id)


@pytest.fixture
def member_client(accounts_app):  # noqa: ANN001, ANN201
    app, (_, member_id), _ = accounts_app
    return _signed_in(app, member_id)


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_anonymous_visitors_are_sent_to_sign_in(accounts_app, url: str) -> None:
    app, _, _ = accounts_app
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_members_are_refused(member_client, url: str) -> None:
    assert member_client.get(url).status_code == 403


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admins_get_the_counts(admin_client, url: str) -> None:
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_every_admin_route_is_declared_with_admin_required(accounts_app) -> None:
    app, _, _ = accounts_app
    admin_rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]
    assert {rule.rule for rule in admin_rules} == {*ADMIN_URLS, "/admin/regions/refresh"}
    for rule in admin_rules:
        view = app.view_functions[rule.endpoint]
        assert view.__code__.co_name == "wrapped"  # admin_required's wrapper


def test_the_page_shows_table_chart_choropleth_and_nav(admin_client) -> None:
    html = admin_client.get("/admin/regions?condition=all").get_data(as_text=True)
    # Why these exceed the public numbers (a newcomer compared 6,335 with 5,309).
    assert "whatever they chose under Visibility" in " ".join(html.split())
    assert 'id="region-table"' in html and "admin-regions.js" in html
    assert html.count('class="month"') == 24
    assert 'id="map_choropleth"' in html or "map_choropleth" in html
    assert "choropleth.js" in html and "https://" not in html.split("<footer")[0]
    assert 'href="/admin/regions"' in html  # the admin nav link


def _db_counts(connection, condition_slug: str | None) -> Counter:  # noqa: ANN001
    """Members per (country, region, role), each placed by their floor cell's place."""
    where = ""
    if condition_slug:
        where = ("WHERE ml.member_id IN (SELECT mc.member_id FROM member_conditions mc "
                 "JOIN conditions c ON c.id = mc.condition_id WHERE c.slug = :slug)")
    rows = connection.execute(text(
        "SELECT ml.floor_cell, m.role, count(*) "
        f"FROM member_locations ml JOIN members m ON m.id = ml.member_id {where} "
        "GROUP BY 1, 2"), {"slug": condition_slug}).all()
    places = KeyDeriver(Session(bind=connection), FLOOR).cell_places(
        np.array([row[0] for row in rows], dtype=np.int64))
    counts: Counter = Counter()
    for cell, role, count in rows:
        country, region = places[cell]
        counts[(country or "", region or "", role)] += count
    return counts


@pytest.mark.parametrize("condition", ["all", "multiple-sclerosis", "every"])
def test_csv_totals_equal_the_database(admin_client, accounts_app, condition: str) -> None:
    _, _, connection = accounts_app
    response = admin_client.get(f"/admin/regions.csv?condition={condition}")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and set(rows[0]) == {"condition", "country_code", "country", "region_code",
                                     "region", "members", *ROLES}
    exported: Counter = Counter()
    for row in rows:
        assert int(row["members"]) == sum(int(row[role]) for role in ROLES)
        for role in ROLES:
            if int(row[role]):
                exported[(row["country_code"], row["region_code"], role)] += int(row[role])
    expected = _db_counts(connection, None if condition == "every" else condition)
    assert exported == expected
    assert sum(int(row["members"]) for row in rows) == sum(expected.values())


def test_json_totals_add_up(admin_client, accounts_app) -> None:
    _, _, connection = accounts_app
    report = admin_client.get("/admin/regions.json?condition=all").get_json()
    assert report["total"] == sum(c["total"] for c in report["countries"])
    assert report["total"] == sum(report["by_role"].values())
    for country in report["countries"]:
        assert country["total"] == sum(r["total"] for r in country["regions"])
        assert country["total"] == sum(country["by_role"].values())
        assert "lat" not in country and "location" not in country
    named = next(c for c in report["countries"] if c["code"] == "DE")
    assert named["name"] == "Germany"
    assert all(r["name"] for r in named["regions"])
    months = report["joined_by_month"]
    assert len(months) == 24
    since = month_starts(__import__("datetime").date.today())[0]
    joined = connection.execute(text(
        "SELECT count(*) FROM member_locations ml JOIN members m ON m.id = ml.member_id "
        "JOIN member_conditions mc ON mc.member_id = m.id JOIN conditions c "
        "ON c.id = mc.condition_id AND c.slug = 'all' "
        "WHERE m.joined_at >= :since"), {"since": since}).scalar_one()
    assert sum(count for _, count in months) == joined


def test_country_filter_and_bad_parameters(admin_client) -> None:
    report = admin_client.get("/admin/regions.json?condition=every&country=de").get_json()
    assert [c["code"] for c in report["countries"]] == ["DE"]
    assert admin_client.get("/admin/regions?country=Germany").status_code == 400
    assert admin_client.get("/admin/regions?condition=no-such").status_code == 404


def test_count_now_recounts_and_needs_an_admin(admin_client, member_client, accounts_app) -> None:
    _, _, connection = accounts_app
    html = admin_client.get("/admin/regions?condition=cll").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    before = connection.execute(text("SELECT refreshed_at FROM admin_counts_refresh")).scalar()
    response = admin_client.post("/admin/regions/refresh",
                                 data={"csrf_token": token, "condition": "cll"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/regions?condition=cll"
    after = connection.execute(text("SELECT refreshed_at FROM admin_counts_refresh")).scalar()
    assert after > before
    assert member_client.post("/admin/regions/refresh",
                              data={"csrf_token": token}).status_code in (400, 403)
    assert admin_client.post("/admin/regions/refresh").status_code == 400  # no CSRF token


ADMIN_VIEWS = ["/admin/regions?condition=every", "/admin/regions?condition=all",
               "/admin/regions.csv?condition=every", "/admin/regions.json?condition=all",
               "/admin/regions.json?condition=every&country=CH"]
COUNTED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def _admin_bytes(admin_client, connection) -> list[bytes]:  # noqa: ANN001
    """Recount the snapshot (at a fixed time) and return every admin view's bytes."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        refresh_admin_counts(session, now=COUNTED_AT)
        session.commit()
    seen = []
    for url in ADMIN_VIEWS:
        response = admin_client.get(url)
        assert response.status_code == 200
        # The form's CSRF token is the signed-in session's, timed: not a count.
        seen.append(re.sub(rb'name="csrf_token" value="[^"]*"', b"", response.get_data()))
    return seen


def _move_member(connection, deriver: KeyDeriver, member_id: int, lat: float,  # noqa: ANN001
                 lng: float) -> None:
    """Move a member's exact point, with the keys the write path derives for it."""
    keys = deriver.derive(np.array([lat]), np.array([lng]))
    connection.execute(
        text("UPDATE member_locations SET location = "
             "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)::geography, floor_cell = :cell, "
             "country_code = :country, region_code = :region WHERE member_id = :id"),
        {"lat": lat, "lng": lng, "cell": int(keys.floor_cells[0]),
         "country": keys.country_codes[0], "region": keys.region_codes[0], "id": member_id},
    )


def _points_in(cell: int, steps: int = 9) -> list[tuple[float, float]]:
    """Return a grid of points inside ``cell``."""
    boundary = h3i.cell_to_boundary(cell)
    lats, lngs = [p[0] for p in boundary], [p[1] for p in boundary]
    points = []
    for i in range(steps):
        for j in range(steps):
            lat = min(lats) + (max(lats) - min(lats)) * (i + 0.5) / steps
            lng = min(lngs) + (max(lngs) - min(lngs)) * (j + 0.5) / steps
            if h3i.latlng_to_cell(lat, lng, FLOOR) == cell:
                points.append((lat, lng))
    return points


def _border_cell(deriver: KeyDeriver) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return two points of one floor cell near Basel that lie in different countries."""
    for cell in sorted(h3i.grid_disk(h3i.latlng_to_cell(47.56, 7.59, FLOOR), 3)):
        points = _points_in(cell)
        # The places of the points themselves (stored keys are the floor cell's).
        countries, _regions = deriver.point_places(np.array([p[0] for p in points]),
                                                   np.array([p[1] for p in points]))
        countries = list(countries)
        for i, country in enumerate(countries):
            for j in range(i + 1, len(countries)):
                if country and countries[j] and countries[j] != country:
                    return points[i], points[j]
    raise AssertionError("no floor cell near Basel straddles a border")


def test_moving_a_member_across_a_border_inside_its_floor_cell_changes_no_admin_byte(
    admin_client, accounts_app, community_deriver: KeyDeriver,
) -> None:
    _, _, connection = accounts_app
    here, there = _border_cell(community_deriver)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        member_id = int(load_members(session, MemberBatch(
            pseudonyms=["border-crosser"], roles=["patient"], visibilities=["map"],
            contactable=[True], joined_at=[datetime(2026, 5, 1, tzinfo=UTC)],
            lats=np.array([here[0]]), lngs=np.array([here[1]]), conditions=[[1]],
        ), community_deriver)[0])
        session.commit()
    before = _admin_bytes(admin_client, connection)
    _move_member(connection, community_deriver, member_id, *there)
    assert _admin_bytes(admin_client, connection) == before


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member_index=st.integers(0, 2999), spot=st.integers(0, 80))
def test_moving_any_member_inside_its_floor_cell_changes_no_admin_byte(
    admin_client, accounts_app, community_deriver: KeyDeriver, member_index: int, spot: int,
) -> None:
    _, _, connection = accounts_app
    member_id, cell = connection.execute(
        text("SELECT member_id, floor_cell FROM member_locations ORDER BY member_id "
             "OFFSET :i LIMIT 1"), {"i": member_index},
    ).one()
    points = _points_in(cell)
    savepoint = connection.begin_nested()
    before = _admin_bytes(admin_client, connection)
    _move_member(connection, community_deriver, member_id, *points[spot % len(points)])
    assert _admin_bytes(admin_client, connection) == before
    savepoint.rollback()
