"""Nearby search at scale: p95 in the database and over HTTP.

Run against a database with many members, e.g. the embedded one after
``geomap demo --members 1000000``::

    GEOMAP_DATA_DIR=var GEOMAP_DB_PORT=54350 .venv/bin/python bench/nearby.py

or on a kept bench data set, built on first use (``geomap demo``'s members, seed 1, and
the nearby index; no publish)::

    .venv/bin/python bench/nearby.py --data-dir var/bench-nearby --db-port 55492 --members 1000000

``--condition bench-everyone`` searches a condition that every member has (added to the
data set on first use): the same searchers and cells as ``all``, with ~3.3 times the
members (``all`` is 30 % of the demo community), or ~10 times those of ``aml``.
``--condition bench-dense10`` lists ten members in the cell of every member with ALL
(nearby index only): ``all``'s cells at about ten times the density, as at 10,000,000
members. Both show how a search's cost follows the density around the searcher.

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
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

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
    if "geomap_nearby_candidates" in statement or "geomap_nearby_page" in statement:
        return "candidates (1-2 calls)"
    if "FROM members m WHERE m.id" in statement:
        return "searcher's keys"
    if "unnest(" in statement and "JOIN members" in statement:
        return "page's members"
    return "other (labels)"


EVERYONE = "bench-everyone"  # a condition every member has (--condition bench-everyone)
DENSE = "bench-dense10"  # ten listed members in the cell of each one with ALL


def pick_observers(session: Session, count: int, seed: float) -> list[tuple[int, int]]:
    """Return (member id, floor cell) of ``count`` members who may search ALL nearby.

    Drawn with a seed among those on ALL's nearby list (on its map and contactable:
    reciprocity, geomap.members.nearby).
    """
    session.execute(text("SELECT setseed(:seed)"), {"seed": seed})
    rows = session.execute(text(
        "SELECT n.member_id, n.floor_cell FROM nearby_members n "
        "JOIN conditions c ON c.id = n.condition_id AND c.slug = 'all' "
        "ORDER BY random() LIMIT :n"), {"n": count}).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def server_ms(session: Session, statements: list[tuple[str, object]]) -> dict[str, float]:
    """Return the server-side time (planning + execution, ms) of ``statements`` per kind.

    Each read statement runs once more under ``EXPLAIN (ANALYZE, TIMING OFF)``: the
    time PostgreSQL spent on it, without the round trip and the client's work.
    """
    import json

    spent: dict[str, float] = {}
    connection = session.connection()
    for statement, params in statements:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, params).scalar()
        plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
        kind = statement_kind(statement)
        spent[kind] = (spent.get(kind, 0.0) + plan["Execution Time"]
                       + plan.get("Planning Time", 0.0))
    return spent


def bench_database(engine, secret: str, max_km: float, observers, pages: int,
                   repeat: int = 1, condition: str = "all") -> None:
    """Time nearby searches through the query function, SQL time measured separately.

    With ``repeat`` > 1 each search runs that many times and counts its fastest run:
    on a shared machine this keeps other processes' bursts out of the percentiles.
    The server-side time comes from one more run of the search's statements under
    EXPLAIN ANALYZE (:func:`server_ms`).
    """
    sql_ms = [0.0]
    by_kind: dict[str, float] = {}  # this run's time per kind of statement
    executed: list[tuple[str, object]] = []  # this run's statements and parameters

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        spent = (time.perf_counter() - conn.info["t0"]) * 1000
        if statement.startswith("EXPLAIN"):
            return
        sql_ms[0] += spent
        kind = statement_kind(statement)
        by_kind[kind] = by_kind.get(kind, 0.0) + spent
        executed.append((statement, params))

    cold = []
    for _member, cell in observers:
        started = time.perf_counter()
        band_rings(cell, max_km)
        cold.append((time.perf_counter() - started) * 1000)
    db_times, search_times, listed = [], [], []
    kind_times: dict[str, list[float]] = {}  # per kind: its time in each search's best run
    server_times: dict[str, list[float]] = {}  # per kind (and "all"): server-side time
    with Session(engine) as session:
        # One untimed pass fills the place labels of every cell shown (cached in the DB).
        for member, _cell in observers:
            for page in range(1, pages + 1):
                nearby_queries.nearby(session, member_id=member, condition_slug=condition,
                                      page=page, secret=secret, max_km=max_km)
        session.commit()
        for member, _cell in observers:
            for page in range(1, pages + 1):
                db_best = search_best = float("inf")
                best_kinds: dict[str, float] = {}
                for _run in range(repeat):
                    sql_ms[0] = 0.0
                    by_kind.clear()
                    executed.clear()
                    started = time.perf_counter()
                    result = nearby_queries.nearby(session, member_id=member,
                                                   condition_slug=condition, page=page,
                                                   secret=secret, max_km=max_km)
                    search_best = min(search_best, (time.perf_counter() - started) * 1000)
                    if sql_ms[0] < db_best:
                        db_best, best_kinds = sql_ms[0], dict(by_kind)
                search_times.append(search_best)
                db_times.append(db_best)
                listed.append(len(result.members))
                for kind, spent in best_kinds.items():
                    kind_times.setdefault(kind, []).append(spent)
                on_server = server_ms(session, list(executed))
                server_times.setdefault("all", []).append(sum(on_server.values()))
                for kind, spent in on_server.items():
                    server_times.setdefault(kind, []).append(spent)
            session.rollback()
    print(summary("band rings (cold, per cell)", cold))
    print(summary("database per search", db_times))
    print(summary("search (db + python)", search_times))
    print(f"{'members listed per page':<28} mean={statistics.mean(listed):.1f}")
    for kind, values in sorted(kind_times.items()):
        print(summary(f"  {kind}", values))
    print(summary("server-side per search", server_times.pop("all")))
    for kind, values in sorted(server_times.items()):
        print(summary(f"  server: {kind}", values))
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


def kept_data_set(data_dir: Path, port: int | None, members: int) -> str:
    """Start the bench cluster in ``data_dir`` (building its data set if needed); its URL.

    The data set: the reference data, ``members`` demo members (seed 1, as ``geomap
    demo``) and the nearby index, vacuumed and analysed. The cluster is left running
    (``geomap db stop`` with GEOMAP_DATA_DIR=DIR/data and GEOMAP_DB_PORT stops it).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import import_members, prepare_reference, start_cluster

    from geomap.publish.nearby_index import refresh_nearby_members
    from geomap.session import session_scope

    _cluster, url = start_cluster(data_dir.resolve(), port=port, keep=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        loaded = (conn.execute(text("SELECT to_regclass('members') IS NOT NULL")).scalar()
                  and conn.execute(text("SELECT count(*) FROM members")).scalar_one())
    if loaded != members:
        if loaded:
            raise SystemExit(f"{data_dir} holds {loaded:,} members, not {members:,}")
        started = time.perf_counter()
        prepare_reference(engine)
        import_members(engine, members)
        with session_scope(engine) as session:
            refresh_nearby_members(session)
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(f"built {members:,} members in {time.perf_counter() - started:.0f} s")
    engine.dispose()
    return url


def ensure_everyone(engine) -> None:  # noqa: ANN001
    """Add condition EVERYONE, held by every member, to the data set (idempotent)."""
    from geomap.publish.nearby_index import refresh_nearby_members
    from geomap.session import session_scope

    with session_scope(engine) as session:
        if session.execute(text("SELECT 1 FROM conditions WHERE slug = :slug"),
                           {"slug": EVERYONE}).first():
            return
        condition = session.execute(text(
            "INSERT INTO conditions (id, slug, name, icd10) SELECT max(id) + 1, :slug, "
            "'Everyone (bench)', 'Z00' FROM conditions RETURNING id"), {"slug": EVERYONE}
        ).scalar_one()
        session.execute(text("INSERT INTO member_conditions (condition_id, member_id) "
                             "SELECT :condition, id FROM members"), {"condition": condition})
        refresh_nearby_members(session)
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))


