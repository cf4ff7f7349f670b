"""Version-stamped tiles: a partition of the markers, immutable, answered before Flask on a hit."""

from __future__ import annotations

import json

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geomap import create_app
from geomap.geo.derive import KeyDeriver
from geomap.publish import publish
from geomap.web.viewport import tile_bounds
from tests.conftest import FLOOR, K, app_config, sessions_on
from tests.test_publish import random_point_in_cell

IMMUTABLE = "public, max-age=31536000, immutable"


def current_version(client) -> int:  # noqa: ANN001
    answer = client.get("/api/v1/conditions/all/version")
    assert answer.status_code == 200
    return answer.get_json()["publish_version"]


def tile_features(client, version: int, zoom: int) -> list[dict]:  # noqa: ANN001
    """Return the features of every tile of ``zoom``, in tile order."""
    features = []
    for x in range(2**zoom):
        for y in range(2**zoom):
            answer = client.get(f"/tiles/all/{version}/{zoom}/{x}/{y}.json")
            assert answer.status_code == 200
            assert answer.headers["Cache-Control"] == IMMUTABLE
            collection = answer.get_json()
            assert collection["properties"]["publish_version"] == version
            assert collection["properties"]["tile"] == [zoom, x, y]
            features += collection["features"]
    return features


def test_the_tiles_of_a_zoom_hold_every_marker_exactly_once_and_the_stored_total(
        client) -> None:
    version = current_version(client)
    for zoom in (0, 1, 3):
        everything = client.get(f"/api/v1/conditions/all/cells?zoom={zoom}").get_json()
        features = tile_features(client, version, zoom)
        ids = [f["id"] for f in features]
        assert len(ids) == len(set(ids)), "a marker is in two tiles"
        assert sorted(features, key=lambda f: f["id"]) == \
            sorted(everything["features"], key=lambda f: f["id"])
        tile = client.get(f"/tiles/all/{version}/{zoom}/0/0.json").get_json()
        assert tile["properties"]["total"] == everything["properties"]["total"]
        assert tile["properties"]["total"] == sum(f["properties"]["count"] for f in features)


def test_tile_bounds_share_edges_and_reach_the_poles() -> None:
    for zoom in (0, 1, 5):
        n = 2**zoom
        assert tile_bounds(zoom, 0, 0)[3] == float("inf")
        assert tile_bounds(zoom, n - 1, n - 1)[1] == float("-inf")
        for i in range(n - 1):
            assert tile_bounds(zoom, i, 0)[2] == tile_bounds(zoom, i + 1, 0)[0]
            assert tile_bounds(zoom, 0, i)[1] == tile_bounds(zoom, 0, i + 1)[3]


def test_an_old_version_redirects_and_an_unpublished_one_is_not_found(client) -> None:
    version = current_version(client)
    document = client.get("/api/v1/conditions/all/version")
    assert document.headers["Cache-Control"] == "public, max-age=5"
    assert document.get_json()["tiles"] == f"/tiles/all/{version}/{{z}}/{{x}}/{{y}}.json"
    if version > 0:
        old = client.get(f"/tiles/all/{version - 1}/2/1/1.json")
        assert old.status_code == 302
        assert old.headers["Location"].endswith(f"/tiles/all/{version}/2/1/1.json")
        assert old.headers["Cache-Control"] == "public, max-age=5"
    future = client.get(f"/tiles/all/{version + 1}/2/1/1.json")
    assert future.status_code == 404 and future.is_json
    assert client.get(f"/tiles/all/{version}/2/4/0.json").status_code == 404
    assert client.get(f"/tiles/all/{version}/19/0/0.json").status_code == 404
    assert client.get(f"/tiles/nope/{version}/2/1/1.json").status_code == 404
    assert client.get("/api/v1/conditions/nope/version").status_code == 404


@pytest.mark.parametrize("zoom", [19, 10**9, 10**30])
def test_a_tile_beyond_the_deepest_zoom_is_refused_at_once(client, zoom: int) -> None:
    """Found by schemathesis: 2**zoom was computed before the range check (OOM)."""
    answer = client.get(f"/tiles/all/{current_version(client)}/{zoom}/0/0.json")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["message"].startswith("There is no tile")


def test_a_cache_hit_is_answered_before_flask_with_the_same_bytes_and_headers(app) -> None:
    seen = []
    app.before_request(lambda: seen.append(1))
    client = app.test_client()
    version = current_version(client)
    for url in (f"/tiles/all/{version}/3/4/2.json",
                "/api/v1/conditions/all/cells?zoom=3&bbox=0,0,45,45"):
        first = client.get(url)
        flask_calls = len(seen)
        second = client.get(url)
        assert len(seen) == flask_calls, "the hit went through Flask"
        assert second.status_code == 200 and second.data == first.data
        ignored = {"Date"}
        assert {k: v for k, v in second.headers.items() if k not in ignored} == \
            {k: v for k, v in first.headers.items() if k not in ignored}
        again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.data == b""
        assert again.headers["ETag"] == first.headers["ETag"]
        assert len(seen) == flask_calls


