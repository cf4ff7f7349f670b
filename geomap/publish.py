"""The publish step: rebuild the published, k-anonymous aggregates from floor cells.

Runs in one transaction so readers see either the old or the new snapshot, under an
advisory lock so two publishers never interleave. Publishing is batched (on a
schedule and after imports), never per join, so that diffing two snapshots cannot
single out one member's join.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.reference import raw_connection
from geomap.privacy import rollup
from geomap.regions.publish import publish_region_counts

PUBLISH_LOCK = 0x6765_6F6D  # "geom"


@dataclass(frozen=True)
class PublishSummary:
    """What one publish did."""

    version: int
    members_on_map: int
    published_cells: int
    seconds: float
    skipped: bool = False


def floor_counts(session: Session) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Return, per condition, the floor cells of members on the map and their counts."""
    rows = session.execute(
        text(
            "SELECT mc.condition_id, ml.floor_cell, count(*) "
            "FROM member_conditions mc "
            "JOIN members m ON m.id = mc.member_id AND m.visibility = 'map' "
            "JOIN member_locations ml ON ml.member_id = mc.member_id "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ).all()
    if not rows:
        return {}
    table = np.array(rows, dtype=np.int64)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for condition_id in np.unique(table[:, 0]):
        part = table[table[:, 0] == condition_id]
        out[int(condition_id)] = (part[:, 1], part[:, 2])
    return out


def publish(session: Session, *, k: int, floor: int, now: datetime | None = None,
            only_if_changed: bool = False,
            progress: Callable[[int], None] | None = None) -> PublishSummary:
    """Rebuild every published aggregate in the session's transaction.

    ``progress`` is called with 1 per condition done. With ``only_if_changed``, nothing
    is done when member data has not changed since the last publish.
    """
    started = time.perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK})
    changed_at, last_version, last_changed = session.execute(
        text(
            "SELECT (SELECT changed_at FROM data_changes), "
            "(SELECT max(version) FROM publish_runs), "
            "(SELECT data_changed_at FROM publish_runs ORDER BY version DESC LIMIT 1)"
        )
    ).one()
    if only_if_changed and last_version is not None and last_changed == changed_at:
        return PublishSummary(last_version, 0, 0, 0.0, skipped=True)
    version = (last_version or 0) + 1
    condition_ids = session.execute(text("SELECT id FROM conditions ORDER BY id")).scalars().all()
    counts = floor_counts(session)
    cell_lines: list[str] = []
    totals: list[dict[str, int]] = []
    members_on_map = 0
    for condition_id in condition_ids:
        cells, cell_counts = counts.get(
            condition_id, (np.zeros(0, np.int64), np.zeros(0, np.int64))
        )
        on_map = int(cell_counts.sum())
        members_on_map += on_map
        for resolution in range(floor + 1):
            result = rollup((cells, cell_counts), resolution, k)
            for cell, cell_res, count in zip(
                result.cells.tolist(), result.cell_resolutions.tolist(), result.counts.tolist(),
                strict=True,
            ):
                lat, lng = h3i.cell_to_latlng(cell)
                cell_lines.append(
                    f"{condition_id}\t{resolution}\t{cell}\t{cell_res}\t{count}\t{lat!r}\t{lng!r}"
                )
            totals.append(
                dict(condition_id=condition_id, resolution=resolution, members_on_map=on_map,
                     published=on_map - result.remainder, version=version)
            )
        if progress:
            progress(1)
    session.execute(text("DELETE FROM published_cells"))
    with raw_connection(session).cursor().copy(
        "COPY published_cells (condition_id, resolution, cell, cell_resolution, count, lat, lng) "
        "FROM STDIN"
    ) as copy:
        if cell_lines:
            copy.write(("\n".join(cell_lines) + "\n").encode())
    publish_region_counts(session, counts, k=k, floor=floor, version=version)
    session.execute(text("DELETE FROM published_totals"))
    if totals:
        session.execute(
            text(
                "INSERT INTO published_totals "
                "(condition_id, resolution, members_on_map, published, version) "
                "VALUES (:condition_id, :resolution, :members_on_map, :published, :version)"
            ),
            totals,
        )
    seconds = time.perf_counter() - started
    session.execute(
        text(
            "INSERT INTO publish_runs "
            "(version, kind, published_at, data_changed_at, members_on_map, seconds) "
            "VALUES (:version, 'full', :now, :changed, :members, :seconds)"
        ),
        dict(version=version, now=now or datetime.now(UTC), changed=changed_at,
             members=members_on_map, seconds=seconds),
    )
    return PublishSummary(version, members_on_map, len(cell_lines), seconds)
