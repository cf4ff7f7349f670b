"""Private snapshots after a 1 % change: incremental refresh against a full rebuild.

``.venv/bin/python bench/snapshots.py --members 100000 1000000`` runs, per size, on
its own embedded PostGIS cluster (temporary folder, free port, destroyed at the end):
the synthetic import of ``bench/run.py``, a full publish and full snapshot rebuild,
then a 1 % change (moves, visibility and contactable flips, condition changes,
deletions), an incremental publish, the incremental snapshot refresh, and a full
rebuild of the same state for comparison (whose tables must be equal). Figures only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run  # noqa: E402  (bench/ is on sys.path; run.py puts the repo there)

from geomap import embedded_pg  # noqa: E402
from geomap.config import load_settings  # noqa: E402
from geomap.embedded_pg import database_url  # noqa: E402
from geomap.session import session_scope  # noqa: E402

TABLES = {
    "admin_region_counts": "condition_id, country_code, region_code, role",
    "admin_monthly_joins": "condition_id, country_code, month",
    "nearby_members": "condition_id, floor_cell, member_id",
}


def fingerprint(session) -> str:  # noqa: ANN001
    """Return a digest of every snapshot row (to compare incremental and full)."""
    digest = hashlib.sha256()
    for table, order in TABLES.items():
        for row in session.execute(text(f"SELECT * FROM {table} ORDER BY {order}")):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()[:16]


def change_one_percent(session, offset: int = 0) -> int:  # noqa: ANN001
    """Change about 1 % of the members the ways members, moderators and admins do.

    ``offset`` shifts which members (so repeated runs on one database change others).
    """
    statements = [
        # 0.4 %: move to another member's place (another floor cell, mostly)
        "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
        "FROM member_locations o WHERE (ml.member_id + :o) % 250 = 11 "
        "AND o.member_id = ml.member_id + 7919",
        # 0.2 %: visibility flips
        "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
        "ELSE 'map' END WHERE (id + :o) % 500 = 13",
        # 0.1 %: contactable flips, 0.1 %: suspensions
        "UPDATE members SET contactable = NOT contactable WHERE (id + :o) % 1000 = 17",
        "UPDATE members SET suspended_at = now() WHERE (id + :o) % 1000 = 19",
        # 0.1 %: a condition added
        "INSERT INTO member_conditions (condition_id, member_id) SELECT 2, id FROM members "
        "WHERE (id + :o) % 1000 = 23 ON CONFLICT DO NOTHING",
        # 0.1 %: deleted accounts
        "DELETE FROM members WHERE (id + :o) % 1000 = 29",
    ]
    changed = 0
    for statement in statements:
        changed += session.execute(text(statement), {"o": offset}).rowcount
    return changed


def slow_statements(engine, threshold: float = 0.02) -> list[tuple[float, str]]:  # noqa: ANN001
    """Record every statement slower than ``threshold`` seconds run through ``engine``."""
    from sqlalchemy import event

    found: list[tuple[float, str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, many) -> None:  # noqa: ANN001
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, parameters, context, many) -> None:  # noqa: ANN001
        seconds = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        if seconds >= threshold:
            found.append((seconds, " ".join(statement.split())[:110]))

    return found


def bench_size(members: int, profile: bool = False) -> None:
    """Measure one membership size on a fresh cluster (destroyed afterwards)."""
    workdir = Path(tempfile.mkdtemp(prefix="geomap-bench-snapshots-"))
    cluster, url = bench_run.start_cluster(workdir)
    engine = create_engine(url)
    try:
        bench_run.prepare_reference(engine)
        bench_run.bench_import(engine, members)
        measure(engine, profile)
    finally:
        engine.dispose()
        embedded_pg.destroy(cluster)
        shutil.rmtree(workdir, ignore_errors=True)


def measure(engine, profile: bool = False, full_first: bool = True) -> None:  # noqa: ANN001
    """Full publish and rebuild, a 1 % change, incremental publish and refresh, full again."""
    from geomap.publish import publish, refresh_snapshots

    members = session_count(engine)
    first = 0.0
    if full_first:
        with session_scope(engine) as session:
            publish(session, k=bench_run.K, floor=bench_run.FLOOR, full=True, snapshots=False)
        with session_scope(engine) as session:
            first = refresh_snapshots(session, full=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with session_scope(engine) as session:
        changed = change_one_percent(session, int(time.time()) % 997)
        marked = session.execute(text("SELECT count(*) FROM snapshot_dirty")).scalar_one()
    with session_scope(engine) as session:
        summary = publish(session, k=bench_run.K, floor=bench_run.FLOOR, snapshots=False)
    slow = slow_statements(engine) if profile else []
    with session_scope(engine) as session:
        incremental = refresh_snapshots(session)
    for seconds, statement in slow:
        print(f"    {seconds:.3f} s  {statement}")
    slow.clear()
    with session_scope(engine) as session:
        after_incremental = fingerprint(session)
    with session_scope(engine) as session:
        full = refresh_snapshots(session, full=True)
        after_full = fingerprint(session)
    print(f"{members:>9,} members | rows changed {changed:,}, members marked {marked:,} | "
          f"incremental publish {summary.seconds:.2f} s ({summary.kind}) | "
          f"snapshots: incremental {incremental:.2f} s, full rebuild {full:.2f} s "
          f"(first full {first:.2f} s) | equal: {after_incremental == after_full}",
          flush=True)


def session_count(engine) -> int:  # noqa: ANN001
    """Return how many members the database holds."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM members")).scalar_one()


def main() -> None:
    """Run every size given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100_000])
    parser.add_argument("--profile", action="store_true",
                        help="Print the statements of the incremental refresh over 20 ms.")
    parser.add_argument("--no-full-first", action="store_true",
                        help="With --existing: skip the first full publish and rebuild "
                             "(the database is published and refreshed already).")
    parser.add_argument("--existing", action="store_true",
                        help="Measure the configured database (GEOMAP_DATA_DIR, GEOMAP_DB_PORT; "
                             "e.g. after `geomap demo --members 1000000`) instead; it is "
                             "changed by 1 %%.")
    args = parser.parse_args()
    if args.existing:
        settings = load_settings(os.environ)
        engine = create_engine(database_url(settings))
        try:
            measure(engine, args.profile, full_first=not args.no_full_first)
        finally:
            engine.dispose()
        return
    for members in args.members:
        bench_size(members, args.profile)


if __name__ == "__main__":
    main()
