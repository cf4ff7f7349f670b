"""Set-up shared by the bench scripts: cluster, reference data, members, server, load.

Every bench starts its own embedded PostGIS cluster in a temporary folder on a free port
(127.0.0.1 only) and destroys it at the end (under /var/lib/geomap too, when run as
root), serves geomap with the gunicorn options of ``geomap serve --prod``, and drives it
with ``wrk`` (Debian package) over the same tile-aligned viewports the map asks for.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import multiprocessing
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geomap import embedded_pg  # noqa: E402
from geomap.config import load_settings  # noqa: E402
from geomap.session import session_scope  # noqa: E402

MAP_PX = (1400, 900)  # browser map size the viewports are cut for
K, FLOOR = 5, 5
SLUG = "all"


# --- reporting -------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a result table."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None


ROWS: list[Row] = []


def report(name: str, value: str, target: str = "", met: bool | None = None) -> None:
    """Print one measured figure now and keep it for the final table."""
    ROWS.append(Row(name, value, target, met))
    mark = "" if met is None else ("  ok" if met else "  MISSED")
    print(f"  {name}: {value}{'  (target ' + target + ')' if target else ''}{mark}", flush=True)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Return the ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- database ------------------------------------------------------------------------


def database_exists(cluster: embedded_pg.Cluster, name: str) -> bool:
    """Return whether the cluster has a database called ``name``."""
    admin = create_engine(make_url(cluster.url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                {"name": name}).first() is not None
    finally:
        admin.dispose()


def start_cluster(workdir: Path, database: str = "geomap_bench", *, port: int | None = None,
                  keep: bool = False) -> tuple[embedded_pg.Cluster, str]:
    """Start an embedded cluster under ``workdir`` and create ``database``; return its URL.

    With ``keep``, an existing ``database`` is kept as it is (a kept bench data set).
    """
    settings = load_settings({"GEOMAP_DATA_DIR": str(workdir / "data"),
                              "GEOMAP_DB_PORT": str(port or free_port())})
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    if keep:
        if database_exists(cluster, database):
            return cluster, make_url(cluster.url).set(database=database).render_as_string(
                hide_password=False)
    return cluster, create_database(cluster, database)


def create_database(cluster: embedded_pg.Cluster, name: str, template: str | None = None) -> str:
    """Create (or re-create) database ``name`` on ``cluster``; return its URL."""
    admin = create_engine(make_url(cluster.url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    admin.dispose()
    return make_url(cluster.url).set(database=name).render_as_string(hide_password=False)


def drop_database(cluster: embedded_pg.Cluster, name: str) -> None:
    """Drop database ``name`` on ``cluster`` (closing its connections)."""
    admin = create_engine(make_url(cluster.url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def bench_cluster(workdir: Path) -> Iterator[embedded_pg.Cluster]:
    """Run an embedded cluster for the bench; destroy it (data folder included) at the end."""
    settings = load_settings({"GEOMAP_DATA_DIR": str(workdir / "data"),
                              "GEOMAP_DB_PORT": str(free_port())})
    cluster = embedded_pg.cluster_for(settings)
    try:
        embedded_pg.start(cluster)
        yield cluster
    finally:
        embedded_pg.destroy(cluster)


def prepare_reference(engine: Engine) -> None:
    """Migrate ``engine``'s database and load the offline places and countries.

    Stores the key deriver's prepared structures too, as ``geomap geo import`` does,
    so that a measured run loads them instead of computing them (seconds of CPU).
    """
    from geomap.geo import reference
    from geomap.migrate import upgrade

    upgrade(engine)
    with session_scope(engine) as session:
        reference.import_places(session)
        reference.import_countries(session)
        store_prepared(session)


def store_prepared(session: Session) -> None:
    """Compute and store the key deriver's prepared structures (as ``geomap geo import``)."""
    from geomap.geo import prepared
    from geomap.geo.derive import COAST_KM

    prepared.store(session, prepared.compute(session, COAST_KM))


def import_members(engine: Engine, members: int, seed: int = 1) -> tuple[float, float]:
    """Load ``members`` synthetic members as ``geomap demo`` does (generate, derive, COPY).

    Returns (seconds end to end, seconds generating).
    """
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo
    from geomap.ingest.members_bulk import load_members

    started = time.perf_counter()
    with session_scope(engine) as session:
        batch, prefixes = demo.generate(session, members, seed=seed)
        generated = time.perf_counter()
        deriver = KeyDeriver(session, FLOOR)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
    return time.perf_counter() - started, generated - started


