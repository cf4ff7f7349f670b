"""`geomap import` on a real PostGIS: good files, bad rows, all-or-nothing, GeoJSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from geomap.cli import main

HEADER = "pseudonym,lat,lng,city,country,conditions,role,visibility,contactable,joined_at\n"
GOOD_ROWS = (
    "harbor-otter,53.5511,9.9937,,,all;aml,patient,map,true,2025-03-01\n"
    "quiet-lark,,,Lyon,FR,all,carer,country,no,2024-12-24T10:00:00Z\n"
    "bold-finch,-33.8688,151.2093,,,multiple-sclerosis,,,,\n"
)


@pytest.fixture
def run_cli(fresh_db_url: str, tmp_path: Path):
    """Run `geomap ...` against a fresh database with reference data and no members."""
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


@pytest.fixture
def fresh_engine(fresh_db_url: str):
    engine = create_engine(fresh_db_url)
    yield engine
    engine.dispose()


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def members(engine) -> dict[str, tuple]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.pseudonym, m.role, m.visibility, m.contactable, "
                "to_char(m.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ml.country_code, "
                "array_agg(c.slug ORDER BY c.slug) FROM members m "
                "JOIN member_locations ml ON ml.member_id = m.id "
                "JOIN member_conditions mc ON mc.member_id = m.id "
                "JOIN conditions c ON c.id = mc.condition_id GROUP BY 1, 2, 3, 4, 5, 6"
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def publish_runs(engine) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM publish_runs")).scalar_one()


def test_a_good_csv_is_imported_and_published(run_cli, fresh_engine, tmp_path: Path) -> None:
    result = run_cli("import", str(write(tmp_path, "members.csv", HEADER + GOOD_ROWS)))
    assert result.exit_code == 0, result.output
    assert "Imported 3 of 3 rows (0 rejected)" in result.output
    assert "members/s" not in result.output  # no rate for three rows ("1 members/s")
    assert "Published version 1" in result.output
    imported = members(fresh_engine)
    assert imported["harbor-otter"] == ("patient", "map", True, "2025-03-01", "DE", ["all", "aml"])
    assert imported["quiet-lark"] == ("carer", "country", False, "2024-12-24", "FR", ["all"])
    assert imported["bold-finch"][:3] == ("patient", "map", True)
    assert imported["bold-finch"][4:] == ("AU", ["multiple-sclerosis"])
    assert publish_runs(fresh_engine) == 1


def test_bad_rows_are_reported_by_line_without_coordinates(run_cli, fresh_engine,
                                                            tmp_path: Path) -> None:
    bad = (
        "far-north,95.123456,9.987654,,,all,,,,\n"  # line 5
        "no-number,abc,9.5,,,all,,,,\n"
        "wide-east,45.5,181.75,,,all,,,,\n"
        ",45.5,9.5,,,all,,,,\n"
        "no-place,,,,,all,,,,\n"
        "wizard,45.5,9.5,,,all,wizard,,,\n"
        "shy,45.5,9.5,,,all,,secret,,\n"
        "maybe,45.5,9.5,,,all,,,perhaps,\n"
        "someday,45.5,9.5,,,all,,,,next week\n"
        "short,45.5\n"
        "half-there,45.5,,,,all,,,,\n"  # line 15
    )
    path = write(tmp_path, "members.csv", HEADER + GOOD_ROWS + bad)
    result = run_cli("import", str(path))
    assert result.exit_code == 1
    errors = [line.split(": ", 1)[1] for line in result.output.splitlines()
              if line.startswith(str(path))]
    assert errors == [
        "line 5: latitude out of range (-90 to 90)",
        "line 6: latitude is not a number",
        "line 7: longitude out of range (-180 to 180)",
        "line 8: pseudonym is missing",
        "line 9: no location: give lat and lng, or city and country",
        "line 10: role must be one of patient, relative, carer, professional, researcher, "
        "organisation",
        "line 11: visibility must be one of map, country, hidden",
        "line 12: contactable must be true or false (or yes/no, 1/0)",
        "line 13: joined_at must be an ISO 8601 date or date-time",
        "line 14: wrong number of fields",
        "line 15: longitude is missing (lat and lng go together)",
    ]
    assert "95.12" not in result.output and "181.75" not in result.output
    assert "Imported 3 of 14 rows (11 rejected)" in result.output
    assert set(members(fresh_engine)) == {"harbor-otter", "quiet-lark", "bold-finch"}


def test_a_row_bad_in_several_columns_gets_the_first_reason_and_frees_its_pseudonym(
    run_cli, fresh_engine, tmp_path: Path
) -> None:
    """Columns are checked in a fixed order, each distinct value once.

    Conditions, then role, visibility, contactable; a rejected row's pseudonym stays
    free for a later row.
    """
    rows = (
        "twice-bad,45.5,9.5,,,flu-of-the-week,wizard,,perhaps,\n"  # line 5
        "role-and-more,45.5,9.5,,,all,wizard,secret,perhaps,\n"
        "seen-and-more,45.5,9.5,,,all,,secret,perhaps,\n"
        "twice-bad,46.5,9.5,,,all,,,,\n"  # the same pseudonym, this time good
    )
    path = write(tmp_path, "members.csv", HEADER + GOOD_ROWS + rows)
    result = run_cli("import", "--no-publish", str(path))
    errors = [line.split(": ", 1)[1] for line in result.output.splitlines()
              if line.startswith(str(path))]
    assert errors == [
        "line 5: unknown condition 'flu-of-the-week'",
        "line 6: role must be one of patient, relative, carer, professional, researcher, "
        "organisation",
        "line 7: visibility must be one of map, country, hidden",
    ]
    assert "Imported 4 of 7 rows (3 rejected)" in result.output
    assert "twice-bad" in members(fresh_engine)


def test_all_or_nothing_imports_nothing_when_a_row_is_bad(run_cli, fresh_engine,
                                                          tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", HEADER + GOOD_ROWS + "bad,91,0,,,all,,,,\n")
    result = run_cli("import", "--all-or-nothing", str(path))
    assert result.exit_code == 1
    assert "line 5: latitude out of range" in result.output
    assert "Nothing imported: 1 of 4 rows are bad" in result.output
    assert members(fresh_engine) == {}
    assert publish_runs(fresh_engine) == 0


def test_all_or_nothing_imports_everything_when_all_rows_are_good(run_cli, fresh_engine,
                                                                  tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", HEADER + GOOD_ROWS)
    result = run_cli("import", "--all-or-nothing", "--no-publish", str(path))
    assert result.exit_code == 0, result.output
    assert len(members(fresh_engine)) == 3
    assert publish_runs(fresh_engine) == 0
    # It says when the members do reach the maps (a running server's schedule).
    assert "Not published now (--no-publish): " in result.output
    assert "`geomap publish` does it now." in result.output


def test_unknown_condition_slug_is_rejected(run_cli, fresh_engine, tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv",
                 HEADER + "calm-heron,48.85,2.35,,,all;flu-of-the-week,,,,\n")
    result = run_cli("import", "--no-publish", str(path))
    assert result.exit_code == 1
    assert "line 2: unknown condition 'flu-of-the-week'" in result.output
    assert members(fresh_engine) == {}


def test_duplicate_pseudonyms_in_the_file_and_in_the_database(run_cli, fresh_engine,
                                                              tmp_path: Path) -> None:
    first = write(tmp_path, "first.csv", HEADER + GOOD_ROWS + "Harbor-Otter,48.1,11.5,,,all,,,,\n")
    result = run_cli("import", "--no-publish", str(first))
    assert "line 5: pseudonym repeats line 2" in result.output
    assert len(members(fresh_engine)) == 3
    again = write(tmp_path, "again.csv", HEADER + GOOD_ROWS.splitlines()[0] + "\n")
    result = run_cli("import", "--no-publish", str(again))
    assert result.exit_code == 1
    assert "line 2: pseudonym is taken already" in result.output
    assert "was the file imported before?" in result.output
    assert len(members(fresh_engine)) == 3
    # Some rows taken (two exports overlapping) is no sign of a repeated file.
    overlap = write(tmp_path, "overlap.csv", HEADER + GOOD_ROWS.splitlines()[0] + "\n"
                    + "new-heron,48.85,2.35,,,all,,,,\n")
    result = run_cli("import", "--no-publish", str(overlap))
    assert "line 2: pseudonym is taken already" in result.output
    assert "imported before" not in result.output
    assert len(members(fresh_engine)) == 4


def test_geojson_features_are_imported_and_bad_ones_reported_by_index(
    run_cli, fresh_engine, tmp_path: Path
) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [9.9937, 53.5511]},
             "properties": {"pseudonym": "sunny-wren", "conditions": ["all", "cll"],
                            "contactable": False, "joined_at": "2025-01-02"}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [9.99, 93.5]},
             "properties": {"pseudonym": "too-north", "conditions": "all"}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
             "properties": {"pseudonym": "a-line", "conditions": "all"}},
            {"type": "Feature", "geometry": None,
             "properties": {"pseudonym": "by-city", "city": "Lyon", "country": "fr",
                            "conditions": "aml", "visibility": "hidden"}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
             "properties": None},
        ],
    }
    path = write(tmp_path, "members.geojson", json.dumps(collection))
    result = run_cli("import", str(path))
    assert result.exit_code == 1
    assert f"{path}: features[1]: latitude out of range (-90 to 90)" in result.output
    assert f"{path}: features[2]: geometry must be a Point with two coordinates" in result.output
    assert f"{path}: features[4]: the feature has no properties object" in result.output
    assert "93.5" not in result.output
    imported = members(fresh_engine)
    assert imported["sunny-wren"] == ("patient", "map", False, "2025-01-02", "DE", ["all", "cll"])
    assert imported["by-city"][1] == "hidden" and imported["by-city"][4] == "FR"
    assert publish_runs(fresh_engine) == 1


def test_a_file_without_location_columns_is_refused(run_cli, tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "pseudonym,conditions\nx,all\n")
    result = run_cli("import", str(path))
    assert result.exit_code == 1
    assert "the header needs lat and lng, or city and country" in result.output


def test_joined_at_read_in_one_go_equals_row_by_row() -> None:
    """Canonical times parsed by numpy give what the per-row validator gives, errors too."""
    from datetime import UTC, datetime

    from geomap.ingest import validators
    from geomap.ingest.importer import _joined_micros
    from geomap.ingest.validators import FieldError

    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    cells = ["2025-05-07T02:49:10Z", "2027-01-01T00:00:00Z", "2025-02-30T00:00:00Z",
             "2025-05-07", "", "2025-05-07T02:49:10+02:00", "not a date", "2024-02-29T23:59:59Z",
             "+2025-05-07T02:49:1Z"]
    reasons: list[str | None] = [None] * len(cells)
    micros = _joined_micros(cells, now, reasons)
    for i, cell in enumerate(cells):
        try:
            expected = validators.joined_at(cell, now) if cell else now
            assert reasons[i] is None
            assert micros[i] == round(expected.timestamp() * 1e6)
        except FieldError as exc:
            assert reasons[i] == str(exc).rstrip(".")
