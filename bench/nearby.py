"""Nearby search at scale: p95 in the database and over HTTP.

Run against a database with many members, e.g. the embedded one after
``geomap demo --members 1000000``::

    GEOMAP_DATA_DIR=var GEOMAP_DB_PORT=54350 .venv/bin/python bench/nearby.py

Observers are members with ALL on the map, drawn with a fixed seed. "Database" is the
time spent executing SQL per search (summed over the statements one search runs);
"search" adds the Python around it (keyed order, labels); "HTTP" is a signed-in GET of
``/api/v1/nearby`` against the app served on 127.0.0.1 by werkzeug (threaded) in a
separate process, with rate limits lifted. Band rings are cached per floor cell in each
process; the first search from a cell pays for them, reported separately as "cold".
"""

from __future__ import annotations

import argparse
import http.cookiejar
import multiprocessing
import os
import re
import statistics
import time
import urllib.parse
import urllib.request

from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
from werkzeug.serving import WSGIRequestHandler, make_server

from geomap import create_app
from geomap.config import load_settings, secret_key
from geomap.embedded_pg import database_url
from geomap.members import nearby as nearby_queries
from geomap.privacy import band_rings

PASSWORD = "bench password 1234"  # noqa: S105 (bench accounts in a bench database)


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, values_ms: list[float]) -> str:
    """Return one line of figures in milliseconds."""
    return (f"{name:<28} n={len(values_ms):<5} p50={statistics.median(values_ms):7.2f} ms  "
            f"p95={percentile(values_ms, 95):7.2f} ms  max={max(values_ms):7.2f} ms")


def statement_kind(statement: str) -> str:
    """Return a short name for one of nearby's statements (for the per-statement lines)."""
    if "geomap_nearby_candidates" in statement:
        return "candidates (1-2 calls)"
    if "FROM members m WHERE m.id" in statement:
        return "searcher's keys"
    if "unnest(" in statement and "JOIN members" in statement:
        return "page's members"
    return "other (labels)"


def pick_observers(session: Session, count: int, seed: float) -> list[tuple[int, int]]:
    """Return (member id, floor cell) of ``count`` members with ALL, drawn with a seed."""
    session.execute(text("SELECT setseed(:seed)"), {"seed": seed})
    rows = session.execute(text(
        "SELECT m.id, ml.floor_cell FROM members m "
        "JOIN member_locations ml ON ml.member_id = m.id "
        "JOIN member_conditions mc ON mc.member_id = m.id "
        "JOIN conditions c ON c.id = mc.condition_id AND c.slug = 'all' "
        "WHERE m.visibility = 'map' ORDER BY random() LIMIT :n"), {"n": count}).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def bench_database(engine, secret: str, max_km: float, observers, pages: int,
                   repeat: int = 1) -> None:
    """Time nearby searches through the query function, SQL time measured separately.

    With ``repeat`` > 1 each search runs that many times and counts its fastest run:
    on a shared machine this keeps other processes' bursts out of the percentiles.
    """
    sql_ms = [0.0]
    by_kind: dict[str, float] = {}  # this run's time per kind of statement

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        spent = (time.perf_counter() - conn.info["t0"]) * 1000
        sql_ms[0] += spent
        kind = statement_kind(statement)
        by_kind[kind] = by_kind.get(kind, 0.0) + spent

    cold = []
    for _member, cell in observers:
        started = time.perf_counter()
        band_rings(cell, max_km)
        cold.append((time.perf_counter() - started) * 1000)
    db_times, search_times, listed = [], [], []
    kind_times: dict[str, list[float]] = {}  # per kind: its time in each search's best run
    with Session(engine) as session:
        # One untimed pass fills the place labels of every cell shown (cached in the DB).
        for member, _cell in observers:
            for page in range(1, pages + 1):
                nearby_queries.nearby(session, member_id=member, condition_slug="all",
                                      page=page, secret=secret, max_km=max_km)
        session.commit()
        for member, _cell in observers:
            for page in range(1, pages + 1):
                db_best = search_best = float("inf")
                best_kinds: dict[str, float] = {}
                for _run in range(repeat):
                    sql_ms[0] = 0.0
                    by_kind.clear()
                    started = time.perf_counter()
                    result = nearby_queries.nearby(session, member_id=member,
                                                   condition_slug="all", page=page,
                                                   secret=secret, max_km=max_km)
                    search_best = min(search_best, (time.perf_counter() - started) * 1000)
                    if sql_ms[0] < db_best:
                        db_best, best_kinds = sql_ms[0], dict(by_kind)
                search_times.append(search_best)
                db_times.append(db_best)
                listed.append(len(result.members))
                for kind, spent in best_kinds.items():
                    kind_times.setdefault(kind, []).append(spent)
            session.rollback()
    print(summary("band rings (cold, per cell)", cold))
    print(summary("database per search", db_times))
    print(summary("search (db + python)", search_times))
    print(f"{'members listed per page':<28} mean={statistics.mean(listed):.1f}")
    for kind, values in sorted(kind_times.items()):
        print(summary(f"  {kind}", values))
    event.remove(engine, "before_cursor_execute", _start)
    event.remove(engine, "after_cursor_execute", _stop)


