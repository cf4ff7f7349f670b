"""The publish step: rebuild the published, k-anonymous aggregates from floor cells.

Runs in one transaction so readers see either the old or the new snapshot, under an
advisory lock so two publishers never interleave. Publishing is batched (on a
schedule and after imports), never per join, so that diffing two snapshots cannot
single out one member's join.

Two kinds, with identical results (a property test checks it):

- **full**: count the members of every floor cell, compute each condition's
  k-anonymous partition and the markers of every zoom as sums of its parts
  (:mod:`geomap.publish.views`), replace every row;
- **incremental** (the default once a full publish has run with the same k and
  floor): add the member deltas recorded per dirty floor cell in ``publish_dirty`` (by
  triggers and the bulk loader) to the stored floor counts, update the partition along
  the changed floor cells' ancestors only, from the stored parts and leftovers
  (:func:`geomap.privacy.repartition`), and change only the published rows whose
  numbers change: its cost follows the changed cells, not the touched conditions.

After the cells, every function in :data:`EXTRA_PUBLISHERS` runs in the same
transaction with the new version: the one place to hook further published aggregates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain

import h3.api.basic_int as h3i
import numpy as np
from psycopg import Cursor
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import deriver_for
from geomap.geo.reference import raw_connection
from geomap.privacy import (
    Repartition,
    cell_parents,
    cell_resolutions,
    markers_many,
    pack_keys,
    pack_marker_keys,
    partition_many,
    repartition,
    unpack_keys,
    unpack_marker_keys,
)
from geomap.publish.regions import RegionCounts, publish_regions, region_counts, write_region_counts
from geomap.publish.snapshots import refresh_snapshots
from geomap.publish.symptoms import publish_symptoms

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
    phases: tuple[tuple[str, float], ...] = ()  # (phase, seconds) in order, for benchmarks


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


def published_parts(session: Session, floor: int, condition_ids: Iterable[int] | None = None
                    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Return, per condition (of ``condition_ids``; None: all), the current parts.

    The parts are (cells, counts) of the partition. The markers at the floor resolution
    are the parts themselves, so they are read back from published_cells rather than
    kept twice.
    """
    only = "" if condition_ids is None else "AND condition_id = ANY(%(ids)s) "
    return _split_by_condition(_fetch_ints(
        session,
        "SELECT condition_id, cell, count FROM published_cells WHERE resolution = %(floor)s "
        + only + "ORDER BY 1, 2",
        {"floor": floor, "ids": sorted(condition_ids or ())}, 3))


def _publish_regions(session: Session, version: int, k: int, floor: int,
                     touched: Touched | None, enabled: list[int]) -> None:
    """Publish region counts as sums of the same parts as the markers.

    Only the conditions in ``touched`` (None: every condition) are recounted: a
    condition's region counts and their suppression depend on its own parts only.
    """
    conditions = None if touched is None else sorted(touched)
    publish_regions(session, published_parts(session, floor, conditions), k=k, floor=floor,
                    version=version, conditions=conditions, enabled=enabled)


EXTRA_PUBLISHERS.append(publish_symptoms)  # the public symptom picture per condition


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


def _publish_full(session: Session, condition_ids: list[int], k: int, floor: int,
                  progress: Callable[[int], None] | None) -> int:
    """Recount and replace every published cell; return the rows written."""
    counts = floor_counts(session)
    session.execute(text("DELETE FROM publish_floor_counts"))
    _copy_floor_counts(session, counts)
    session.execute(text("DELETE FROM published_cells"))
    session.execute(text("DELETE FROM publish_leftovers"))
    return _write_conditions(session, condition_ids, counts, k, floor, progress)


def _write_conditions(session: Session, condition_ids: list[int],
                      counts: dict[int, tuple[np.ndarray, np.ndarray]], k: int, floor: int,
                      progress: Callable[[int], None] | None) -> int:
    """Insert the markers and leftovers of ``condition_ids`` (none stored); return markers.

    One vectorised roll-up over all of them (:func:`geomap.privacy.partition_many`).
    """
    wanted = [cid for cid in condition_ids if cid in counts]
    if wanted:
        conditions = np.concatenate([np.full(len(counts[cid][0]), cid, np.int64)
                                     for cid in wanted])
        cells = np.concatenate([counts[cid][0] for cid in wanted])
        members = np.concatenate([counts[cid][1] for cid in wanted])
    else:
        conditions = cells = members = _EMPTY
    many = partition_many(conditions, cells, members, floor, k)
    marker_keys, marker_counts = markers_many(many, floor)
    _copy_markers(session, *unpack_marker_keys(marker_keys), marker_counts)
    left_conditions, left_cells = unpack_keys(many.leftover_keys)
    _copy_binary(session, "publish_leftovers (condition_id, cell, members)",
                 [(">i2", left_conditions), (">i8", left_cells), (">i4", many.leftover_counts)])
    if progress:
        progress(len(condition_ids))
    return len(marker_keys)