def ensure_dense(engine) -> None:  # noqa: ANN001
    """Add condition DENSE to the nearby index (idempotent): 'all' at ten times the density.

    For every listable member with ALL, ten members (other ids, wrapping around) are
    listed in that member's floor cell: the same cells as ``all``, about ten times as
    many members in each (only nearby_members is written: member_conditions does not
    know DENSE, the member's own cell is elsewhere, and a member is listed in several
    cells). Works on the schema before and after migration 0016n_nearbyx.
    """
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM conditions WHERE slug = :slug"),
                        {"slug": DENSE}).first():
            return
        dense = conn.execute(text(
            "INSERT INTO conditions (id, slug, name, icd10) SELECT max(id) + 1, :slug, "
            "'Dense (bench)', 'Z00' FROM conditions RETURNING id"), {"slug": DENSE}
        ).scalar_one()
        has_role = conn.execute(text(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE "
            "table_name = 'nearby_members' AND column_name = 'role')")).scalar()
        conn.execute(text(
            "INSERT INTO nearby_members (condition_id, floor_cell, member_id"
            + (", role" if has_role else "") + ") SELECT :dense, n.floor_cell, m.id"
            + (", m.role" if has_role else "") + " FROM nearby_members n "
            "CROSS JOIN generate_series(0, 9) k "
            "JOIN members m ON m.id = 1 + (n.member_id + k * 100003) % "
            "(SELECT max(id) FROM members) "
            "WHERE n.condition_id = (SELECT id FROM conditions WHERE slug = 'all') "
            "ON CONFLICT DO NOTHING"), {"dense": dense})
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM (FULL, ANALYZE) nearby_members"))


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
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a kept bench data set (built with --members if empty)")
    parser.add_argument("--db-port", type=int, default=None)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--condition", default="all",
                        help=f"the condition searched (e.g. aml, or {EVERYONE})")
    args = parser.parse_args()

    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOMAP_")}
    if args.data_dir is not None:
        url = kept_data_set(args.data_dir, args.db_port, args.members)
        environment |= {"GEOMAP_DATABASE_URL": url}
    settings = load_settings(environment)
    engine = create_engine(database_url(settings))
    if args.condition == EVERYONE:
        ensure_everyone(engine)
    if args.condition == DENSE:
        ensure_dense(engine)
    max_km = float(settings["GEOMAP_NEARBY_MAX_KM"])
    with Session(engine) as session:
        members = session.execute(text("SELECT count(*) FROM members")).scalar_one()
        with_condition = session.execute(text(
            "SELECT count(*) FROM member_conditions mc JOIN conditions c "
            "ON c.id = mc.condition_id WHERE c.slug = :slug"),
            {"slug": args.condition}).scalar_one()
        observers = pick_observers(session, args.observers, args.seed)
    print(f"members: {members:,}  with {args.condition}: {with_condition:,}  "
          f"observers: {len(observers)}  pages each: {args.pages}  max km: {max_km:g}")
    with open("/proc/loadavg") as f:
        print(f"load average: {' '.join(f.read().split()[:3])}")
    bench_database(engine, secret_key(settings), max_km, observers, args.pages, args.repeat,
                   args.condition)
    http_observers = observers[: args.http_observers]
    if not http_observers:
        return
    ensure_accounts(engine, http_observers)
    bench_http(environment | {"GEOMAP_SECRET_KEY": secret_key(settings)},
               http_observers, args.pages, args.http_rounds)
    engine.dispose()


if __name__ == "__main__":
    main()
