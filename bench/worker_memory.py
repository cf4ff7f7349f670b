"""A web worker's memory after each kind of page: RSS and PSS, and what it imported.

Runs against an existing geomap data folder with published members (e.g. after
``geomap demo --members 1000000``); its embedded cluster must be running::

    GEOMAP_DATA_DIR=var GEOMAP_DB_PORT=55464 .venv/bin/python bench/worker_memory.py

1. gunicorn with ``geomap serve --prod``'s options (``run_gunicorn``: gthread, 8
   threads, malloc tuned as in production), ``--workers`` workers (default 1), on
   127.0.0.1. One keep-alive client serves, in order: the home page, a condition's map
   page, a viewport (cells API), the tiles' version document and a tile, the embed,
   the preview image (``--preview``, off by default: it draws with Pillow), the sign-in
   page and a sign-in as a bench member, a nearby search (API and page), the
   soulmates page and API, the settings and symptoms pages. After each step: the
   worker's VmRSS, RssAnon, RssFile (from /proc/<pid>/status) and Pss
   (/proc/<pid>/smaps_rollup: shared pages divided by the processes sharing them, the
   master included). ``--searchers N`` then has N more
   members, each from another floor cell, sign in and search nearby and soulmates once
   each (what a worker keeps per searcher's cell).
2. The same steps in one process through Flask's test client: the top-level packages
   each step imported first (the import boundary tests/test_worker_footprint.py keeps).

Reported figure: VmRSS of the largest worker (what ``ps`` and the issue's goal count);
PSS is printed next to it. Where ``run_gunicorn`` starts the soulmates scorer
(geomap.symptoms.scorer, a child of the master), its VmRSS / PSS is printed after the
master's: it is no web worker, but the service's memory includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from sqlalchemy import create_engine, text

PASSWORD = "bench password 1234"  # noqa: S105 (bench accounts in a bench database)
CELLS = "/api/v1/conditions/{slug}/cells?zoom=5&bbox=0,40,20,60"


def steps(slug: str, preview: bool) -> list[tuple[str, str | None]]:
    """Return (label, path) of the requests in order; None paths are handled specially."""
    return [
        ("home page", "/"),
        ("map page", f"/conditions/{slug}/map"),
        ("viewport", CELLS.format(slug=slug)),
        ("tile", None),
        ("embed", f"/embed/conditions/{slug}/map"),
        *([("preview image", f"/conditions/{slug}/preview.png")] if preview else []),
        ("sign-in page", "/login"),
        ("signed in", None),
        ("nearby API", f"/api/v1/nearby?condition={slug}"),
        ("nearby page", f"/nearby?condition={slug}"),
        ("soulmates page", f"/soulmates?condition={slug}"),
        ("soulmates API", f"/api/v1/soulmates?condition={slug}"),
        ("settings, symptoms pages", None),
    ]


def memory(pid: int) -> dict[str, float]:
    """Return VmRSS, RssAnon, RssFile and Pss of process ``pid`` in MB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            figures[key] = int(value.split()[0]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            figures["Pss"] = int(line.split()[1]) / 1024
    return figures


def bench_member(database_url: str, slug: str) -> str:
    """Return the email of a bench account for a member on the map with ``slug`` (made once)."""
    return bench_members(database_url, slug, 1)[0]


def bench_members(database_url: str, slug: str, count: int) -> list[str]:
    """Return emails of bench accounts of ``count`` members on the map, each in another cell.

    The first is the same member as before (lowest id); the others are the lowest ids
    of other floor cells.
    """
    from werkzeug.security import generate_password_hash

    engine = create_engine(database_url)
    password_hash = generate_password_hash(PASSWORD)
    emails = []
    with engine.begin() as conn:
        members = conn.execute(text(
            "SELECT id FROM (SELECT DISTINCT ON (l.floor_cell) m.id FROM members m "
            "JOIN member_conditions mc ON mc.member_id = m.id "
            "JOIN conditions c ON c.id = mc.condition_id AND c.slug = :slug "
            "JOIN member_locations l ON l.member_id = m.id "
            "JOIN nearby_members n ON n.member_id = m.id AND n.condition_id = c.id "
            "WHERE m.visibility = 'map' ORDER BY l.floor_cell, m.id) AS firsts "
            "ORDER BY id LIMIT :count"), {"slug": slug, "count": count}).scalars().all()
        for member in members:
            email = f"bench-{member}@bench.example.org"
            conn.execute(text(
                "INSERT INTO accounts (email, password_hash, member_id, is_admin, "
                "email_verified_at, health_data_consent_at, terms_accepted_at) "
                "VALUES (:email, :hash, :member, false, now(), now(), now()) "
                "ON CONFLICT (member_id) DO UPDATE SET email = excluded.email, "
                "password_hash = excluded.password_hash, email_verified_at = now()"),
                {"email": email, "hash": password_hash, "member": member})
            emails.append(email)
    engine.dispose()
    return emails


def sign_in(get, post, email: str) -> None:  # noqa: ANN001 (two request callables)
    """Sign in through the login form (its CSRF token included)."""
    html = get("/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    post("/login", {"csrf_token": token, "email": email, "password": PASSWORD})


def serve_steps(get, post, slug: str, email: str, preview: bool, after) -> None:  # noqa: ANN001
    """Request every step's page with ``get``/``post``; call ``after(label)`` after each."""
    for label, path in steps(slug, preview):
        if label == "tile":
            document = json.loads(get(f"/api/v1/conditions/{slug}/version"))
            get(document["tiles"].format(z=5, x=16, y=10))
        elif label == "signed in":
            sign_in(get, post, email)
        elif label == "settings, symptoms pages":
            get("/settings")
            get("/symptoms")
        else:
            get(path)
        after(label)


def gunicorn_figures(port: int, workers: int, slug: str, email: str, preview: bool,
                     searchers: list[str] = ()) -> list[tuple]:
    """Serve the steps from gunicorn; return (label, largest worker, master, scorer) memory.

    The scorer's is None where there is no scorer process (older code).

    ``searchers``: emails of more members (each in another floor cell) who then sign
    in and search nearby once each (the per-cell caches of a worker).
    """
    code = ("from geomap.wsgi_server import run_gunicorn; "
            f"run_gunicorn('127.0.0.1', {port}, {workers})")
    master = subprocess.Popen([sys.executable, "-c", code],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(path: str) -> str:
        try:
            with opener.open(base + path, timeout=120) as response:
                return response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.read().decode("utf-8", "replace")

    def post(path: str, data: dict) -> str:
        body = urllib.parse.urlencode(data).encode()
        with opener.open(base + path, data=body, timeout=120) as response:
            return response.read().decode("utf-8", "replace")

    figures = []
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=2).read()  # noqa: S310 (127.0.0.1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)  # the workers are forked; the scorer started before them

        def children_of(pid: int) -> list[int]:
            return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]

        def is_scorer(pid: int) -> bool:
            return b"geomap.symptoms.scorer" in Path(f"/proc/{pid}/cmdline").read_bytes()

        children = [pid for pid in children_of(master.pid) if not is_scorer(pid)]

        def after(label: str) -> None:
            worker = max((memory(pid) for pid in children), key=lambda m: m["VmRSS"])
            scorers = [pid for pid in children_of(master.pid) if is_scorer(pid)]
            figures.append((label, worker, memory(master.pid),
                            memory(scorers[0]) if scorers else None))

        after("started (no request yet)")
        serve_steps(get, post, slug, email, preview, after)
        for other in searchers:
            opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(CookieJar()))
            sign_in(get, post, other)
            get(f"/api/v1/nearby?condition={slug}")
            get(f"/soulmates?condition={slug}")
        if searchers:
            after(f"+ {len(searchers)} searchers' cells")
    finally:
        master.terminate()
        master.wait(timeout=30)
    return figures


