"""The public read path, measured: database round trips, Python CPU per request, worker RSS.

Runs against an existing geomap data folder (``GEOMAP_DATA_DIR`` with members published,
e.g. after ``geomap demo --members 200000``); its embedded cluster must be running.

    GEOMAP_DATA_DIR=... GEOMAP_DB_PORT=... .venv/bin/python bench/read_path.py [--port 5143]

1. Round trips: PostgreSQL's own statement log (``log_statement = all``, switched on for
   the run and off again) counts what reaches the server for one cache miss of the cells
   API: pre-pings, BEGIN/ROLLBACK and queries alike.
2. Python CPU per request (``time.thread_time``, the WSGI app called directly, no
   network): a cells cache miss, a cells cache hit and a tile cache hit; median of N.
   ``--profile`` prints cProfile's top functions of the miss.
3. Worker RSS: a real gunicorn (the options of ``geomap serve --prod``, one worker) on
   127.0.0.1 serves the map page, the cells API, the version document and tiles, the
   sign-in and sign-up pages; VmRSS of the worker after each.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text
from werkzeug.test import EnvironBuilder

CELLS = "/api/v1/conditions/all/cells?zoom=5&bbox=0,40,20,60"


def _statement_log(engine) -> Path:  # noqa: ANN001
    """Return the embedded cluster's log file (pg_ctl -l: the server's stderr)."""
    with engine.connect() as conn:
        data = conn.execute(text("SHOW data_directory")).scalar_one()
    return Path(data).parent / "postgresql.log"


def round_trips(app, engine) -> list[str]:  # noqa: ANN001
    """Return the statements one cells cache miss sends to PostgreSQL."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ALTER SYSTEM SET log_statement = 'all'"))
        conn.execute(text("SELECT pg_reload_conf()"))
    try:
        client = app.test_client()
        client.get(CELLS)  # connections opened, version read
        app.extensions["geomap.cells_cache"]._entries.clear()
        time.sleep(0.3)
        log = _statement_log(engine)
        before = log.stat().st_size
        client.get(CELLS.replace("bbox=0,40", "bbox=0,41"))
        time.sleep(0.5)
        with log.open("rb") as f:
            f.seek(before)
            lines = f.read().decode(errors="replace").splitlines()
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM RESET log_statement"))
            conn.execute(text("SELECT pg_reload_conf()"))
    # Simple queries log "statement: ...", extended-protocol ones "execute <unnamed>: ...".
    marks = ("statement: ", "execute <unnamed>: ")
    return [line.split(mark, 1)[1][:90] for line in lines for mark in marks if mark in line]


def python_ms(app, repeat: int, profile: bool) -> dict[str, float]:  # noqa: ANN001
    """Return the median thread CPU ms of a cells miss, a cells hit and a tile hit."""
    client = app.test_client()
    answer = client.get("/api/v1/conditions/all/version")
    tile = None
    if answer.status_code == 200:  # a checkout with tiles
        tile = f"/tiles/all/{answer.get_json()['publish_version']}/5/16/10.json"

    def call(path: str) -> float:
        environ = EnvironBuilder(path=path).get_environ()
        start = time.thread_time()
        body = b"".join(app(environ, lambda *a: None))
        elapsed = (time.thread_time() - start) * 1000
        assert body
        return elapsed

    figures: dict[str, float] = {}
    cache = app.extensions["geomap.cells_cache"]
    call(CELLS)
    misses = []
    profiler = cProfile.Profile() if profile else None
    for i in range(repeat):
        cache._entries.clear()
        if profiler:
            profiler.enable()
        misses.append(call(CELLS))
        if profiler:
            profiler.disable()
        del i
    figures["cells miss"] = statistics.median(misses)
    call(CELLS)
    figures["cells hit"] = statistics.median(call(CELLS) for _ in range(repeat * 10))
    if tile:
        call(tile)
        call(tile)
        figures["tile hit"] = statistics.median(call(tile) for _ in range(repeat * 10))
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return figures


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_rss(port: int) -> list[tuple[str, int]]:
    """Start gunicorn with one worker, serve the pages, return (after what, VmRSS kB)."""
    code = ("from geomap.wsgi_server import run_gunicorn; "
            f"run_gunicorn('127.0.0.1', {port}, 1)")
    master = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    figures = []
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=2).read()  # noqa: S310 (http://127.0.0.1 only)
                break
            except OSError:
                time.sleep(0.1)
        children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        worker = int(children[0])
        figures.append(("started", _rss_kb(worker)))
        version = None
        for label, path in [
            ("map page", "/conditions/all/map"),
            ("cells API", CELLS),
            ("version document", "/api/v1/conditions/all/version"),
            ("tiles", None),
            ("sign-in and sign-up pages", "/login"),
            ("", "/signup"),
        ]:
            if path is None and version is None:
                continue
            if path is None:
                for z, x, y in [(2, 2, 1), (5, 16, 10), (5, 17, 10), (7, 66, 43)]:
                    urllib.request.urlopen(  # noqa: S310 (http://127.0.0.1 only)
                        f"{base}/tiles/all/{version}/{z}/{x}/{y}.json").read()
            else:
                try:
                    body = urllib.request.urlopen(base + path).read()  # noqa: S310 (http://127.0.0.1 only)
                except urllib.error.HTTPError:
                    continue  # a checkout without this route
                if "version" in path:
                    version = json.loads(body)["publish_version"]
            if label:
                figures.append((label, _rss_kb(worker)))
    finally:
        master.terminate()
        master.wait(timeout=30)
    return figures


def main() -> None:
    """Print the three measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("GEOMAP_PORT", 5143)))
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from geomap import create_app

    app = create_app()
    engine = create_engine(app.config["GEOMAP_DATABASE_URL_RESOLVED"])
    statements = round_trips(app, engine)
    print(f"round trips of one cells cache miss: {len(statements)}")
    for statement in statements:
        print(f"    {statement}")
    for name, ms in python_ms(app, args.repeat, args.profile).items():
        print(f"Python CPU, {name}: {ms:.3f} ms (median of runs)")
    for label, kb in worker_rss(args.port):
        print(f"worker VmRSS after {label}: {kb / 1024:.1f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