def change_one_percent(engine: Engine) -> None:
    """Change 1% of the members: every 200th moves to another's place, every 200th hides."""
    with session_scope(engine) as session:
        session.execute(text(
            "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
            "FROM member_locations o WHERE ml.member_id % 200 = 11 "
            "AND o.member_id = ml.member_id + 7919"))
        session.execute(text(
            "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
            "ELSE 'map' END WHERE id % 200 = 13"))


# --- web server ------------------------------------------------------------------------

SERVER = """
import sys
from pathlib import Path
from geomap.wsgi_server import (GeomapServer, control_socket_path, gunicorn_options,
                                preload_modules, tune_malloc)
tune_malloc()
preload_modules()
port = int(sys.argv[1])
options = gunicorn_options("127.0.0.1", port, int(sys.argv[2]),
                           control_socket_path(Path(sys.argv[3]), "127.0.0.1", port))
options.update(accesslog=None, errorlog="-", loglevel="warning", graceful_timeout=5)
GeomapServer(options).run()
"""


def start_server(url: str, workdir: Path, port: int, workers: int,
                 **settings: str) -> subprocess.Popen:
    """Serve ``url`` with gunicorn (``geomap serve --prod`` options, no access log)."""
    data = workdir / "data"
    env = dict(os.environ, GEOMAP_DATABASE_URL=url, GEOMAP_DATA_DIR=str(data),
               GEOMAP_SECRET_KEY="bench",  # noqa: S106
               GEOMAP_PUBLISH_INTERVAL="0",
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR), **settings)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(workers), str(data)],
        env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not come up: " + proc.stderr.read().decode()[-2000:])


def stop_process(proc: subprocess.Popen | None) -> None:
    """Terminate a server we started (SIGTERM, then SIGKILL after 20 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mb(pid: int) -> float:
    """Return the resident set of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_rss_mb(server: subprocess.Popen) -> float:
    """Return the largest resident set of the gunicorn workers (children of the server)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    sizes = [rss_mb(int(pid)) for pid in children]
    return max(sizes) if sizes else float("nan")


# --- viewports -------------------------------------------------------------------------

Viewport = tuple[int, tuple[float, float, float, float]]


def request_box(lat: float, lng: float, zoom: int) -> tuple[float, ...]:
    """Return the tile-aligned box static/geomap/map.js asks for at this centre and zoom."""
    width = 360.0 * MAP_PX[0] / (256 * 2**zoom)
    height = min(170.0, 360.0 * MAP_PX[1] / (256 * 2**zoom) * max(math.cos(math.radians(lat)),
                                                                   0.2))
    step = 360.0 / 2 ** max(zoom - 1, 0)
    west = math.floor((lng - width / 2) / step) * step
    east = math.ceil((lng + width / 2) / step) * step
    south = max(-90.0, math.floor((lat - height / 2) / step) * step)
    north = min(90.0, math.ceil((lat + height / 2) / step) * step)
    if east - west >= 360:
        west, east = -180.0, 180.0
    return (round(west, 6), round(south, 6), round(east, 6), round(north, 6))


def viewports(engine: Engine, count: int, zooms: tuple[int, int] = (2, 10),
              seed: int = 3) -> list[Viewport]:
    """Distinct (zoom, box) pairs at ``zooms`` centred where members are."""
    with engine.connect() as conn:
        centres = conn.execute(text(
            "SELECT lat, lng FROM published_cells p JOIN conditions c ON c.id = p.condition_id "
            "WHERE c.slug = :slug AND p.resolution = 4 ORDER BY p.cell"), {"slug": SLUG}).all()
    rng = random.Random(seed)
    seen: set[Viewport] = set()
    for _ in range(count * 20):
        zoom = rng.randint(*zooms)
        lat, lng = rng.choice(centres)
        lat += rng.uniform(-2, 2)
        lng += rng.uniform(-2, 2)
        seen.add((zoom, request_box(lat, lng, zoom)))
        if len(seen) >= count:
            break
    return sorted(seen)


def _tile_range(zoom: int, box: tuple[float, ...]) -> Iterator[tuple[int, int]]:
    west, south, east, north = box
    n = 2**zoom

    def x_of(lng: float) -> int:
        return min(n - 1, max(0, int((lng + 180.0) / 360.0 * n)))

    def y_of(lat: float) -> int:
        lat = max(-85.0511, min(85.0511, lat))
        rad = math.radians(lat)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)))

    for x in range(x_of(west), x_of(east - 1e-9) + 1):
        for y in range(y_of(north), y_of(south) + 1):
            yield x, y


def geomap_urls(kind: str, viewport: Viewport, version: int | None = None,
                jitter: int = 0) -> list[str]:
    """Return the geomap request paths that answer one viewport.

    ``kind`` "cells": one request to the bbox cells API (``jitter`` > 0 shifts the box by
    ``jitter`` micro-degrees: the same markers, a different cache key, so a cache miss).
    ``kind`` "tiles": one request per map tile covering the box,
    ``/tiles/<slug>/<version>/<z>/<x>/<y>.json`` (the tile route of the lean read path).
    """
    zoom, box = viewport
    if kind == "cells":
        shifted = [round(v + jitter * 1e-6, 6) for v in box]
        return [f"/api/v1/conditions/{SLUG}/cells?zoom={zoom}&bbox={','.join(map(str, shifted))}"]
    if kind == "tiles":
        return [f"/tiles/{SLUG}/{version}/{zoom}/{x}/{y}.json" for x, y in _tile_range(zoom, box)]
    raise ValueError(f"unknown geomap URL kind {kind!r}: cells or tiles")


# --- HTTP load -------------------------------------------------------------------------


def timed_gets(port: int, paths: list[str]) -> tuple[list[float], int, int]:
    """GET each path on one keep-alive connection; return latencies (s), errors, bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors, size = [], 0, 0
    for path in paths:
        started = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                errors += 1
            size += len(body)
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies, errors, size


