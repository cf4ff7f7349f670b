"""Loading many members at once through COPY, with their keys derived in bulk.

Used by ``geomap demo`` and ``geomap import``. Ids are reserved in one step under a
table lock, keys are derived vectorised (:mod:`geomap.geo.derive`) in a thread while
the first tables load, and the three member tables are filled with binary COPY built
column-wise (:mod:`geomap.ingest.copy_binary`), never row by row through the ORM.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain

import numpy as np
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import DerivedKeys, KeyDeriver
from geomap.geo.reference import raw_connection
from geomap.ingest import copy_binary
from geomap.members.pseudonyms import pseudonym_keys
from geomap.publish import WHOLE_CONDITION_CELLS

COPY_CHUNK = 50_000
MEMBER_TABLES = ("members", "member_conditions", "member_locations")
# A batch this large, and at least half the size of the members already there, is
# loaded with the member tables' secondary indexes and foreign keys dropped and
# rebuilt afterwards (one sort per index instead of a million random insertions).
BULK_REBUILD_MIN = 100_000
DIRTY_TRIGGERS = (
    ("member_conditions", "dirty_insert"), ("member_locations", "dirty_insert"),
    ("member_conditions", "snapshot_dirty_insert"), ("member_locations", "snapshot_dirty_insert"),
)
# Past this many new members, the loader asks the next snapshot refresh for a full
# rebuild (member 0) instead of marking each one.
SNAPSHOT_MARK_MAX = 100_000


@dataclass
class MemberBatch:
    """Members to load, as aligned columns."""

    pseudonyms: Sequence[str] | None  # None: generated from the assigned ids
    roles: Sequence[str]
    visibilities: Sequence[str]
    contactable: Sequence[bool]
    joined_at: Sequence[datetime] | np.ndarray  # datetimes, or datetime64 (UTC)
    lats: np.ndarray
    lngs: np.ndarray
    conditions: Sequence[Sequence[int]]
    # Called once before the points are first read (in the loader's derivation thread,
    # while the members table loads): moves points in ``lats``/``lngs`` in place.
    settle_points: Callable[[], None] | None = None
    # The pseudonyms' keys when the caller has them already (the importer checks them).
    pseudonym_keys: Sequence[str] | None = None

    def __len__(self) -> int:
        """Return the number of members in the batch."""
        return len(self.lats)


def _copy_binary(session: Session, statement: str, chunks: Iterable[bytes],
                 progress: Callable[[int], None] | None = None,
                 counts: Iterable[int] = ()) -> None:
    """Binary COPY of encoded chunks; a writer thread sends one while the next is built."""
    conn = raw_connection(session)
    cursor = conn.cursor()
    done = iter(counts)
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        copy.write(copy_binary.HEADER)
        for chunk in chunks:
            if chunk:
                copy.write(chunk)
            if progress:
                progress(next(done, 0))
        copy.write(copy_binary.TRAILER)


def _slices(n: int) -> Iterator[slice]:
    """Yield the slices of ``n`` rows in COPY-sized chunks."""
    for start in range(0, n, COPY_CHUNK):
        yield slice(start, min(start + COPY_CHUNK, n))


def _epoch_micros(value: datetime | date) -> int:
    """Return microseconds since 1970 (UTC) of a datetime (naive: UTC) or a date."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(aware.timestamp() * 1e6)
    return (value - date(1970, 1, 1)).days * 86_400_000_000


def _micros(joined_at: Sequence[datetime] | np.ndarray) -> np.ndarray:
    """Return UTC microseconds since 1970 of ``joined_at`` (datetimes or datetime64)."""
    if isinstance(joined_at, np.ndarray) and np.issubdtype(joined_at.dtype, np.datetime64):
        return joined_at.astype("datetime64[us]").astype(np.int64)
    return np.fromiter((_epoch_micros(j) for j in joined_at), dtype=np.int64,
                       count=len(joined_at))


