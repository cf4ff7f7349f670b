"""The publish step: rebuild the published, k-anonymous aggregates from floor cells.

Runs in one transaction so readers see either the old or the new snapshot, under an
advisory lock so two publishers never interleave. Publishing is batched (on a
schedule and after imports), never per join, so that diffing two snapshots cannot
single out one member's join.

Two kinds, with identical results (a property test checks it):

- **full**: count the members of every floor cell, roll up, replace every row;
- **incremental** (the default once a full publish has run with the same k and
  floor): add the member deltas recorded per dirty floor cell in ``publish_dirty`` (by
  triggers and the bulk loader) to the stored floor counts, roll up again only the H3
  base (res-0) cells that contain them (roll-up never crosses a base cell), and
  rewrite only the published rows that changed.

After the cells, every function in :data:`EXTRA_PUBLISHERS` runs in the same
transaction with the new version: the one place to hook further published aggregates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain

import h3.api.basic_int as h3i
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.reference import raw_connection
from geomap.members.nearby_index import refresh_nearby_members
from geomap.privacy import rollup
from geomap.regions.counts import refresh_admin_counts
from geomap.regions.publish import publish_regions

log = logging.getLogger(__name__)

PUBLISH_LOCK = 0x6765_6F6D  # "geom"
WHOLE_CONDITION = 0  # a publish_dirty floor_cell that marks every cell of the condition
# Past this many dirty cells in one bulk load, the loader marks the whole condition
# dirty: one recount beats writing that many deltas.
WHOLE_CONDITION_CELLS = 5_000

ExtraPublisher = Callable[[Session, int, int, int], None]
# Called as f(session, version, k, floor) after the cells of every publish, in its
# transaction (e.g. public region counts). Register at import time, in one place.
EXTRA_PUBLISHERS: list[ExtraPublisher] = []

_EMPTY = np.zeros(0, np.int64)


@dataclass(frozen=True)
class PublishSummary:
    """What one publish did."""

    version: int
    members_on_map: int
    published_cells: int
    seconds: float
    skipped: bool = False
    kind: str = "full"
    rows_written: int = 0


def base_cells(cells: np.ndarray) -> np.ndarray:
    """Return the H3 base cell number (0..121) of each cell (its res-0 ancestor)."""
    return (np.asarray(cells, dtype=np.int64) >> 45) & 127


def floor_counts(session: Session, condition_ids: Iterable[int] | None = None
                 ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Return, per condition, the floor cells of members on the map and their counts."""
    query = (
        "SELECT mc.condition_id, ml.floor_cell, count(*) "
        "FROM member_conditions mc "
        "JOIN members m ON m.id = mc.member_id AND m.visibility = 'map' "
        "JOIN member_locations ml ON ml.member_id = mc.member_id "
    )
    params: dict[str, object] = {}
    if condition_ids is not None:
        query += "WHERE mc.condition_id = ANY(CAST(:ids AS smallint[])) "
        params["ids"] = list(condition_ids)
    rows = session.execute(text(query + "GROUP BY 1, 2 ORDER BY 1, 2"), params).all()
    return _split_by_condition(rows)


def published_floor_counts(session: Session) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Return the floor counts the current publish was made from, of enabled conditions."""
    return _split_by_condition(_fetch_ints(
        session,
        "SELECT condition_id, floor_cell, members FROM publish_floor_counts "
        "WHERE condition_id IN (SELECT id FROM conditions WHERE enabled) ORDER BY 1, 2",
        {}, 3))


def _publish_regions(session: Session, version: int, k: int, floor: int) -> None:
    """Publish region counts (public, suppressed) from the same floor counts as the cells."""
    publish_regions(session, published_floor_counts(session), k=k, floor=floor,
                    version=version)


EXTRA_PUBLISHERS.append(_publish_regions)

# Private snapshots derived from member data that are refreshed after each publish,
# in their own transaction: they are not published, and their seconds at a million
# members (admin counts ~5-10 s, nearby index ~4 s) should not hold the publish lock.
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


def _int_table(rows: list, columns: int) -> np.ndarray:
    """Return result rows of integers as an (n, columns) int64 array (fast path)."""
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * columns)
    return flat.reshape(-1, columns)


def _split_by_condition(rows: list | np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Split (condition, cell, value) rows sorted by condition into per-condition arrays."""
    if len(rows) == 0:
        return {}
    table = rows if isinstance(rows, np.ndarray) else _int_table(rows, 3)
    bounds = np.flatnonzero(np.diff(table[:, 0])) + 1
    return {
        int(part[0, 0]): (part[:, 1], part[:, 2])
        for part in np.split(table, bounds)
    }


