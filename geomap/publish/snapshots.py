"""Private snapshots refreshed after each publish: admin counts and the nearby index.

Neither is published. Admin counts are exact (unsuppressed) per region of each
member's floor cell (:mod:`geomap.publish.admin_counts`); the nearby index lists
members per floor cell (:mod:`geomap.publish.nearby_index`). They are refreshed in
their own transaction after the publish, so they do not hold the publish lock.

Incremental by default: the same writes that record the publish's per-cell deltas
(statement-level triggers, and the bulk loader) mark the members they touch in
``snapshot_dirty``; a refresh brings only those members in step, so its cost follows
the change, not the membership. The full rebuild stays: a full publish asks for it,
and it is used whenever the marks cannot be trusted (a TRUNCATE, region polygons
reloaded, no rebuild yet) or are too many to be worth it.
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.publish.admin_counts import (
    SNAPSHOT_LOCK,
    places_changed,
    refresh_admin_counts,
    update_admin_counts,
)
from geomap.publish.nearby_index import refresh_nearby_members, update_nearby_members

EVERYTHING = 0  # a snapshot_dirty member_id that asks for a full rebuild
# Past this share of the counted members, one full rebuild beats member-by-member work.
INCREMENTAL_SHARE = 0.25
INCREMENTAL_MIN = 10_000  # marks always handled member by member up to this many


def take_dirty_members(session: Session) -> np.ndarray:
    """Empty ``snapshot_dirty`` (committed marks); return the member ids, sorted."""
    ids = session.execute(text("DELETE FROM snapshot_dirty RETURNING member_id")).scalars().all()
    return np.sort(np.asarray(ids, dtype=np.int64))


def wants_full_rebuild(session: Session, dirty: np.ndarray) -> bool:
    """Whether the marked members ``dirty`` (sorted) call for a full rebuild.

    True after a TRUNCATE (member 0), when region polygons changed since the last
    rebuild (or none ran yet), or when the marks are too many to be worth it.
    """
    if len(dirty) and dirty[0] == EVERYTHING:
        return True
    if places_changed(session):
        return True
    return len(dirty) > max(INCREMENTAL_SHARE * counted_members(session), INCREMENTAL_MIN)


def counted_members(session: Session) -> int:
    """How many members the admin counts hold (rows of ``admin_counted``), about.

    The planner's estimate (``pg_class.reltuples``) when the table has statistics;
    an exact ``count(*)`` when it has none, as right after the TRUNCATE of a full
    rebuild (reltuples is then -1: read as 0, it made every change of more than
    ``INCREMENTAL_MIN`` members look like most of the community, so a 1 % change at
    3,000,000 members rebuilt everything).
    """
    estimate = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = 'admin_counted'::regclass")
    ).scalar_one()
    if estimate >= 0:
        return int(estimate)
    return int(session.execute(text("SELECT count(*) FROM admin_counted")).scalar_one())


def refresh_snapshots(session: Session, *, full: bool = False) -> float:
    """Bring the admin counts and the nearby index in step; return the seconds it took.

    Incremental (only the members marked since the last refresh) unless ``full`` or
    :func:`wants_full_rebuild`; either way the result is the same.
    """
    started = time.perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SNAPSHOT_LOCK})
    dirty = take_dirty_members(session)
    if full or wants_full_rebuild(session, dirty):
        refresh_admin_counts(session)
        refresh_nearby_members(session)
    else:
        member_ids = dirty.tolist()
        update_admin_counts(session, member_ids)
        update_nearby_members(session, member_ids)
    return time.perf_counter() - started