def _client(args: tuple[int, list[str], float]) -> tuple[list[float], int]:
    port, paths, until = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors, i = [], 0, 0
    while time.time() < until:
        started = time.perf_counter()
        try:
            conn.request("GET", paths[i % len(paths)])
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append(time.perf_counter() - started)
        i += 1
    conn.close()
    return latencies, errors


def python_load(port: int, paths: list[str], seconds: float) -> tuple[float, float, int]:
    """Run 8 keep-alive clients in processes for ``seconds``; return req/s, p99 ms, errors."""
    until = time.time() + seconds
    shuffled = [paths[i::8] + paths[:i:8] for i in range(8)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.map(_client, [(port, p, until) for p in shuffled])
    latencies = [lat for lats, _ in results for lat in lats]
    return (len(latencies) / seconds, percentile(latencies, 99) * 1e3,
            sum(e for _, e in results))


@dataclass
class Load:
    """What one wrk run measured."""

    rate: float  # requests per second
    p50: float  # ms
    p99: float  # ms
    errors: int  # socket errors and non-2xx answers


# Each thread walks the paths from its own offset; with a jitter prefix the box of each
# round is shifted by one more micro-degree (same markers, new cache key: a miss).
WRK_SCRIPT = """
paths = {%(paths)s}
boxes = {%(boxes)s}
jitter = %(jitter)s
threads_started = 0
setup = function(thread)
  thread:set("offset", threads_started)
  threads_started = threads_started + 1
end
counter = 0
request = function()
  counter = counter + 1
  local i = (counter + offset * 7919) %% #paths + 1
  if jitter then
    local round = math.floor(counter / #paths) * 16 + offset + 1
    local b = boxes[i]
    return wrk.format("GET", string.format("%%s%%.6f,%%.6f,%%.6f,%%.6f", paths[i],
      b[1] + round * 1e-6, b[2] + round * 1e-6, b[3] + round * 1e-6, b[4] + round * 1e-6))
  end
  return wrk.format("GET", paths[i])
end
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk_load(port: int, paths: list[str], seconds: float, workdir: Path, connections: int = 8,
             boxes: list[tuple[float, ...]] | None = None) -> Load:
    """Run wrk against 127.0.0.1:``port`` cycling through ``paths``; return what it measured.

    With ``boxes``, each path is a prefix ending in ``bbox=`` and every request appends
    its box shifted by a new micro-degree (uncached requests).
    """
    script = workdir / f"wrk-{port}-{connections}.lua"
    script.write_text(WRK_SCRIPT % {
        "paths": ", ".join(f'"{p}"' for p in paths),
        "boxes": ", ".join("{" + ", ".join(repr(v) for v in b) + "}" for b in boxes or []),
        "jitter": "true" if boxes else "false",
    })
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         "--latency", "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
    p99 = _ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(rate, p50, p99, errors + (int(non_2xx.group(1)) if non_2xx else 0))
