"""geomap benchmark: import, publish, viewport API, raw PostGIS, page, browser, RSS.

One command (``make bench`` or ``.venv/bin/python bench/run.py --members N``) runs every
measurement side by side on its own embedded PostGIS cluster (temporary folder, free
port, 127.0.0.1 only) and prints a table. Nothing here is asserted: figures only.
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probes import FIRST_MARKERS_PROBE  # noqa: E402  (bench/ is on sys.path)

from geomap import embedded_pg  # noqa: E402
from geomap.config import load_settings  # noqa: E402
from geomap.privacy import map_resolution  # noqa: E402
from geomap.session import session_scope  # noqa: E402

CHROMIUM = os.environ.get("GEOMAP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
MAP_PX = (1400, 900)  # browser map size the viewports are cut for
K, FLOOR = 5, 5
SLUG = "all"


@dataclass
class Row:
    """One line of the result table."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None


ROWS: list[Row] = []


def report(name: str, value: str, target: str = "", met: bool | None = None) -> None:
    ROWS.append(Row(name, value, target, met))
    mark = "" if met is None else ("  ok" if met else "  MISSED")
    print(f"  {name}: {value}{'  (target ' + target + ')' if target else ''}{mark}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- database ------------------------------------------------------------------------


def start_cluster(workdir: Path) -> tuple[embedded_pg.Cluster, str]:
    settings = load_settings({"GEOMAP_DATA_DIR": str(workdir / "data"),
                              "GEOMAP_DB_PORT": str(free_port())})
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    admin = create_engine(make_url(cluster.url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE geomap_bench"))
    admin.dispose()
    url = make_url(cluster.url).set(database="geomap_bench").render_as_string(hide_password=False)
    return cluster, url


def prepare_reference(engine: Engine) -> None:
    from geomap.geo import reference
    from geomap.migrate import upgrade

    upgrade(engine)
    with session_scope(engine) as session:
        reference.import_places(session)
        reference.import_countries(session)


def bench_import(engine: Engine, members: int) -> None:
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo
    from geomap.ingest.members_bulk import load_members

    print(f"Import: {members:,} synthetic members (generate + derive + COPY) ...", flush=True)
    started = time.perf_counter()
    with session_scope(engine) as session:
        batch, prefixes = demo.generate(session, members, seed=1)
        generated = time.perf_counter()
        deriver = KeyDeriver(session, FLOOR)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
    seconds = time.perf_counter() - started
    rate = members / seconds
    report("import, end to end (members/s)", f"{rate:,.0f} ({seconds:.1f} s; generate "
           f"{generated - started:.1f} s)", ">= 100,000", rate >= 100_000)


def bench_file_import(engine: Engine, workdir: Path, rows: int) -> None:
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import importer

    rng = np.random.default_rng(5)
    path = workdir / "members.csv"
    with path.open("w") as out:
        out.write("pseudonym,lat,lng,conditions,role,visibility,contactable,joined_at\n")
        lats = rng.uniform(35, 60, rows)
        lngs = rng.uniform(-10, 30, rows)
        for i in range(rows):
            out.write(f"csv-{i},{lats[i]:.5f},{lngs[i]:.5f},all;aml,patient,map,true,"
                      "2025-05-01\n")
    started = time.perf_counter()
    records = importer.read_records(path)
    with session_scope(engine) as session:
        validated = importer.validate(session, records)
        imported = importer.import_members(session, validated, KeyDeriver(session, FLOOR))
    seconds = time.perf_counter() - started
    report(f"geomap import of a {rows:,}-row CSV (rows/s)",
           f"{imported / seconds:,.0f} ({seconds:.1f} s)")


def bench_publish(engine: Engine) -> None:
    from geomap.publish import publish, refresh_snapshots

    with session_scope(engine) as session:
        summary = publish(session, k=K, floor=FLOOR, full=True, snapshots=False)
    report("full publish (s)", f"{summary.seconds:.2f} ({summary.published_cells:,} markers)",
           "<= 15", summary.seconds <= 15)
    with session_scope(engine) as session:
        seconds = refresh_snapshots(session)
    report("private snapshots after a publish: admin counts + nearby index (s)",
           f"{seconds:.2f}", "", None)
    with session_scope(engine) as session:
        members = session.execute(text("SELECT count(*) FROM members")).scalar_one()
        # A 1% change: every hundredth member moves to where another member lives,
        # and every hundredth (another set) changes visibility.
        session.execute(text(
            "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
            "FROM member_locations o WHERE ml.member_id % 200 = 11 "
            "AND o.member_id = ml.member_id + 7919"))
        session.execute(text(
            "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
            "ELSE 'map' END WHERE id % 200 = 13"))
    with session_scope(engine) as session:
        summary = publish(session, k=K, floor=FLOOR, snapshots=False)
    report(f"incremental re-publish, 1% of {members:,} changed (s)",
           f"{summary.seconds:.2f} ({summary.kind}, {summary.rows_written:,} rows rewritten)",
           "<= 2", summary.seconds <= 2)


# --- web server ------------------------------------------------------------------------

SERVER = """
import sys
from geomap.wsgi_server import GeomapServer, gunicorn_options, limit_malloc_arenas
limit_malloc_arenas()
options = gunicorn_options("127.0.0.1", int(sys.argv[1]), int(sys.argv[2]))
options.update(accesslog=None, errorlog="-", loglevel="warning", graceful_timeout=5)
GeomapServer(options).run()
"""


def start_server(url: str, workdir: Path, port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ, GEOMAP_DATABASE_URL=url, GEOMAP_DATA_DIR=str(workdir / "data"),
               GEOMAP_SECRET_KEY="bench",  # noqa: S106
               GEOMAP_PUBLISH_INTERVAL="0",
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(workers)],
        env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
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


def viewports(engine: Engine, count: int) -> list[tuple[int, tuple[float, ...]]]:
    """Distinct (zoom, box) pairs at zooms 2..10 centred where members are."""
    with engine.connect() as conn:
        centres = conn.execute(text(
            "SELECT lat, lng FROM published_cells p JOIN conditions c ON c.id = p.condition_id "
            "WHERE c.slug = :slug AND p.resolution = 4 ORDER BY p.cell"), {"slug": SLUG}).all()
    rng = random.Random(3)
    seen: set[tuple[int, tuple[float, ...]]] = set()
    for _ in range(count * 20):
        zoom = rng.randint(2, 10)
        lat, lng = rng.choice(centres)
        lat += rng.uniform(-2, 2)
        lng += rng.uniform(-2, 2)
        seen.add((zoom, request_box(lat, lng, zoom)))
        if len(seen) >= count:
            break
    return sorted(seen)


def path_of(zoom: int, box: tuple[float, ...]) -> str:
    return f"/api/v1/conditions/{SLUG}/cells?zoom={zoom}&bbox={','.join(map(str, box))}"


def timed_gets(port: int, paths: list[str]) -> tuple[list[float], int, int]:
    """GET each path on one keep-alive connection; return latencies (s), errors, bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
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
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
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


WRK_SCRIPT = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


def wrk_load(port: int, paths: list[str], seconds: float,
             workdir: Path) -> tuple[float, float, int]:
    """Run wrk (8 connections, 2 threads) against 127.0.0.1; return req/s, p99 ms, errors."""
    script = workdir / "viewports.lua"
    script.write_text(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99, errors + (int(non_2xx.group(1)) if non_2xx else 0)


def bench_viewports(engine: Engine, port: int, count: int, seconds: float,
                    workdir: Path) -> float:
    boxes = viewports(engine, count)
    paths = [path_of(zoom, box) for zoom, box in boxes]
    cold, cold_errors, size = timed_gets(port, paths)
    report(f"viewport API, first request of {len(paths)} distinct viewports z2-10 "
           "(p50 / p95 ms)",
           f"{percentile(cold, 50) * 1e3:.2f} / {percentile(cold, 95) * 1e3:.2f} "
           f"({cold_errors} errors, {size / len(paths) / 1024:.1f} kB avg)")
    # Warm: what visitors mostly get (the same tile-aligned boxes, cached per worker).
    timed_gets(port, paths * 2)  # both workers see each box
    warm, warm_errors, _ = timed_gets(port, paths * 3)
    p50, p95 = percentile(warm, 50) * 1e3, percentile(warm, 95) * 1e3
    report("viewport API, single client, cached (p50 / p95 ms)", f"{p50:.2f} / {p95:.2f}",
           "<= 1 / <= 3", p50 <= 1 and p95 <= 3)
    if shutil.which("wrk"):
        rate, p99, errors = wrk_load(port, paths, seconds, workdir)
        tool = "wrk -c8"
    else:
        rate, p99, errors = python_load(port, paths, seconds)
        tool = "8 Python client processes"
    report(f"viewport API, 8 concurrent clients, {tool} (req/s, p99 ms, errors)",
           f"{rate:,.0f}, {p99:.1f}, {errors}", ">= 2,000, <= 15, 0",
           rate >= 2000 and p99 <= 15 and errors == 0)
    return percentile(cold, 50)


def bench_raw_postgis(engine: Engine, boxes: list[tuple[int, tuple[float, ...]]],
                      api_seconds: float) -> None:
    """Answer the same viewports by grouping raw points on the fly (ST_SnapToGrid)."""
    timings = []
    with engine.connect() as conn:
        for zoom, (west, south, east, north) in boxes:
            # Grid about one H3 cell edge of the zoom's map resolution, in degrees.
            edge_km = {0: 1281, 1: 483, 2: 183, 3: 69, 4: 26, 5: 10}[map_resolution(zoom, FLOOR)]
            size = edge_km / 111.32
            started = time.perf_counter()
            conn.execute(text(
                "SELECT ST_X(g), ST_Y(g), n FROM (SELECT ST_SnapToGrid(ml.location::geometry, "
                ":size) AS g, count(*) AS n FROM member_locations ml "
                "JOIN member_conditions mc ON mc.member_id = ml.member_id "
                "JOIN conditions c ON c.id = mc.condition_id AND c.slug = :slug "
                "JOIN members m ON m.id = ml.member_id AND m.visibility = 'map' "
                "WHERE ml.location::geometry && ST_MakeEnvelope(:w, :s, :e, :n, 4326) "
                "GROUP BY 1) grid"),
                {"size": size, "slug": SLUG, "w": west, "s": south, "e": east, "n": north},
            ).all()
            timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    report(f"raw PostGIS ST_SnapToGrid, same viewports ({len(boxes)}; median ms)",
           f"{median * 1e3:,.0f} = {median / api_seconds:,.0f}x the API's uncached p50")


# --- pages and browsers ------------------------------------------------------------------


def bench_page(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/conditions/{SLUG}/map")
    body = conn.getresponse().read()
    report("map page HTML (kB)", f"{len(body) / 1024:.1f}", "<= 50", len(body) <= 50 * 1024)


def bench_browser(port: int, workdir: Path, folium_points: int) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        report("first markers in Chromium", f"skipped: {CHROMIUM} missing")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        firsts, polled = [], []
        for _ in range(5):
            context = browser.new_context(viewport={"width": MAP_PX[0], "height": MAP_PX[1]})
            context.add_init_script(FIRST_MARKERS_PROBE)
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/conditions/{SLUG}/map", wait_until="commit")
            page.wait_for_function("() => window.__geomapFirstMarkers !== undefined",
                                   timeout=30_000)
            firsts.append(page.evaluate("window.__geomapFirstMarkers"))
            polled.append(page.evaluate("performance.now()"))
            context.close()
        first = statistics.median(firsts)
        report("first markers in headless Chromium, cold cache (median of 5, ms from "
               "navigation start to the first frame with markers)",
               f"{first:,.0f} (page idle after {statistics.median(polled):,.0f})", "<= 300",
               first <= 300)
        path = folium_page(workdir, folium_points)
        size = path.stat().st_size
        context = browser.new_context(viewport={"width": MAP_PX[0], "height": MAP_PX[1]})
        page = context.new_page()
        blocked: list[str] = []

        def only_local(route) -> None:  # noqa: ANN001
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        started = time.perf_counter()
        page.goto(path.as_uri(), wait_until="commit", timeout=300_000)
        page.wait_for_selector(".marker-cluster", timeout=300_000)
        render = (time.perf_counter() - started) * 1e3
        context.close()
        browser.close()
    report(f"folium MarkerCluster page of {folium_points:,} raw points (MB, first clusters ms)",
           f"{size / 1e6:.1f} MB, {render:,.0f} ms")


def folium_page(workdir: Path, points: int) -> Path:
    """Write a classic folium page: each raw point a Marker in a MarkerCluster."""
    import folium
    from folium.plugins import MarkerCluster

    rng = np.random.default_rng(9)
    lats = rng.normal(48, 6, points).clip(-85, 85)
    lngs = rng.normal(10, 15, points).clip(-179, 179)
    world = folium.Map(location=[48, 10], zoom_start=4, tiles=None)
    world.options.update(minZoom=1, maxZoom=18)  # no tile layer to take it from
    cluster = MarkerCluster().add_to(world)
    for lat, lng in zip(lats.tolist(), lngs.tolist(), strict=True):
        folium.Marker([lat, lng]).add_to(cluster)
    html = world.get_root().render()
    vendor = ROOT / "static" / "vendor"
    local = {
        r"https://[^\"']*/leaflet(@[\d.]+)?/dist/leaflet\.js": vendor / "leaflet/leaflet.js",
        r"https://[^\"']*/leaflet(@[\d.]+)?/dist/leaflet\.css": vendor / "leaflet/leaflet.css",
        r"https://[^\"']*/leaflet\.markercluster\.js":
            vendor / "markercluster/leaflet.markercluster.js",
        r"https://[^\"']*/MarkerCluster\.css": vendor / "markercluster/MarkerCluster.css",
        r"https://[^\"']*/MarkerCluster\.Default\.css":
            vendor / "markercluster/MarkerCluster.Default.css",
    }
    for pattern, file in local.items():
        html = re.sub(pattern, file.as_uri(), html)
    path = workdir / "folium_markercluster.html"
    path.write_text(html)
    return path


def worker_rss_mb(server: subprocess.Popen) -> float:
    """Return the largest resident set of the gunicorn workers (children of the server)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return max(sizes) if sizes else float("nan")


def print_table(members: int, total: float) -> None:
    width = max(len(r.name) for r in ROWS)
    vwidth = max(len(r.value) for r in ROWS)
    print()
    print(f"geomap benchmark, {members:,} members, {os.cpu_count()} CPUs, "
          f"{total / 60:.1f} min in all")
    print(f"| {'measure'.ljust(width)} | {'result'.ljust(vwidth)} | target | met |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|--------|-----|")
    for r in ROWS:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        print(f"| {r.name.ljust(width)} | {r.value.ljust(vwidth)} | {r.target} | {met} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--viewports", type=int, default=600)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--raw-viewports", type=int, default=20)
    parser.add_argument("--folium-points", type=int, default=100_000)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="geomap-bench-"))
    cluster = None
    server = None
    try:
        print(f"Embedded PostGIS in {workdir} ...", flush=True)
        cluster, url = start_cluster(workdir)
        engine = create_engine(url)
        prepare_reference(engine)
        bench_import(engine, args.members)
        bench_publish(engine)
        port = free_port()
        server = start_server(url, workdir, port, args.workers)
        bench_page(port)
        api_p50 = bench_viewports(engine, port, args.viewports, args.load_seconds, workdir)
        boxes = viewports(engine, args.viewports)
        bench_raw_postgis(engine, random.Random(1).sample(boxes, min(args.raw_viewports,
                                                                      len(boxes))), api_p50)
        bench_browser(port, workdir, args.folium_points)
        report("web worker RSS after serving the map (MB, largest worker)",
               f"{worker_rss_mb(server):.0f}", "<= 100", worker_rss_mb(server) <= 100)
        if args.csv_rows:
            bench_file_import(engine, workdir, args.csv_rows)
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if cluster is not None:
            embedded_pg.stop(cluster)
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(args.members, time.perf_counter() - started)


if __name__ == "__main__":
    main()
