"""Resource limits: request bodies per route, viewports a screen can show, keep-alive."""

from __future__ import annotations

import socket
import threading

import pytest

from geomap import create_app
from geomap.web.api import CELLS_MISS_SLOTS
from geomap.web.viewport import max_span_degrees, parse_bbox
from tests.conftest import app_config, free_port, start_gunicorn


def test_a_large_form_to_login_is_refused_before_it_is_parsed(client) -> None:
    body = b"x" * (300 * 1024)
    response = client.post("/login", data={"email": "a@example.org", "upload": (
        __import__("io").BytesIO(body), "big.bin")}, content_type="multipart/form-data")
    assert response.status_code == 413
    assert response.mimetype == "text/html" and "<h1>" in response.get_data(as_text=True)


def test_a_large_json_body_is_a_json_413(client) -> None:
    response = client.put("/api/v1/me/location", data=b'{"lat": 1, "pad": "' + b"x" * 70_000
                          + b'"}', content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_cells_box_is_shrunk_to_what_a_viewport_shows(client) -> None:
    world = client.get("/api/v1/conditions/all/cells?zoom=12&bbox=-180,-90,180,90").get_json()
    (west, south, east, north), = world["properties"]["bbox"]
    span = max_span_degrees(12)
    assert east - west == pytest.approx(span) and north - south == pytest.approx(span)
    for feature in world["features"]:
        lng, lat = feature["geometry"]["coordinates"]
        assert west <= lng <= east and south <= lat <= north
    # At world zooms the whole world still fits.
    assert parse_bbox("-180,-90,180,90", 2) == ((-180.0, -90.0, 180.0, 90.0),)


def _cells_app(community_url, tmp_path, wait: int):  # noqa: ANN001, ANN202
    return create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url,
                                 GEOMAP_CELLS_MISS_WAIT=str(wait)))


def test_a_cache_miss_beyond_the_render_slots_is_a_json_503(community_url, tmp_path) -> None:
    client = _cells_app(community_url, tmp_path, 0).test_client()
    cached = "/api/v1/conditions/all/cells?zoom=3&bbox=0,40,20,60"
    assert client.get(cached).status_code == 200
    taken = 0
    try:
        for _ in range(2):
            assert CELLS_MISS_SLOTS.acquire(timeout=60)
            taken += 1
        missed = client.get("/api/v1/conditions/all/cells?zoom=4&bbox=0,40,20,60")
        assert missed.status_code == 503
        assert int(missed.headers["Retry-After"]) > 0
        error = missed.get_json()["error"]
        assert error["code"] == "service_unavailable" and "busy" in error["message"]
        # A viewport already cached needs no slot.
        assert client.get(cached).status_code == 200
    finally:
        for _ in range(taken):
            CELLS_MISS_SLOTS.release()
    served = client.get("/api/v1/conditions/all/cells?zoom=4&bbox=0,40,20,60")
    assert served.status_code == 200 and served.get_json()["type"] == "FeatureCollection"


def test_a_cache_miss_waits_for_a_free_render_slot(community_url, tmp_path) -> None:
    client = _cells_app(community_url, tmp_path, 60).test_client()
    answers: list[int] = []
    taken = 0
    try:
        for _ in range(2):
            assert CELLS_MISS_SLOTS.acquire(timeout=60)
            taken += 1
        asker = threading.Thread(target=lambda: answers.append(
            client.get("/api/v1/conditions/all/cells?zoom=5&bbox=0,40,20,60").status_code))
        asker.start()
        asker.join(0.5)
        assert answers == []  # still waiting for a slot, not refused
        CELLS_MISS_SLOTS.release()
        taken -= 1
        asker.join(60)
    finally:
        for _ in range(taken):
            CELLS_MISS_SLOTS.release()
    assert answers == [200]


def _http(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read one response (headers and Content-Length body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


@pytest.fixture
def gunicorn_server(community_url, tmp_path):
    """The app under gunicorn with the options of ``geomap serve --prod`` (one worker)."""
    port = free_port()
    process = start_gunicorn(community_url, tmp_path, port)
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_an_unread_body_does_not_reset_the_next_keep_alive_request(gunicorn_server) -> None:
    body = b"x" * (200 * 1024)
    with socket.create_connection(("127.0.0.1", gunicorn_server), timeout=30) as sock:
        # A body no route reads: 405 for a POST to a GET route.
        first = _http(sock, b"POST /api/v1/conditions HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/octet-stream\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert first.startswith(b"HTTP/1.1 405")
        second = _http(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert second.startswith(b"HTTP/1.1 200"), second[:200]


def test_a_huge_declared_body_gets_a_413_without_being_read(gunicorn_server) -> None:
    with socket.create_connection(("127.0.0.1", gunicorn_server), timeout=30) as sock:
        head = _http(sock, b"POST /login HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n"
                     b"Content-Length: 104857600\r\n\r\n--x\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