def test_viewport_answers_travel_gzipped_to_browsers_that_accept_it(app) -> None:
    """Tiles and cells go out gzip-coded when asked, from Flask and from the cache hit path.

    The coded body decodes to the plain one; it has its own strong ETag, and both forms
    say ``Vary: Accept-Encoding``, so no cache hands one to a client asking the other.
    """
    import gzip

    seen = []
    app.before_request(lambda: seen.append(1))
    client = app.test_client()
    version = current_version(client)
    asks = {"Accept-Encoding": "gzip, deflate, br, zstd"}
    for url in (f"/tiles/all/{version}/2/2/1.json",
                "/api/v1/conditions/all/cells?zoom=2&bbox=-20,30,40,60"):
        packed = client.get(url, headers=asks)  # a miss: Flask renders it
        plain = client.get(url)  # a hit: answered in front of Flask
        calls = len(seen)
        packed_hit = client.get(url, headers=asks)
        assert len(seen) == calls, "the hit went through Flask"
        for coded in (packed, packed_hit):
            assert coded.status_code == 200 and coded.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(coded.data) == plain.data
            assert "Accept-Encoding" in coded.headers["Vary"]
            assert coded.headers["ETag"] != plain.headers["ETag"]
        assert "Content-Encoding" not in plain.headers
        assert "Accept-Encoding" in plain.headers["Vary"]
        assert len(packed.data) * 3 < len(plain.data)
        assert packed_hit.headers["ETag"] == packed.headers["ETag"]
        again = client.get(url, headers={**asks, "If-None-Match": packed.headers["ETag"]})
        assert again.status_code == 304
        refused = client.get(url, headers={"Accept-Encoding": "gzip;q=0, br"})
        assert "Content-Encoding" not in refused.headers and refused.data == plain.data


def test_a_publish_changes_the_version_and_old_tiles_keep_their_bytes(community_engine,
                                                                      tmp_path) -> None:
    connection = community_engine.connect()
    transaction = connection.begin()
    try:
        sessions = sessions_on(connection)
        client = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions)).test_client()
        before = current_version(client)
        old_tile = client.get(f"/tiles/all/{before}/2/2/1.json")
        with sessions() as session:
            publish(session, k=K, floor=FLOOR, full=True)
            session.commit()
        client.application.extensions["geomap.cells_cache"]._version = (0.0, before)
        after = current_version(client)
        assert after == before + 1
        # The old URL, still cached, keeps the old body (it is that version's data).
        assert client.get(f"/tiles/all/{before}/2/2/1.json").data == old_tile.data
        fresh = client.get(f"/tiles/all/{after}/2/2/1.json").get_json()
        assert fresh["properties"]["publish_version"] == after
    finally:
        transaction.rollback()
        connection.close()


def _tiles_around(client, version: int, lat: float, lng: float) -> list[bytes]:  # noqa: ANN001
    """Return the bodies of the tile holding (lat, lng) at every zoom, and its neighbours."""
    bodies = []
    for zoom in range(0, 11):
        n = 2**zoom
        x = int((lng + 180.0) / 360.0 * n)
        y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                if 0 <= y + dy < n:
                    answer = client.get(
                        f"/tiles/all/{version}/{zoom}/{(x + dx) % n}/{y + dy}.json")
                    assert answer.status_code == 200
                    bodies.append(answer.data)
    return bodies


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member_index=st.integers(0, 2999), u=st.floats(0, 0.999), v=st.floats(0, 0.999))
def test_tiles_are_byte_identical_when_a_member_moves_within_their_floor_cell(
        community_engine, community_deriver: KeyDeriver, tmp_path, member_index: int,
        u: float, v: float) -> None:
    connection = community_engine.connect()
    transaction = connection.begin()
    try:
        sessions = sessions_on(connection)
        with sessions() as session:
            member_id, cell = session.execute(
                text("SELECT member_id, floor_cell FROM member_locations "
                     "ORDER BY member_id OFFSET :i LIMIT 1"), {"i": member_index}).one()
        answers = []
        for point in ((0.5, 0.5), (u, v)):
            lat, lng = random_point_in_cell(cell, *point)
            with sessions() as session:
                savepoint = session.begin_nested()
                keys = community_deriver.derive(np.array([lat]), np.array([lng]))
                assert int(keys.floor_cells[0]) == cell
                session.execute(
                    text("UPDATE member_locations SET location = "
                         "ST_MakePoint(:lng, :lat)::geography WHERE member_id = :id"),
                    {"lng": lng, "lat": lat, "id": member_id})
                publish(session, k=K, floor=FLOOR, full=True)
                client = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions)).test_client()
                version = current_version(client)
                # The tiles around the cell (not the point: that would be a choice by it).
                bodies = _tiles_around(client, version, *h3i.cell_to_latlng(cell))
                savepoint.rollback()
            answers.append((version, bodies))
            # No exact coordinate of the member in any tile, at any precision we round to.
            for body in bodies:
                for feature in json.loads(body)["features"]:
                    assert feature["geometry"]["coordinates"] != [round(lng, 5), round(lat, 5)]
        assert answers[0] == answers[1]
    finally:
        transaction.rollback()
        connection.close()
