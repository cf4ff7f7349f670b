"""The members API and pages over a real PostGIS: join, search places, errors, limits."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geomap import create_app
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, csrf_token, sign_in


def make_app(connection, tmp_path, **overrides):
    """The app over the rolled-back transaction."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 **overrides))


@pytest.fixture
def member_app(connection, tmp_path):
    """The app with CSRF off (tests of behaviour, not of CSRF)."""
    return make_app(connection, tmp_path, WTF_CSRF_ENABLED=False)


@pytest.fixture
def hamburg_member(session):
    """A member in Hamburg with ALL."""
    return add_member(session, "hamburg-heron", lat=53.55, lng=10.0)


def test_places_type_ahead_returns_names_with_country_and_region(member_app, session,
                                                                  hamburg_member) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.get("/api/v1/places?q=hambu")
    assert response.status_code == 200
    places = response.get_json()["places"]
    assert places[0]["name"] == "Hamburg" and places[0]["country"] == "Germany"
    assert places[0]["region_code"].startswith("DE.")
    assert set(places[0]) == {"id", "name", "country_code", "country", "region_code", "region",
                              "label", "population", "lat", "lng"}
    # Its centre (public GeoNames data, for the pin map), to 0.01 degrees.
    assert (places[0]["lat"], places[0]["lng"]) == (53.55, 9.99)
    assert client.get("/api/v1/places?q=l%C3%BCbeck").get_json()["places"][0]["name"] == "Lübeck"
    # A city is offered once, without its districts (GeoNames lists "Lyon 01" to
    # "Lyon 09" as places); a district is still found by its own name.
    lyon = [p["name"] for p in client.get("/api/v1/places?q=lyon").get_json()["places"]]
    assert lyon[0] == "Lyon" and not [name for name in lyon if name.startswith("Lyon 0")]
    assert [p["name"] for p in client.get("/api/v1/places?q=lyon%203").get_json()["places"]] \
        == ["Lyon 03"]


