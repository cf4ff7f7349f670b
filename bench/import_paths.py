"""Import speed through the three ways in: the bench path, ``geomap demo``, ``geomap import``.

Uses the worktree's own embedded cluster (``GEOMAP_DATA_DIR``, default ``var``, on
``GEOMAP_DB_PORT``; started if it is not running, left as it was found). A template
database ``geomap_import_ref`` holds the schema, the conditions, the offline reference
data and the key deriver's prepared structures (made on first use), copied and migrated
to the checkout's schema as ``geomap_import_<newest migration>``; each measured run
gets a fresh copy of that (``geomap_import_run``), so every path loads N members into
an empty members table.

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

BASE_TEMPLATE = "geomap_import_ref"
RUN_DB = "geomap_import_run"


def load_average() -> str:
    """Return the 1-minute load average as text."""
    return f"{os.getloadavg()[0]:.2f}"


def template_name() -> str:
    """Return the template's name for this checkout's schema (its newest migration).

    An export of an older commit so gets a template of its own schema (A/B runs).
    """
    from alembic.script import ScriptDirectory

    from geomap.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    return f"geomap_import_{head}"


def ensure_template(cluster: embedded_pg.Cluster) -> str:
    """Return the template database's name, made first if missing.

    A new template is copied from the base template (schema, conditions, reference
    data; made on first use) and migrated to this checkout's schema; a base template
    made before it held the key deriver's prepared structures (which ``geomap geo
    import`` stores) gets them added.
    """
    name = template_name()
    if not common.database_exists(cluster, BASE_TEMPLATE):
        engine = create_engine(common.create_database(cluster, BASE_TEMPLATE))
        common.prepare_reference(engine)
        from geomap.catalogue.load import import_catalogue
        with session_scope(engine) as session:
            import_catalogue(session)
        engine.dispose()
    engine = create_engine(make_url(cluster.url).set(database=BASE_TEMPLATE))
    with session_scope(engine) as session:
        if not session.execute(text("SELECT EXISTS (SELECT 1 FROM geo_prepared)")).scalar():
            common.store_prepared(session)
    engine.dispose()
    if not common.database_exists(cluster, name):
        from geomap.migrate import upgrade

        engine = create_engine(common.create_database(cluster, name, template=BASE_TEMPLATE))
        upgrade(engine)
        engine.dispose()
    return name


def cluster_cpu_seconds(cluster: embedded_pg.Cluster) -> float:
    """Return the CPU seconds (user + system) the cluster's processes have used so far.

    The postmaster's own, its live children's, and (through the postmaster's
    ``cutime``/``cstime``) its exited children's, such as the backends of finished
    runs. On a shared machine this, unlike wall time, hardly depends on the others' load.
    """
    tick = os.sysconf("SC_CLK_TCK")
    try:
        postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def client_cpu_seconds() -> float:
    """Return the CPU seconds of this process and its finished child processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def fresh_database(cluster: embedded_pg.Cluster, template: str) -> str:
    """Return the URL of a fresh copy of ``template``, after a checkpoint.

    The checkpoint writes out the last run's dirty pages (~500 MB of WAL per million
    members) before this run's clock starts, so no run pays for the one before it.
    """
    url = common.create_database(cluster, RUN_DB, template=template)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
    engine.dispose()
    return url


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
        template = ensure_template(cluster)
        csv_path = (Path(settings["GEOMAP_DATA_DIR"]).resolve() / "bench"
                    / f"members_{args.members}.csv")
        for path in args.paths.split(","):
            url = fresh_database(cluster, template)
            before = load_average()
            if path == "import":
                write_csv(url, args.members, csv_path)
            server_cpu, client_cpu = cluster_cpu_seconds(cluster), client_cpu_seconds()
            if path == "bench":
                engine = create_engine(url)
                seconds, generating = common.import_members(engine, args.members)
                engine.dispose()
                note = f"generate {generating:.1f} s"
            elif path == "demo":
                seconds, note = run_cli(url, ["demo", "--members", str(args.members),
                                              "--no-publish"])
            elif path == "import":
                seconds, note = run_cli(url, ["import", str(csv_path), "--no-publish"])
            else:
                raise SystemExit(f"unknown path {path!r}: use bench, demo, import")
            client_cpu = client_cpu_seconds() - client_cpu
            server_cpu = cluster_cpu_seconds(cluster) - server_cpu
            loaded = count_members(url)
            print(f"{path}: {loaded:,} members in {seconds:.1f} s = {loaded / seconds:,.0f} "
                  f"members/s (load average {before} before, {load_average()} after; "
                  f"CPU client {client_cpu:.1f} s, server {server_cpu:.1f} s; {note})",
                  flush=True)
        common.drop_database(cluster, RUN_DB)
    finally:
        if not was_running:
            embedded_pg.stop(cluster)


if __name__ == "__main__":
    main()