def _by_condition(table: np.ndarray) -> dict[int, np.ndarray]:
    """Split an int table sorted by its first column (condition) into per-condition rows."""
    if len(table) == 0:
        return {}
    bounds = np.flatnonzero(np.diff(table[:, 0])) + 1
    return {int(part[0, 0]): part for part in np.split(table, bounds)}


Dirty = dict[int, tuple[np.ndarray, np.ndarray]]  # condition -> (floor cells, deltas)


def _take_dirty(session: Session) -> Dirty:
    """Empty ``publish_dirty``; return its cells and member deltas per condition."""
    cursor = raw_connection(session).cursor()
    cursor.execute(
        "DELETE FROM publish_dirty RETURNING condition_id, floor_cell, delta"
    )
    table = _int_table(cursor.fetchall(), 3)
    table = table[np.lexsort((table[:, 1], table[:, 0]))]
    return {cid: (cells, deltas) for cid, (cells, deltas) in _split_by_condition(table).items()}


def _can_go_incremental(session: Session, condition_ids: list[int], k: int, floor: int) -> bool:
    """Whether every condition was last published with this k and floor.

    A condition without a snapshot (newly enabled) does not prevent it: it is
    recounted whole (:func:`_follow_enabled`).
    """
    snapshots = dict(
        (cid, (sk, sf))
        for cid, sk, sf in session.execute(
            text("SELECT condition_id, k, floor FROM publish_snapshots")
        ).all()
    )
    return all(snapshots.get(cid, (k, floor)) == (k, floor) for cid in condition_ids)


def _copy(session: Session, statement: str, lines: list[str]) -> None:
    """COPY ``lines`` (text format) with ``statement`` in the session's transaction."""
    with raw_connection(session).cursor().copy(statement) as copy:
        if lines:
            copy.write(("\n".join(lines) + "\n").encode())


