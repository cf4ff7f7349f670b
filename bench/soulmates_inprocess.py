r"""Soulmates in process: ``candidates.pack`` + ``best`` of two versions of the module, interleaved.

    git show 73e2a74:geomap/symptoms/candidates.py > /tmp/candidates_old.py
    GEOMAP_DATA_DIR=var/bench1m GEOMAP_DB_PORT=55462 \\
        .venv/bin/python bench/soulmates_inprocess.py --old /tmp/candidates_old.py

Draws ``--probes`` opted-in listable members with ALL (the seed of bench/soulmates.py
scale), runs each search with the old module and with this checkout's, twice, and
prints p50/p95 of each and how many results are identical (the searcher excluded, 30
soulmates, as the HTTP API asks). Needs a prepared database (``soulmates.py scale
--prepare``) with its cluster running.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geomap.config import load_settings  # noqa: E402
from geomap.embedded_pg import database_url  # noqa: E402
from geomap.symptoms import candidates as new  # noqa: E402


def _load(path: str):  # noqa: ANN202
    """Return the module at ``path`` (an older candidates.py)."""
    spec = importlib.util.spec_from_file_location("old_candidates", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_candidates"] = module
    spec.loader.exec_module(module)
    return module


def _p(values: list[float]) -> str:
    """Return p50 / p95 in ms."""
    ordered = sorted(values)
    return (f"p50={statistics.median(ordered):.1f} "
            f"p95={ordered[max(0, int(0.95 * len(ordered)) - 1)]:.1f} ms")


def main() -> None:
    """Print the interleaved in-process figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="path of the older candidates.py")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--seed", type=float, default=0.42)
    args = parser.parse_args()
    old = _load(args.old)
    engine = create_engine(database_url(load_settings(os.environ)))
    with Session(engine) as session:
        condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")
                                    ).scalar_one()
        session.execute(text("SELECT setseed(:seed)"), {"seed": args.seed})
        probes = session.execute(text(
            "SELECT p.member_id, p.terms FROM soulmate_profiles p JOIN nearby_members n "
            "ON n.member_id = p.member_id JOIN conditions c ON c.id = n.condition_id "
            "AND c.slug = 'all' ORDER BY random() LIMIT :n"), {"n": args.probes}).all()
        packs = {}
        for name, module in (("old", old), ("new", new)):
            started = time.perf_counter()
            packs[name] = module.pack(session, condition)
            print(f"{name} pack read in {(time.perf_counter() - started) * 1000:.0f} ms")
        times: dict[str, list[float]] = {"old": [], "new": []}
        same = 0
        for _round in range(2):
            for member, terms in probes:
                found = {}
                for name, module in (("old", old), ("new", new)):
                    started = time.perf_counter()
                    found[name] = module.best(session, packs[name], list(terms), {member}, 30)
                    times[name].append((time.perf_counter() - started) * 1000)
                same += found["old"] == found["new"]
    print(f"profiles {packs['new'].ids.size:,}  load {os.getloadavg()}")
    for name, values in times.items():
        print(f"best() {name}: {_p(values)}")
    print(f"identical results: {same} of {len(times['new'])}")


if __name__ == "__main__":
    main()
