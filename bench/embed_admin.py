"""Benchmark the embed and the admin region page at a large community.

Fills the configured database (``GEOMAP_DATABASE_URL``, or the embedded cluster in
``GEOMAP_DATA_DIR``) with demo members up to ``--members`` (deterministic, seed 1),
publishes, then measures:

- the embed page's HTML size (vendor assets excluded: they are static and cached);
- the time to the first markers of the embed in headless Chromium (Debian's);
- the admin region page's server time (median of ``--repeat`` requests), for one
  condition and for every condition, and of its CSV export.

Usage: .venv/bin/python bench/embed_admin.py --members 1000000
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import threading
import time
from pathlib import Path

from probes import FIRST_MARKERS_PROBE  # bench/ is on sys.path when run as a script
from sqlalchemy import text
from werkzeug.serving import make_server

from geomap import create_app, embedded_pg
from geomap.auth.accounts import create_admin
from geomap.config import load_settings
from geomap.database import make_engine
from geomap.geo.derive import KeyDeriver
from geomap.ingest.demo import generate
from geomap.ingest.members_bulk import load_members
from geomap.publish import publish
from geomap.session import session_scope

CHUNK = 250_000
ADMIN_EMAIL = "bench-admin@example.org"


def database_url(settings: dict) -> str:
    """Return the configured database URL, starting the embedded cluster if needed."""
    if settings["GEOMAP_DATABASE_URL"]:
        return settings["GEOMAP_DATABASE_URL"]
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    return cluster.url


def fill(url: str, members: int, settings: dict) -> None:
    """Add demo members until there are ``members``, then publish."""
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM members")).scalar_one()
    seed = 1000
    started = time.perf_counter()
    while have < members:
        n = min(CHUNK, members - have)
        with session_scope(engine) as session:
            deriver = KeyDeriver(session, settings["GEOMAP_FLOOR_RESOLUTION"])
            batch, prefixes = generate(session, n, seed, on_land=deriver.on_land)
            load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        have += n
        seed += 1
        print(f"  members: {have:,}", flush=True)
    if time.perf_counter() - started > 1:
        print(f"  loaded in {time.perf_counter() - started:.0f} s")
    with session_scope(engine) as session:
        summary = publish(session, k=settings["GEOMAP_K"],
                          floor=settings["GEOMAP_FLOOR_RESOLUTION"])
        create_admin(session, email=ADMIN_EMAIL, password=secrets.token_urlsafe(16))
    print(f"  published version {summary.version} in {summary.seconds:.1f} s")
    engine.dispose()


def median_ms(client, url: str, repeat: int) -> tuple[float, int]:  # noqa: ANN001
    """Return the median server time of GET ``url`` in ms, and the body size."""
    times = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.data)
    return statistics.median(times), size


def first_markers_ms(app, repeat: int) -> dict[str, float] | None:  # noqa: ANN001
    """Return median times from navigation to the embed's first markers, cold and warm.

    Cold: a fresh browser context (nothing cached). Warm: one context, so the vendor
    assets (and the embed page, within its max-age) come from the browser cache.
    """
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/embed/conditions/all/map"
    times: dict[str, list[float]] = {"cold": [], "warm": []}

    def timed(context) -> float:  # noqa: ANN001
        """Return ms from navigation start to the frame painting the first marker.

        Measured inside the page (as bench/run.py does), so Playwright's polling is
        not counted.
        """
        page = context.new_page()
        page.add_init_script(FIRST_MARKERS_PROBE)
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.__geomapFirstMarkers !== undefined",
                               timeout=30_000)
        elapsed = page.evaluate("window.__geomapFirstMarkers")
        page.close()
        return elapsed

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
            warm = browser.new_context(viewport={"width": 800, "height": 500})
            timed(warm)  # fills the server's caches and the warm context's cache
            for _ in range(repeat):
                cold = browser.new_context(viewport={"width": 800, "height": 500})
                times["cold"].append(timed(cold))
                cold.close()
                times["warm"].append(timed(warm))
            browser.close()
    finally:
        server.shutdown()
    return {kind: statistics.median(values) for kind, values in times.items()}


def main() -> None:
    """Fill, then measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    url = database_url(settings)
    print(f"Filling to {args.members:,} members ...")
    fill(url, args.members, settings)
    app = create_app({"GEOMAP_DATABASE_URL": url,
                      "GEOMAP_DATA_DIR": settings["GEOMAP_DATA_DIR"]})
    client = app.test_client()
    with session_scope(make_engine(url, pool_size=1)) as session:
        admin_id = session.execute(
            text("SELECT id FROM accounts WHERE email = :e"), {"e": ADMIN_EMAIL}
        ).scalar_one()
    with client.session_transaction() as session:
        session["_user_id"] = str(admin_id)
    with app.app_context():
        members = app.extensions["geomap.sessions"]().execute(
            text("SELECT count(*) FROM members")).scalar_one()
    print(f"\nMembers in the database: {members:,}")
    embed_ms, embed_bytes = median_ms(client, "/embed/conditions/all/map", args.repeat)
    print(f"Embed HTML: {embed_bytes / 1000:.1f} kB (target <= 50 kB), "
          f"server {embed_ms:.1f} ms; vendor assets excluded")
    for condition in ("all", "every"):
        ms, size = median_ms(client, f"/admin/regions?condition={condition}", args.repeat)
        print(f"Admin /admin/regions?condition={condition}: {ms:.0f} ms median server time "
              f"(target <= 200 ms), {size / 1000:.0f} kB")
    ms, size = median_ms(client, "/admin/regions.csv?condition=every", args.repeat)
    print(f"Admin CSV (every condition): {ms:.0f} ms, {size / 1000:.0f} kB")
    if not args.no_browser:
        first = first_markers_ms(app, min(args.repeat, 5))
        if first is not None:
            print(f"Embed first markers in headless Chromium (target <= 300 ms): "
                  f"{first['warm']:.0f} ms median with cached assets, "
                  f"{first['cold']:.0f} ms with an empty cache")


if __name__ == "__main__":
    main()
