"""Nearby before and after a change, alternating search by search on one database.

``GEOMAP_DATA_DIR=var GEOMAP_DB_PORT=... .venv/bin/python bench/nearby_ab.py --before REV``
loads ``geomap/members/nearby.py`` as it was at git revision REV next to the current
one, and runs page 1 of the ALL search for the same observers with each, alternating
which goes first, so a busy machine slows both alike. Prints per version the
database time per search (summed over its statements), the whole search, the Python
part and the statements per search. Band rings are warmed first; labels are committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nearby import percentile, pick_observers  # noqa: E402  (bench/ is on sys.path)

from geomap.config import load_settings, secret_key  # noqa: E402
from geomap.embedded_pg import database_url  # noqa: E402
from geomap.members import nearby as current  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str):  # noqa: ANN201
    """Return geomap/members/nearby.py of git revision ``rev`` as a module."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:geomap/members/nearby.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "nearby_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("nearby_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["nearby_before"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Measure both versions and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' code")
    parser.add_argument("--observers", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    before = load_revision(args.before)
    settings = load_settings(os.environ)
    engine = create_engine(database_url(settings))
    clock = {"db": 0.0, "statements": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001
        clock["db"] += time.perf_counter() - conn.info["bench_started"]
        clock["statements"] += 1

    secret, max_km = secret_key(settings), float(settings["GEOMAP_NEARBY_MAX_KM"])
    results: dict[str, tuple[list[float], list[float], list[int]]] = {
        "before": ([], [], []), "after": ([], [], [])}
    with Session(engine) as session:
        observers = pick_observers(session, args.observers * 2, 0.42)
        allowed = set(session.execute(
            text("SELECT id FROM members WHERE suspended_at IS NULL AND visibility = 'map' "
                 "AND id = ANY(:ids)"), {"ids": [m for m, _ in observers]}).scalars())
        observers = [o for o in observers if o[0] in allowed][: args.observers]
        for _member, cell in observers:
            current.band_runs(cell, max_km)
            before.band_runs(cell, max_km)
        for round_ in range(args.rounds):
            for member, _cell in observers:
                pair = [("before", before), ("after", current)]
                for name, module in pair if (member + round_) % 2 else pair[::-1]:
                    clock["db"], clock["statements"] = 0.0, 0
                    started = time.perf_counter()
                    module.nearby(session, member_id=member, condition_slug="all", page=1,
                                  secret=secret, max_km=max_km)
                    total = time.perf_counter() - started
                    session.commit()
                    results[name][0].append(clock["db"] * 1000)
                    results[name][1].append(total * 1000)
                    results[name][2].append(clock["statements"])
    for name, (db, total, statements) in results.items():
        python = [t - d for t, d in zip(total, db, strict=True)]
        print(f"{name:6} n={len(db)}  database p50 {statistics.median(db):.2f} ms "
              f"p95 {percentile(db, 95):.2f} ms | search p50 {statistics.median(total):.2f} ms "
              f"p95 {percentile(total, 95):.2f} ms | python p50 {statistics.median(python):.2f} ms"
              f" | statements/search {sum(statements) / len(statements):.2f}")
    engine.dispose()


if __name__ == "__main__":
    main()
