"""Fault run: load while PostgreSQL is stopped and then crashed; nothing acknowledged is lost.

    .venv/bin/python bench/fault.py [--clients 8] [--seconds 60] [--members 5000]

Sets up its own embedded cluster (a temporary folder, a free port) with a published
demo community, serves geomap with gunicorn (``geomap serve --prod`` options, 2
workers) and runs ``--clients`` keep-alive clients, each signed in as its own member:
three requests in four are viewports (a fixed set, cached after the first pass, and
fresh random boxes, each a cache miss), one in four moves the member (``PUT
/api/v1/me/location``). At 15 s PostgreSQL is stopped (``pg_ctl stop -m fast``) for
10 s; at 40 s it is killed (``pg_ctl stop -m immediate``) and restarted at once.

Reports requests served and errors by kind per phase, the time from the database
being back to the first acknowledged write, and the acknowledged writes lost (each
member's stored point must be its last acknowledged one, or the one in flight when its
client saw the error).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from common import free_port  # bench/ is on sys.path when run as a script
from sqlalchemy import create_engine, text

from geomap import create_app, embedded_pg
from geomap.auth.accounts import create_member_account
from geomap.config import load_settings
from geomap.geo import reference
from geomap.geo.derive import KeyDeriver
from geomap.ingest import demo
from geomap.ingest.members_bulk import load_members
from geomap.members import queries
from geomap.migrate import upgrade
from geomap.publish import publish
from geomap.session import session_scope

SECRET = "fault-bench-secret"  # noqa: S105 (a throw-away bench cluster)
PASSWORD = "fault bench password"  # noqa: S105
CACHED_VIEWPORTS = [
    (2, "-180,-90,180,90"), (3, "-30,20,60,70"), (4, "-10,35,30,60"), (5, "0,40,20,55"),
    (3, "-130,10,-60,60"), (4, "60,0,150,50"), (6, "5,45,15,52"), (2, "-180,-60,0,80"),
]


@dataclass
class Client:
    """One signed-in member's client and what it has had acknowledged."""

    index: int
    member_id: int
    cookie: str
    csrf: str
    acked: tuple[float, float] | None = None
    in_flight: tuple[float, float] | None = None
    events: list[tuple[float, str, str]] = field(default_factory=list)


