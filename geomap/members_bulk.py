"""Loading many members at once through COPY, with their keys derived in bulk.

Used by ``geomap demo`` and ``geomap import``. Ids are reserved in one step under a
table lock, keys are derived vectorised (:mod:`geomap.geo.derive`), and the three
member tables are filled with COPY, never row by row through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.geo.reference import raw_connection

COPY_CHUNK = 50_000
NULL = "\\N"  # COPY text format


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


def _copy_lines(session: Session, statement: str, lines: Sequence[str],
                progress: Callable[[int], None] | None, weight: float) -> None:
    conn = raw_connection(session)
    with conn.cursor().copy(statement) as copy:
        for start in range(0, len(lines), COPY_CHUNK):
            chunk = lines[start : start + COPY_CHUNK]
            copy.write(("\n".join(chunk) + "\n").encode())
            if progress:
                progress(int(len(chunk) * weight))


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
    keys = deriver.derive(batch.lats, batch.lngs)
    if progress:
        progress(int(n * 0.25))
    session.execute(text("LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE"))
    # The dirty-cell triggers would join a million-row transition table; the loader
    # knows its (condition, floor cell) pairs already and records them itself.
    session.execute(text("SELECT set_config('geomap.track_dirty', 'off', true)"))
    last = session.execute(
        text("SELECT setval('members_id_seq', nextval('members_id_seq') + :n - 1)"), {"n": n}
    ).scalar_one()
    ids = np.arange(last - n + 1, last + 1, dtype=np.int64)
    if batch.pseudonyms is None:
        prefixes = pseudonym_prefix or ["member"] * n
        pseudonyms = [f"{p}-{i}" for p, i in zip(prefixes, ids.tolist(), strict=True)]
    else:
        pseudonyms = [_escape(p) for p in batch.pseudonyms]
    member_lines = [
        f"{i}\t{p}\t{r}\t{v}\t{'t' if c else 'f'}\t{j.isoformat()}"
        for i, p, r, v, c, j in zip(
            ids.tolist(), pseudonyms, batch.roles, batch.visibilities, batch.contactable,
            batch.joined_at, strict=True,
        )
    ]
    _copy_lines(
        session,
        "COPY members (id, pseudonym, role, visibility, contactable, joined_at) FROM STDIN",
        member_lines, progress, 0.25,
    )
    condition_lines = [
        f"{c}\t{i}"
        for i, conditions in zip(ids.tolist(), batch.conditions, strict=True)
        for c in conditions
    ]
    _copy_lines(
        session, "COPY member_conditions (condition_id, member_id) FROM STDIN",
        condition_lines, None, 0,
    )
    if progress:
        progress(int(n * 0.15))
    location_lines = [
        f"{i}\tSRID=4326;POINT({lng!r} {lat!r})\t{cell}\t{country or NULL}\t{region or NULL}"
        for i, lat, lng, cell, country, region in zip(
            ids.tolist(), batch.lats.tolist(), batch.lngs.tolist(),
            keys.floor_cells.tolist(), keys.country_codes.tolist(),
            keys.region_codes.tolist(), strict=True,
        )
    ]
    _copy_lines(
        session,
        "COPY member_locations (member_id, location, floor_cell, country_code, region_code) "
        "FROM STDIN",
        location_lines, progress, 0.35,
    )
    session.execute(text("SELECT set_config('geomap.track_dirty', 'on', true)"))
    mark_dirty(session, keys.floor_cells, batch.conditions,
               np.asarray(batch.visibilities, dtype=object) == "map")
    return ids


def mark_dirty(session: Session, cells: np.ndarray, conditions: Sequence[Sequence[int]],
               on_map: np.ndarray) -> None:
    """Record the (condition, floor cell) pairs of members on the map for the next publish."""
    per_member = np.fromiter((len(c) for c in conditions), dtype=np.int64, count=len(cells))
    keep = np.repeat(on_map, per_member)
    flat = np.fromiter((c for cs in conditions for c in cs), dtype=np.int64,
                       count=int(per_member.sum()))
    pairs = np.unique(
        np.column_stack((flat, np.repeat(cells, per_member)))[keep].reshape(-1, 2), axis=0
    )
    if len(pairs) == 0:
        return
    session.execute(
        text(
            "INSERT INTO publish_dirty (condition_id, floor_cell) "
            "SELECT * FROM unnest(CAST(:conditions AS smallint[]), CAST(:cells AS bigint[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {"conditions": pairs[:, 0].tolist(), "cells": pairs[:, 1].tolist()},
    )

