"""Catalogue scale: 1,000 enabled conditions, N members Zipf-distributed over them.

``.venv/bin/python bench/catalogue.py --members 1000000`` starts its own embedded
PostGIS cluster (temporary folder, free port, 127.0.0.1 only), loads the reference
data and the condition catalogue, opens 1,000 maps (the 11 seeded conditions and 989
ICD-10 / Orphanet entries, through ``geomap.catalogue.curate.enable``), loads N
synthetic members with 1-3 conditions each (condition ranks drawn from a Zipf law,
s = 1.1), then measures a full publish, an incremental publish after a 1 % change, and
over HTTP (gunicorn, the options of ``geomap serve --prod``) the p95 of the home page,
condition search (JSON suggestions and the results page), the A-Z index and the
per-condition map pages. Figures only; nothing is asserted.

With ``--data-dir DIR`` the cluster lives in DIR and is kept (stopped) at the end; a
later run with the same DIR and ``--members`` reuses the loaded data and measures the
publishes again (each run changes another 1 % of the members). ``--no-http`` skips the
HTTP part.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (bench/ is on sys.path)
    FLOOR,
    K,
    create_database,
    free_port,
    percentile,
    prepare_reference,
    report,
    start_cluster,
    start_server,
    timed_gets,
)

from geomap import embedded_pg  # noqa: E402
from geomap.geo.reference import raw_connection  # noqa: E402
from geomap.session import session_scope  # noqa: E402

ENABLED = 1000
ZIPF_S = 1.1
QUERIES = ["ALL", "lymphoblastic", "C91.0", "leucemia linfoblástica aguda", "diabetes",
           "cystic fibrosis", "huntington", "E84", "ORPHA:399", "sclerosis", "anaemia",
           "hepatitis", "tuberculosis", "asthma", "migraine", "lymphoma", "sarcoma",
           "syndrome", "deficiency", "myeloid", "epilepsy", "G35", "C50", "J45",
           "retinitis pigmentosa", "muscular dystrophy", "parkinson", "alzheimer",
           "enfermedad", "insuficiencia renal"]


def open_maps(engine, count: int) -> list[str]:  # noqa: ANN001
    """Enable ``count`` conditions in all (the seeded ones first); return their slugs."""
    from geomap.catalogue import curate

    with session_scope(engine) as session:
        enabled = session.execute(
            text("SELECT count(*) FROM conditions WHERE enabled")).scalar_one()
        slugs = session.execute(
            text("SELECT slug FROM catalogue_entries WHERE condition_id IS NULL "
                 "AND kind IN ('category', 'disorder') ORDER BY md5(slug) LIMIT :n"),
            {"n": count - enabled}).scalars().all()
        for slug in slugs:
            curate.enable(session, curate.require_entry(session, slug), "bench")
        return session.execute(
            text("SELECT slug FROM conditions WHERE enabled ORDER BY id")).scalars().all()


def load_members(engine, members: int) -> float:  # noqa: ANN001
    """Load synthetic members, then give each 1-3 Zipf-drawn conditions; return seconds."""
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo
    from geomap.ingest.members_bulk import load_members as bulk_load

    started = time.perf_counter()
    with session_scope(engine) as session:
        batch, prefixes = demo.generate(session, members, seed=1)
        bulk_load(session, batch, KeyDeriver(session, FLOOR), pseudonym_prefix=prefixes)
    with session_scope(engine) as session:
        ids = session.execute(
            text("SELECT id FROM conditions WHERE enabled ORDER BY id")).scalars().all()
        member_ids = np.array(session.execute(text("SELECT id FROM members ORDER BY id"))
                              .scalars().all(), dtype=np.int64)
        rng = np.random.default_rng(3)
        ranks = np.arange(1, len(ids) + 1, dtype=np.float64)
        p = ranks ** -ZIPF_S
        p /= p.sum()
        order = np.array(ids)[rng.permutation(len(ids))]  # popularity not tied to id
        how_many = rng.integers(1, 4, len(member_ids))
        pairs = []
        for slot in range(3):
            chosen = rng.choice(len(ids), size=len(member_ids), p=p)
            take = how_many > slot
            pairs.append(np.stack([order[chosen[take]], member_ids[take]], axis=1))
        table = np.unique(np.concatenate(pairs), axis=0)
        session.execute(text("TRUNCATE member_conditions"))
        buffer = io.StringIO()
        np.savetxt(buffer, table, fmt="%d", delimiter="\t")
        with raw_connection(session).cursor().copy(
                "COPY member_conditions (condition_id, member_id) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    return time.perf_counter() - started


def bench_publish(engine, members: int, vacuum: bool = True) -> None:  # noqa: ANN001
    """Time a full publish, then an incremental one after a 1 % change.

    With ``vacuum``, the publish tables are vacuumed between the two, as autovacuum
    does in service between a full publish and the next one.

    The change: 0.5 % of the members move to another member's place, 0.5 % toggle
    their visibility; a run on a kept data set picks other members than the last run.
    """
    from geomap.publish import publish

    with session_scope(engine) as session:
        links = session.execute(text("SELECT count(*) FROM member_conditions")).scalar_one()
        runs = session.execute(text("SELECT count(*) FROM publish_runs")).scalar_one()
        summary = publish(session, k=K, floor=FLOOR, full=True, snapshots=False)
    report(f"full publish, {ENABLED:,} conditions, {links:,} memberships (s)",
           f"{summary.seconds:.2f} ({summary.published_cells:,} markers)", "<= 30",
           summary.seconds <= 30)
    print("  phases (s): " + ", ".join(f"{name} {sec:.2f}" for name, sec in summary.phases),
          flush=True)
    if vacuum:
        # A full publish rewrites every publish table; in service autovacuum clears the
        # dead rows within a minute (the publish interval is 300 s). Without it, the
        # incremental publish just after the full one looks up keys among dead rows.
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE publish_dirty, published_cells, publish_leftovers, "
                              "publish_floor_counts, published_regions, published_totals"))
    moved, toggled = (11 + 2 * runs) % 200, (13 + 2 * runs) % 200  # the first run: 11, 13
    with session_scope(engine) as session:
        session.execute(text(
            "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
            "FROM member_locations o WHERE ml.member_id % 200 = :moved "
            "AND o.member_id = ml.member_id + 7919"), {"moved": moved})
        session.execute(text(
            "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
            "ELSE 'map' END WHERE id % 200 = :toggled"), {"toggled": toggled})
    with session_scope(engine) as session:
        summary = publish(session, k=K, floor=FLOOR, snapshots=False)
    report(f"incremental publish, 1% of {members:,} members changed (s)",
           f"{summary.seconds:.2f} ({summary.kind}, {summary.rows_written:,} rows rewritten)",
           "<= 2", summary.seconds <= 2)
    print("  phases (s): " + ", ".join(f"{name} {sec:.2f}" for name, sec in summary.phases),
          flush=True)


def bench_http(port: int, slugs: list[str], rounds: int) -> None:
    """p50/p95 over HTTP (one keep-alive client) of the pages a visitor uses."""
    from urllib.parse import quote

    rng = random.Random(7)
    letters = list("ABCDEFHLMPST")  # letters with at least three pages of conditions
    cases = {
        "home page": ["/"] * rounds,
        "condition search, JSON suggestions": [
            f"/api/v1/catalogue?q={quote(rng.choice(QUERIES))}" for _ in range(rounds)],
        "condition search, results page": [
            f"/conditions?q={quote(rng.choice(QUERIES))}" for _ in range(rounds)],
        "A-Z index page": [
            f"/conditions?letter={rng.choice(letters)}&page={rng.randint(1, 3)}"
            for _ in range(rounds)],
        "per-condition map page": [
            f"/conditions/{rng.choice(slugs)}/map" for _ in range(rounds)],
        "per-condition entry page": [
            f"/conditions/{rng.choice(slugs)}" for _ in range(rounds)],
    }
    for name, paths in cases.items():
        timed_gets(port, paths[: max(5, rounds // 10)])  # warm the workers
        latencies, errors, size = timed_gets(port, paths)
        ms = [s * 1000 for s in latencies]
        p95 = percentile(ms, 95)
        target = "<= 50" if name in ("home page", "condition search, JSON suggestions",
                                     "condition search, results page") else ""
        report(f"{name} (p50 / p95 ms)",
               f"{percentile(ms, 50):.1f} / {p95:.1f} ({errors} errors, "
               f"{size / len(paths) / 1024:.1f} kB avg)", target,
               (p95 <= 50 and errors == 0) if target else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the cluster (stopped) in this folder and reuse its data")
    parser.add_argument("--db-port", type=int, default=None)
    parser.add_argument("--no-http", action="store_true", help="measure the publishes only")
    parser.add_argument("--no-vacuum", action="store_true",
                        help="no VACUUM between the full and the incremental publish")
    args = parser.parse_args()
    kept = args.data_dir is not None
    workdir = (args.data_dir.resolve() if kept
               else Path(tempfile.mkdtemp(prefix="geomap-bench-catalogue-")))
    cluster, url = start_cluster(workdir, port=args.db_port, keep=kept)
    server = None
    try:
        engine = create_engine(url)
        started = time.perf_counter()
        if kept and loaded_members(engine) == args.members:
            print(f"  reusing the {args.members:,} members loaded in {workdir}", flush=True)
            from geomap.migrate import upgrade

            upgrade(engine)
        else:
            if kept:  # another size, or a load that did not finish: start again
                engine.dispose()
                url = create_database(cluster, "geomap_bench")
                engine = create_engine(url)
            load_everything(engine, args.members)
        bench_publish(engine, args.members, vacuum=not args.no_vacuum)
        if not args.no_http:
            with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text("ANALYZE"))
            port = free_port()
            server = start_server(url, workdir, port, args.workers)
            bench_http(port, slugs_of(engine), args.rounds)
        print(f"\nTotal {time.perf_counter() - started:.0f} s", flush=True)
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        embedded_pg.stop(cluster)
        if not kept:
            shutil.rmtree(workdir, ignore_errors=True)


def loaded_members(engine) -> int:  # noqa: ANN001
    """Return how many members a kept data set holds (0: none loaded yet)."""
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('members')")).scalar() is None:
            return 0
        if conn.execute(text("SELECT count(*) FROM member_conditions")).scalar_one() == 0:
            return 0
        return conn.execute(text("SELECT count(*) FROM members")).scalar_one()


def slugs_of(engine) -> list[str]:  # noqa: ANN001
    """Return the slugs of the enabled conditions."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT slug FROM conditions WHERE enabled ORDER BY id")).scalars().all()


def load_everything(engine, members: int) -> None:  # noqa: ANN001
    """Migrate, load the reference data, the catalogue, 1,000 maps and the members."""
    prepare_reference(engine)
    from geomap.catalogue.load import import_catalogue

    with session_scope(engine) as session:
        t0 = time.perf_counter()
        summary = import_catalogue(session)
    report("geomap conditions import (s)",
           f"{time.perf_counter() - t0:.1f} ({summary.added:,} entries)")
    t0 = time.perf_counter()
    open_maps(engine, ENABLED)
    report(f"open {ENABLED - 11:,} maps through curate.enable (s)",
           f"{time.perf_counter() - t0:.1f}")
    seconds = load_members(engine, members)
    report(f"load {members:,} members with Zipf conditions (s)", f"{seconds:.1f}")
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))


if __name__ == "__main__":
    main()
