"""Key deriver start-up, computed from the tables vs loaded from ``geo_prepared``.

    GEOMAP_DATA_DIR=var/dev GEOMAP_DB_PORT=55442 .venv/bin/python bench/deriver_startup.py

Uses the embedded cluster of the data folder given in the environment (after
``geomap db upgrade && geomap geo import``). Each run is a fresh Python process (so
scipy's import and every cache are cold) that builds one ``KeyDeriver`` and derives
one point; "computed" deletes the stored structures inside a transaction it rolls back,
which is the work every process did before ``geo_prepared``. Prints the medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

RUNS = int(os.environ.get("GEOMAP_BENCH_RUNS", "5"))
CHILD = """
import os, sys, time
import numpy as np
from sqlalchemy import create_engine, text
from geomap import embedded_pg
from geomap.config import load_settings
settings = load_settings({"GEOMAP_DATA_DIR": os.environ["GEOMAP_DATA_DIR"],
                          "GEOMAP_DB_PORT": os.environ["GEOMAP_DB_PORT"]})
engine = create_engine(embedded_pg.cluster_for(settings).url)
with engine.connect() as conn:
    from sqlalchemy.orm import Session
    session = Session(bind=conn)
    if sys.argv[1] == "computed":
        session.execute(text("DELETE FROM geo_prepared"))
    start = time.perf_counter()
    from geomap.geo.derive import KeyDeriver
    deriver = KeyDeriver(session, 5)
    built = time.perf_counter() - start
    deriver.derive(np.array([48.85]), np.array([2.35]))
    derived = time.perf_counter() - start
    session.rollback()
print(f"{built:.3f} {derived:.3f}")
"""


def main() -> None:
    """Print the median start-up of each kind over RUNS fresh processes."""
    for kind in ("computed", "prepared"):
        built, derived = [], []
        for _ in range(RUNS):
            out = subprocess.run([sys.executable, "-c", CHILD, kind], check=True,
                                 capture_output=True, text=True).stdout.split()
            built.append(float(out[0]))
            derived.append(float(out[1]))
        print(f"{kind:9s} deriver built in {statistics.median(built):.2f} s, first key "
              f"derived at {statistics.median(derived):.2f} s (median of {RUNS})")


if __name__ == "__main__":
    main()