def ensure_accounts(engine, observers) -> None:
    """Give each observer a bench account (idempotent)."""
    from werkzeug.security import generate_password_hash

    password_hash = generate_password_hash(PASSWORD)
    with engine.begin() as conn:
        for member, _cell in observers:
            conn.execute(text(
                "INSERT INTO accounts (email, password_hash, member_id, is_admin) "
                "VALUES (:email, :hash, :member, false) ON CONFLICT (member_id) DO UPDATE "
                "SET email = excluded.email, password_hash = excluded.password_hash"),
                {"email": f"bench-{member}@bench.example.org", "hash": password_hash,
                 "member": member})


def signed_in_opener(base: str, member: int) -> urllib.request.OpenerDirector:
    """Return a URL opener holding a signed-in session cookie."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    html = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    email = f"bench-{member}@bench.example.org"
    data = urllib.parse.urlencode({"csrf_token": token, "email": email,
                                   "password": PASSWORD}).encode()
    opener.open(f"{base}/login", data=data).read()
    return opener


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the access log."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        """Log nothing."""


def _serve(settings: dict, ports) -> None:  # noqa: ANN001 (a multiprocessing queue)
    """Serve the app on 127.0.0.1 in this (separate) process; report the port."""
    app = create_app(settings | {"RATELIMIT_ENABLED": False})
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    ports.put(server.server_port)
    server.serve_forever()


def bench_http(settings: dict, observers, pages: int, rounds: int) -> None:
    """Time signed-in GETs of /api/v1/nearby over HTTP on 127.0.0.1.

    The server runs in its own process so that the client does not share its GIL.
    """
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve, args=(settings, ports), daemon=True)
    process.start()
    base = f"http://127.0.0.1:{ports.get(timeout=60)}"
    try:
        openers = [(member, signed_in_opener(base, member)) for member, _cell in observers]
        for _member, opener in openers:  # warm: band rings, connections
            for page in range(1, pages + 1):
                opener.open(f"{base}/api/v1/nearby?condition=all&page={page}").read()
        times = []
        for _round in range(rounds):
            for _member, opener in openers:
                for page in range(1, pages + 1):
                    started = time.perf_counter()
                    with opener.open(f"{base}/api/v1/nearby?condition=all&page={page}") as r:
                        r.read()
                    times.append((time.perf_counter() - started) * 1000)
        print(summary("HTTP GET /api/v1/nearby", times))
    finally:
        process.terminate()
        process.join()


def main() -> None:
    """Run the nearby benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observers", type=int, default=200)
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--http-observers", type=int, default=50)
    parser.add_argument("--http-rounds", type=int, default=4)
    parser.add_argument("--seed", type=float, default=0.42)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each search this many times, count the fastest")
    args = parser.parse_args()

    settings = load_settings(os.environ)
    engine = create_engine(database_url(settings))
    max_km = float(settings["GEOMAP_NEARBY_MAX_KM"])
    with Session(engine) as session:
        members = session.execute(text("SELECT count(*) FROM members")).scalar_one()
        with_all = session.execute(text(
            "SELECT count(*) FROM member_conditions mc JOIN conditions c "
            "ON c.id = mc.condition_id WHERE c.slug = 'all'")).scalar_one()
        observers = pick_observers(session, args.observers, args.seed)
    print(f"members: {members:,}  with ALL: {with_all:,}  observers: {len(observers)}  "
          f"pages each: {args.pages}  max km: {max_km:g}")
    with open("/proc/loadavg") as f:
        print(f"load average: {' '.join(f.read().split()[:3])}")
    bench_database(engine, secret_key(settings), max_km, observers, args.pages, args.repeat)
    http_observers = observers[: args.http_observers]
    if not http_observers:
        return
    ensure_accounts(engine, http_observers)
    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOMAP_")}
    bench_http(environment | {"GEOMAP_SECRET_KEY": secret_key(settings)},
               http_observers, args.pages, args.http_rounds)
    engine.dispose()


if __name__ == "__main__":
    main()
