"""A/B of the incremental publish on a kept data set: the same work, run after run.

``python bench/publish_ab.py --data-dir var/cat1m --db-port 55491 --runs 3`` starts the
kept cluster of ``bench/catalogue.py --data-dir``, commits one 1 % change (the
catalogue bench's next one: 0.5 % of the members moved, 0.5 % toggling visibility)
unless ``--no-change``, then publishes incrementally ``--runs`` times, each in a
transaction that is rolled back, so every run does exactly the same work on the same
stored state (the publish tables are vacuumed before each run, as autovacuum does in
service between two publishes). A first run warms the process (key deriver) and is not
reported. Prints seconds, rows and phases per run; ``--profile`` adds a cProfile of the
last run, ``--log-statements`` logs every statement's duration to the server log.

Self-contained (no bench/common import): run with another checkout's interpreter to
time that checkout's code on the same data, e.g. ``/work/main/.venv/bin/python``.
Figures only; nothing is asserted. The cluster is stopped at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import geomap
from geomap import embedded_pg
from geomap.config import load_settings

K, FLOOR = 5, 5


def change_one_percent(engine) -> None:  # noqa: ANN001
    """Commit the catalogue bench's next 1 % change (see bench/catalogue.py)."""
    with Session(engine) as session, session.begin():
        runs = session.execute(text("SELECT count(*) FROM publish_runs")).scalar_one()
        moved, toggled = (11 + 2 * runs) % 200, (13 + 2 * runs) % 200
        session.execute(text(
            "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
            "FROM member_locations o WHERE ml.member_id % 200 = :moved "
            "AND o.member_id = ml.member_id + 7919"), {"moved": moved})
        session.execute(text(
            "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
            "ELSE 'map' END WHERE id % 200 = :toggled"), {"toggled": toggled})


def vacuum(engine) -> None:  # noqa: ANN001
    """Vacuum the publish tables (not timed)."""
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE publish_dirty, published_cells, publish_leftovers, "
                          "publish_floor_counts, published_regions, published_totals"))


STATS = ("SELECT (SELECT row(wal_records, wal_fpi, wal_bytes, wal_write, wal_sync) "
         "FROM pg_stat_wal)::text, (SELECT row(buffers_backend, buffers_backend_fsync, "
         "buffers_clean, buffers_checkpoint) FROM pg_stat_bgwriter)::text")


TRACED = ("_take_dirty", "_follow_enabled", "_apply_deltas", "_stored_parts", "_holdings",
          "repartition", "_count_regions_meanwhile", "_write_part_changes", "_fetch_ints",
          "_copy_markers", "_copy_binary", "region_counts", "write_region_counts",
          "_update_totals", "_recount_conditions", "_write_conditions", "publish_symptoms")
TIMES: dict[str, list[float]] = {}


def trace_step() -> None:
    """Wrap the publish step's helpers (those this checkout has) with wall-clock timers."""
    import functools
    import threading

    from geomap.publish import step

    for name in TRACED:
        function = getattr(step, name, None)
        if function is None:
            continue

        def timed(*args, __function=function, __name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return __function(*args, **kwargs)
            finally:
                label = __name if threading.current_thread() is threading.main_thread() \
                    else f"{__name} (thread)"
                TIMES.setdefault(label, []).append(time.perf_counter() - started)

        setattr(step, name, functools.wraps(function)(timed))
    step.EXTRA_PUBLISHERS[:] = [getattr(step, "publish_symptoms", f) if getattr(f, "__name__", "")
                                == "publish_symptoms" else f for f in step.EXTRA_PUBLISHERS]


class LazyExecutor:
    """Stands in for the publish's region thread: the work runs when its result is asked."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        pass

    def submit(self, function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
        """Return a stand-in future that runs ``function`` when asked for its result."""
        class Lazy:
            def result(self):  # noqa: ANN201
                return function(*args, **kwargs)
        return Lazy()

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop."""


def run_once(engine, profile: bool, log_statements: bool, explain: bool):  # noqa: ANN001, ANN201
    """Publish incrementally in a transaction that is rolled back; return the summary."""
    from geomap.publish import publish

    with engine.connect() as conn:
        before = conn.execute(text(STATS)).one()
    with Session(engine) as session:
        session.begin()
        if log_statements:
            session.execute(text("SET LOCAL log_min_duration_statement = 0"))
        if explain:
            session.execute(text(
                "LOAD 'auto_explain'; SET LOCAL auto_explain.log_min_duration = 0; "
                "SET LOCAL auto_explain.log_analyze = on; SET LOCAL auto_explain.log_buffers = on; "
                "SET LOCAL auto_explain.log_wal = on; SET LOCAL auto_explain.log_timing = off"))
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        summary = publish(session, k=K, floor=FLOOR, snapshots=False)
        if profiler:
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)
        session.rollback()
    with engine.connect() as conn:
        after = conn.execute(text(STATS)).one()
    print(f"    wal (records, fpi, bytes, writes, syncs) {before[0]} -> {after[0]}; "
          f"bgwriter (backend, backend_fsync, clean, checkpoint) {before[1]} -> {after[1]}",
          flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--db-port", type=int, required=True)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-change", action="store_true",
                        help="publish the change already committed (no new 1 %)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--log-statements", action="store_true")
    parser.add_argument("--regions-inline", action="store_true",
                        help="count regions after the cells instead of in a thread beside them")
    parser.add_argument("--trace", action="store_true",
                        help="time the publish step's helpers (seconds/calls per run)")
    parser.add_argument("--explain", action="store_true",
                        help="auto_explain (analyze, buffers, wal) of every statement to the "
                        "server log")
    args = parser.parse_args()
    print(f"  code: {Path(geomap.__file__).resolve().parent}", flush=True)
    settings = load_settings({"GEOMAP_DATA_DIR": str(args.data_dir.resolve() / "data"),
                              "GEOMAP_DB_PORT": str(args.db_port)})
    if args.trace:
        trace_step()
    if args.regions_inline:
        from geomap.publish import step

        step.ThreadPoolExecutor = LazyExecutor
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    try:
        url = make_url(cluster.url).set(database="geomap_bench")
        engine = create_engine(url)
        if not args.no_change:
            change_one_percent(engine)
        for run in range(args.runs + 1):
            vacuum(engine)
            load = os.getloadavg()[0]
            last = run == args.runs
            summary = run_once(engine, args.profile and last, args.log_statements and run > 0,
                               args.explain and last)
            label = "warm-up" if run == 0 else f"run {run}"
            phases = ", ".join(f"{name} {sec:.2f}" for name, sec in summary.phases)
            print(f"  {label}: {summary.seconds:.2f} s ({summary.kind}, "
                  f"{summary.rows_written:,} rows), load {load:.2f}; {phases}", flush=True)
            if TIMES:
                print("    " + "; ".join(f"{name} {sum(t):.3f}/{len(t)}"
                                         for name, t in TIMES.items()), flush=True)
                TIMES.clear()
            time.sleep(0.5)
        engine.dispose()
    finally:
        embedded_pg.stop(cluster)


if __name__ == "__main__":
    main()
