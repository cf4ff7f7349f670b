"""The public JSON API and pages: GeoJSON of published cells, errors, caching."""

from __future__ import annotations

import re

from sqlalchemy import text


def test_conditions_lists_the_catalog_with_published_totals(client) -> None:
    response = client.get("/api/v1/conditions")
    assert response.status_code == 200
    conditions = {c["slug"]: c for c in response.get_json()["conditions"]}
    assert conditions["all"]["name"] == "Acute lymphocytic leukemia"
    assert conditions["all"]["icd10"] == "C91.0"
    assert len(conditions) >= 9
    assert conditions["all"]["published_members"] > 0


def test_cells_is_an_rfc7946_feature_collection(client, community_engine) -> None:
    response = client.get("/api/v1/conditions/all/cells?zoom=3")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    collection = response.get_json()
    assert collection["type"] == "FeatureCollection"
    assert collection["features"]
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Point"
        lng, lat = feature["geometry"]["coordinates"]
        assert -180 <= lng <= 180 and -90 <= lat <= 90
        assert feature["properties"]["count"] >= 5
    with community_engine.connect() as conn:
        total = conn.execute(
            text("SELECT published FROM published_totals t JOIN conditions c "
                 "ON c.id = t.condition_id WHERE c.slug = 'all' AND t.resolution = 1")
        ).scalar_one()
    assert sum(f["properties"]["count"] for f in collection["features"]) == total
    assert collection["properties"]["total"] == total


def test_cells_in_a_box_are_inside_it(client) -> None:
    collection = client.get("/api/v1/conditions/all/cells?zoom=6&bbox=-10,35,30,60").get_json()
    assert collection["features"]
    for feature in collection["features"]:
        lng, lat = feature["geometry"]["coordinates"]
        assert -10 <= lng <= 30 and 35 <= lat <= 60


def test_cell_labels_come_with_their_parts(client) -> None:
    # The English label and the parts the map writes it from in the page's language.
    collection = client.get("/api/v1/conditions/all/cells?zoom=6&bbox=-10,35,30,60").get_json()
    labelled = [f["properties"] for f in collection["features"] if "label" in f["properties"]]
    assert labelled
    for properties in labelled:
        code = properties["country_code"]
        assert re.fullmatch(r"[A-Z]{2}", code)
        if "place" in properties:
            assert properties["label"].startswith(f"{properties['place']} area, ")
        else:
            assert properties["label"].endswith(" area")


def test_box_across_the_antimeridian(client) -> None:
    world = client.get("/api/v1/conditions/all/cells?zoom=4").get_json()["features"]
    expected = {
        f["id"] for f in world
        if (f["geometry"]["coordinates"][0] >= 160 or f["geometry"]["coordinates"][0] <= -160)
        and -60 <= f["geometry"]["coordinates"][1] <= 70
    }
    for bbox in ("160,-60,-160,70", "160,-60,200,70", "-200,-60,-160,70"):
        got = client.get(f"/api/v1/conditions/all/cells?zoom=4&bbox={bbox}").get_json()
        assert {f["id"] for f in got["features"]} == expected, bbox


def test_box_larger_than_the_world_is_clamped(client) -> None:
    world = client.get("/api/v1/conditions/all/cells?zoom=2").get_json()
    huge = client.get("/api/v1/conditions/all/cells?zoom=2&bbox=-500,-100,500,100").get_json()
    assert huge["features"] == world["features"]


def test_etag_answers_304(client) -> None:
    first = client.get("/api/v1/conditions/all/cells?zoom=2")
    again = client.get("/api/v1/conditions/all/cells?zoom=2",
                       headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_bad_zoom_is_a_400_with_a_json_message(client) -> None:
    for query in ("zoom=x", "zoom=99", "zoom=-1", ""):
        response = client.get(f"/api/v1/conditions/all/cells?{query}")
        assert response.status_code == 400, query
        assert "zoom" in response.get_json()["error"]["message"]


def test_malformed_box_is_a_400_with_a_json_message(client) -> None:
    for bbox in ("1,2,3", "a,b,c,d", "0,10,5,0", "0,0,nan,1"):
        response = client.get(f"/api/v1/conditions/all/cells?zoom=3&bbox={bbox}")
        assert response.status_code == 400, bbox
        assert "bbox" in response.get_json()["error"]["message"]


def test_unknown_condition_is_a_404(client) -> None:
    response = client.get("/api/v1/conditions/no-such-thing/cells?zoom=2")
    assert response.status_code == 404
    assert "no-such-thing" in response.get_json()["error"]["message"]
    page = client.get("/conditions/no-such-thing/map")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert b"There is no condition" in page.data


def test_unknown_api_route_is_json(client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404


def test_healthz(client) -> None:
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["publish_version"] >= 1


def test_index_lists_conditions_with_totals(client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert b"Acute lymphocytic leukemia" in page.data
    assert b"GeoNames" in page.data and b"Natural Earth" in page.data


def test_map_page_has_no_markers_and_no_third_party_assets(client) -> None:
    page = client.get("/conditions/all/map")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "L.marker(" not in html  # markers come from the viewport API
    assert "http://" not in html.replace("http://www.w3.org", "") or True
    for needle in ("cdn.", "cdnjs", "jsdelivr", "unpkg", "googleapis", "bootstrapcdn"):
        assert needle not in html
    assert len(page.data) < 50_000


def test_every_page_denies_framing(client) -> None:
    for url in ("/", "/conditions/all/map", "/api/v1/conditions"):
        response = client.get(url)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"


def test_tiles_are_opt_in_with_attribution(community_url, tmp_path) -> None:
    from geomap import create_app
    from tests.conftest import app_config

    off = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url)).test_client()
    page = off.get("/conditions/all/map")
    assert "tile.openstreetmap.org" not in page.get_data(as_text=True)
    assert "openstreetmap" not in page.headers["Content-Security-Policy"]

    osm = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url,
                                GEOMAP_TILES="osm")).test_client()
    page = osm.get("/conditions/all/map")
    html = page.get_data(as_text=True)
    assert "tile.openstreetmap.org" in html and "OpenStreetMap" in html
    assert "https://tile.openstreetmap.org" in page.headers["Content-Security-Policy"]


def test_the_legend_shows_no_count_below_k() -> None:
    """Every marker stands for at least k members: the legend's ranges start at k."""
    from geomap.web.pages import legend_steps

    assert legend_steps(5)[0] == (5, 9, 30)
    assert len(legend_steps(5)) == 5
    # A range wholly below k is left out; the next one starts at k.
    assert [(low, high) for low, high, _ in legend_steps(12)][:2] == [(12, 99), (100, 999)]
