"""The nearby index: who nearby may list, per condition and floor cell.

``nearby_members`` holds (condition, floor cell, member) for members on the map,
contactable and not suspended by a moderator. Every change a member makes through
:mod:`geomap.members.queries` brings their rows in step at once; after each publish
the members marked in ``snapshot_dirty`` (bulk imports, moderation, any other write)
are brought in step (:func:`update_nearby_members`), and a full publish rebuilds the
table (:func:`refresh_nearby_members`). Floor cells only: no exact point is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

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
    ids = {"ids": list(member_ids)}
    session.execute(
        text(
            "CREATE TEMPORARY TABLE nearby_wanted ON COMMIT DROP AS "
            f"{_LISTABLE} AND m.id = ANY(CAST(:ids AS bigint[]))"
        ),
        ids,
    )
    session.execute(
        text(
            "DELETE FROM nearby_members n WHERE n.member_id = ANY(CAST(:ids AS bigint[])) "
            "AND NOT EXISTS (SELECT 1 FROM nearby_wanted w WHERE w.id = n.member_id "
            "AND w.condition_id = n.condition_id AND w.floor_cell = n.floor_cell)"
        ),
        ids,
    )
    session.execute(
        text(
            "INSERT INTO nearby_members (condition_id, floor_cell, member_id) "
            "SELECT condition_id, floor_cell, id FROM nearby_wanted "
            "ON CONFLICT DO NOTHING"
        )
    )
    session.execute(text("DROP TABLE nearby_wanted"))


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
