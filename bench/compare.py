"""geomap side by side with supercluster, and the scale curve (``make bench``).

One command (``.venv/bin/python bench/compare.py``) starts its own embedded PostGIS
cluster (temporary folder, free port, 127.0.0.1 only; destroyed at the end) and, for
each size of ``--sizes``, loads that many synthetic members into a fresh database and
measures the scale curve: import, full publish, private snapshots, a 1% change published
incrementally, the snapshots after it, then (after ``VACUUM ANALYZE``, as autovacuum
leaves a loaded database) the viewport API's p50 (uncached and cached),
nearby's p95 (per search, database + Python) and the web workers' RSS.

At ``--side-by-side`` members it also serves the same members' points (those on the
map for the condition) with supercluster 9 under Node (bench/supercluster/server.mjs,
installed from npm by this script), its radius tuned so that the mean marker count per
viewport matches geomap's on the same viewports, and runs wrk against both, alternating
A/B: 1 and 8 connections, cached (the same rotating viewports) and uncached (each
request's box shifted by a new micro-degree: same markers, a new cache key). A third
side, Debian's nginx with the shipped configuration (geomap/nginx/) in front of the same
gunicorn, serves the same viewports' version-stamped tiles from its cache (checked:
X-Cache-Status HIT, and answered with gunicorn paused), in the cached rounds.

The tables are printed and written into bench/README.md between the ``make bench``
markers (``--no-readme`` to leave it alone). Nothing here is asserted: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from common import (  # bench/ is on sys.path when run as a script
    FLOOR,
    ROOT,
    SLUG,
    K,
    Load,
    Viewport,
    bench_cluster,
    change_one_percent,
    create_database,
    drop_database,
    free_port,
    geomap_urls,
    import_members,
    percentile,
    prepare_reference,
    rss_mb,
    start_server,
    stop_process,
    timed_gets,
    viewports,
    worker_rss_mb,
    wrk_load,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geomap.database import make_engine

SUPERCLUSTER = ROOT / "bench" / "supercluster"
README = ROOT / "bench" / "README.md"
BEGIN = "<!-- make bench: begin (bench/compare.py writes this section) -->"
END = "<!-- make bench: end -->"
NEARBY_SECRET = "bench-nearby"  # noqa: S105 (keyed order of a throw-away bench database)


# --- scale curve -----------------------------------------------------------------------


def publish_figures(engine: Engine, naming: bool = True) -> dict[str, float]:
    """Full publish, snapshots, a 1% change published incrementally, snapshots again (s)."""
    from geomap.publish import publish, refresh_snapshots

    figures: dict[str, float] = {}
    with Session(engine) as session, session.begin():
        figures["full publish"] = publish(session, k=K, floor=FLOOR, full=True,
                                          snapshots=False).seconds
    with Session(engine) as session, session.begin():
        figures["snapshots"] = refresh_snapshots(session)
    if naming:
        name_cells(engine, figures, "naming")
    change_one_percent(engine)
    with Session(engine) as session, session.begin():
        summary = publish(session, k=K, floor=FLOOR, snapshots=False)
    figures["incremental publish"] = summary.seconds
    with Session(engine) as session, session.begin():
        figures["snapshots after 1%"] = refresh_snapshots(session)
    if naming:
        name_cells(engine, figures, "naming after 1%")
    return figures


def settle(engine: Engine) -> float:
    """VACUUM ANALYZE the database, as autovacuum does within minutes of a load (s).

    Right after loading millions of rows, every table's visibility map is empty (an
    index-only scan visits the heap too) and autovacuum works through the new tables
    beside the measurement; at 10M members that took nearby's p95 from 3.1 to 9 ms.
    The latencies of the curve are those of the settled database, and nearby's is also
    measured before (the "right after the load" figure).
    """
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def name_cells(engine: Engine, figures: dict[str, float], name: str) -> None:
    """Name the new cells' areas as the CLI does after a publish (s, and how many cells).

    ``--no-naming`` skips it: every viewport then computes its labels per request, as
    before the cache (the "before" figure of bench/README.md).
    """
    from geomap.publish.cell_names import name_new_cells

    with Session(engine) as session, session.begin():
        naming = name_new_cells(session)
    figures[name] = naming.seconds
    figures[name + " cells"] = naming.cells


def nearby_p95_ms(engine: Engine, searches: int) -> float:
    """p95 of one nearby search (first page; database + Python) over ``searches`` members."""
    from nearby import pick_observers

    from geomap.config import load_settings
    from geomap.members import nearby as nearby_queries

    max_km = float(load_settings({})["GEOMAP_NEARBY_MAX_KM"])
    times = []
    with Session(engine) as session:
        observers = pick_observers(session, searches, 0.42)
        for member, _cell in observers:  # untimed: fills the place labels shown
            nearby_queries.nearby(session, member_id=member, condition_slug=SLUG, page=1,
                                  secret=NEARBY_SECRET, max_km=max_km)
        session.commit()
        for member, _cell in observers:
            started = time.perf_counter()
            nearby_queries.nearby(session, member_id=member, condition_slug=SLUG, page=1,
                                  secret=NEARBY_SECRET, max_km=max_km)
            times.append((time.perf_counter() - started) * 1e3)
        session.rollback()
    return percentile(times, 95) if times else float("nan")


def publish_version(engine: Engine) -> int:
    """Return the current publish version (what tile URLs carry)."""
    from geomap.publish import published

    with Session(engine) as session:
        return published.publish_state(session).version


def viewport_figures(port: int, boxes: list[Viewport], kind: str,
                     version: int | None) -> dict[str, float]:
    """Uncached (first request) and cached p50 of the viewports, one client (ms)."""
    paths = [url for box in boxes for url in geomap_urls(kind, box, version)]
    cold, cold_errors, size = timed_gets(port, paths)
    timed_gets(port, paths * 2)  # every worker sees every viewport
    warm, warm_errors, _ = timed_gets(port, paths * 3)
    return {"viewport p50 uncached": percentile(cold, 50) * 1e3,
            "viewport p50 cached": percentile(warm, 50) * 1e3,
            "viewport errors": cold_errors + warm_errors,
            "viewport kB": size / len(paths) / 1024}


# --- supercluster side by side ------------------------------------------------------------


def install_supercluster() -> None:
    """Install supercluster 9 from the npm registry into bench/supercluster (once)."""
    if not shutil.which("node"):
        raise SystemExit("Node.js is missing: run scripts/bootstrap.sh (Debian's nodejs).")
    if not (SUPERCLUSTER / "node_modules" / "supercluster").exists():
        print("Installing supercluster from npm ...", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=SUPERCLUSTER, check=True)


def export_points(engine: Engine, path: Path) -> int:
    """Write the exact points of the condition's members on the map (float64 lng, lat)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT ST_X(ml.location::geometry), ST_Y(ml.location::geometry) "
            "FROM member_locations ml "
            "JOIN member_conditions mc ON mc.member_id = ml.member_id "
            "JOIN conditions c ON c.id = mc.condition_id AND c.slug = :slug "
            "JOIN members m ON m.id = ml.member_id AND m.visibility = 'map'"),
            {"slug": SLUG}).all()
    np.asarray(rows, dtype="<f8").tofile(path)
    return len(rows)


