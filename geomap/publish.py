"""The publish step: rebuild the published, k-anonymous aggregates from floor cells.

Runs in one transaction so readers see either the old or the new snapshot, under an
advisory lock so two publishers never interleave. Publishing is batched (on a
schedule and after imports), never per join, so that diffing two snapshots cannot
single out one member's join.

Two kinds, with identical results (a property test checks it):

- **full**: count the members of every floor cell, roll up, replace every row;
- **incremental** (the default once a full publish has run with the same k and
  floor): recount only the *dirty* floor cells recorded in ``publish_dirty`` by
  triggers and the bulk loader, roll up again only the H3 base (res-0) cells that
  contain them (roll-up never crosses a base cell), and rewrite only the published
  rows that changed.

After the cells, every function in :data:`EXTRA_PUBLISHERS` runs in the same
transaction with the new version: the one place to hook further published aggregates.
"""

from __future__ import annotations

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
from geomap.regions.publish import publish_region_counts

PUBLISH_LOCK = 0x6765_6F6D  # "geom"
WHOLE_CONDITION = 0  # a publish_dirty floor_cell that marks every cell of the condition
# Past this many dirty cells, recounting the whole condition is cheaper than per cell.
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
    """Return the floor counts the current publish was made from (publish_floor_counts)."""
    rows = session.execute(
        text("SELECT condition_id, floor_cell, members FROM publish_floor_counts "
             "ORDER BY 1, 2")
    ).all()
    return _split_by_condition(rows)


def _publish_regions(session: Session, version: int, k: int, floor: int) -> None:
    """Publish region counts (public, suppressed) from the same floor counts as the cells."""
    publish_region_counts(session, published_floor_counts(session), k=k, floor=floor,
                          version=version)


EXTRA_PUBLISHERS.append(_publish_regions)


def _refresh_nearby(session: Session, version: int, k: int, floor: int) -> None:
    """Bring the nearby index in step, like the map (bulk imports reach nearby here)."""
    refresh_nearby_members(session)


EXTRA_PUBLISHERS.append(_refresh_nearby)


def _int_table(rows: list, columns: int) -> np.ndarray:
    """Return result rows of integers as an (n, columns) int64 array (fast path)."""
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * columns)
    return flat.reshape(-1, columns)


def _split_by_condition(rows: list) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    if not rows:
        return {}
    table = _int_table(rows, 3)
    bounds = np.flatnonzero(np.diff(table[:, 0])) + 1
    return {
        int(part[0, 0]): (part[:, 1], part[:, 2])
        for part in np.split(table, bounds)
    }


