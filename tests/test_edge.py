"""Bad input never gets a 500: each kind found by fuzzing, on the API and on pages.

The API answers ``{"error": {"code", "message"}}`` with a 4xx; pages answer a readable
4xx page. Log lines escape control characters.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geomap import create_app
from geomap.web.edge import JSONBodyError, loads_checked
from geomap.web.errors import EscapeControlCharacters, escape_for_log
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in

NUL_SLUG = "a%00b"


def _api_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def _page_error(response, status: int) -> str:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Traceback" not in html and "<h1>" in html
    return html


@pytest.fixture
def member_app(connection, tmp_path):
    """The app over a rolled-back transaction, CSRF off, limits off."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False))


@pytest.fixture
def signed_in(member_app, session):
    """A test client signed in as a member in Hamburg."""
    account_id, _ = add_member(session, "edge-heron", lat=53.55, lng=10.0)
    session.commit()
    client = member_app.test_client()
    sign_in(client, account_id)
    return client


@pytest.mark.parametrize("url", [
    f"/api/v1/conditions/{NUL_SLUG}/cells?zoom=3",
    f"/api/v1/conditions/{NUL_SLUG}/regions",
])
def test_nul_in_a_slug_on_the_api_is_a_json_404(client, url) -> None:
    assert _api_error(client.get(url), 404)["code"] == "not_found"


@pytest.mark.parametrize("url", [
    f"/conditions/{NUL_SLUG}/map",
    f"/embed/conditions/{NUL_SLUG}/map",
    f"/connect/{NUL_SLUG}",
])
def test_nul_in_a_slug_on_pages_is_a_readable_404(client, url) -> None:
    _page_error(client.get(url), 404)


@pytest.mark.parametrize("url", [
    f"/embed?condition={NUL_SLUG}",
    f"/admin/regions?condition={NUL_SLUG}",
    f"/admin/regions.csv?condition={NUL_SLUG}",
    f"/admin/regions.json?condition={NUL_SLUG}",
    "/nearby?condition=a%0Ab",
])
def test_nul_in_a_query_string_on_pages_is_a_readable_400(client, url) -> None:
    _page_error(client.get(url), 400)


@pytest.mark.parametrize("url", [
    f"/oembed?url=http://localhost/conditions/{NUL_SLUG}/map",
    f"/oembed?url=http://localhost/embed/conditions/{NUL_SLUG}/map",
    "/oembed?url=http://localhost/conditions/a%2500b/map",
    "/oembed?url=http://[/x",
    "/oembed?url=http://localhost:99999999/conditions/all/map",
    "/oembed?url=%ED%A0%80",
])
def test_bad_oembed_urls_are_json_4xx(client, url) -> None:
    response = client.get(url)
    assert 400 <= response.status_code < 500
    _api_error(response, response.status_code)


@pytest.mark.parametrize("page", ["²", "٣", "1" * 5000, "-1", "1e3", " 1"])
def test_odd_page_numbers_are_400(signed_in, page) -> None:
    _api_error(signed_in.get("/api/v1/nearby", query_string={"condition": "all", "page": page}),
               400)
    _page_error(signed_in.get("/nearby", query_string={"condition": "all", "page": page}), 400)


@pytest.mark.parametrize("zoom", ["²", "1" * 5000, "٣٣"])
def test_odd_zooms_are_400(client, zoom) -> None:
    _api_error(client.get("/api/v1/conditions/all/cells", query_string={"zoom": zoom}), 400)


@pytest.mark.parametrize("body", [
    '{"lat": ' + "9" * 400 + ', "lng": 0}',
    '{"lat": 1e400, "lng": 0}',
    '{"lat": NaN, "lng": 0}',
    '{"lat": -Infinity, "lng": 0}',
    "[" * 5000 + "]" * 5000,
    '{"a":' * 40 + "1" + "}" * 40,
    '{"place_id": "\\ud800"}',
    '{"\\udfff": 1}',
    '{"place_id": "a\\u0000b"}',
    '{"lat": 1, "lng": ',
    "\xff\xfe",
])
def test_bad_json_bodies_are_json_400(signed_in, body) -> None:
    response = signed_in.put("/api/v1/me/location", data=body.encode("utf-8", "surrogatepass"),
                             content_type="application/json")
    error = _api_error(response, 400)
    assert error["code"] == "bad_request"