def _flat_conditions(conditions: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Return (conditions per member, every member's conditions back to back)."""
    per_member = np.fromiter(map(len, conditions), dtype=np.int64, count=len(conditions))
    flat = np.fromiter(chain.from_iterable(conditions), dtype=np.int64,
                       count=int(per_member.sum()))
    return per_member, flat


def _text_values(values: Sequence[str] | np.ndarray) -> list[str]:
    """Return ``values`` as a list of str (for the text encoder)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk step, then restore it.

    A million rows are millions of small lists and strings; every full collection
    would walk them all again, several times over, while none of them is garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_members(session: Session, batch: MemberBatch, deriver: KeyDeriver,
                 progress: Callable[[int], None] | None = None,
                 pseudonym_prefix: Sequence[str] | None = None) -> np.ndarray:
    """Insert ``batch`` in the session's transaction; return the new member ids.

    Rows go by binary COPY (:mod:`.copy_binary`), encoded chunk by chunk while the
    previous chunk is sent; keys are derived in a thread meanwhile. ``progress`` is
    called with member counts as the work advances (derivation and the three COPYs
    each count for part of each member).
    """
    with gc_paused():
        return _load_members(session, batch, deriver, progress, pseudonym_prefix)


def _load_members(session: Session, batch: MemberBatch, deriver: KeyDeriver,
                  progress: Callable[[int], None] | None,
                  pseudonym_prefix: Sequence[str] | None) -> np.ndarray:
    """Do :func:`load_members`' work (with the garbage collector paused)."""
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Keys are derived in a thread while the server ingests members and conditions
    # (the numeric work releases the GIL; the main thread mostly waits on the socket).
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geomap-derive")
    derived = executor.submit(_settle_and_derive, batch, deriver)
    executor.shutdown(wait=False)
    # Same lock order as a publish (publish_dirty, then the member tables): a publish
    # running now finishes first, and one starting later waits for this load.
    session.execute(text("LOCK TABLE publish_dirty IN ROW EXCLUSIVE MODE"))
    session.execute(text("LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE"))
    # The dirty-cell triggers would join a million-row transition table; the loader
    # knows its (condition, floor cell) pairs already and records them itself.
    session.execute(text("SELECT set_config('geomap.track_dirty', 'off', true)"))
    deferred = _defer_indexes(session) if _rebuild_worthwhile(session, n) else None
    last = session.execute(
        text("SELECT setval('members_id_seq', nextval('members_id_seq') + :n - 1)"), {"n": n}
    ).scalar_one()
    ids = np.arange(last - n + 1, last + 1, dtype=np.int64)
    joined = _micros(batch.joined_at)
    roles, visibilities = _text_values(batch.roles), _text_values(batch.visibilities)
    contactable = np.asarray(batch.contactable, dtype=bool)
    slices = list(_slices(n))

    def names_and_keys(part: slice) -> tuple[list[str], list[str]]:
        """Return the pseudonyms of rows ``part`` and their keys.

        Made chunk by chunk, while the server takes the previous chunk.
        """
        if batch.pseudonyms is None:
            prefixes = (pseudonym_prefix[part] if pseudonym_prefix is not None
                        else ["member"] * (part.stop - part.start))
            names = [f"{p}-{i}" for p, i in zip(prefixes, ids[part].tolist(), strict=True)]
            return names, pseudonym_keys(names)
        names = list(batch.pseudonyms[part])
        if batch.pseudonym_keys is not None:
            return names, list(batch.pseudonym_keys[part])
        return names, pseudonym_keys(names)

    def member_rows(part: slice) -> bytes:
        """Encode rows ``part`` of the members table."""
        names, keys = names_and_keys(part)
        return copy_binary.rows([
            copy_binary.int8(ids[part]), copy_binary.text(names), copy_binary.text(keys),
            copy_binary.text(roles[part]), copy_binary.text(visibilities[part]),
            copy_binary.boolean(contactable[part]), copy_binary.timestamptz(joined[part]),
        ])

    _copy_binary(
        session,
        "COPY members (id, pseudonym, pseudonym_key, role, visibility, contactable, joined_at) "
        "FROM STDIN (FORMAT binary)",
        (member_rows(part) for part in slices),
        progress, (int((part.stop - part.start) * 0.25) for part in slices),
    )
    _restore_indexes(session, deferred, "members")
    per_member, flat_conditions = _flat_conditions(batch.conditions)
    owners = np.repeat(ids, per_member)
    link_ends = np.cumsum(per_member)
    _copy_binary(
        session, "COPY member_conditions (condition_id, member_id) FROM STDIN (FORMAT binary)",
        (
            copy_binary.rows([
                copy_binary.int2(flat_conditions[lo:hi]), copy_binary.int8(owners[lo:hi]),
            ])
            for lo, hi in ((int(link_ends[p.start] - per_member[p.start]),
                            int(link_ends[p.stop - 1])) for p in slices)
        ),
        progress, (int((part.stop - part.start) * 0.15) for part in slices),
    )
    _restore_indexes(session, deferred, "member_conditions")
    keys = derived.result()
    if progress:
        progress(int(n * 0.25))
    lats, lngs = np.asarray(batch.lats, np.float64), np.asarray(batch.lngs, np.float64)
    _copy_binary(
        session,
        "COPY member_locations (member_id, location, floor_cell, country_code, region_code) "
        "FROM STDIN (FORMAT binary)",
        (
            copy_binary.rows([
                copy_binary.int8(ids[part]),
                copy_binary.geography_points(lats[part], lngs[part]),
                copy_binary.int8(keys.floor_cells[part]),
                copy_binary.text(keys.country_codes[part]),
                copy_binary.text(keys.region_codes[part]),
            ])
            for part in slices
        ),
        progress, (int((part.stop - part.start) * 0.35) for part in slices),
    )
    _restore_indexes(session, deferred, "member_locations")
    session.execute(text("SELECT set_config('geomap.track_dirty', 'on', true)"))
    mark_dirty(session, keys.floor_cells, batch.conditions,
               np.asarray(batch.visibilities, dtype=object) == "map",
               flat=(per_member, flat_conditions))
    mark_snapshots_dirty(session, int(ids[0]), int(ids[-1]))
    return ids


def _settle_and_derive(batch: MemberBatch, deriver: KeyDeriver) -> DerivedKeys:
    """Settle the batch's points (if it asks to) and derive their keys."""
    if batch.settle_points is not None:
        batch.settle_points()
    return deriver.derive(batch.lats, batch.lngs)


def mark_snapshots_dirty(session: Session, first: int, last: int) -> None:
    """Mark members ``first``..``last`` for the next snapshot refresh (or everything)."""
    if last - first + 1 > SNAPSHOT_MARK_MAX:
        session.execute(text("INSERT INTO snapshot_dirty (member_id) VALUES (0) "
                             "ON CONFLICT DO NOTHING"))
        return
    session.execute(
        text("INSERT INTO snapshot_dirty (member_id) SELECT generate_series("
             "CAST(:first AS bigint), CAST(:last AS bigint)) ON CONFLICT DO NOTHING"),
        {"first": first, "last": last},
    )


@dataclass(frozen=True)
class _DeferredIndexes:
    """What :func:`_defer_indexes` dropped: per table, statements that recreate it."""

    statements: dict[str, list[str]]


def _rebuild_worthwhile(session: Session, n: int) -> bool:
    """Whether ``n`` new members are many enough to rebuild indexes rather than update."""
    if n < BULK_REBUILD_MIN:
        return False
    existing = session.execute(
        text("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'members'::regclass")
    ).scalar_one()
    return n >= existing / 2


def _defer_indexes(session: Session) -> _DeferredIndexes:
    """Drop the member tables' secondary indexes, keys and foreign keys; disable triggers.

    Primary keys are dropped too where no foreign key refers to them (a link table's
    key is then built by one sort instead of a million insertions during the COPY);
    ``members``' own primary key stays.

    Everything is read from the catalog (so indexes added by later migrations come
    back as they were) and happens inside the load's transaction: other sessions
    never see the tables without them.
    """
    tables = list(MEMBER_TABLES)
    # Unique keys, foreign keys, and the primary keys that no foreign key points at
    # (member_conditions', member_locations'; members' own stays: 15 tables refer to it).
    constraints = session.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
            "FROM pg_constraint c WHERE conrelid = ANY(CAST(:tables AS regclass[])) "
            "AND (contype IN ('u', 'f') OR contype = 'p' AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint r WHERE r.contype = 'f' AND r.confrelid = c.conrelid)) "
            "ORDER BY contype = 'f' DESC, contype, conname"
        ),
        {"tables": tables},
    ).all()
    indexes = session.execute(
        text(
            "SELECT indrelid::regclass::text, indexrelid::regclass::text, "
            "pg_get_indexdef(indexrelid) FROM pg_index i "
            "WHERE indrelid = ANY(CAST(:tables AS regclass[])) AND NOT indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY 2"
        ),
        {"tables": tables},
    ).all()
    triggers = [
        (table, name)
        for table, name in DIRTY_TRIGGERS
        if session.execute(
            text("SELECT 1 FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
                 "AND tgname = :n"),
            {"t": table, "n": name},
        ).first()
    ]
    statements: dict[str, list[str]] = {table: [] for table in MEMBER_TABLES}
    # Foreign keys go first and come back last; a table's primary key comes back
    # before its other indexes.
    for table, name, _definition, _kind in constraints:
        session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for table, name, definition, kind in constraints:
        if kind == "p":
            statements[table].append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for table, name, definition in indexes:
        session.execute(text(f"DROP INDEX {name}"))
        statements[table].append(definition)
    for table, name, definition, kind in reversed(constraints):
        if kind != "p":
            statements[table].append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for table, name in triggers:
        session.execute(text(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"'))
        statements[table].append(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')
    return _DeferredIndexes(statements)


def _restore_indexes(session: Session, deferred: _DeferredIndexes | None, table: str) -> None:
    """Rebuild what :func:`_defer_indexes` dropped on ``table`` (checking its constraints)."""
    if deferred is None:
        return
    session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for statement in deferred.statements[table]:
        if " REFERENCES members(id)" in statement:
            # The check that every row's member exists walks both tables' member id
            # indexes (just built) in one merge instead of hashing a million member
            # ids: about half the time (0.95 -> 0.42 s at 1M links). A reference to a
            # small table (conditions) is still best hashed.
            hashjoin = session.execute(text("SELECT current_setting('enable_hashjoin')")).scalar()
            session.execute(text("SELECT set_config('enable_hashjoin', 'off', true)"))
            session.execute(text(statement))
            session.execute(text("SELECT set_config('enable_hashjoin', :v, true)"),
                            {"v": hashjoin})
        else:
            session.execute(text(statement))
    # No ANALYZE here: the index builds have set the row counts the constraint checks
    # plan with, and the statistics are gathered after the commit
    # (:func:`analyze_member_tables`, or autovacuum), outside the import's transaction.


def analyze_member_tables(session: Session) -> None:
    """Gather planner statistics of the member tables (after a bulk load has committed)."""
    for table in MEMBER_TABLES:
        session.execute(text(f"ANALYZE {table}"))


def mark_dirty(session: Session, cells: np.ndarray, conditions: Sequence[Sequence[int]],
               on_map: np.ndarray,
               flat: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Record new members on the map as deltas per (condition, floor cell) for the next publish.

    A condition with more than :data:`WHOLE_CONDITION_CELLS` dirty cells is marked
    dirty as a whole (floor cell 0): one recount beats writing that many deltas.
    """
    per_member, all_conditions = flat or _flat_conditions(conditions)
    keep = np.repeat(np.asarray(on_map, dtype=bool), per_member)
    flat_conditions = all_conditions[keep]
    flat_cells = np.repeat(np.asarray(cells, dtype=np.int64), per_member)[keep]
    parts_c: list[np.ndarray] = []
    parts_f: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    for condition_id in np.unique(flat_conditions).tolist():
        dirty, counts = np.unique(flat_cells[flat_conditions == condition_id],
                                  return_counts=True)
        if len(dirty) > WHOLE_CONDITION_CELLS:
            dirty, counts = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        parts_c.append(np.full(len(dirty), condition_id, dtype=np.int64))
        parts_f.append(dirty)
        parts_d.append(counts)
    if not parts_c:
        return
    session.execute(
        text(
            "INSERT INTO publish_dirty (condition_id, floor_cell, delta) "
            "SELECT * FROM unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[]), "
            "CAST(:deltas AS int[])) "
            "ON CONFLICT (condition_id, floor_cell) "
            "DO UPDATE SET delta = publish_dirty.delta + EXCLUDED.delta"
        ),
        {"conditions": np.concatenate(parts_c).tolist(),
         "cells": np.concatenate(parts_f).tolist(),
         "deltas": np.concatenate(parts_d).tolist()},
    )
