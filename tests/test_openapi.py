"""The OpenAPI document: served, complete, and honoured by a live server under schemathesis.

schemathesis (from PyPI) reads /api/v1/openapi.json from a live test server and calls
every operation with bounded, seeded examples (valid and invalid), signed in as a
member who lists symptoms and takes part in matching; the run fails on any 5xx and
on any answer the document does not describe. Its figures (operations, requests,
failures) are printed (``pytest -s``) and written to ``<tmp>/schemathesis.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from geomap import create_app
from geomap.session import session_scope
from tests.conftest import LiveServer, app_config
from tests.members_helpers import sign_in
from tests.symptoms_helpers import BONE_PAIN, FATIGUE, FEVER, member_with_symptoms

MAX_EXAMPLES = int(os.environ.get("GEOMAP_SCHEMATHESIS_EXAMPLES", "15"))
SEED = 20261130
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


@pytest.fixture
def member_server(fresh_db_url, tmp_path):
    """A live server over a fresh database, with a session cookie of a member there."""
    engine = create_engine(fresh_db_url)
    with session_scope(engine) as session:
        # Both list symptoms and take part in matching, so the symptoms routes and
        # /api/v1/soulmates answer 200 (not only 409) to the signed-in one.
        account_id, _ = member_with_symptoms(session, "contract-heron", [BONE_PAIN, FATIGUE],
                                             lat=53.55, lng=10.0)
        member_with_symptoms(session, "contract-otter", [BONE_PAIN, FEVER], lat=52.5, lng=13.4)
    engine.dispose()
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False,
                                TESTING=False))
    client = app.test_client()
    sign_in(client, account_id)
    client.get("/settings")
    cookie = client.get_cookie("session")
    with LiveServer(app) as server:
        yield server, cookie.value


def test_the_document_is_openapi_31_and_covers_every_api_route(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    api_rules = {
        rule.rule for rule in client.application.url_map.iter_rules()
        if (rule.rule.startswith("/api/v1/") or rule.rule == "/oembed")
        and rule.endpoint not in ("openapi.document", "openapi.reference_page")
    }
    documented = set(document["paths"])
    for rule in api_rules:
        path = re.sub(r"<(?:[^>]*:)?([^>:]+)>", r"{\1}", rule)
        assert path in documented, f"{rule} is not in the OpenAPI document"
    cells = document["paths"]["/api/v1/conditions/{slug}/cells"]["get"]
    zoom = next(p for p in cells["parameters"] if p["name"] == "zoom")
    assert zoom["schema"]["minimum"] == 0 and zoom["schema"]["maximum"] == 18
    assert "application/geo+json" in cells["responses"]["200"]["content"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["error"]
    assert document["paths"]["/api/v1/nearby"]["get"]["security"] == [{"session": []}]


def test_the_reference_page_is_self_hosted(client) -> None:
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "https://" not in html and "<script>" not in html
    bundle = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200


def test_requests_are_validated_against_the_contract(client) -> None:
    response = client.get("/api/v1/conditions/all/cells?zoom=19")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "zoom must be at most 18."
    response = client.get("/api/v1/conditions/all/regions?level=planet")
    assert response.status_code == 400 and "level" in response.get_json()["error"]["message"]


def test_schemathesis_finds_no_5xx_and_no_mismatch(member_server, tmp_path) -> None:
    server, cookie = member_server
    report = tmp_path / "schemathesis.json"
    config = tmp_path / "schemathesis.toml"
    # The member's session cookie is the document's "session" security scheme, so
    # schemathesis also tries each member operation without it (and expects a 401).
    # oEmbed 1.0 prescribes 501 for an unsupported format.
    config.write_text(
        f'[auth.openapi.session]\napi_key = "{cookie}"\n\n'
        '[[operations]]\ninclude-path = "/oembed"\n'
        'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "501"]\n')
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
        f"{server.url}/api/v1/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-deterministic",
        "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "60",
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
    ]
    # Run in tmp_path: schemathesis keeps a .schemathesis/ cache in its working folder.
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=tmp_path,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, check=False)
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    if report.exists():
        print(json.dumps(json.loads(report.read_text()).get("summary", {}), indent=1)[:2000])