def _recount_cells(session: Session, dirty: dict[int, np.ndarray]
                   ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Return the current counts of the dirty (condition, floor cell) pairs (0 if empty)."""
    conditions = np.concatenate([np.full(len(c), cid, np.int64) for cid, c in dirty.items()])
    cells = np.concatenate(list(dirty.values()))
    rows = session.execute(
        text(
            "SELECT d.condition_id, d.floor_cell, count(m.id) "
            "FROM unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[])) "
            "AS d (condition_id, floor_cell) "
            "JOIN member_locations ml ON ml.floor_cell = d.floor_cell "
            "JOIN member_conditions mc ON mc.member_id = ml.member_id "
            "AND mc.condition_id = d.condition_id "
            "JOIN members m ON m.id = ml.member_id AND m.visibility = 'map' "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"conditions": conditions.tolist(), "cells": cells.tolist()},
    ).all()
    return _split_by_condition(rows)


def _take_dirty(session: Session) -> dict[int, np.ndarray]:
    """Empty ``publish_dirty``; return its floor cells per condition."""
    rows = session.execute(
        text("DELETE FROM publish_dirty RETURNING condition_id, floor_cell")
    ).all()
    out: dict[int, list[int]] = {}
    for condition_id, cell in rows:
        out.setdefault(condition_id, []).append(cell)
    return {cid: np.unique(np.array(cells, np.int64)) for cid, cells in out.items()}


def _can_go_incremental(session: Session, condition_ids: list[int], k: int, floor: int) -> bool:
    """Whether every condition was last published with this k and floor."""
    snapshots = dict(
        (cid, (sk, sf))
        for cid, sk, sf in session.execute(
            text("SELECT condition_id, k, floor FROM publish_snapshots")
        ).all()
    )
    return all(snapshots.get(cid) == (k, floor) for cid in condition_ids)


def _copy(session: Session, statement: str, lines: list[str]) -> None:
    with raw_connection(session).cursor().copy(statement) as copy:
        if lines:
            copy.write(("\n".join(lines) + "\n").encode())


def _published_rows(condition_id: int, cells: np.ndarray, counts: np.ndarray, k: int,
                    floor: int) -> dict[tuple[int, int], tuple[int, int]]:
    """Return {(resolution, cell): (cell_resolution, count)} of one condition's markers."""
    rows: dict[tuple[int, int], tuple[int, int]] = {}
    for resolution in range(floor + 1):
        result = rollup((cells, counts), resolution, k)
        for cell, cell_res, count in zip(
            result.cells.tolist(), result.cell_resolutions.tolist(), result.counts.tolist(),
            strict=True,
        ):
            rows[(resolution, cell)] = (cell_res, count)
    return rows


def _cell_lines(condition_id: int, rows: dict[tuple[int, int], tuple[int, int]],
                keys: Iterable[tuple[int, int]]) -> list[str]:
    """Return COPY lines of published_cells for ``keys`` of ``rows``."""
    to_latlng = h3i.cell_to_latlng
    lines = []
    for resolution, cell in keys:
        cell_res, count = rows[(resolution, cell)]
        lat, lng = to_latlng(cell)
        lines.append(f"{condition_id}\t{resolution}\t{cell}\t{cell_res}\t{count}\t{lat!r}\t{lng!r}")
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
    for condition_id in condition_ids:
        cells, cell_counts = counts.get(condition_id, (_EMPTY, _EMPTY))
        rows = _published_rows(condition_id, cells, cell_counts, k, floor)
        _copy(session, _CELLS_COPY, _cell_lines(condition_id, rows, rows))
        written += len(rows)
        if progress:
            progress(1)
    return written


def _publish_incremental(session: Session, condition_ids: list[int],
                         dirty: dict[int, np.ndarray], k: int, floor: int,
                         progress: Callable[[int], None] | None) -> int:
    """Recount the dirty cells, re-roll their base cells, write changed rows only."""
    whole = [
        cid for cid, cells in dirty.items()
        if WHOLE_CONDITION in cells or len(cells) > WHOLE_CONDITION_CELLS
    ]
    partial = {cid: cells for cid, cells in dirty.items() if cid not in whole}
    if whole:
        session.execute(
            text("DELETE FROM publish_floor_counts "
                 "WHERE condition_id = ANY(CAST(:ids AS smallint[]))"),
            {"ids": whole},
        )
        fresh = floor_counts(session, whole)
        _copy(
            session, "COPY publish_floor_counts (condition_id, floor_cell, members) FROM STDIN",
            [
                f"{cid}\t{cell}\t{n}"
                for cid, (cells, ns) in fresh.items()
                for cell, n in zip(cells.tolist(), ns.tolist(), strict=True)
            ],
        )
    if partial:
        recounted = _recount_cells(session, partial)
        pairs_c = np.concatenate([np.full(len(c), cid, np.int64) for cid, c in partial.items()])
        pairs_f = np.concatenate(list(partial.values()))
        session.execute(
            text(
                "DELETE FROM publish_floor_counts f USING "
                "unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[])) "
                "AS d (condition_id, floor_cell) "
                "WHERE f.condition_id = d.condition_id AND f.floor_cell = d.floor_cell"
            ),
            {"conditions": pairs_c.tolist(), "cells": pairs_f.tolist()},
        )
        _copy(
            session, "COPY publish_floor_counts (condition_id, floor_cell, members) FROM STDIN",
            [
                f"{cid}\t{cell}\t{n}"
                for cid, (cells, ns) in recounted.items()
                for cell, n in zip(cells.tolist(), ns.tolist(), strict=True)
            ],
        )
    written = 0
    insert_lines: list[str] = []
    for condition_id in condition_ids:
        if condition_id not in dirty:
            if progress:
                progress(1)
            continue
        stored = session.execute(
            text("SELECT floor_cell, members FROM publish_floor_counts "
                 "WHERE condition_id = :c ORDER BY floor_cell"),
            {"c": condition_id},
        ).all()
        table = _int_table(stored, 2)
        cells, cell_counts = table[:, 0], table[:, 1]
        if condition_id in whole:
            bases = np.arange(122, dtype=np.int64)
        else:
            bases = np.unique(base_cells(dirty[condition_id]))
        inside = np.isin(base_cells(cells), bases)
        new = _published_rows(condition_id, cells[inside], cell_counts[inside], k, floor)
        old = {
            (resolution, cell): (cell_res, count)
            for resolution, cell, cell_res, count in session.execute(
                text(
                    "SELECT resolution, cell, cell_resolution, count FROM published_cells "
                    "WHERE condition_id = :c "
                    "AND ((cell >> 45) & 127) = ANY(CAST(:bases AS bigint[]))"
                ),
                {"c": condition_id, "bases": bases.tolist()},
            ).all()
        }
        gone = [key for key, value in old.items() if new.get(key) != value]
        added = [key for key, value in new.items() if old.get(key) != value]
        if gone:
            session.execute(
                text(
                    "DELETE FROM published_cells p USING "
                    "unnest(CAST(:res AS smallint[]), CAST(:cells AS bigint[])) AS d (r, c) "
                    "WHERE p.condition_id = :cid AND p.resolution = d.r AND p.cell = d.c"
                ),
                {"cid": condition_id, "res": [r for r, _ in gone], "cells": [c for _, c in gone]},
            )
        insert_lines.extend(_cell_lines(condition_id, new, added))
        written += len(gone) + len(added)
        if progress:
            progress(1)
    _copy(session, _CELLS_COPY, insert_lines)
    return written


def publish(session: Session, *, k: int, floor: int, now: datetime | None = None,
            only_if_changed: bool = False, full: bool = False,
            progress: Callable[[int], None] | None = None) -> PublishSummary:
    """Publish the aggregates in the session's transaction: incremental when possible.

    ``full`` forces a full publish (it is also used when nothing was published yet or
    k or the floor changed). ``progress`` is called with 1 per condition done. With
    ``only_if_changed``, nothing is done when member data has not changed since the
    last publish.
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
    dirty = _take_dirty(session)
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
             "SELECT id, :k, :floor, :version FROM conditions"),
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
            "ON p.condition_id = c.id AND p.resolution = r.resolution"
        ),
        {"version": version, "floor": floor},
    )
    return int(
        session.execute(
            text("SELECT coalesce(sum(members), 0) FROM publish_floor_counts")
        ).scalar_one()
    )
