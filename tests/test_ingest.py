"""One room for ingest: robust reading, plausibility, and messages that never echo values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.cli import main
from geomap.ingest import importer, validators
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in

HEADER = "pseudonym,lat,lng,city,country,conditions,role,visibility,contactable,joined_at\n"
GOOD = "good-otter,53.5511,9.9937,,,all,,,,\n"
# A number with three or more decimals: what an exact coordinate looks like.
PRECISE = re.compile(r"\d+\.\d{3,}")
POINT = "52.520008"


@pytest.fixture
def run_cli(fresh_db_url: str, tmp_path: Path):
    """Run `geomap ...` against a fresh database with reference data and no members."""
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def pseudonyms(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT pseudonym FROM members")).scalars())
    engine.dispose()
    return names


def no_precise_numbers(output: str, path: Path) -> None:
    assert not PRECISE.findall(output.replace(str(path), "")), output


def test_wrong_csv_inputs_never_echo_a_coordinate(run_cli, tmp_path: Path) -> None:
    rows = [
        f"{POINT},{POINT},{POINT},{POINT},{POINT},{POINT},{POINT},{POINT},{POINT},{POINT}",
        f"{POINT}!,13.404954,{POINT},,,all,,,,",
        f"lat-in-conditions,53.5,10.0,,,{POINT};all,,,,",
        f"in-role,53.5,10.0,,,all,{POINT},,,",
        f"in-visibility,53.5,10.0,,,all,,{POINT},,",
        f"in-contactable,53.5,10.0,,,all,,,{POINT},",
        f"in-joined,53.5,10.0,,,all,,,,{POINT}",
        f"in-city,,,{POINT},DE,all,,,,",
        f"in-country,,,Hamburg,{POINT},all,,,,",
        f"far-out,1{POINT},-1{POINT},,,all,,,,",
        f"short,{POINT}",
    ]
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    result = run_cli("import", "--no-publish", str(path))
    assert result.exit_code == 1
    assert result.output.count("line ") == len(rows)
    no_precise_numbers(result.output, path)
    # A file without its header line: the first row is read as the header.
    headless = tmp_path / "headless.csv"
    headless.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run_cli("import", "--no-publish", str(headless))
    assert result.exit_code == 1 and "is the header line missing?" in result.output
    no_precise_numbers(result.output, headless)


def test_wrong_geojson_inputs_never_echo_a_coordinate(run_cli, tmp_path: Path) -> None:
    number = float(POINT)
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [number, 95.123456]},
         "properties": {name: POINT for name in importer.COLUMNS}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.404954, number]},
         "properties": {"pseudonym": "x-y", "conditions": [POINT], "role": number}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[number, 1.5]]},
         "properties": {"pseudonym": POINT, "conditions": "all"}},
        {"type": "Feature", "geometry": None,
         "properties": {"pseudonym": "nowhere", "city": POINT, "country": "DE",
                        "conditions": "all", "joined_at": POINT}},
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = run_cli("import", "--no-publish", str(path))
    assert result.exit_code == 1
    assert result.output.count("features[") == len(features)
    no_precise_numbers(result.output, path)


def test_regions_load_messages_never_echo_a_coordinate(run_cli, tmp_path: Path) -> None:
    cases = [
        {"type": "Feature", "properties": {"iso": POINT},
         "geometry": {"type": "Point", "coordinates": [13.404954, float(POINT)]}},
        {"type": "Feature", "properties": {"iso": f"DE-{POINT}"},
         "geometry": {"type": "Polygon", "coordinates": [[[1447153.12345, 6891041.1234],
                                                          [1447253.5, 6891041.5],
                                                          [1447253.5, 6891141.5],
                                                          [1447153.12345, 6891041.1234]]]}},
        {"type": "Feature", "properties": {"other": POINT},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}},
    ]
    for i, feature in enumerate(cases):
        path = tmp_path / f"regions{i}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        result = run_cli("regions", "load", str(path), "--code-field", "iso")
        assert result.exit_code == 1
        no_precise_numbers(result.output, path)


def test_a_nul_byte_or_an_overlong_field_is_a_row_error_and_good_rows_load(
        run_cli, fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    content = (HEADER + GOOD + "nul-row,53.5,10.0,,,all,pat\x00ient,,,\n"
               + "long-row,53.5,10.0,,,all,," + "x" * 131_073 + ",,\n"
               + "good-heron,48.1372,11.5756,,,aml,,,,\n")
    path.write_bytes(content.encode())
    result = run_cli("import", "--no-publish", str(path))
    assert result.exit_code == 1
    assert "line 3: a field holds a control character" in result.output
    assert "line 4: a field is longer than 131,072 characters" in result.output
    assert "Traceback" not in result.output
    assert pseudonyms(fresh_db_url) == {"good-otter", "good-heron"}


@pytest.mark.parametrize("row,reason", [
    ("zero,0,0,,,all,,,,", "(0, 0)"),
    ("mid-ocean,30.0,-40.0,,,all,,,,", "km from land"),
    ("swapped,10.0,53.55,,,all,,,,", "swapped"),  # Hamburg with lat and lng swapped
])
def test_implausible_points_are_rejected_unless_allowed(run_cli, fresh_db_url: str,
                                                        tmp_path: Path, row: str,
                                                        reason: str) -> None:
    path = tmp_path / "members.csv"
    path.write_text(HEADER + GOOD + row + "\n", encoding="utf-8")
    result = run_cli("import", "--no-publish", str(path))
    assert result.exit_code == 1
    assert "line 3: " in result.output and reason in result.output
    assert pseudonyms(fresh_db_url) == {"good-otter"}
    path.write_text(HEADER.replace("\n", ",allow_sea\n") + row + ",true\n", encoding="utf-8")
    assert run_cli("import", "--no-publish", str(path)).exit_code == 0
    assert row.split(",")[0] in pseudonyms(fresh_db_url)


def test_allow_sea_flag_keeps_every_row(run_cli, fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(HEADER + "at-sea,30.0,-40.0,,,all,,,,\n", encoding="utf-8")
    result = run_cli("import", "--no-publish", "--allow-sea", str(path))
    assert result.exit_code == 0, result.output
    assert pseudonyms(fresh_db_url) == {"at-sea"}


def test_a_geojson_in_another_crs_is_refused(run_cli, fresh_db_url: str, tmp_path: Path) -> None:
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [{"type": "Feature", "geometry": {"type": "Point",
                                                      "coordinates": [1113194.9, 6446275.8]},
                      "properties": {"pseudonym": "metres", "conditions": "all"}}],
    }
    path = tmp_path / "members.geojson"
    path.write_text(json.dumps(document))
    result = run_cli("import", str(path))
    assert result.exit_code == 1 and "WGS 84" in result.output
    assert pseudonyms(fresh_db_url) == set()
    regions = tmp_path / "regions.geojson"
    document["features"][0]["geometry"] = {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    document["features"][0]["properties"] = {"iso": "DE-HH"}
    regions.write_text(json.dumps(document))
    result = run_cli("regions", "load", str(regions), "--code-field", "iso")
    assert result.exit_code == 1 and "WGS 84" in result.output


def test_regions_load_refuses_a_file_without_a_usable_polygon_and_keeps_the_old(
        run_cli, fresh_db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.geojson"
    square = [[[9.7, 53.4], [10.3, 53.4], [10.3, 53.7], [9.7, 53.7], [9.7, 53.4]]]
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"iso": "DE-HH", "name": "Hamburg"},
         "geometry": {"type": "Polygon", "coordinates": square}}]}))
    assert run_cli("regions", "load", str(good), "--code-field", "iso",
                   "--name-field", "name").exit_code == 0
    flat = tmp_path / "flat.geojson"
    flat.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"iso": "DE-HH"},
         "geometry": {"type": "Polygon", "coordinates": [[[10, 53.5], [10, 53.5], [10, 53.5],
                                                          [10, 53.5]]]}}]}))
    result = run_cli("regions", "load", str(flat), "--code-field", "iso")
    assert result.exit_code == 1 and "no usable polygon" in result.output
    empty = tmp_path / "empty.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert run_cli("regions", "load", str(empty), "--code-field", "iso").exit_code == 1
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        parts = conn.execute(text("SELECT count(*) FROM region_parts WHERE code = 'DE-HH'"))
        assert parts.scalar_one() > 0
    engine.dispose()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=400),
    st.lists(st.text(max_size=40), max_size=12).map(lambda cells: (
        HEADER + ",".join(cells) + "\n" + GOOD).encode("utf-8", "surrogatepass")),
))
def test_any_bytes_in_a_report_out(community_engine, community_deriver, data: bytes) -> None:
    for fmt in ("csv", "geojson"):
        try:
            records = importer.read_bytes(data, fmt)
        except importer.ImportFileError as exc:
            assert str(exc)
            continue
        with Session(community_engine) as session:
            validated = importer.validate(session, records, deriver=community_deriver)
            session.rollback()
        assert validated.rows == len(records)
        assert len(validated.errors) + len(validated.batch) == validated.rows


@pytest.fixture
def member_client(connection, tmp_path, session):
    app = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                WTF_CSRF_ENABLED=False))
    account_id, _member_id = add_member(session, "sea-gull")
    session.commit()
    client = app.test_client()
    sign_in(client, account_id)
    return client


@pytest.mark.parametrize("body,message", [
    ({"lat": 0, "lng": 0}, "(0, 0)"),
    ({"lat": 30.0, "lng": -40.0}, "km from land"),
    ({"lat": 10.0, "lng": 53.55}, "swapped"),
])
def test_location_api_refuses_implausible_points(member_client, body, message) -> None:
    response = member_client.put("/api/v1/me/location", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"] if isinstance(
        response.get_json().get("error"), dict) else message in json.dumps(response.get_json())
    allowed = member_client.put("/api/v1/me/location", json={**body, "allow_sea": True})
    assert allowed.status_code == 200


def test_sign_up_and_import_share_the_pseudonym_rule() -> None:
    for good in ("harbor-otter", "Anna M.", "Łukasz 2"):
        assert validators.pseudonym(good) == good
    for bad in ("ab", "x" * 41, "a<b>c", "tab\there", "nul\x00x"):
        with pytest.raises(validators.FieldError):
            validators.pseudonym(bad)
