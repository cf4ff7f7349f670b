"""Admin region counts: who may see them, and that the exports match the database."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.auth.accounts import create_admin, create_member_account
from geomap.geo.derive import KeyDeriver
from geomap.models import ROLES
from geomap.regions.counts import month_starts
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
