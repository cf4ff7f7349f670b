"""Import speed through the three ways in: the bench path, ``geomap demo``, ``geomap import``.

Uses the worktree's own embedded cluster (``GEOMAP_DATA_DIR``, default ``var``, on
``GEOMAP_DB_PORT``; started if it is not running, left as it was found). A template
database ``geomap_import_ref`` holds the schema, the conditions and the offline
reference data (made on first use); each measured run gets a fresh copy of it
(``geomap_import_run``), so every path loads N members into an empty members table.

* **bench path**: :func:`bench.common.import_members` in this process (generate, derive,
  COPY, commit), the scale curve's import figure.
* **geomap demo**: ``geomap demo --members N --no-publish`` as a subprocess; wall time of
  the whole command (interpreter start, deriver load, generation, load, commit).
* **geomap import**: ``geomap import FILE --no-publish`` of an N-row CSV written once
  into ``var/bench/`` from the demo generator (pseudonym, lat, lng, conditions, role,
  visibility, contactable, joined_at); wall time of the whole command.

    .venv/bin/python bench/import_paths.py --members 1000000 [--paths bench,demo,import]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from geomap import embedded_pg  # noqa: E402
from geomap.config import load_settings  # noqa: E402
from geomap.session import session_scope  # noqa: E402

TEMPLATE = "geomap_import_ref"
RUN_DB = "geomap_import_run"


def load_average() -> str:
    """Return the 1-minute load average as text."""
    return f"{os.getloadavg()[0]:.2f}"


def ensure_template(cluster: embedded_pg.Cluster) -> None:
    """Create the template database (schema, conditions, reference data) if missing.

    A template made before it held the key deriver's prepared structures (which
    ``geomap geo import`` stores) gets them added.
    """
    if common.database_exists(cluster, TEMPLATE):
        engine = create_engine(make_url(cluster.url).set(database=TEMPLATE))
        with session_scope(engine) as session:
            if not session.execute(text("SELECT EXISTS (SELECT 1 FROM geo_prepared)")).scalar():
                common.store_prepared(session)
        engine.dispose()
        return
    url = common.create_database(cluster, TEMPLATE)
    engine = create_engine(url)
    common.prepare_reference(engine)
    from geomap.catalogue.load import import_catalogue
    with session_scope(engine) as session:
        import_catalogue(session)
    engine.dispose()


def fresh_database(cluster: embedded_pg.Cluster) -> str:
    """Return the URL of a fresh copy of the template."""
    return common.create_database(cluster, RUN_DB, template=TEMPLATE)


def write_csv(url: str, members: int, path: Path) -> None:
    """Write ``members`` demo members as an import CSV at ``path`` (once)."""
    if path.exists():
        return
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo

    engine = create_engine(url)
    with session_scope(engine) as session:
        # On land, as `geomap demo` draws them: the importer refuses points at sea.
        deriver = KeyDeriver(session, common.FLOOR)
        batch, prefixes = demo.generate(session, members, seed=7, on_land=deriver.on_land)
        slugs = dict(session.execute(text("SELECT id, slug FROM conditions")).all())
    engine.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pseudonym", "lat", "lng", "conditions", "role", "visibility",
                         "contactable", "joined_at"])
        for i in range(members):
            writer.writerow([
                f"{prefixes[i]}-{i}", f"{batch.lats[i]:.6f}", f"{batch.lngs[i]:.6f}",
                ";".join(slugs[c] for c in batch.conditions[i]), batch.roles[i],
                batch.visibilities[i], "true" if batch.contactable[i] else "false",
                f"{str(batch.joined_at[i])[:19]}Z",
            ])
    partial.rename(path)


def run_cli(url: str, args: list[str]) -> tuple[float, str]:
    """Run ``geomap ARGS`` against ``url``; return (wall seconds, its last output line)."""
    # The code of this checkout (ROOT), whatever the virtualenv has installed.
    env = dict(os.environ, GEOMAP_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from geomap.cli import main; main()", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"geomap {args[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return seconds, re.sub(r"\s+", " ", lines[-1] if lines else "")


def count_members(url: str) -> int:
    """Return how many members ``url``'s database holds."""
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM member_locations")).scalar_one()
    engine.dispose()
    return n


def main() -> None:
    """Measure each path once into a fresh database and print members/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--paths", default="bench,demo,import")
    args = parser.parse_args()
    settings = load_settings()
    cluster = embedded_pg.cluster_for(settings)
    was_running = embedded_pg.is_running(cluster)
    if not was_running:
        embedded_pg.start(cluster)
    try:
        ensure_template(cluster)
        csv_path = (Path(settings["GEOMAP_DATA_DIR"]).resolve() / "bench"
                    / f"members_{args.members}.csv")
        for path in args.paths.split(","):
            url = fresh_database(cluster)
            before = load_average()
            if path == "bench":
                engine = create_engine(url)
                seconds, generating = common.import_members(engine, args.members)
                engine.dispose()
                note = f"generate {generating:.1f} s"
            elif path == "demo":
                seconds, note = run_cli(url, ["demo", "--members", str(args.members),
                                              "--no-publish"])
            elif path == "import":
                write_csv(url, args.members, csv_path)
                seconds, note = run_cli(url, ["import", str(csv_path), "--no-publish"])
            else:
                raise SystemExit(f"unknown path {path!r}: use bench, demo, import")
            loaded = count_members(url)
            print(f"{path}: {loaded:,} members in {seconds:.1f} s = {loaded / seconds:,.0f} "
                  f"members/s (load average {before} before, {load_average()} after; {note})",
                  flush=True)
        common.drop_database(cluster, RUN_DB)
    finally:
        if not was_running:
            embedded_pg.stop(cluster)


if __name__ == "__main__":
    main()