def geomap_mean_markers(port: int, boxes: list[Viewport]) -> float:
    """Mean number of markers (features) geomap's cells API returns per viewport."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    counts = []
    for box in boxes:
        conn.request("GET", geomap_urls("cells", box)[0])
        counts.append(len(json.loads(conn.getresponse().read())["features"]))
    conn.close()
    return statistics.mean(counts)


def start_supercluster(points: Path, boxes: list[Viewport], target: float, port: int,
                       workdir: Path) -> tuple[subprocess.Popen, dict]:
    """Start the Node server; return it and what it printed (radius, mean markers)."""
    vp_file = workdir / "viewports.json"
    vp_file.write_text(json.dumps([[zoom, list(box)] for zoom, box in boxes]))
    proc = subprocess.Popen(
        ["node", "--max-old-space-size=8192", str(SUPERCLUSTER / "server.mjs"), str(points),
         str(vp_file), str(target), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=SUPERCLUSTER)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("supercluster did not start: " + proc.stderr.read()[-2000:])
    return proc, json.loads(line)


def start_nginx_front(geomap_port: int, workdir: Path) -> tuple[subprocess.Popen, int]:
    """Start Debian's nginx with the shipped configuration in front of gunicorn.

    geomap/nginx/geomap.conf.template rendered as ``geomap serve --prod --nginx`` renders
    it (geomap.http_cache), into ``workdir``/nginx (its cache included), listening on a
    free port of 127.0.0.1. Returns the nginx process and its port.
    """
    from geomap.http_cache import NginxSite, start_nginx

    # Raises NginxError when Debian's nginx is missing or refuses the configuration.
    if os.geteuid() == 0:  # nginx then runs as www-data: let it reach its folder
        workdir.chmod(0o711)
    port = free_port()
    site = NginxSite(listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{geomap_port}",
                     prefix=workdir / "nginx")
    proc = start_nginx(site)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    stop_process(proc)
    raise SystemExit("nginx did not start: see " + str(site.prefix / "error.log"))


def nginx_cache_check(port: int, paths: list[str], server: subprocess.Popen) -> dict[str, int]:
    """Check that nginx answers ``paths`` from its cache, without gunicorn.

    Counts the X-Cache-Status of one pass, then pauses gunicorn (SIGSTOP to the master
    and its workers) and asks every path again: each one nginx answers 200 then came
    from its cache (a request passed up would wait on the paused gunicorn and time out).
    """
    import http.client

    statuses: dict[str, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in paths:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        status = response.getheader("X-Cache-Status", "none")
        statuses[status] = statuses.get(status, 0) + 1
    conn.close()
    pids = [server.pid, *map(int, Path(f"/proc/{server.pid}/task/{server.pid}/children")
                             .read_text().split())]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        served = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        for path in paths:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                served += response.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.close()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    return statuses | {"served with gunicorn paused": served, "paths": len(paths)}


def side_by_side(engine: Engine, geomap_port: int, boxes: list[Viewport], workdir: Path,
                 args: argparse.Namespace, server: subprocess.Popen) -> list[str]:
    """Run the A/B comparison; return the lines of its Markdown table."""
    from geomap.http_cache import NginxError

    install_supercluster()
    points = workdir / "points.f64"
    n_points = export_points(engine, points)
    target = geomap_mean_markers(geomap_port, boxes)
    sc_port = free_port()
    print(f"supercluster: {n_points:,} points, tuning its radius to {target:.1f} markers "
          "per viewport ...", flush=True)
    node, tuned = start_supercluster(points, boxes, target, sc_port, workdir)
    nginx = None
    try:
        version = publish_version(engine)
        tiles = [u for b in boxes for u in geomap_urls("tiles", b, version)]
        try:
            nginx, nginx_port = start_nginx_front(geomap_port, workdir)
        except NginxError as exc:  # the rows behind nginx are left out, with the reason
            print(f"  no nginx rows: {exc}", flush=True)
            cache_check = {"error": str(exc)}
        else:
            timed_gets(nginx_port, tiles)  # fills nginx's cache (one request per tile)
            cache_check = nginx_cache_check(nginx_port, tiles, server)
            cache_check["tiles per viewport"] = len(tiles) / len(boxes)
            print(f"  nginx in front: {cache_check}", flush=True)
        sides = {
            "geomap": {
                "port": geomap_port,
                "cached": [u for b in boxes for u in geomap_urls(args.geomap_url_kind, b,
                                                                 version)],
                "prefix": [geomap_urls("cells", b)[0].rsplit("=", 1)[0] + "=" for b in boxes],
            },
            "supercluster": {
                "port": sc_port,
                "cached": [f"/clusters?zoom={z}&bbox={','.join(map(str, b))}" for z, b in boxes],
                "prefix": [f"/clusters?zoom={z}&bbox=" for z, _b in boxes],
            },
        }
        if nginx is not None:
            sides["nginx"] = {"port": nginx_port, "cached": tiles}  # cached tiles only
        results: dict[tuple[str, str, int], list[Load]] = {}
        for _round in range(args.rounds):
            for cached in (True, False):
                for connections in (1, 8):
                    for name, side in sides.items():  # A, B, C, A, B, C, ...
                        if "prefix" not in side and not cached:
                            continue
                        if cached:
                            repeat = 3 if name == "geomap" else 1  # each gunicorn worker
                            timed_gets(side["port"], side["cached"] * repeat)
                            load = wrk_load(side["port"], side["cached"], args.seconds,
                                            workdir, connections)
                        else:
                            load = wrk_load(side["port"], side["prefix"], args.seconds,
                                            workdir, connections,
                                            boxes=[list(b) for _z, b in boxes])
                        key = ("cached" if cached else "uncached", name, connections)
                        results.setdefault(key, []).append(load)
                        print(f"  {key}: {load.rate:,.0f} req/s, p50 {load.p50:.2f} ms, "
                              f"p99 {load.p99:.2f} ms, {load.errors} errors", flush=True)
        geomap_rss = worker_rss_mb(server)
        node_rss = rss_mb(node.pid)
    finally:
        stop_process(node)
        stop_process(nginx)
    return side_by_side_table(results, tuned, target, n_points, geomap_rss, node_rss, args,
                              cache_check)


def _median_load(loads: list[Load]) -> Load:
    return Load(statistics.median(x.rate for x in loads), statistics.median(x.p50 for x in loads),
                statistics.median(x.p99 for x in loads), sum(x.errors for x in loads))


def side_by_side_table(results: dict, tuned: dict, target: float, n_points: int,
                       geomap_rss: float, node_rss: float,
                       args: argparse.Namespace, cache_check: dict) -> list[str]:
    """Format the A/B results: medians over rounds, ratios geomap / supercluster."""
    lines = [
        f"Points on the map: {n_points:,}. Mean markers per viewport: geomap {target:.1f}, "
        f"supercluster {tuned['mean_markers']:.1f} (radius {tuned['radius']:.1f}, index "
        f"built in {tuned['index_ms'] / 1e3:.1f} s). geomap URL kind: {args.geomap_url_kind}; "
        f"wrk {args.seconds:g} s per run, {args.rounds} alternating rounds (medians), "
        f"{len(args.boxes)} rotating viewports.",
        "",
        "| figure | geomap | supercluster | ratio (geomap / supercluster) |",
        "|---|---|---|---|",
    ]
    for mode in ("cached", "uncached"):
        for connections in (1, 8):
            g = _median_load(results[(mode, "geomap", connections)])
            s = _median_load(results[(mode, "supercluster", connections)])
            lines.append(
                f"| {mode} viewport, {connections} connection{'s' if connections > 1 else ''}: "
                f"req/s, p50 / p99 ms | {g.rate:,.0f}, {g.p50:.2f} / {g.p99:.2f}"
                f"{f' ({g.errors} errors)' if g.errors else ''} | {s.rate:,.0f}, "
                f"{s.p50:.2f} / {s.p99:.2f}{f' ({s.errors} errors)' if s.errors else ''} | "
                f"{g.rate / s.rate:.2f}× req/s; {g.p50 / s.p50:.1f}× / {g.p99 / s.p99:.1f}× "
                "latency |")
    per_viewport = cache_check.get("tiles per viewport", 0.0)
    for connections in (1, 8) if per_viewport else ():
        g = _median_load(results[("cached", "nginx", connections)])
        s = _median_load(results[("cached", "supercluster", connections)])
        lines.append(
            f"| behind nginx (shipped geomap.conf), cached tiles, {connections} "
            f"connection{'s' if connections > 1 else ''}: req/s, p50 / p99 ms | "
            f"{g.rate:,.0f}, {g.p50:.2f} / {g.p99:.2f}{f' ({g.errors} errors)' if g.errors else ''}"
            f" | {s.rate:,.0f}, {s.p50:.2f} / {s.p99:.2f} (viewports) | "
            f"{g.rate / s.rate:.2f}× req/s ({g.rate / per_viewport / s.rate:.2f}× in whole "
            f"viewports); {g.p50 / s.p50:.1f}× / {g.p99 / s.p99:.1f}× latency |")
    lines.append(f"| memory (MB) | {geomap_rss:.0f} per worker ({args.workers} workers, "
                 f"no raw point) | {node_rss:.0f} (one process, every raw point) | "
                 f"{geomap_rss / node_rss:.2f}× |")
    if not per_viewport:
        return [*lines, "", f"Behind nginx: not measured ({cache_check['error']})."]
    hits = cache_check.get("HIT", 0)
    lines += ["", f"Behind nginx: one request per 256-px tile of the same {len(args.boxes)} "
              f"viewports ({cache_check['paths']:,} tile URLs, {per_viewport:.1f} per viewport; "
              f"`/tiles/<condition>/<version>/<z>/<x>/<y>.json`), after one warm-up pass. Cache "
              f"check: {hits:,} of {cache_check['paths']:,} answered `X-Cache-Status: HIT`, "
              f"and {cache_check['served with gunicorn paused']:,} of them answered 200 "
              "with gunicorn paused (SIGSTOP)."]
    return lines


# --- main --------------------------------------------------------------------------------


def scale_table(curve: dict[int, dict[str, float]]) -> list[str]:
    """Format the scale curve: one column per size."""
    sizes = sorted(curve)
    rows = [
        ("import, end to end (members/s)", "import rate", "{:,.0f}"),
        ("import (s)", "import", "{:.1f}"),
        ("full publish (s)", "full publish", "{:.2f}"),
        ("private snapshots after it (s)", "snapshots", "{:.2f}"),
        ("incremental publish, 1% changed (s)", "incremental publish", "{:.2f}"),
        ("private snapshots after the 1% change (s)", "snapshots after 1%", "{:.2f}"),
        ("viewport p50, uncached / cached (ms)", None, None),
        ("VACUUM ANALYZE after the load, before the latencies (s)", "settle", "{:.1f}"),
        ("nearby p95, one search, database + Python (ms)", "nearby p95", "{:.2f}"),
        ("nearby p95 right after the load, before VACUUM ANALYZE (ms)",
         "nearby p95 unsettled", "{:.2f}"),
        ("web worker RSS, largest (MB)", "worker rss", "{:.0f}"),
    ]
    lines = ["| figure | " + " | ".join(f"{n:,}" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for label, key, fmt in rows:
        if key is None:
            cells = [f"{curve[n]['viewport p50 uncached']:.2f} / "
                     f"{curve[n]['viewport p50 cached']:.2f}" for n in sizes]
        else:
            cells = [fmt.format(curve[n][key]) for n in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_readme(section: list[str]) -> None:
    """Replace the ``make bench`` section of bench/README.md (or add it after the title)."""
    text_ = README.read_text()
    block = "\n".join([BEGIN, *section, END])
    if BEGIN in text_ and END in text_:
        head, rest = text_.split(BEGIN, 1)
        text_ = head + block + rest.split(END, 1)[1]
    else:
        title, _, rest = text_.partition("\n")
        text_ = f"{title}\n\n{block}\n{rest}"
    README.write_text(text_)


def main() -> None:
    """Run the scale curve and the side-by-side comparison; print and record them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="members per scale-curve point, comma-separated "
                             "(e.g. 100000,1000000,3000000,10000000)")
    parser.add_argument("--side-by-side", type=int, default=None,
                        help="members for the supercluster comparison (default: the "
                             "largest size up to 1,000,000; 0 skips it)")
    parser.add_argument("--viewports", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A/B alternations")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--nearby-searches", type=int, default=100)
    parser.add_argument("--geomap-url-kind", choices=("cells", "tiles"), default="cells",
                        help="cached geomap requests: the bbox cells API or /tiles/... "
                             "(uncached ones always use shifted cells boxes)")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--no-naming", action="store_true",
                        help="leave the area names uncached (labels computed per request)")
    args = parser.parse_args()
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    if args.side_by_side is None:
        args.side_by_side = max([n for n in sizes if n <= 1_000_000] or sizes[:1])
    if args.side_by_side and args.side_by_side not in sizes:
        sizes = sorted({*sizes, args.side_by_side})
    started = time.perf_counter()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="geomap-compare-"))
    curve: dict[int, dict[str, float]] = {}
    comparison: list[str] = []
    try:
        with bench_cluster(workdir) as cluster:
            reference = "geomap_bench_reference"
            engine = create_engine(create_database(cluster, reference))
            prepare_reference(engine)
            engine.dispose()
            for size in sizes:
                name = f"geomap_bench_{size}"
                # The product's engine (geomap.database.make_engine: its connection
                # options, JIT off), so that nearby is measured as members' pages run it.
                engine = make_engine(create_database(cluster, name, template=reference))
                server = None
                try:
                    print(f"{size:,} members: import ...", flush=True)
                    seconds, _generating = import_members(engine, size)
                    figures = {"import": seconds, "import rate": size / seconds}
                    print("  publish, snapshots, 1% change ...", flush=True)
                    figures |= publish_figures(engine, naming=not args.no_naming)
                    figures["nearby p95 unsettled"] = nearby_p95_ms(engine,
                                                                    args.nearby_searches)
                    figures["settle"] = settle(engine)
                    port = free_port()
                    server = start_server(engine.url.render_as_string(hide_password=False),
                                          workdir, port, args.workers)
                    boxes = viewports(engine, args.viewports)
                    args.boxes = boxes
                    timed_gets(port, [f"/conditions/{SLUG}/map"] * 4)
                    figures |= viewport_figures(port, boxes, args.geomap_url_kind,
                                                publish_version(engine))
                    figures["nearby p95"] = nearby_p95_ms(engine, args.nearby_searches)
                    figures["worker rss"] = worker_rss_mb(server)
                    curve[size] = figures
                    print("  " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()),
                          flush=True)
                    if size == args.side_by_side:
                        comparison = side_by_side(engine, port, boxes, workdir, args, server)
                finally:
                    stop_process(server)
                    engine.dispose()
                    drop_database(cluster, name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    command = ".venv/bin/python bench/compare.py " + " ".join(sys.argv[1:]) if sys.argv[1:] \
        else "make bench"
    section = [
        f"### Side by side and scale curve ({command}, {when})",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {load_before:.1f} at the start, "
        f"{minutes:.1f} min in all. PostgreSQL and every server on 127.0.0.1.",
        "",
    ]
    if comparison:
        section += [f"**Side by side at {args.side_by_side:,} members**", "", *comparison, ""]
    section += ["**Scale curve**", "", *scale_table(curve), ""]
    print()
    print("\n".join(section))
    if not args.no_readme:
        write_readme(section)
        print(f"(written into {README.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