IN_PROCESS = """
import json, sys
sys.path.insert(0, {bench!r})
from worker_memory import serve_steps
from geomap import create_app

def tops():
    return {{name.split(".")[0] for name in sys.modules if not name.startswith("_")}}

app = create_app()
client = app.test_client()
seen, steps = tops(), [("create_app", sorted(tops()))]

def get(path):
    return client.get(path).get_data().decode("utf-8", "replace")

def post(path, data):
    return client.post(path, data=data).get_data(as_text=True)

def after(label):
    global seen
    now = tops()
    steps.append((label, sorted(now - seen)))
    seen = now

serve_steps(get, post, {slug!r}, {email!r}, {preview!r}, after)
print(json.dumps(steps))
"""


def imports_by_step(slug: str, email: str, preview: bool) -> list[tuple[str, list[str]]]:
    """Return (step, top-level packages it imported first), in a fresh process."""
    code = IN_PROCESS.format(bench=str(Path(__file__).parent), slug=slug, email=email,
                             preview=preview)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the worker's memory after each step and what each step imported."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("GEOMAP_PORT", 5143)))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--condition", default="all")
    parser.add_argument("--preview", action="store_true",
                        help="also fetch the preview PNG (Pillow and Shapely)")
    parser.add_argument("--searchers", type=int, default=0,
                        help="then this many members from other cells search nearby "
                             "and soulmates once each")
    args = parser.parse_args()
    from geomap.config import load_settings
    from geomap.embedded_pg import database_url

    email, *searchers = bench_members(database_url(load_settings(os.environ)),
                                      args.condition, 1 + args.searchers)
    with open("/proc/loadavg") as f:
        print(f"load average at start: {' '.join(f.read().split()[:3])}")
    print(f"{'after':<26} {'VmRSS':>7} {'RssAnon':>8} {'RssFile':>8} {'Pss':>7}   "
          f"master VmRSS / Pss   scorer VmRSS / Pss (MB)")
    for label, worker, master, scorer in gunicorn_figures(
            args.port, args.workers, args.condition, email, args.preview, searchers):
        print(f"{label:<26} {worker['VmRSS']:7.1f} {worker['RssAnon']:8.1f} "
              f"{worker['RssFile']:8.1f} {worker['Pss']:7.1f}   "
              f"{master['VmRSS']:.1f} / {master['Pss']:.1f}"
              + (f"   {scorer['VmRSS']:.1f} / {scorer['Pss']:.1f}" if scorer else "   -"))
    print("\nTop-level packages each step imported first (one process, test client):")
    for label, names in imports_by_step(args.condition, email, args.preview):
        shown = " ".join(names) if label != "create_app" else f"{len(names)} packages"
        print(f"  {label:<24} {shown or '-'}")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
