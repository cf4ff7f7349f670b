"""Deep zoom: place labels from the gazetteer, polar caps kept in boxes, prepared deriver."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from geomap.geo import prepared
from geomap.geo.derive import COAST_KM, KeyDeriver
from geomap.geo.places import LABEL_LIMIT, LABEL_MIN_ZOOM
from geomap.session import session_scope
from geomap.web.viewport import MERCATOR_LAT, max_span_degrees, parse_bbox

LABELS = "/api/v1/places/labels"


def test_labels_over_a_city_are_its_most_populous_places_first(client) -> None:
    body = client.get(f"{LABELS}?zoom=10&bbox=11.25,47.8,11.95,48.5").get_json()
    names = [label["name"] for label in body["labels"]]
    assert names[0] == "Munich"
    assert 1 < len(names) <= LABEL_LIMIT
    populations = [label["population"] for label in body["labels"]]
    assert populations == sorted(populations, reverse=True)
    for label in body["labels"]:
        assert 11.25 <= label["lng"] <= 11.95 and 47.8 <= label["lat"] <= 48.5
        assert set(label) == {"name", "country_code", "lat", "lng", "population"}


def test_a_wide_box_is_capped_and_world_zooms_get_no_labels(client) -> None:
    wide = client.get(f"{LABELS}?zoom={LABEL_MIN_ZOOM}&bbox=-10,35,30,60").get_json()
    assert len(wide["labels"]) == LABEL_LIMIT
    # The most populous places of the box, whatever the order of the database.
    assert {"Paris", "London"} <= {label["name"] for label in wide["labels"]}
    world = client.get(f"{LABELS}?zoom={LABEL_MIN_ZOOM - 1}&bbox=-10,35,30,60").get_json()
    assert world["labels"] == [] and world["min_zoom"] == LABEL_MIN_ZOOM


def test_labels_across_the_antimeridian(client) -> None:
    body = client.get(f"{LABELS}?zoom=7&bbox=177,-19,-179,-16").get_json()
    names = {label["name"] for label in body["labels"]}
    assert "Suva" in names
    assert body["bbox"] == [[177.0, -19.0, 180.0, -16.0], [-180.0, -19.0, -179.0, -16.0]]
    # Across 180° from the other side: Taveuni's places (179.9°E) in a box given east of it.
    east = client.get(f"{LABELS}?zoom=7&bbox=-181,-17.5,-178,-16").get_json()
    assert any(label["lng"] > 179 for label in east["labels"])


def test_labels_are_cacheable_and_bad_boxes_are_clear_400s(client) -> None:
    url = f"{LABELS}?zoom=9&bbox=2,48.5,2.7,49.1"
    first = client.get(url)
    assert "public" in first.headers["Cache-Control"] and first.headers.get("ETag")
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    for bad in ("zoom=9", "zoom=9&bbox=1,2,3", "zoom=99&bbox=0,0,1,1", "zoom=9&bbox=0,5,1,1"):
        response = client.get(f"{LABELS}?{bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["message"], bad


def test_a_deep_box_at_the_mercator_edge_keeps_the_polar_cap() -> None:
    span = max_span_degrees(12)
    # What the map asks at zoom 12 with the top edge in view: the cap up to 90°.
    (box,) = parse_bbox("29.9,84.9,30.1,90", 12)
    assert box[1] == 84.9 and box[3] == 90.0
    # The Antarctic cap likewise.
    (box,) = parse_bbox("29.9,-90,30.1,-84.9", 12)
    assert box[1] == -90.0 and box[3] == -84.9
    # A box taller than a screen is still shrunk to what a screen shows, cap dropped.
    (box,) = parse_bbox("29.9,60,30.1,90", 12)
    assert box[3] - box[1] == pytest.approx(span) and box[3] < MERCATOR_LAT


def test_the_prepared_deriver_gives_the_keys_of_the_computed_one(community_url) -> None:
    engine = create_engine(community_url)
    try:
        with session_scope(engine) as session:
            computed = prepared.compute(session, COAST_KM)
            stored = prepared.from_bytes(prepared.to_bytes(computed))
            assert np.array_equal(stored.place_xyz, computed.place_xyz)
            assert stored.place_outline.tolist() == computed.place_outline.tolist()
            assert stored.place_region.tolist() == computed.place_region.tolist()
            assert stored.territories == computed.territories and "GF" in stored.territories["FR"]
            # A deriver with nothing stored computes and stores; the next one loads.
            prepared.forget(session)
            computing = KeyDeriver(session, 5)
            assert session.execute(text("SELECT count(*) FROM geo_prepared")).scalar_one() == 1
            loading = KeyDeriver(session, 5)
            rng = np.random.default_rng(8)
            lats, lngs = rng.uniform(-70, 80, 3000), rng.uniform(-180, 180, 3000)
            for got, want in zip(loading.point_places(lats, lngs),
                                 computing.point_places(lats, lngs), strict=True):
                assert got.tolist() == want.tolist()
            assert np.array_equal(loading.km_to_land(lats, lngs, 25.0),
                                  computing.km_to_land(lats, lngs, 25.0))
            # Reloading the reference data forgets the stored copy.
            prepared.forget(session)
            assert session.execute(text("SELECT count(*) FROM geo_prepared")).scalar_one() == 0
            session.rollback()
    finally:
        engine.dispose()


def test_territories_merged_into_an_outline_get_their_own_polygons(community_url) -> None:
    from geomap.web.maps import feature_codes, territory_parts, territory_points

    engine = create_engine(community_url)
    try:
        with session_scope(engine) as session:
            parts = territory_parts(session)
            france = next(key for key, code in feature_codes().items() if code == "FR")
            assert {"GF", "RE", "MQ", "GP", "YT"} <= set(parts[france].values())
            norway = next(key for key, code in feature_codes().items() if code == "NO")
            assert set(parts[norway].values()) == {"SJ"}
            # Counted codes that no polygon draws get a point; drawn ones do not.
            points = territory_points(session, {"GF": 6, "FR": 9, "TK": 5})
            assert set(points) == {"TK"}
            lat, lng = points["TK"]
            assert -10 < lat < -8 and -173 < lng < -171
    finally:
        engine.dispose()