def prepare(cluster: embedded_pg.Cluster, members: int, clients: int) -> list[tuple[int, int]]:
    """Create schema, reference data, a published demo community and the clients' members."""
    engine = create_engine(cluster.url)
    upgrade(engine)
    with session_scope(engine) as session:
        reference.import_places(session)
        reference.import_countries(session)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, 5)
        batch, prefixes = demo.generate(session, members, 1, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
    accounts = []
    with session_scope(engine) as session:
        for i in range(clients):
            account = create_member_account(session, pseudonym=f"fault-client-{i}",
                                            email=f"fault-client-{i}@example.org",
                                            password=PASSWORD)
            queries.update_profile(session, account.member_id, role="patient",
                                   visibility="map", contactable=False,
                                   condition_slugs=["all"])
            queries.set_location(session, account.member_id, 40.0 + i, 0.0, floor=5)
            accounts.append((account.id, account.member_id))
    with session_scope(engine) as session:
        publish(session, k=5, floor=5)
    engine.dispose()
    return accounts


def session_cookie(app, account_id: int) -> tuple[str, str]:  # noqa: ANN001
    """Return (signed session cookie, CSRF token) of ``account_id``, as a login would."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    with app.test_request_context("/"):
        session["_user_id"] = str(account_id)
        session["_fresh"] = True
        token = generate_csrf()
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return cookie, token


def run_client(client: Client, base: str, start: float, end: float) -> None:
    """Send viewports and location changes until ``end``; record every outcome."""
    rng = random.Random(client.index)
    http = requests.Session()
    http.cookies.set("session", client.cookie, domain="127.0.0.1")
    step = 0
    while time.monotonic() < end:
        step += 1
        now = time.monotonic() - start
        roll = rng.random()
        try:
            if roll < 0.25:
                point = (round(40.0 + client.index + step * 1e-4, 6), round(step * 1e-4, 6))
                client.in_flight = point
                answer = http.put(f"{base}/api/v1/me/location",
                                  json={"lat": point[0], "lng": point[1]},
                                  headers={"X-CSRFToken": client.csrf}, timeout=10)
                kind = "write"
                if answer.status_code == 200:
                    client.acked, client.in_flight = point, None
            elif roll < 0.6:
                zoom, bbox = rng.choice(CACHED_VIEWPORTS)
                answer = http.get(f"{base}/api/v1/conditions/all/cells",
                                  params={"zoom": zoom, "bbox": bbox}, timeout=10)
                kind = "viewport (cached)"
            else:
                zoom = rng.randint(3, 9)
                west, south = rng.uniform(-170, 150), rng.uniform(-50, 50)
                bbox = f"{west:.4f},{south:.4f},{west + 12:.4f},{south + 8:.4f}"
                answer = http.get(f"{base}/api/v1/conditions/all/cells",
                                  params={"zoom": zoom, "bbox": bbox}, timeout=10)
                kind = "viewport (miss)"
            outcome = str(answer.status_code)
        except requests.RequestException as exc:
            kind = "write" if roll < 0.25 else "viewport"
            outcome = type(exc).__name__
            time.sleep(0.05)
        client.events.append((now, kind, outcome))


def start_gunicorn(url: str, port: int, data_dir: Path) -> subprocess.Popen:
    """Serve geomap with gunicorn (2 workers) over ``url``; return when it answers."""
    env = {**os.environ, "GEOMAP_DATABASE_URL": url, "GEOMAP_DATA_DIR": str(data_dir),
           "GEOMAP_SECRET_KEY": SECRET, "GEOMAP_LOCATION_RATE_LIMIT": "1000000 per minute",
           "GEOMAP_PUBLISH_INTERVAL": "0"}
    process = subprocess.Popen(
        [sys.executable, "-c",
         f"from geomap.wsgi_server import run_gunicorn; run_gunicorn('127.0.0.1', {port}, 2)"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def lost_writes(cluster: embedded_pg.Cluster, clients: list[Client]) -> int:
    """Count members whose stored point is neither the acknowledged nor the in-flight one."""
    engine = create_engine(cluster.url)
    lost = 0
    with engine.connect() as conn:
        for client in clients:
            row = conn.execute(text(
                "SELECT round(ST_Y(location::geometry)::numeric, 6)::float, "
                "round(ST_X(location::geometry)::numeric, 6)::float FROM member_locations "
                "WHERE member_id = :id"), {"id": client.member_id}).one()
            if client.acked is not None and tuple(row) not in (client.acked, client.in_flight):
                lost += 1
    engine.dispose()
    return lost


def main() -> None:
    """Run the fault bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--members", type=int, default=5000)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="geomap-fault-"))
    folder.chmod(0o755)
    settings = load_settings({"GEOMAP_DATA_DIR": str(folder),
                              "GEOMAP_DB_PORT": str(free_port())})
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    server = None
    try:
        print(f"preparing {args.members} members ...", flush=True)
        accounts = prepare(cluster, args.members, args.clients)
        app = create_app({"TESTING": True, "GEOMAP_DATABASE_URL": cluster.url,
                          "GEOMAP_SECRET_KEY": SECRET, "GEOMAP_DATA_DIR": str(folder)})
        clients = [Client(i, member, *session_cookie(app, account))
                   for i, (account, member) in enumerate(accounts)]
        port = free_port()
        server = start_gunicorn(cluster.url, port, folder)
        base = f"http://127.0.0.1:{port}"

        start = time.monotonic()
        end = start + args.seconds
        threads = [threading.Thread(target=run_client, args=(c, base, start, end))
                   for c in clients]
        for thread in threads:
            thread.start()
        marks: dict[str, float] = {}

        def at(second: float) -> None:
            time.sleep(max(0.0, start + second - time.monotonic()))

        at(args.seconds * 0.25)
        marks["stop"] = time.monotonic() - start
        embedded_pg.stop(cluster)
        at(args.seconds * 0.25 + 10)
        embedded_pg.start(cluster)
        marks["back after stop"] = time.monotonic() - start
        at(args.seconds * 2 / 3)
        marks["crash"] = time.monotonic() - start
        embedded_pg.crash(cluster)
        embedded_pg.start(cluster)
        marks["back after crash"] = time.monotonic() - start
        for thread in threads:
            thread.join()

        events = sorted(e for c in clients for e in c.events)
        phases = [("before", 0.0, marks["stop"]), ("stopped", marks["stop"],
                  marks["back after stop"]), ("between", marks["back after stop"],
                  marks["crash"]), ("crash+after", marks["crash"], args.seconds + 60)]
        report: dict[str, object] = {"clients": args.clients, "seconds": args.seconds,
                                     "members": args.members, "marks_s": marks}
        print(f"\n{args.clients} clients, {args.seconds:.0f} s, {args.members} members; "
              + ", ".join(f"{k} at {v:.1f} s" for k, v in marks.items()))
        for name, low, high in phases:
            counts = collections.Counter((kind, outcome) for t, kind, outcome in events
                                         if low <= t < high)
            report[name] = {f"{k} {o}": n for (k, o), n in sorted(counts.items())}
            print(f"  {name:<12} " + ", ".join(f"{k} {o}: {n}"
                                               for (k, o), n in sorted(counts.items())))
        for mark in ("back after stop", "back after crash"):
            first = next((t for t, kind, outcome in events
                          if t >= marks[mark] and kind == "write" and outcome == "200"), None)
            recovery = None if first is None else round(first - marks[mark], 3)
            report[f"first write after {mark} (s)"] = recovery
            print(f"  first acknowledged write {recovery} s after the database was {mark}")
        served = sum(1 for _, _, outcome in events if outcome in ("200", "304"))
        acknowledged = sum(1 for _, kind, outcome in events
                           if kind == "write" and outcome == "200")
        lost = lost_writes(cluster, clients)
        report.update(requests=len(events), served=served, acknowledged_writes=acknowledged,
                      lost_writes=lost)
        print(f"  requests {len(events)}, served {served}, acknowledged writes "
              f"{acknowledged}, acknowledged writes lost {lost}")
        results = Path(__file__).with_name("results")
        results.mkdir(exist_ok=True)
        (results / "fault.json").write_text(json.dumps(report, indent=1))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        embedded_pg.stop(cluster)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