@dataclass(frozen=True)
class Markers:
    """One condition's published rows as aligned arrays, sorted by ``key``.

    ``key`` packs (map resolution, cell) into one int64: H3 cell indexes leave bits
    56-58 zero and map resolutions are at most 7, so ``cell | resolution << 56``.
    """

    key: np.ndarray
    cell_resolution: np.ndarray
    count: np.ndarray

    @classmethod
    def from_rows(cls, resolution: np.ndarray, cell: np.ndarray, cell_resolution: np.ndarray,
                  count: np.ndarray) -> Markers:
        """Build sorted markers from row columns."""
        key = np.asarray(cell, np.int64) | (np.asarray(resolution, np.int64) << 56)
        order = np.argsort(key, kind="stable")
        return cls(key[order], np.asarray(cell_resolution, np.int64)[order],
                   np.asarray(count, np.int64)[order])

    def rows(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (resolution, cell) columns of the markers (where ``mask``)."""
        key = self.key if mask is None else self.key[mask]
        return (key >> 56) & 7, key & ~(7 << 56)

    def differing(self, other: Markers) -> np.ndarray:
        """Return a mask of these markers that ``other`` lacks or holds with other values."""
        if len(other.key) == 0:
            return np.ones(len(self.key), dtype=bool)
        at = np.minimum(np.searchsorted(other.key, self.key), len(other.key) - 1)
        same = (
            (other.key[at] == self.key)
            & (other.count[at] == self.count)
            & (other.cell_resolution[at] == self.cell_resolution)
        )
        return ~same


def _published_markers(cells: np.ndarray, counts: np.ndarray, k: int, floor: int) -> Markers:
    """Return one condition's markers at every map resolution from its floor counts."""
    parts = [(resolution, rollup((cells, counts), resolution, k))
             for resolution in range(floor + 1)]
    return Markers.from_rows(
        np.concatenate([np.full(len(r.cells), res, np.int64) for res, r in parts]),
        np.concatenate([r.cells for _, r in parts]),
        np.concatenate([r.cell_resolutions for _, r in parts]),
        np.concatenate([r.counts for _, r in parts]),
    )


def _cell_lines(condition_id: int, markers: Markers, mask: np.ndarray | None = None
                ) -> list[str]:
    """Return COPY lines of published_cells for the markers (where ``mask``)."""
    resolutions, cells = markers.rows(mask)
    cell_res = markers.cell_resolution if mask is None else markers.cell_resolution[mask]
    counts = markers.count if mask is None else markers.count[mask]
    to_latlng = h3i.cell_to_latlng
    lines = []
    for resolution, cell, res, count in zip(resolutions.tolist(), cells.tolist(),
                                             cell_res.tolist(), counts.tolist(), strict=True):
        lat, lng = to_latlng(cell)
        lines.append(f"{condition_id}\t{resolution}\t{cell}\t{res}\t{count}\t{lat!r}\t{lng!r}")
    return lines


_CELLS_COPY = (
    "COPY published_cells (condition_id, resolution, cell, cell_resolution, count, lat, lng) "
    "FROM STDIN"
)


def _publish_full(session: Session, condition_ids: list[int], k: int, floor: int,
                  progress: Callable[[int], None] | None) -> int:
    """Recount and replace every published cell; return the rows written."""
    counts = floor_counts(session)
    session.execute(text("DELETE FROM publish_floor_counts"))
    _copy(
        session, "COPY publish_floor_counts (condition_id, floor_cell, members) FROM STDIN",
        [
            f"{cid}\t{cell}\t{n}"
            for cid, (cells, ns) in counts.items()
            for cell, n in zip(cells.tolist(), ns.tolist(), strict=True)
        ],
    )
    session.execute(text("DELETE FROM published_cells"))
    written = 0
    lines: list[str] = []  # one COPY for every condition: no round trip per condition
    for condition_id in condition_ids:
        cells, cell_counts = counts.get(condition_id, (_EMPTY, _EMPTY))
        markers = _published_markers(cells, cell_counts, k, floor)
        lines.extend(_cell_lines(condition_id, markers))
        written += len(markers.key)
        if progress:
            progress(1)
    _copy(session, _CELLS_COPY, lines)
    return written


def _fetch_ints(session: Session, query: str, params: dict, columns: int) -> np.ndarray:
    """Run ``query`` on the raw connection; return its integer rows as an array."""
    cursor = raw_connection(session).cursor()
    cursor.execute(query, params)
    return _int_table(cursor.fetchall(), columns)


def _recount_conditions(session: Session, condition_ids: list[int]) -> None:
    """Replace the stored floor counts of ``condition_ids`` by a fresh count."""
    session.execute(
        text("DELETE FROM publish_floor_counts WHERE condition_id = ANY(CAST(:ids AS smallint[]))"),
        {"ids": condition_ids},
    )
    fresh = floor_counts(session, condition_ids)
    _copy(
        session, "COPY publish_floor_counts (condition_id, floor_cell, members) FROM STDIN",
        [
            f"{cid}\t{cell}\t{n}"
            for cid, (cells, ns) in fresh.items()
            for cell, n in zip(cells.tolist(), ns.tolist(), strict=True)
        ],
    )


def _apply_deltas(session: Session, partial: Dirty) -> list[int]:
    """Add the member deltas to the stored floor counts; return conditions gone wrong.

    A count below zero can only come from a write that bypassed the triggers; those
    conditions are recounted rather than trusted.
    """
    conditions = np.concatenate([np.full(len(c), cid, np.int64) for cid, (c, _) in partial.items()])
    cells = np.concatenate([c for c, _ in partial.values()])
    deltas = np.concatenate([d for _, d in partial.values()])
    changed = deltas != 0
    params = {"conditions": conditions[changed].tolist(), "cells": cells[changed].tolist(),
              "deltas": deltas[changed].tolist()}
    session.execute(
        text(
            "INSERT INTO publish_floor_counts (condition_id, floor_cell, members) "
            "SELECT * FROM unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[]), "
            "CAST(:deltas AS int[])) "
            "ON CONFLICT (condition_id, floor_cell) "
            "DO UPDATE SET members = publish_floor_counts.members + EXCLUDED.members"
        ),
        params,
    )
    broken = session.execute(
        text(
            "DELETE FROM publish_floor_counts f USING "
            "unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[])) AS d (c, cell) "
            "WHERE f.condition_id = d.c AND f.floor_cell = d.cell AND f.members <= 0 "
            "RETURNING f.condition_id, f.members"
        ),
        {"conditions": params["conditions"], "cells": params["cells"]},
    ).all()
    return sorted({cid for cid, members in broken if members < 0})


def _publish_incremental(session: Session, condition_ids: list[int], dirty: Dirty, k: int,
                         floor: int, progress: Callable[[int], None] | None) -> int:
    """Apply the dirty deltas, re-roll the base cells they touch, write changed rows only."""
    whole = [cid for cid, (cells, _) in dirty.items() if WHOLE_CONDITION in cells]
    partial = {cid: value for cid, value in dirty.items() if cid not in whole}
    if partial:
        broken = _apply_deltas(session, partial)
        if broken:
            log.warning("negative floor counts for conditions %s: recounting them", broken)
            whole += broken
    if whole:
        _recount_conditions(session, whole)
    plan: dict[int, np.ndarray] = {}  # condition -> the base cells to re-roll
    for condition_id in condition_ids:
        if condition_id in whole:
            bases = np.arange(122, dtype=np.int64)
        elif condition_id in partial:
            cells, deltas = partial[condition_id]
            bases = np.unique(base_cells(cells[deltas != 0]))
        else:
            bases = _EMPTY
        if len(bases):
            plan[condition_id] = bases
        elif progress:
            progress(1)
    # Two queries for every condition to re-roll (not two per condition): the rows of
    # the planned conditions in any planned base cell, narrowed per condition below.
    if not plan:
        return 0
    params = {"c": list(plan), "bases": np.unique(np.concatenate(
        [_EMPTY, *plan.values()])).tolist()}
    stored_all = _by_condition(_fetch_ints(
        session,
        "SELECT condition_id, floor_cell, members FROM publish_floor_counts "
        "WHERE condition_id = ANY(%(c)s) AND ((floor_cell >> 45) & 127) = ANY(%(bases)s) "
        "ORDER BY condition_id, floor_cell", params, 3))
    old_all = _by_condition(_fetch_ints(
        session,
        "SELECT condition_id, resolution, cell, cell_resolution, count FROM published_cells "
        "WHERE condition_id = ANY(%(c)s) AND ((cell >> 45) & 127) = ANY(%(bases)s) "
        "ORDER BY condition_id", params, 5))
    written = 0
    insert_lines: list[str] = []
    gone_rows: list[np.ndarray] = []
    for condition_id, bases in plan.items():
        stored = stored_all.get(condition_id, np.zeros((0, 3), np.int64))
        stored = stored[np.isin(base_cells(stored[:, 1]), bases)]
        new = _published_markers(stored[:, 1], stored[:, 2], k, floor)
        old_rows = old_all.get(condition_id, np.zeros((0, 5), np.int64))
        old_rows = old_rows[np.isin(base_cells(old_rows[:, 2]), bases)]
        old = Markers.from_rows(old_rows[:, 1], old_rows[:, 2], old_rows[:, 3], old_rows[:, 4])
        gone = old.differing(new)
        added = new.differing(old)
        if gone.any():
            resolutions, cells = old.rows(gone)
            gone_rows.append(np.stack([np.full(len(cells), condition_id, np.int64),
                                       np.asarray(resolutions, np.int64),
                                       np.asarray(cells, np.int64)], axis=1))
        insert_lines.extend(_cell_lines(condition_id, new, added))
        written += int(gone.sum()) + int(added.sum())
        if progress:
            progress(1)
    if gone_rows:
        table = np.concatenate(gone_rows)
        session.execute(
            text(
                "DELETE FROM published_cells p USING "
                "unnest(CAST(:cid AS smallint[]), CAST(:res AS smallint[]), "
                "CAST(:cells AS bigint[])) AS d (c, r, cell) "
                "WHERE p.condition_id = d.c AND p.resolution = d.r AND p.cell = d.cell"
            ),
            {"cid": table[:, 0].tolist(), "res": table[:, 1].tolist(),
             "cells": table[:, 2].tolist()},
        )
    _copy(session, _CELLS_COPY, insert_lines)
    return written


def _follow_enabled(session: Session, enabled: list[int], dirty: Dirty) -> None:
    """Drop the markers of disabled conditions; mark newly enabled ones for a recount.

    A condition published last time has a snapshot row (publish_snapshots holds the
    enabled conditions only); one without is recounted whole, so an incremental
    publish opens its map. Floor counts of disabled conditions are kept current.
    """
    session.execute(
        text("DELETE FROM published_cells WHERE condition_id <> ALL(CAST(:ids AS smallint[]))"),
        {"ids": list(enabled)},
    )
    snapshotted = set(
        session.execute(text("SELECT condition_id FROM publish_snapshots")).scalars()
    )
    whole = np.array([WHOLE_CONDITION], dtype=np.int64)
    for condition_id in enabled:
        if condition_id not in snapshotted:
            dirty[condition_id] = (whole, np.zeros(1, dtype=np.int64))


def publish(session: Session, *, k: int, floor: int, now: datetime | None = None,
            only_if_changed: bool = False, full: bool = False, snapshots: bool = True,
            progress: Callable[[int], None] | None = None) -> PublishSummary:
    """Publish the aggregates in the session's transaction: incremental when possible.

    ``full`` forces a full publish (it is also used when nothing was published yet or
    k or the floor changed). ``progress`` is called with 1 per condition done. With
    ``only_if_changed``, nothing is done when member data has not changed since the
    last publish. With ``snapshots`` (the default) the private snapshots are refreshed
    in the same transaction; the scheduler and the CLI pass False and call
    :func:`refresh_snapshots` in a second transaction, so the publish lock is short.
    """
    started = time.perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK})
    # Writers add deltas to publish_dirty in their own transactions: waiting for them
    # and holding them off until this publish commits means every delta is applied
    # exactly once, and recounts see no change whose delta is still to come.
    session.execute(text("LOCK TABLE publish_dirty IN EXCLUSIVE MODE"))
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
    condition_ids = session.execute(
        text("SELECT id FROM conditions WHERE enabled ORDER BY id")
    ).scalars().all()
    dirty = _take_dirty(session)
    _follow_enabled(session, condition_ids, dirty)
    incremental = (
        not full and last_version is not None
        and _can_go_incremental(session, condition_ids, k, floor)
    )
    if incremental:
        written = _publish_incremental(session, condition_ids, dirty, k, floor, progress)
    else:
        written = _publish_full(session, condition_ids, k, floor, progress)
    members_on_map = _write_totals(session, version, floor)
    session.execute(text("DELETE FROM publish_snapshots"))
    session.execute(
        text("INSERT INTO publish_snapshots (condition_id, k, floor, version) "
             "SELECT id, :k, :floor, :version FROM conditions WHERE enabled"),
        {"k": k, "floor": floor, "version": version},
    )
    # Further published aggregates (one place, after the cells, same transaction).
    for extra_publisher in EXTRA_PUBLISHERS:
        extra_publisher(session, version, k, floor)
    published_cells = session.execute(text("SELECT count(*) FROM published_cells")).scalar_one()
    seconds = time.perf_counter() - started
    kind = "incremental" if incremental else "full"
    session.execute(
        text(
            "INSERT INTO publish_runs "
            "(version, kind, published_at, data_changed_at, members_on_map, seconds) "
            "VALUES (:version, :kind, :now, :changed, :members, :seconds)"
        ),
        dict(version=version, kind=kind, now=now or datetime.now(UTC), changed=changed_at,
             members=members_on_map, seconds=seconds),
    )
    if snapshots:
        refresh_snapshots(session)
    return PublishSummary(version, members_on_map, published_cells, seconds, kind=kind,
                          rows_written=written)


def _write_totals(session: Session, version: int, floor: int) -> int:
    """Rebuild published_totals from the floor counts and published cells; return on-map."""
    session.execute(text("DELETE FROM published_totals"))
    session.execute(
        text(
            "INSERT INTO published_totals "
            "(condition_id, resolution, members_on_map, published, version) "
            "SELECT c.id, r.resolution, coalesce(f.members, 0), coalesce(p.published, 0), "
            ":version FROM conditions c "
            "CROSS JOIN generate_series(0, :floor) AS r (resolution) "
            "LEFT JOIN (SELECT condition_id, sum(members) AS members "
            "FROM publish_floor_counts GROUP BY 1) f ON f.condition_id = c.id "
            "LEFT JOIN (SELECT condition_id, resolution, sum(count) AS published "
            "FROM published_cells GROUP BY 1, 2) p "
            "ON p.condition_id = c.id AND p.resolution = r.resolution WHERE c.enabled"
        ),
        {"version": version, "floor": floor},
    )
    return int(
        session.execute(
            text("SELECT coalesce(sum(members), 0) FROM publish_floor_counts")
        ).scalar_one()
    )
