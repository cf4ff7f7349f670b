"""The nearby index: who nearby may list, per condition and floor cell.

``nearby_members`` holds (condition, floor cell, member) for members on the map,
contactable and not suspended by a moderator. Every change a member makes through
:mod:`geomap.members.queries` brings their rows in step at once; after each publish
the members marked in ``snapshot_dirty`` (bulk imports, moderation, any other write)
are brought in step (:func:`update_nearby_members`), and a full publish rebuilds the
table (:func:`refresh_nearby_members`). Floor cells only: no exact point is copied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

# The nearby rows the members in nearby_marked should have (run as index probes).
MARKED_WANTED_SQL = (
    "INSERT INTO nearby_wanted (condition_id, floor_cell, id) "
    "SELECT mc.condition_id, ml.floor_cell, m.id FROM nearby_marked d "
    "JOIN members m ON m.id = d.member_id "
    "JOIN member_locations ml ON ml.member_id = d.member_id "
    "JOIN member_conditions mc ON mc.member_id = d.member_id "
    "WHERE m.visibility = 'map' AND m.contactable AND m.suspended_at IS NULL"
)
_LISTABLE = (
    "SELECT mc.condition_id, ml.floor_cell, m.id FROM members m "
    "JOIN member_locations ml ON ml.member_id = m.id "
    "JOIN member_conditions mc ON mc.member_id = m.id "
    "WHERE m.visibility = 'map' AND m.contactable AND m.suspended_at IS NULL"
)


def sync_member(session: Session, member_id: int) -> None:
    """Bring one member's nearby_members rows in step with their profile and location."""
    session.execute(text("DELETE FROM nearby_members WHERE member_id = :id"), {"id": member_id})
    session.execute(
        text(f"INSERT INTO nearby_members (condition_id, floor_cell, member_id) "
             f"{_LISTABLE} AND m.id = :id"),
        {"id": member_id},
    )


def update_nearby_members(session: Session, member_ids: Sequence[int]) -> None:
    """Bring the nearby_members rows of ``member_ids`` in step (cost follows their number).

    Only rows that differ are deleted or inserted, so a member marked dirty without a
    change that matters to nearby costs no write.
    """
    if not member_ids:
        return
    with index_probes(session):
        _update_nearby_members(session, member_ids)


def _update_nearby_members(session: Session, member_ids: Sequence[int]) -> None:
    """Sync the marked members' nearby rows (see :func:`update_nearby_members`)."""
    member_table(session, "nearby_marked", member_ids)
    # Keyed like nearby_members' member index, so the anti-join below probes it.
    session.execute(
        text(
            "CREATE TEMPORARY TABLE nearby_wanted (condition_id smallint, floor_cell bigint, "
            "id bigint, PRIMARY KEY (id, condition_id, floor_cell)) ON COMMIT DROP"
        )
    )
    # Sequential scans off: the member tables may have no statistics yet (after a
    # bulk load), see planner_off.
    with planner_off(session, "enable_seqscan"):
        session.execute(text(MARKED_WANTED_SQL))
    session.execute(text("ANALYZE nearby_wanted"))
    session.execute(
        text(
            # The marked ids as an array: one probe of the member index each. Joined
            # to nearby_marked, the planner could instead walk the whole member index
            # (726,218 rows for 9,849 marked members at 1,000,000: 1.3 s).
            "DELETE FROM nearby_members n "
            "WHERE n.member_id = ANY(ARRAY(SELECT member_id FROM nearby_marked)) "
            "AND NOT EXISTS (SELECT 1 FROM nearby_wanted w "
            "WHERE w.id = n.member_id AND w.condition_id = n.condition_id "
            "AND w.floor_cell = n.floor_cell)"
        )
    )
    session.execute(
        text(
            "INSERT INTO nearby_members (condition_id, floor_cell, member_id) "
            "SELECT condition_id, floor_cell, id FROM nearby_wanted w WHERE NOT EXISTS ("
            "SELECT 1 FROM nearby_members n WHERE n.condition_id = w.condition_id "
            "AND n.floor_cell = w.floor_cell AND n.member_id = w.id)"
        )
    )
    session.execute(text("DROP TABLE nearby_wanted"))
    session.execute(text("DROP TABLE nearby_marked"))


@contextmanager
def index_probes(session: Session) -> Iterator[None]:
    """Plan the statements inside as index probes (no hash or merge joins), then restore.

    For work on a few marked members of a large membership: the planner would often
    rather scan a million-row table once than probe its index a few thousand times,
    which makes the cost follow the membership instead of the change.
    """
    with planner_off(session, "enable_hashjoin", "enable_mergejoin"):
        yield


@contextmanager
def planner_off(session: Session, *settings: str) -> Iterator[None]:
    """Turn the planner ``settings`` (e.g. ``enable_seqscan``) off inside, then restore them.

    ``enable_seqscan`` goes off around statements that join the marked members to the
    member tables: with joins limited to nested loops, a member table without
    statistics (right after a bulk load, before ANALYZE) looked small and was scanned
    once per marked member (3.1 s instead of 0.02 s for 961 members of 100,000).
    """
    previous = session.execute(
        text("SELECT " + ", ".join(f"current_setting('{name}')" for name in settings))
    ).one()
    session.execute(text("SELECT " + ", ".join(f"set_config('{name}', 'off', true)"
                                               for name in settings)))
    try:
        yield
    finally:
        session.execute(
            text("SELECT " + ", ".join(f"set_config('{name}', :v{i}, true)"
                                       for i, name in enumerate(settings))),
            {f"v{i}": value for i, value in enumerate(previous)},
        )


def member_table(session: Session, name: str, member_ids: Sequence[int]) -> None:
    """Create temporary table ``name`` (member_id, primary key) of ``member_ids``, analysed.

    Joining a small analysed table plans as index probes, where ``= ANY(array)`` of
    thousands of ids may plan as a scan of the whole member table.
    """
    session.execute(
        text(f"CREATE TEMPORARY TABLE {name} (member_id bigint PRIMARY KEY) ON COMMIT DROP")
    )
    session.execute(
        # In id order, so that the probes that follow walk the member tables' indexes
        # (and pages) in order rather than at random.
        text(f"INSERT INTO {name} SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id "
             "ORDER BY id ON CONFLICT DO NOTHING"),
        {"ids": list(member_ids)},
    )
    session.execute(text(f"ANALYZE {name}"))


def refresh_nearby_members(session: Session) -> None:
    """Rebuild nearby_members from the member tables (a full publish; brings in everything).

    Only the difference is written (set differences in memory), so searches running
    meanwhile keep their rows and an unchanged community costs no writes.
    """
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    session.execute(text(
        "CREATE TEMPORARY TABLE nearby_wanted ON COMMIT DROP AS " + _LISTABLE
    ))
    session.execute(text(
        "DELETE FROM nearby_members n USING ("
        "SELECT condition_id, floor_cell, member_id FROM nearby_members "
        "EXCEPT SELECT condition_id, floor_cell, id FROM nearby_wanted) gone "
        "WHERE n.condition_id = gone.condition_id AND n.floor_cell = gone.floor_cell "
        "AND n.member_id = gone.member_id"
    ))
    session.execute(text(
        "INSERT INTO nearby_members (condition_id, floor_cell, member_id) "
        "SELECT condition_id, floor_cell, id FROM nearby_wanted "
        "EXCEPT SELECT condition_id, floor_cell, member_id FROM nearby_members"
    ))
    session.execute(text("DROP TABLE nearby_wanted"))