@pytest.mark.parametrize("body,message", [
    ({"lat": 91, "lng": 0}, "lat must be"),
    ({"lat": 10, "lng": -181}, "lng must be"),
    ({"lat": "ten", "lng": 0}, "lat must be a number"),
    ({"lat": "nan", "lng": 0}, "lat must be"),
    ({"lat": True, "lng": 0}, "lat must be a number"),
    ({"lat": 10}, "lng must be a number"),
    ({"place_id": 999999999}, "Unknown city"),
    ({"place_id": "x"}, "place_id"),
    ({}, "Send lat and lng"),
])
def test_bad_locations_get_a_json_400(member_app, session, hamburg_member, body,
                                      message) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.put("/api/v1/me/location", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


@pytest.mark.parametrize("url,message", [
    ("/api/v1/nearby?condition=nope", "no condition"),
    ("/api/v1/nearby", "condition"),
    ("/api/v1/nearby?condition=all&page=0", "page"),
    ("/api/v1/nearby?condition=all&page=abc", "page"),
    ("/api/v1/places?q=" + "x" * 101, "at most 100"),
    ("/api/v1/places?q=a", "two letters"),
])
def test_bad_queries_get_a_json_400(member_app, session, hamburg_member, url, message) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.get(url)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_text_too_long_is_a_json_400(member_app, session, hamburg_member) -> None:
    add_member(session, "quiet-lark", lat=53.6, lng=10.1)
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.post("/api/v1/connections", json={"to": "quiet-lark", "message": "x" * 501})
    assert response.status_code == 400
    assert "too long" in response.get_json()["error"]["message"]


def test_anonymous_api_callers_get_401(member_app) -> None:
    client = member_app.test_client()
    for url in ("/api/v1/nearby?condition=all", "/api/v1/places?q=ham", "/api/v1/me/export",
                "/api/v1/me/location"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.get_json()["error"]["status"] == 401


def test_missing_csrf_token_is_a_json_400(connection, tmp_path, session, hamburg_member) -> None:
    session.commit()
    app = make_app(connection, tmp_path)
    client = app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.put("/api/v1/me/location", json={"lat": 50, "lng": 8})
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]["message"]
    token = csrf_token(client)
    ok = client.put("/api/v1/me/location", json={"lat": 50, "lng": 8},
                    headers={"X-CSRFToken": token})
    assert ok.status_code == 200


def test_nearby_without_location_is_409(member_app, session) -> None:
    account_id, _ = add_member(session, "no-place-yet")
    session.commit()
    client = member_app.test_client()
    sign_in(client, account_id)
    response = client.get("/api/v1/nearby?condition=all")
    assert response.status_code == 409


def test_rate_limits_give_429_as_json(connection, tmp_path, session, hamburg_member) -> None:
    session.commit()
    app = make_app(connection, tmp_path, WTF_CSRF_ENABLED=False,
                   GEOMAP_NEARBY_RATE_LIMIT="3 per minute",
                   GEOMAP_LOCATION_RATE_LIMIT="2 per hour")
    client = app.test_client()
    sign_in(client, hamburg_member[0])
    statuses = [client.get("/api/v1/nearby?condition=all").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    # The page and the API share one budget.
    assert client.get("/nearby?condition=all").status_code == 429
    limited = client.get("/api/v1/nearby?condition=all")
    assert limited.status_code == 429 and "Too many" in limited.get_json()["error"]["message"]
    moves = [client.put("/api/v1/me/location", json={"lat": 50 + i, "lng": 8}).status_code
             for i in range(3)]
    assert moves == [200, 200, 429]
    # Reading my location is no change and is not limited.
    assert client.get("/api/v1/me/location").status_code == 200


def test_join_from_the_settings_page(member_app, session) -> None:
    account_id, member_id = add_member(session, "new-finch", conditions=())
    session.commit()
    client = member_app.test_client()
    sign_in(client, account_id)
    page = client.get("/settings").get_data(as_text=True)
    assert "next publish" in page and "You have not set a location yet" in page
    # Several places are called Hamburg: the member must choose (never picked silently).
    response = client.post("/settings/location", data={"city": "Hamburg"},
                           follow_redirects=True)
    assert "places have that name" in response.get_data(as_text=True)
    # Typed and sent without picking: an alternate name alone is no answer ("Lyo" is
    # one of Lyons, Kansas, while the list offers Lyon first; a newcomer got Kansas).
    assert session.execute(text("SELECT count(*) FROM place_names WHERE folded = 'lyo'")
                           ).scalar() == 1
    response = client.post("/settings/location", data={"city": "Lyo"},
                           follow_redirects=True)
    assert "Unknown city: pick one from the list." in response.get_data(as_text=True)
    assert session.execute(text("SELECT count(*) FROM member_locations WHERE member_id = :id"),
                           {"id": member_id}).scalar() == 0
    hamburg = client.get("/api/v1/places?q=Hamburg").get_json()["places"][0]
    assert hamburg["country_code"] == "DE" and hamburg["region"] == "Hamburg"
    response = client.post("/settings/location", data={"place_id": hamburg["id"]})
    assert response.status_code == 302
    response = client.post("/settings", data={"conditions": ["all", "cll"], "role": "carer",
                                              "visibility": "map", "contactable": "y"})
    assert response.status_code == 302
    row = session.execute(text(
        "SELECT m.role, ml.country_code, ml.region_code, ml.floor_cell, "
        "array(SELECT c.slug FROM member_conditions mc JOIN conditions c ON c.id = "
        "mc.condition_id WHERE mc.member_id = m.id ORDER BY 1) FROM members m "
        "JOIN member_locations ml ON ml.member_id = m.id WHERE m.id = :id"),
        {"id": member_id}).one()
    assert row[0] == "carer" and row[1] == "DE" and row[2].startswith("DE.")
    assert row[4] == ["all", "cll"]
    page = client.get("/settings").get_data(as_text=True)
    assert "only you see this" in page and "53.5" in page


def test_saving_the_location_first_keeps_the_map_being_joined(member_app, session) -> None:
    # "Join" from a map lands on the settings page with that condition ticked; the
    # location form is the first on the page, and saving it used to come back without
    # the tick: the member was on no map and nothing said so (a newcomer's report).
    account_id, member_id = add_member(session, "joining-jay", conditions=())
    session.commit()
    client = member_app.test_client()
    sign_in(client, account_id)
    page = client.get("/settings?condition=all").get_data(as_text=True)
    assert 'name="joining" value="all"' in page
    hamburg = client.get("/api/v1/places?q=Hamburg").get_json()["places"][0]
    response = client.post("/settings/location",
                           data={"place_id": hamburg["id"], "joining": "all"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings?condition=all")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    # Still to be joined: the banner names the button that does it, and the button says so.
    assert "press “Save and join the map” there to join it" in page
    assert 'name="joining" value="all"' in page
    assert re.search(r'id="save-profile">Save and join the map</button>', page)
    assert re.search(r'<input[^>]*checked[^>]*value="all"|<input[^>]*value="all"[^>]*checked',
                     page)
    # A member not joining anything comes back to the plain page, as before.
    response = client.post("/settings/location", data={"place_id": hamburg["id"]})
    assert response.headers["Location"].endswith("/settings")
    assert session.execute(text("SELECT count(*) FROM member_locations WHERE member_id = :id"),
                           {"id": member_id}).scalar_one() == 1
    # The member's own coordinates keep their order (lat, lng) on a right-to-left page.
    arabic = client.get("/settings?lang=ar").get_data(as_text=True)
    assert re.search(r'<bdi dir="ltr">53\.\d{4}, \d+\.\d{4}</bdi>', arabic)


def test_export_holds_my_data_and_delete_removes_it(member_app, session, hamburg_member) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    response = client.get("/my-data/export.json")
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(response.data)
    assert data["account"]["email"] == "hamburg-heron@example.org"
    assert data["member"]["pseudonym"] == "hamburg-heron"
    assert data["location"]["lat"] == pytest.approx(53.55)
    response = client.post("/my-data/delete", data={"confirm": "DELETE"})
    assert response.status_code == 302
    member_id = hamburg_member[1]
    for table, column in (("members", "id"), ("member_locations", "member_id"),
                          ("member_conditions", "member_id"), ("accounts", "member_id")):
        count = session.execute(
            text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": member_id}
        ).scalar_one()
        assert count == 0, table
    assert client.get("/api/v1/me/export").status_code == 401


def test_huge_ids_and_nul_characters_are_4xx_not_500(member_app, session,
                                                      hamburg_member) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    big = "99999999999999999999999"
    checks = [
        client.get(f"/api/v1/connections/{big}/messages"),
        client.get("/api/v1/connections/9223372036854775807/messages"),
        client.put("/api/v1/me/location", json={"place_id": int(big)}),
        client.put("/api/v1/me/location", json={"place_id": 1.5}),
        client.put("/api/v1/me/location", json={"lat": 1e400, "lng": 0}),
        client.put("/api/v1/me/location", data="not json", content_type="application/json"),
        client.put("/api/v1/me/location", json=[1, 2]),
        client.get("/api/v1/places?q=ham%00burg"),
        client.get("/api/v1/nearby?condition=al%00l"),
        client.get(f"/api/v1/nearby?condition=all&page={big}"),
        client.post("/api/v1/connections", json={"to": "x\x00y", "message": "hi"}),
        client.post("/api/v1/connections", json={"to": "x" * 5000}),
        client.post("/api/v1/connections", json={"to": 5}),
        client.post(f"/messages/{big}/report"),
        client.get("/connect/" + "x" * 300),
    ]
    for response in checks:
        assert 400 <= response.status_code < 500, (response.request.path, response.status_code)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(max_size=300), st.integers(), st.floats(), st.none(),
                       st.booleans(), st.lists(st.integers(), max_size=3)))
def test_the_api_never_answers_500_to_odd_input(member_app, session, hamburg_member,
                                               value) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    as_text = value if isinstance(value, str) else json.dumps(value)
    responses = [
        client.put("/api/v1/me/location", json={"lat": value, "lng": 10}),
        client.put("/api/v1/me/location", json={"place_id": value}),
        client.post("/api/v1/connections", json={"to": value, "message": value}),
        client.post("/api/v1/connections/1/messages", json={"body": value}),
        client.get("/api/v1/places", query_string={"q": as_text}),
        client.get("/api/v1/nearby", query_string={"condition": as_text, "page": as_text}),
    ]
    for response in responses:
        assert response.status_code < 500, (response.request.path, response.get_data())
        assert response.is_json


def test_the_location_api_never_returns_the_exact_point(member_app, session,
                                                        hamburg_member) -> None:
    session.commit()
    client = member_app.test_client()
    sign_in(client, hamburg_member[0])
    for response in (client.get("/api/v1/me/location"),
                     client.put("/api/v1/me/location", json={"lat": 53.5511, "lng": 9.9937})):
        body = response.get_json()
        assert body["location_set"] is True and body["country_code"] == "DE"
        assert "53.5" not in response.get_data(as_text=True)


def test_a_district_is_a_place_near_one_at_least_twice_as_populous() -> None:
    """Rows: (id, name, country, admin1, population, lat, lng)."""
    from geomap.geo.places import without_districts

    city = (1, "Lyon", "FR", "84", 522_000, 45.75, 4.85)
    district = (2, "Lyon 03", "FR", "84", 102_000, 45.76, 4.86)  # ~1.4 km away
    suburb_abroad = (3, "Lyon", "US", "MS", 400_000, 45.75, 4.85)  # another country
    far_town = (4, "Lyons", "FR", "84", 1_000, 46.5, 4.85)  # ~83 km away
    peer = (5, "Villeurbanne", "FR", "84", 300_000, 45.77, 4.88)  # not half of Lyon
    rows = [city, district, suburb_abroad, far_town, peer]
    assert [row[0] for row in without_districts(rows)] == [1, 3, 4, 5]
