"""Private snapshots refreshed after each publish: admin counts and the nearby index.

Neither is published. Admin counts are exact (unsuppressed) per region of each
member's floor cell (:func:`geomap.publish.admin_counts.refresh_admin_counts`); the nearby
index lists members per floor cell. They are refreshed in their own transaction
after the publish, so their seconds at a million members do not hold the publish lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from geomap.publish.admin_counts import refresh_admin_counts
from geomap.publish.nearby_index import refresh_nearby_members

# Admin counts take ~5-10 s and the nearby index ~4 s at a million members.
SNAPSHOT_REFRESHERS: list[Callable[[Session], object]] = [
    refresh_admin_counts,  # exact per-region counts for admins
    refresh_nearby_members,  # bulk changes reach nearby here (a member's own at once)
]


def refresh_snapshots(session: Session) -> float:
    """Refresh the admin counts and the nearby index; return the seconds it took."""
    started = time.perf_counter()
    for refresh in SNAPSHOT_REFRESHERS:
        refresh(session)
    return time.perf_counter() - started