def _copy_floor_counts(session: Session,
                       counts: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """COPY floor counts per condition into publish_floor_counts."""
    ids = list(counts)
    _copy_binary(session, "publish_floor_counts (condition_id, floor_cell, members)", [
        (">i2", np.concatenate([np.full(len(counts[cid][0]), cid, np.int64) for cid in ids]
                               or [_EMPTY])),
        (">i8", np.concatenate([counts[cid][0] for cid in ids] or [_EMPTY])),
        (">i4", np.concatenate([counts[cid][1] for cid in ids] or [_EMPTY])),
    ])


def _copy_markers(session: Session, conditions: np.ndarray, resolutions: np.ndarray,
                  cells: np.ndarray, counts: np.ndarray) -> None:
    """COPY marker rows into published_cells, with their cells' resolutions and centres."""
    unique, inverse = np.unique(cells, return_inverse=True)
    to_latlng = h3i.cell_to_latlng
    centres = np.array([to_latlng(cell) for cell in unique.tolist()],
                       dtype=np.float64).reshape(-1, 2)
    _copy_binary(session, "published_cells (condition_id, resolution, cell, cell_resolution, "
                 "count, lat, lng)",
                 [(">i2", conditions), (">i2", resolutions), (">i8", cells),
                  (">i2", cell_resolutions(cells)), (">i4", counts),
                  (">f8", centres[inverse, 0]), (">f8", centres[inverse, 1])])


def _copy_binary(session: Session, table: str, columns: list[tuple[str, np.ndarray]]) -> None:
    """COPY integer / float columns into ``table`` in PostgreSQL's binary format.

    ``columns``: (big-endian numpy type matching the column's type, values), aligned.
    Built as one numpy record array: no Python work per row.
    """
    rows = len(columns[0][1]) if columns else 0
    layout = [("fields", ">i2")]
    for i, (kind, _values) in enumerate(columns):
        layout += [(f"size{i}", ">i4"), (f"value{i}", kind)]
    record = np.empty(rows, dtype=np.dtype(layout))
    record["fields"] = len(columns)
    for i, (kind, values) in enumerate(columns):
        record[f"size{i}"] = np.dtype(kind).itemsize
        record[f"value{i}"] = values
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    with raw_connection(session).cursor().copy(
            f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
        copy.write(header + record.tobytes() + (-1).to_bytes(2, "big", signed=True))


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
    _copy_floor_counts(session, fresh)


@contextmanager
def _index_joins(session: Session) -> Iterator[None]:
    """Join a few thousand keys to a large table by its index, not by hashing all of it.

    The planner cannot see how many keys an array parameter holds and hashes the whole
    table; for keys that are a small share of it, index lookups are much cheaper.
    """
    session.execute(text("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
                         "SET LOCAL jit = off"))
    try:
        yield
    finally:
        session.execute(text("RESET enable_hashjoin; RESET enable_mergejoin; RESET jit"))


class BigintArray:
    """Integers sent to PostgreSQL as one binary ``bigint[]`` parameter.

    Built from a numpy array in one step (:class:`BigintArrayDumper`): no text per
    element on either side. Register the dumper on the connection first
    (:func:`_send_arrays_binary`). :class:`SmallintArray` and :class:`IntegerArray` send
    ``smallint[]`` and ``int[]`` the same way, so that the server converts nothing.
    """

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64).ravel()


class SmallintArray(BigintArray):
    """Integers sent as one binary ``smallint[]`` parameter (ValueError if out of range)."""

    __slots__ = ()


class IntegerArray(BigintArray):
    """Integers sent as one binary ``int[]`` parameter (ValueError if out of range)."""

    __slots__ = ()


class BigintArrayDumper(Dumper):
    """psycopg dumper of :class:`BigintArray`: PostgreSQL's binary array format."""

    format = Format.BINARY
    oid = 1016  # bigint[]
    element_oid, element = 20, ">i8"

    def dump(self, obj: BigintArray) -> bytes:
        """Return the binary array: header, dimension, then (length, value) per element."""
        values = obj.values
        if len(values) == 0:  # no dimensions
            return np.array([0, 0, self.element_oid], dtype=">i4").tobytes()
        info = np.iinfo(self.element)
        if values.min() < info.min or values.max() > info.max:
            raise ValueError(f"a value does not fit the array's {self.element} elements")
        header = np.array([1, 0, self.element_oid, len(values), 1], dtype=">i4").tobytes()
        body = np.empty(len(values), dtype=[("size", ">i4"), ("value", self.element)])
        body["size"] = np.dtype(self.element).itemsize
        body["value"] = values
        return header + body.tobytes()


class SmallintArrayDumper(BigintArrayDumper):
    """psycopg dumper of :class:`SmallintArray`."""

    oid = 1005  # smallint[]
    element_oid, element = 21, ">i2"


class IntegerArrayDumper(BigintArrayDumper):
    """psycopg dumper of :class:`IntegerArray`."""

    oid = 1007  # int[]
    element_oid, element = 23, ">i4"


def _array(values: np.ndarray) -> BigintArray:
    """Return integers as one binary ``bigint[]`` parameter (cast by the query)."""
    return BigintArray(values)


def _send_arrays_binary(session: Session) -> None:
    """Let the session's connection send :class:`BigintArray` parameters (idempotent)."""
    adapters = raw_connection(session).adapters
    adapters.register_dumper(BigintArray, BigintArrayDumper)
    adapters.register_dumper(SmallintArray, SmallintArrayDumper)
    adapters.register_dumper(IntegerArray, IntegerArrayDumper)
    adapters.register_dumper(TidArray, TidArrayDumper)


def _array_body(data: Buffer, element: list[tuple[str, str]], oid: int) -> np.ndarray | None:
    """Return the elements of a binary one-dimensional array without NULLs, or None if empty.

    ``element``: the numpy fields of one element after its length; ``oid``: the element
    type expected. Raises ValueError for another shape or type, or NULLs.
    """
    ndim, has_nulls, element_oid = np.frombuffer(data, ">i4", count=3)
    if ndim == 0:
        return None
    if ndim != 1 or has_nulls or element_oid != oid:
        raise ValueError("a one-dimensional array without NULLs was expected")
    length = int(np.frombuffer(data, ">i4", count=1, offset=12)[0])
    return np.frombuffer(data, [("size", ">i4"), *element], count=length, offset=20)


class BigintArrayLoader(Loader):
    """psycopg loader of a binary ``bigint[]`` result as a numpy int64 array, in one step."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        """Return the array's values (one dimension, no NULLs; else ValueError)."""
        body = _array_body(data, [("value", ">i8")], 20)
        return _EMPTY if body is None else body["value"].astype(np.int64)


class TidArrayLoader(Loader):
    """psycopg loader of a binary ``tid[]`` result as row addresses (:class:`TidArray`)."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        """Return each row address packed as (block << 16) | offset, int64."""
        body = _array_body(data, [("block", ">u4"), ("offset", ">u2")], 27)
        if body is None:
            return _EMPTY
        return (body["block"].astype(np.int64) << 16) | body["offset"].astype(np.int64)


class TidArray:
    """Row addresses (``ctid``) sent as one binary ``tid[]`` parameter.

    Each is packed in an int64 as (block << 16) | offset, as :class:`TidArrayLoader`
    reads them. Register the dumper first (:func:`_send_arrays_binary`).
    """

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64).ravel()


class TidArrayDumper(Dumper):
    """psycopg dumper of :class:`TidArray`: PostgreSQL's binary array format."""

    format = Format.BINARY
    oid = 1010  # tid[]

    def dump(self, obj: TidArray) -> bytes:
        """Return the binary array: header, dimension, then (length 6, block, offset) each."""
        values = obj.values
        if len(values) == 0:
            return np.array([0, 0, 27], dtype=">i4").tobytes()
        header = np.array([1, 0, 27, len(values), 1], dtype=">i4").tobytes()
        body = np.empty(len(values), dtype=[("size", ">i4"), ("block", ">u4"),
                                            ("offset", ">u2")])
        body["size"] = 6
        body["block"] = values >> 16
        body["offset"] = values & 0xFFFF
        return header + body.tobytes()


def _fetch_columns(session: Session, query: str, params: dict, columns: int) -> list[np.ndarray]:
    """Return integer columns as numpy arrays, sent by PostgreSQL as binary arrays.

    ``query`` selects one row of ``columns`` arrays, ``bigint[]`` (``array_agg(x::bigint)``)
    or ``tid[]`` (``array_agg(ctid)``, packed as :class:`TidArray`); NULL, from no rows,
    gives an empty array. Much faster than fetching rows for tens of
    thousands of them: no Python object per value on either side.
    """
    cursor = array_cursor(session)
    cursor.execute(query, params, binary=True)
    row = cursor.fetchone()
    return [_EMPTY if row is None or row[i] is None else row[i] for i in range(columns)]


def array_cursor(session: Session) -> Cursor:
    """Return a cursor of the session's connection that loads arrays into numpy.

    Binary ``bigint[]`` and ``tid[]`` results (:class:`BigintArrayLoader`,
    :class:`TidArrayLoader`); execute with ``binary=True``. A NULL array (``array_agg``
    of no rows) stays None.
    """
    cursor = raw_connection(session).cursor()
    cursor.adapters.register_loader(1016, BigintArrayLoader)  # bigint[]
    cursor.adapters.register_loader(1010, TidArrayLoader)  # tid[]
    return cursor


@dataclass(frozen=True)
class FloorChanges:
    """Changed floor counts, one row per (condition, floor cell), sorted."""

    conditions: np.ndarray
    cells: np.ndarray
    old: np.ndarray
    new: np.ndarray


def _apply_deltas(session: Session, partial: Dirty) -> tuple[FloorChanges, list[int]]:
    """Add the member deltas to the stored floor counts.

    Returns the changed counts (old and new) and the conditions gone wrong: a count
    below zero can only come from a write that bypassed the triggers; those
    conditions are recounted rather than trusted.
    """
    conditions = np.concatenate([np.full(len(c), cid, np.int64) for cid, (c, _) in partial.items()])
    cells = np.concatenate([c for c, _ in partial.values()])
    deltas = np.concatenate([d for _, d in partial.values()])
    changed = deltas != 0
    conditions, cells, deltas = conditions[changed], cells[changed], deltas[changed]
    params = {"c": SmallintArray(conditions), "f": _array(cells), "d": IntegerArray(deltas)}
    new = _fetch_ints(
        session,
        "INSERT INTO publish_floor_counts (condition_id, floor_cell, members) "
        "SELECT * FROM unnest(CAST(%(c)s AS smallint[]), CAST(%(f)s AS bigint[]), "
        "CAST(%(d)s AS int[])) "
        "ON CONFLICT (condition_id, floor_cell) "
        "DO UPDATE SET members = publish_floor_counts.members + EXCLUDED.members "
        "RETURNING condition_id, floor_cell, members",
        params, 3)
    empty = new[new[:, 2] <= 0]
    with _index_joins(session):
        session.execute(
            text(
                "DELETE FROM publish_floor_counts f USING "
                "unnest(CAST(:c AS smallint[]), CAST(:f AS bigint[])) AS d (c, cell) "
                "WHERE f.condition_id = d.c AND f.floor_cell = d.cell"
            ),
            {"c": SmallintArray(empty[:, 0]), "f": _array(empty[:, 1])},
        )
    keys = pack_keys(conditions, cells)
    order = np.argsort(keys)
    new = new[np.argsort(pack_keys(new[:, 0], new[:, 1]))]
    counts = new[:, 2]
    changes = FloorChanges(conditions[order], cells[order], counts - deltas[order], counts)
    broken = sorted(set(changes.conditions[(changes.new < 0) | (changes.old < 0)].tolist()))
    return changes, broken


ALL_BASE_CELLS = np.arange(122, dtype=np.int64)

Touched = dict[int, np.ndarray]  # condition -> H3 base cells (res 0) whose parts may change


def touched_parts(dirty: Dirty) -> Touched:
    """Return, per condition, the H3 base cells whose members changed in ``dirty``.

    The one definition of what a publish must follow: a condition marked whole
    (:data:`WHOLE_CONDITION`) touches every base cell; otherwise the base cells of its
    floor cells with a non-zero delta. Conditions without any are left out. A part of
    the partition never crosses a base cell, so every other part is unchanged.
    """
    touched: Touched = {}
    for condition_id, (cells, deltas) in dirty.items():
        if WHOLE_CONDITION in cells:
            touched[condition_id] = ALL_BASE_CELLS
        elif (bases := np.unique(base_cells(cells[deltas != 0]))).size:
            touched[condition_id] = bases
    return touched


def _publish_incremental(session: Session, condition_ids: list[int], dirty: Dirty, k: int,
                         floor: int, progress: Callable[[int], None] | None
                         ) -> tuple[int, Touched, TotalsChange, PendingRegions | None]:
    """Apply the dirty deltas and re-roll only the changed floor cells' ancestors.

    The stored parts (the markers at the floor resolution) and leftovers are the
    roll-up's state: :func:`geomap.privacy.repartition` gives the parts that change,
    each marker changes by the sum of its changed parts, and only markers whose count
    changes are written. Conditions marked whole (newly enabled, recounted) are
    partitioned anew. Returns the rows written, the touched base cells of the
    conditions whose parts changed, the change of the totals, and their region counts
    when they are being counted alongside (:func:`_count_regions_meanwhile`).
    """
    enabled = set(condition_ids)
    whole = [cid for cid, (cells, _) in dirty.items() if WHOLE_CONDITION in cells]
    partial = {cid: value for cid, value in dirty.items() if cid not in whole}
    changes = None
    on_map_change = 0  # of every floor count (disabled conditions' too)
    if partial:
        changes, broken = _apply_deltas(session, partial)
        on_map_change = int((changes.new - changes.old).sum())
        if broken:
            log.warning("negative floor counts for conditions %s: recounting them", broken)
        keep = ~np.isin(changes.conditions, broken) & np.isin(changes.conditions,
                                                              sorted(enabled))
        changes = FloorChanges(changes.conditions[keep], changes.cells[keep],
                               changes.old[keep], changes.new[keep])
        # The stored parts of the changed conditions, read once: they answer the
        # repartition's part look-ups and are what the region counts start from.
        stored = _stored_parts(session, floor, np.unique(changes.conditions))
        addresses = LeftoverAddresses()
        try:
            repartitioned = repartition(
                changes.conditions, changes.cells, changes.old, changes.new, floor, k,
                lambda ids, cells: _holdings(session, stored, addresses, ids, cells))
        except ValueError:
            log.warning("stored partitions out of step: recounting the changed conditions")
            broken = sorted(set(broken) | set(changes.conditions.tolist()))
            repartitioned = None
        for condition_id in broken:
            whole.append(condition_id)
            dirty[condition_id] = (np.array([WHOLE_CONDITION], np.int64),
                                   np.zeros(1, np.int64))
    written = 0
    if whole:
        _recount_conditions(session, whole)
        again = sorted(set(whole) & enabled)
        for table in ("published_cells", "publish_leftovers"):
            session.execute(text(f"DELETE FROM {table} "  # noqa: S608 (a fixed name)
                                 "WHERE condition_id = ANY(CAST(:ids AS smallint[]))"),
                            {"ids": again})
        written += _write_conditions(session, again, floor_counts(session, again), k, floor,
                                     None)
    regions = None
    if changes is not None and repartitioned is not None:
        if not whole:
            regions = _count_regions_meanwhile(session, stored, repartitioned, k, floor)
        with _index_joins(session):
            written += _write_part_changes(session, repartitioned, floor, addresses)
    if progress:
        progress(len(condition_ids))
    # Region counts sum a condition's parts only: conditions whose parts all stayed
    # keep theirs.
    parts_changed = set(whole)
    totals = TotalsChange(sorted(set(whole) & enabled), _EMPTY, _EMPTY, _EMPTY,
                          None if whole else on_map_change)
    if changes is not None and repartitioned is not None:
        parts_changed.update(repartitioned.part_conditions.tolist())
        ids, inverse = np.unique(np.concatenate([changes.conditions,
                                                 repartitioned.part_conditions]),
                                 return_inverse=True)
        split = len(changes.conditions)
        members = np.bincount(inverse[:split], weights=changes.new - changes.old,
                              minlength=len(ids)).astype(np.int64)
        published = np.bincount(inverse[split:],
                                weights=repartitioned.part_new - repartitioned.part_old,
                                minlength=len(ids)).astype(np.int64)
        totals = TotalsChange(totals.whole, ids, members, published, totals.on_map_change)
    return written, {cid: bases for cid, bases in touched_parts(dirty).items()
                     if cid in parts_changed}, totals, regions


@dataclass(frozen=True)
class TotalsChange:
    """How an incremental publish changes published_totals."""

    whole: list[int]  # conditions counted anew
    conditions: np.ndarray  # the others: changes of members on the map and published
    members: np.ndarray
    published: np.ndarray
    # Change of the sum of every floor count (None: some were counted anew).
    on_map_change: int | None = None


@dataclass(frozen=True)
class StoredParts:
    """The stored parts of some conditions: :func:`pack_keys` (sorted) and counts."""

    keys: np.ndarray
    counts: np.ndarray

    def counts_of(self, keys: np.ndarray) -> np.ndarray:
        """Return the stored count of each packed key (0: no part there)."""
        if len(self.keys) == 0:
            return np.zeros(len(keys), np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.counts[at], 0)


def _stored_parts(session: Session, floor: int, conditions: np.ndarray) -> StoredParts:
    """Return the stored parts of ``conditions`` (the markers at the floor resolution)."""
    ids, cells, counts = _fetch_columns(
        session, "SELECT array_agg(condition_id::bigint), array_agg(cell), "
        "array_agg(count::bigint) FROM published_cells "
        "WHERE resolution = %(floor)s AND condition_id = ANY(%(ids)s)",
        {"floor": floor, "ids": conditions.tolist()}, 3)
    keys = pack_keys(ids, cells)
    order = np.argsort(keys, kind="stable")
    return StoredParts(keys[order], counts[order])


class LeftoverAddresses:
    """Where the leftovers read by a repartition are stored: row addresses by packed key.

    Filled by :func:`_holdings`; the leftovers that change are then rewritten by
    address, without looking their keys up again. Valid within the transaction that
    read them, until the rows are written (nothing else writes publish_leftovers under
    the publish lock).
    """

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._tids: list[np.ndarray] = []

    def add(self, keys: np.ndarray, tids: np.ndarray) -> None:
        """Remember the addresses ``tids`` of the leftovers of ``keys`` (aligned)."""
        self._keys.append(keys)
        self._tids.append(tids)

    def of(self, keys: np.ndarray) -> np.ndarray:
        """Return the address of each key's leftover; RuntimeError if one was not read."""
        known = np.concatenate(self._keys or [_EMPTY])
        tids = np.concatenate(self._tids or [_EMPTY])
        order = np.argsort(known)
        known, tids = known[order], tids[order]
        at = np.minimum(np.searchsorted(known, keys), max(len(known) - 1, 0))
        if len(keys) and (len(known) == 0 or (known[at] != keys).any()):
            raise RuntimeError("a changed leftover was not read by the repartition")
        return tids[at] if len(keys) else _EMPTY


def _holdings(session: Session, stored: StoredParts, addresses: LeftoverAddresses,
              conditions: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the stored part counts and leftovers of (condition, cell) pairs (0: none).

    Parts come from ``stored`` (read once per publish); only the cells that are no
    part are looked up among the leftovers (a cell is a part, a leftover or neither),
    and the addresses of those found go to ``addresses``.
    """
    keys = pack_keys(conditions, cells)
    parts = stored.counts_of(keys)
    leftovers = np.zeros(len(keys), np.int64)
    ask = np.flatnonzero(parts == 0)
    if len(ask):
        with _index_joins(session):
            found, members, tids = _fetch_columns(
                session,
                "SELECT array_agg(t.i), array_agg(l.members::bigint), array_agg(l.ctid) "
                "FROM unnest(CAST(%(c)s AS smallint[]), CAST(%(f)s AS bigint[])) "
                "WITH ORDINALITY AS t (c, cell, i) "
                "JOIN publish_leftovers l ON l.condition_id = t.c AND l.cell = t.cell",
                {"c": SmallintArray(conditions[ask]), "f": _array(cells[ask])}, 3)
        rows = ask[found - 1]
        leftovers[rows] = members
        addresses.add(keys[rows], tids)
    return parts, leftovers


@dataclass(frozen=True)
class PendingRegions:
    """Region counts of ``conditions`` being computed in a worker thread."""

    conditions: list[int]
    counts: Future[RegionCounts]


def _count_regions_meanwhile(session: Session, stored: StoredParts, changed: Repartition,
                             k: int, floor: int) -> PendingRegions:
    """Start counting the regions of the conditions whose parts change; return at once.

    Their new parts are the stored ones (``stored``, read before the markers are
    written) with the changed parts replaced; :func:`geomap.publish.regions.region_counts`
    needs no database, so it runs in a thread while this one writes the markers.
    """
    conditions = np.unique(changed.part_conditions)
    ours = np.isin(stored.keys >> 32, conditions)
    stored_keys, stored_counts = stored.keys[ours], stored.counts[ours]
    changed_keys = pack_keys(changed.part_conditions, changed.part_cells)
    kept = ~np.isin(stored_keys, changed_keys)
    now = changed.part_new > 0
    keys = np.concatenate([stored_keys[kept], changed_keys[now]])
    counts = np.concatenate([stored_counts[kept], changed.part_new[now]])
    order = np.argsort(keys)
    part_conditions, part_cells = unpack_keys(keys[order])
    deriver = deriver_for(session, floor)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-regions")
    future = pool.submit(region_counts, deriver, part_conditions, part_cells, counts[order],
                         k, floor)
    pool.shutdown(wait=False)  # the thread ends with its one task
    return PendingRegions(conditions.tolist(), future)


def _write_part_changes(session: Session, changed: Repartition, floor: int,
                        addresses: LeftoverAddresses) -> int:
    """Write the leftovers and the markers that the changed parts change; return markers.

    A part at resolution r or finer is summed into its ancestor's marker at r; a
    coarser part is shown as itself. So each marker changes by the sum of the count
    changes of its changed parts; a marker whose sum is unchanged keeps its row.
    """
    # A leftover is stored while above 0: its old count says whether its row exists
    # (read by the repartition, at an address in ``addresses``), so each is deleted or
    # updated by address (its key checked), or copied in.
    left_conditions, left_cells = changed.leftover_conditions, changed.leftover_cells
    old, new = changed.leftover_old, changed.leftover_new
    gone, stays, fresh = new == 0, (old > 0) & (new > 0), old == 0
    tids = addresses.of(pack_keys(left_conditions, left_cells)[old > 0])
    stored_at = np.zeros(len(old), np.int64)
    stored_at[old > 0] = tids
    keys_sql = ("unnest(CAST(:t AS tid[]), CAST(:c AS smallint[]), CAST(:f AS bigint[]), "
                "CAST(:n AS int[])) AS d (t, c, cell, n) "
                "WHERE l.ctid = d.t AND l.condition_id = d.c AND l.cell = d.cell")
    found = [
        session.execute(text(statement + keys_sql),
                        {"t": TidArray(stored_at[rows]), "c": SmallintArray(left_conditions[rows]),
                         "f": _array(left_cells[rows]), "n": IntegerArray(new[rows])}).rowcount
        for statement, rows in (("DELETE FROM publish_leftovers l USING ", gone),
                                ("UPDATE publish_leftovers l SET members = d.n FROM ", stays))
    ]
    if found != [int(gone.sum()), int(stays.sum())]:
        raise RuntimeError("stored leftovers out of step with the stored partition")
    _copy_binary(session, "publish_leftovers (condition_id, cell, members)",
                 [(">i2", left_conditions[fresh]), (">i8", left_cells[fresh]),
                  (">i4", new[fresh])])
    if len(changed.part_cells) == 0:
        return 0
    part_res = cell_resolutions(changed.part_cells)
    change = changed.part_new - changed.part_old
    keys: list[np.ndarray] = []
    for resolution in range(floor + 1):
        fine = part_res >= resolution
        cells_at = changed.part_cells.copy()
        cells_at[fine] = cell_parents(changed.part_cells[fine], resolution)
        keys.append(pack_marker_keys(changed.part_conditions, resolution, cells_at))
    marker_keys, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.bincount(inverse, weights=np.tile(change, floor + 1),
                       minlength=len(marker_keys)).astype(np.int64)
    marker_keys, sums = marker_keys[sums != 0], sums[sums != 0]
    # In the index's order (condition, resolution, cell): neighbouring lookups.
    conditions, resolutions, cells = unpack_marker_keys(marker_keys)
    keys_sql = ("FROM unnest(CAST(%(c)s AS smallint[]), CAST(%(r)s AS smallint[]), "
                "CAST(%(f)s AS bigint[]), CAST(%(d)s AS int[])) WITH ORDINALITY "
                "AS d (c, r, cell, delta, i) WHERE p.condition_id = d.c AND p.resolution = d.r "
                "AND p.cell = d.cell ")
    # By key, no separate read: markers that stay are updated in place (HOT: the count
    # is in no index); of the others, only those whose sum falls can be gone (they are
    # deleted), and a key that neither finds is a new marker.
    updated = _fetch_ints(session, "UPDATE published_cells p SET count = p.count + d.delta "
                          + keys_sql + "AND p.count + d.delta > 0 RETURNING d.i",
                          {"c": SmallintArray(conditions), "r": SmallintArray(resolutions),
                           "f": _array(cells), "d": IntegerArray(sums)}, 1)
    left = np.ones(len(marker_keys), dtype=bool)
    left[updated[:, 0] - 1] = False
    falling = np.flatnonzero(left & (sums < 0))
    deleted = _fetch_ints(session, "DELETE FROM published_cells p USING "
                          + keys_sql[5:] + "RETURNING d.i, p.count + d.delta",
                          {"c": SmallintArray(conditions[falling]),
                           "r": SmallintArray(resolutions[falling]),
                           "f": _array(cells[falling]), "d": IntegerArray(sums[falling])}, 2)
    if len(deleted) != len(falling) or (deleted[:, 1] != 0).any():
        raise RuntimeError("published markers out of step with the stored partition")
    added = left & (sums > 0)
    _copy_markers(session, conditions[added], resolutions[added], cells[added], sums[added])
    return len(marker_keys)


def _follow_enabled(session: Session, enabled: list[int], dirty: Dirty) -> None:
    """Drop the markers of disabled conditions; mark newly enabled ones for a recount.

    A condition published last time has a snapshot row (publish_snapshots holds the
    enabled conditions only, and only they have markers); one without is recounted
    whole, so an incremental publish opens its map. Floor counts of disabled
    conditions are kept current.
    """
    snapshotted = set(
        session.execute(text("SELECT condition_id FROM publish_snapshots")).scalars()
    )
    disabled = sorted(snapshotted - set(enabled))
    if disabled:
        for table in ("published_cells", "publish_leftovers"):
            session.execute(
                text(f"DELETE FROM {table} "  # noqa: S608 (a fixed name)
                     "WHERE condition_id = ANY(CAST(:ids AS smallint[]))"),
                {"ids": disabled},
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
    _send_arrays_binary(session)
    changed_at, last_version, last_changed, last_on_map = session.execute(
        text(
            "SELECT (SELECT changed_at FROM data_changes), "
            "(SELECT max(version) FROM publish_runs), "
            "(SELECT data_changed_at FROM publish_runs ORDER BY version DESC LIMIT 1), "
            "(SELECT members_on_map FROM publish_runs ORDER BY version DESC LIMIT 1)"
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
    phases = [("deltas", time.perf_counter())]
    incremental = (
        not full and last_version is not None
        and _can_go_incremental(session, condition_ids, k, floor)
    )
    touched: Touched | None = None  # None: everything
    regions: PendingRegions | None = None
    if incremental:
        written, touched, totals, regions = _publish_incremental(
            session, condition_ids, dirty, k, floor, progress)
    else:
        written = _publish_full(session, condition_ids, k, floor, progress)
    phases.append(("cells", time.perf_counter()))
    if incremental:
        members_on_map = _update_totals(session, version, floor, totals, condition_ids,
                                        last_on_map)
    else:
        members_on_map = _write_totals(session, version, floor)
    phases.append(("totals", time.perf_counter()))
    session.execute(text("DELETE FROM publish_snapshots"))
    session.execute(
        text("INSERT INTO publish_snapshots (condition_id, k, floor, version) "
             "SELECT id, :k, :floor, :version FROM conditions WHERE enabled"),
        {"k": k, "floor": floor, "version": version},
    )
    if regions is not None and touched is not None and regions.conditions == sorted(touched):
        write_region_counts(session, regions.counts.result(), version=version,
                            conditions=regions.conditions, enabled=condition_ids)
    else:
        _publish_regions(session, version, k, floor, touched, condition_ids)
    phases.append(("regions", time.perf_counter()))
    # Further published aggregates (one place, after the cells, same transaction).
    for extra_publisher in EXTRA_PUBLISHERS:
        extra_publisher(session, version, k, floor)
        phases.append((getattr(extra_publisher, "__name__", "extra"), time.perf_counter()))
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
        refresh_snapshots(session, full=not incremental)
        phases.append(("snapshots", time.perf_counter()))
    marks = [started] + [mark for _name, mark in phases]
    return PublishSummary(version, members_on_map, published_cells, seconds, kind=kind,
                          rows_written=written,
                          phases=tuple((name, round(mark - marks[i], 3))
                                       for i, (name, mark) in enumerate(phases)))


def _update_totals(session: Session, version: int, floor: int, change: TotalsChange,
                   enabled: list[int], last_on_map: int | None) -> int:
    """Shift published_totals by an incremental publish's changes; return on-map.

    Conditions counted anew and newly enabled ones get fresh rows; disabled ones lose
    theirs; every row carries the new version. The members on the map (the sum of
    every floor count) are the last publish's plus the change when no condition was
    counted anew (``last_on_map``: the last publish_runs row's), else summed.
    """
    session.execute(
        text("DELETE FROM published_totals WHERE condition_id <> ALL(CAST(:on AS smallint[])) "
             "OR condition_id = ANY(CAST(:whole AS smallint[]))"),
        {"on": list(enabled), "whole": change.whole},
    )
    if change.whole:
        _insert_totals(session, version, floor, change.whole)
    session.execute(
        text("UPDATE published_totals t SET members_on_map = t.members_on_map + d.m, "
             "published = t.published + d.p FROM unnest(CAST(:c AS smallint[]), "
             "CAST(:m AS int[]), CAST(:p AS int[])) AS d (c, m, p) WHERE t.condition_id = d.c"),
        {"c": SmallintArray(change.conditions), "m": IntegerArray(change.members),
         "p": IntegerArray(change.published)},
    )
    session.execute(text("UPDATE published_totals SET version = :version"),
                    {"version": version})
    if change.on_map_change is not None and last_on_map is not None:
        return int(last_on_map) + change.on_map_change
    return int(
        session.execute(
            text("SELECT coalesce(sum(members), 0) FROM publish_floor_counts")
        ).scalar_one()
    )


def _write_totals(session: Session, version: int, floor: int) -> int:
    """Rebuild published_totals from the floor counts and published cells; return on-map."""
    session.execute(text("DELETE FROM published_totals"))
    _insert_totals(session, version, floor, None)
    return int(
        session.execute(
            text("SELECT coalesce(sum(members), 0) FROM publish_floor_counts")
        ).scalar_one()
    )


def _insert_totals(session: Session, version: int, floor: int,
                   only: list[int] | None) -> None:
    """Insert the totals rows of the enabled conditions (of ``only``; None: all)."""
    where = "" if only is None else "AND c.id = ANY(CAST(:only AS smallint[])) "
    inner = "" if only is None else "WHERE condition_id = ANY(CAST(:only AS smallint[])) "
    session.execute(
        text(
            "INSERT INTO published_totals "
            "(condition_id, resolution, members_on_map, published, version) "
            "SELECT c.id, r.resolution, coalesce(f.members, 0), coalesce(p.published, 0), "
            ":version FROM conditions c "
            "CROSS JOIN generate_series(0, :floor) AS r (resolution) "
            "LEFT JOIN (SELECT condition_id, sum(members) AS members "
            "FROM publish_floor_counts " + inner + "GROUP BY 1) f ON f.condition_id = c.id "
            "LEFT JOIN (SELECT condition_id, resolution, sum(count) AS published "
            "FROM published_cells " + inner + "GROUP BY 1, 2) p "
            "ON p.condition_id = c.id AND p.resolution = r.resolution WHERE c.enabled "
            + where
        ),
        {"version": version, "floor": floor, "only": only},
    )