def test_huge_coordinates_as_plain_json_numbers_are_400(signed_in) -> None:
    error = _api_error(signed_in.put("/api/v1/me/location", json={"lat": 10**30, "lng": 0}),
                       400)
    assert "digits" in error["message"] or "lat" in error["message"]


def test_nul_in_a_form_field_is_a_readable_400(signed_in) -> None:
    _page_error(signed_in.post("/settings/location", data={"city": "Ham\x00burg"}), 400)
    _api_error(signed_in.post("/api/v1/connections", json={"to": "x\x00y"}), 400)


def test_control_characters_are_escaped_in_log_lines(client, caplog) -> None:
    handler_filter = EscapeControlCharacters()
    record = logging.LogRecord("geomap", logging.ERROR, __file__, 1, "on %s",
                               ("/a\nFAKE 200 /admin\r\x1b[31m",), None)
    assert handler_filter.filter(record)
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == "on /a\\x0aFAKE 200 /admin\\x0d\\x1b[31m"
    assert escape_for_log("caf\u00e9 \u2028") == "caf\u00e9 \\u2028"


def test_gunicorn_access_lines_hold_no_query_and_no_raw_newline() -> None:
    from types import SimpleNamespace

    from gunicorn.config import Config

    from geomap.wsgi_server import ACCESS_LOG_FORMAT, EscapingLogger

    cfg = Config()
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    logger = EscapingLogger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/api/v1/places?q=hamburg",
               "PATH_INFO": "/api/v1/places\nFAKE", "QUERY_STRING": "q=hamburg",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": "http://x/settings?q=hamburg"}
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    from datetime import timedelta

    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, timedelta(0))
    line = ACCESS_LOG_FORMAT % atoms
    assert "hamburg" not in line and "\n" not in line and "\\x0aFAKE" in line


@given(st.text(max_size=60))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_as_json_is_parsed_or_refused_cleanly(text) -> None:
    try:
        loads_checked(text)
    except JSONBodyError as exc:
        assert str(exc)


@given(slug=st.text(max_size=30), zoom=st.text(max_size=8), page=st.text(max_size=8))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_page_routes_never_answer_5xx(client, slug, zoom, page) -> None:
    slug = quote(slug, safe="")
    for url, query in (
        (f"/conditions/{slug}/map", {"zoom": zoom}),
        (f"/embed/conditions/{slug}/map", {"zoom": zoom, "lat": page}),
        ("/embed", {"condition": slug, "size": zoom, "width": page}),
        ("/oembed", {"url": slug, "maxwidth": page}),
        ("/", {"page": page}),
    ):
        response = client.get(url, query_string=query)
        assert response.status_code < 500, (url, query, response.status_code)


def test_json_body_error_messages_say_why() -> None:
    with pytest.raises(JSONBodyError, match="nested"):
        loads_checked("[" * 100 + "]" * 100)
    with pytest.raises(JSONBodyError, match="surrogate"):
        loads_checked(json.dumps("\ud800"))
    assert loads_checked('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}


@pytest.mark.parametrize("url", ["/settings", "/connections", "/my-data",
                                 "/my-data/export.json", "/api/v1/me/export",
                                 "/api/v1/me/location", "/api/v1/connections",
                                 "/nearby?condition=all", "/"])
def test_answers_to_a_member_are_not_stored(signed_in, url) -> None:
    response = signed_in.get(url)
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]


def test_public_aggregates_stay_cacheable_for_members(signed_in) -> None:
    response = signed_in.get("/api/v1/conditions/all/cells?zoom=2")
    assert response.headers["Cache-Control"].startswith("public")


def test_the_development_server_log_keeps_no_query_string() -> None:
    from geomap.wsgi_server import DropQueryStrings

    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
                               ("GET /api/v1/places?q=hamburg HTTP/1.1", "200", "-"), None)
    assert DropQueryStrings().filter(record)
    assert record.getMessage() == '"GET /api/v1/places HTTP/1.1" 200 -'


def test_an_embed_304_carries_the_policy_of_the_page_it_keeps(client) -> None:
    first = client.get("/embed/conditions/all/map")
    again = client.get("/embed/conditions/all/map",
                       headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    policy = first.headers["Content-Security-Policy"]
    assert again.headers["Content-Security-Policy"] == policy
    assert "'unsafe-inline'" not in policy and "'sha256-" in policy
