"""Loading many members at once through COPY, with their keys derived in bulk.

Used by ``geomap demo`` and ``geomap import``. Ids are reserved in one step under a
table lock, keys are derived vectorised (:mod:`geomap.geo.derive`), and the three
member tables are filled with COPY, never row by row through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.geo.reference import raw_connection
from geomap.members.pseudonyms import pseudonym_key
from geomap.publish import WHOLE_CONDITION_CELLS

COPY_CHUNK = 50_000
NULL = "\\N"  # COPY text format
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
    joined_at: Sequence[datetime]
    lats: np.ndarray
    lngs: np.ndarray
    conditions: Sequence[Sequence[int]]

    def __len__(self) -> int:
        """Return the number of members in the batch."""
        return len(self.lats)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace(
        "\r", "\\r"
    )


def _copy_chunks(session: Session, statement: str, chunks: Iterable[list[str]],
                 progress: Callable[[int], None] | None = None,
                 weight: float = 0.0) -> None:
    """COPY lines built chunk by chunk; a writer thread sends while the next is built."""
    conn = raw_connection(session)
    cursor = conn.cursor()
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for chunk in chunks:
            if chunk:
                copy.write(("\n".join(chunk) + "\n").encode())
            if progress:
                progress(int(len(chunk) * weight))


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


def _timestamps(joined_at: Sequence[datetime] | np.ndarray) -> list[str]:
    """Return ISO 8601 UTC strings of ``joined_at`` (vectorised formatting)."""
    if isinstance(joined_at, np.ndarray) and np.issubdtype(joined_at.dtype, np.datetime64):
        stamps = joined_at.astype("datetime64[us]")
    else:
        micros = np.fromiter((_epoch_micros(j) for j in joined_at), dtype=np.int64,
                             count=len(joined_at))
        stamps = micros.astype("datetime64[us]")
    return np.char.add(np.datetime_as_string(stamps, unit="us"), "Z").tolist()


def load_members(session: Session, batch: MemberBatch, deriver: KeyDeriver,
                 progress: Callable[[int], None] | None = None,
                 pseudonym_prefix: Sequence[str] | None = None) -> np.ndarray:
    """Insert ``batch`` in the session's transaction; return the new member ids.

    ``progress`` is called with member counts as the work advances (derivation and
    the three COPYs each count for part of each member).
    """
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Keys are derived in a thread while the server ingests members and conditions
    # (the numeric work releases the GIL; the main thread mostly waits on the socket).
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geomap-derive")
    derived = executor.submit(deriver.derive, batch.lats, batch.lngs)
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
    id_list = ids.tolist()
    if batch.pseudonyms is None:
        prefixes = pseudonym_prefix or ["member"] * n
        names = [f"{p}-{i}" for p, i in zip(prefixes, id_list, strict=True)]
    else:
        names = list(batch.pseudonyms)
    pseudonyms = [_escape(p) for p in names]
    keys_of_names = [_escape(pseudonym_key(p)) for p in names]
    joined = _timestamps(batch.joined_at)
    flags = ["t" if c else "f" for c in batch.contactable]
    _copy_chunks(
        session,
        "COPY members (id, pseudonym, pseudonym_key, role, visibility, contactable, joined_at) "
        "FROM STDIN",
        (
            [
                f"{i}\t{p}\t{key}\t{r}\t{v}\t{c}\t{j}"
                for i, p, key, r, v, c, j in zip(
                    id_list[part], pseudonyms[part], keys_of_names[part], batch.roles[part],
                    batch.visibilities[part], flags[part], joined[part], strict=True,
                )
            ]
            for part in _slices(n)
        ),
        progress, 0.25,
    )
    _restore_indexes(session, deferred, "members")
    _copy_chunks(
        session, "COPY member_conditions (condition_id, member_id) FROM STDIN",
        (
            [
                f"{c}\t{i}"
                for i, conditions in zip(id_list[part], batch.conditions[part], strict=True)
                for c in conditions
            ]
            for part in _slices(n)
        ),
        progress, 0.15,
    )
    _restore_indexes(session, deferred, "member_conditions")
    keys = derived.result()
    if progress:
        progress(int(n * 0.25))
    lats, lngs = batch.lats.tolist(), batch.lngs.tolist()
    cells = keys.floor_cells.tolist()
    countries = [c or NULL for c in keys.country_codes.tolist()]
    regions = [r or NULL for r in keys.region_codes.tolist()]
    _copy_chunks(
        session,
        "COPY member_locations (member_id, location, floor_cell, country_code, region_code) "
        "FROM STDIN",
        (
            [
                f"{i}\tSRID=4326;POINT({lng!r} {lat!r})\t{cell}\t{country}\t{region}"
                for i, lat, lng, cell, country, region in zip(
                    id_list[part], lats[part], lngs[part], cells[part], countries[part],
                    regions[part], strict=True,
                )
            ]
            for part in _slices(n)
        ),
        progress, 0.35,
    )
    _restore_indexes(session, deferred, "member_locations")
    session.execute(text("SELECT set_config('geomap.track_dirty', 'on', true)"))
    mark_dirty(session, keys.floor_cells, batch.conditions,
               np.asarray(batch.visibilities, dtype=object) == "map")
    mark_snapshots_dirty(session, int(ids[0]), int(ids[-1]))
    return ids


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
    """Drop the member tables' secondary indexes, unique and foreign keys; disable triggers.

    Everything is read from the catalog (so indexes added by later migrations come
    back as they were) and happens inside the load's transaction: other sessions
    never see the tables without them.
    """
    tables = list(MEMBER_TABLES)
    constraints = session.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
            "FROM pg_constraint WHERE conrelid = ANY(CAST(:tables AS regclass[])) "
            "AND contype IN ('u', 'f') ORDER BY contype DESC, conname"
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
    # Foreign keys go first ('f' sorts after 'u', hence DESC) and come back last.
    for table, name, _definition, _kind in constraints:
        session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for table, name, definition in indexes:
        session.execute(text(f"DROP INDEX {name}"))
        statements[table].append(definition)
    for table, name, definition, _kind in reversed(constraints):
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
        session.execute(text(statement))
    session.execute(text(f"ANALYZE {table}"))


def mark_dirty(session: Session, cells: np.ndarray, conditions: Sequence[Sequence[int]],
               on_map: np.ndarray) -> None:
    """Record new members on the map as deltas per (condition, floor cell) for the next publish.

    A condition with more than :data:`WHOLE_CONDITION_CELLS` dirty cells is marked
    dirty as a whole (floor cell 0): one recount beats writing that many deltas.
    """
    per_member = np.fromiter((len(c) for c in conditions), dtype=np.int64, count=len(cells))
    keep = np.repeat(np.asarray(on_map, dtype=bool), per_member)
    flat = np.fromiter((c for cs in conditions for c in cs), dtype=np.int64,
                       count=int(per_member.sum()))[keep]
    flat_cells = np.repeat(np.asarray(cells, dtype=np.int64), per_member)[keep]
    parts_c: list[np.ndarray] = []
    parts_f: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    for condition_id in np.unique(flat).tolist():
        dirty, counts = np.unique(flat_cells[flat == condition_id], return_counts=True)
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
