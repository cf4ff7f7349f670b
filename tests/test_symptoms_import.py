"""Symptoms in `geomap import` (CSV column, GeoJSON list), `geomap demo` and `symptoms import`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from geomap.cli import main
from tests.test_import import write

HEADER = "pseudonym,lat,lng,conditions,symptoms\n"


@pytest.fixture
def run_cli(fresh_db_url: str, tmp_path: Path):
    """Run `geomap ...` against a fresh database with reference data and no members."""
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path / "data")}
    return lambda *args: CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def fresh_engine(fresh_db_url: str):
    engine = create_engine(fresh_db_url)
    yield engine
    engine.dispose()


def symptoms_of(engine) -> dict[str, list[str]]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.pseudonym, array_agg(t.hpo_id ORDER BY t.hpo_id) FROM members m "
            "JOIN member_symptoms s ON s.member_id = m.id JOIN hpo_terms t ON t.id = s.term_id "
            "GROUP BY 1")).all()
    return dict(rows)


def test_csv_symptoms_are_validated_per_row(run_cli, fresh_engine, tmp_path: Path) -> None:
    rows = (
        "good-gull,53.55,9.99,all,HP:0012378; HP:0002653\n"
        "no-symptoms,53.55,9.99,all,\n"
        "bad-id,53.55,9.99,all,HP:0012378;fatigue\n"
        "not-a-term,53.55,9.99,all,HP:9999999\n"
        "too-many,53.55,9.99,all," + ";".join(f"HP:{i:07d}" for i in range(1, 60)) + "\n"
    )
    result = run_cli("import", "--no-publish", str(write(tmp_path, "m.csv", HEADER + rows)))
    assert result.exit_code == 1
    assert "line 4: symptoms must be HPO ids such as HP:0012378" in result.output
    assert "fatigue" not in result.output
    assert "line 5: unknown symptom HP:9999999 (not a phenotype term)" in result.output
    assert "line 6: at most 50 symptoms per member" in result.output
    assert symptoms_of(fresh_engine) == {"good-gull": ["HP:0002653", "HP:0012378"]}
    with fresh_engine.connect() as conn:  # imported symptoms never opt anyone in
        assert conn.execute(text("SELECT count(*) FROM symptom_matching")).scalar_one() == 0


def test_geojson_symptoms_may_be_a_list(run_cli, fresh_engine, tmp_path: Path) -> None:
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [9.99, 53.55]},
         "properties": {"pseudonym": "list-lynx", "conditions": ["all"],
                        "symptoms": ["HP:0001945", "hp:0012378"]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [9.99, 53.55]},
         "properties": {"pseudonym": "bad-list", "conditions": ["all"], "symptoms": [12.5]}},
    ]}
    result = run_cli("import", "--no-publish",
                     str(write(tmp_path, "m.geojson", json.dumps(collection))))
    assert "features[1]: symptoms must be HPO ids" in result.output
    assert "12.5" not in result.output  # a value that could be a coordinate is never echoed
    assert symptoms_of(fresh_engine) == {"list-lynx": ["HP:0001945", "HP:0012378"]}


def test_demo_members_get_plausible_symptoms(run_cli, fresh_engine) -> None:
    assert run_cli("symptoms", "import").output.strip() == "Symptoms vocabulary already loaded."
    result = run_cli("demo", "--members", "400", "--seed", "3", "--no-publish")
    assert result.exit_code == 0, result.output
    with fresh_engine.connect() as conn:
        with_symptoms, opted, avg = conn.execute(text(
            "SELECT count(DISTINCT s.member_id), (SELECT count(*) FROM soulmate_profiles), "
            "count(*)::float / count(DISTINCT s.member_id) FROM member_symptoms s")).one()
        # Multiple sclerosis demo members report MS symptoms (or their parents).
        ms_terms = set(conn.execute(text(
            "SELECT DISTINCT t.name FROM member_symptoms s JOIN hpo_terms t ON t.id = s.term_id "
            "JOIN member_conditions mc ON mc.member_id = s.member_id JOIN conditions c "
            "ON c.id = mc.condition_id AND c.slug = 'multiple-sclerosis'")).scalars())
    assert with_symptoms > 350
    assert 0.4 * with_symptoms < opted < 0.8 * with_symptoms
    assert 2 <= avg <= 12
    assert ms_terms & {"Spasticity", "Paresthesia", "Diplopia", "Muscle weakness",
                       "Depression", "CNS demyelination", "Emotional lability"}
