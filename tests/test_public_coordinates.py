"""No public response contains any member's exact coordinates."""

from __future__ import annotations

import re

from sqlalchemy import text

NUMBER = re.compile(r"-?\d{1,3}\.\d+")


def public_responses(client) -> list[str]:
    bodies = []
    slugs = [c["slug"] for c in client.get("/api/v1/conditions").get_json()["conditions"]]
    bodies.append(client.get("/").get_data(as_text=True))
    bodies.append(client.get("/api/v1/conditions").get_data(as_text=True))
    bodies.append(client.get("/healthz").get_data(as_text=True))
    for slug in slugs:
        bodies.append(client.get(f"/conditions/{slug}/map").get_data(as_text=True))
        for zoom in range(0, 19, 2):
            bodies.append(client.get(f"/api/v1/conditions/{slug}/cells?zoom={zoom}")
                          .get_data(as_text=True))
        bodies.append(client.get(f"/api/v1/conditions/{slug}/cells?zoom=12&bbox=-10,35,30,60")
                      .get_data(as_text=True))
        version = client.get(f"/api/v1/conditions/{slug}/version").get_json()["publish_version"]
        for zoom, x, y in ((0, 0, 0), (3, 4, 2), (6, 33, 21), (9, 268, 175)):
            bodies.append(client.get(f"/tiles/{slug}/{version}/{zoom}/{x}/{y}.json")
                          .get_data(as_text=True))
    return bodies


def test_no_exact_coordinate_in_any_public_response(client, community_engine) -> None:
    with community_engine.connect() as conn:
        points = conn.execute(
            text("SELECT ST_Y(location::geometry), ST_X(location::geometry) "
                 "FROM member_locations")
        ).all()
    assert len(points) > 1000
    numbers: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for body in public_responses(client):
        found = NUMBER.findall(body)
        numbers.update(found)
        pairs.update(zip(found, found[1:], strict=False))
    for lat, lng in points:
        # Full precision: never, in any form.
        assert repr(lat) not in numbers and repr(lng) not in numbers
        for digits in (3, 4, 5, 6):
            la, ln = f"{lat:.{digits}f}", f"{lng:.{digits}f}"
            assert (ln, la) not in pairs and (la, ln) not in pairs
