"""Publish time and markers per zoom on an existing database, everything rolled back.

Point it at a database filled by `geomap demo --members N` (the configured one, e.g.
GEOMAP_DATA_DIR and GEOMAP_DB_PORT of an embedded cluster). It runs, inside one
transaction that is rolled back at the end (the database is left as it was):
a full publish, the private snapshots, a 1% change and an incremental publish, and
prints seconds, markers per map resolution, totals per resolution and region rows.
Only `geomap.publish.publish` and `refresh_snapshots` are used, so the same script
measures an older checkout too (PYTHONPATH=that checkout).
"""

from __future__ import annotations

import argparse
import os
import time

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap.config import load_settings
from geomap.embedded_pg import database_url
from geomap.publish import publish, refresh_snapshots


def main() -> None:
    """Measure and print; roll everything back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--floor", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings(os.environ)
    engine = create_engine(database_url(settings))
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        members = session.execute(text("SELECT count(*) FROM members")).scalar_one()
        print(f"members: {members:,}")
        summary = publish(session, k=args.k, floor=args.floor, full=True, snapshots=False)
        print(f"full publish: {summary.seconds:.2f} s, {summary.published_cells:,} markers")
        for condition, resolution, markers, total in session.execute(text(
            "SELECT c.slug, p.resolution, count(*), sum(p.count) FROM published_cells p "
            "JOIN conditions c ON c.id = p.condition_id "
            "WHERE c.slug IN ('all', 'multiple-sclerosis') GROUP BY 1, 2 ORDER BY 1, 2"
        )).all():
            print(f"  {condition} resolution {resolution}: {markers:,} markers, total {total:,}")
        regions = session.execute(text(
            "SELECT level, count(*), count(*) FILTER (WHERE count IS NULL) "
            "FROM published_regions GROUP BY 1 ORDER BY 1")).all()
        for level, rows, suppressed in regions:
            print(f"  regions {level}: {rows:,} rows, {suppressed:,} suppressed")
        started = time.perf_counter()
        refresh_snapshots(session)
        print(f"private snapshots: {time.perf_counter() - started:.2f} s")
        session.execute(text(
            "UPDATE member_locations ml SET location = o.location, floor_cell = o.floor_cell "
            "FROM member_locations o WHERE ml.member_id % 200 = 11 "
            "AND o.member_id = ml.member_id + 7919"))
        session.execute(text(
            "UPDATE members SET visibility = CASE visibility WHEN 'map' THEN 'hidden' "
            "ELSE 'map' END WHERE id % 200 = 13"))
        summary = publish(session, k=args.k, floor=args.floor, snapshots=False)
        print(f"incremental publish, 1% changed: {summary.seconds:.2f} s ({summary.kind}, "
              f"{summary.rows_written:,} rows rewritten)")
        session.close()
        transaction.rollback()
    engine.dispose()


if __name__ == "__main__":
    main()
