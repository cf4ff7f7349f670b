"""PostgreSQL binary COPY rows built column-wise with numpy, for the bulk member loader.

The binary format (PostgreSQL manual, "COPY", *Binary Format*): a signature and two
int32 header words, then per row an int16 field count and per field an int32 byte
length (-1 for NULL) followed by the value in the type's binary (``send``) form, all
big-endian; an int16 -1 ends the data. The server then parses no text at all: no
integer, timestamp or boolean literals, and no EWKT for the points (PostGIS reads the
EWKB we send for a ``geography`` column directly).

Each column is encoded for a whole chunk of rows at once (numpy scatter into one
buffer), so the Python cost per row is a few array operations, not string formatting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970 (timestamps' zero)
_EWKB_POINT_SRID = 0x20000001  # wkbPoint with the EWKB "has SRID" flag
_POINT = np.dtype([("length", ">i4"), ("order", "u1"), ("type", "<u4"), ("srid", "<u4"),
                   ("x", "<f8"), ("y", "<f8")])


@dataclass(frozen=True)
class Fixed:
    """A column of fixed-width values, already laid out as (length, value) records."""

    records: np.ndarray  # (n, 4 + width) uint8


@dataclass(frozen=True)
class Varying:
    """A column of variable-length values: their bytes back to back and their lengths."""

    data: np.ndarray  # uint8, every non-NULL value's bytes back to back
    lengths: np.ndarray  # int64 byte length per row; -1 for NULL


Column = Fixed | Varying


def _fixed(values: np.ndarray, dtype: str) -> Fixed:
    """Return fixed-width records of ``values`` as binary ``dtype`` (big-endian)."""
    values = np.asarray(values)
    layout = np.dtype([("length", ">i4"), ("value", dtype)])
    records = np.empty(len(values), dtype=layout)
    records["length"] = layout["value"].itemsize
    records["value"] = values
    return Fixed(records.view(np.uint8).reshape(len(values), layout.itemsize))


def int8(values: np.ndarray) -> Fixed:
    """Return a ``bigint`` column."""
    return _fixed(np.asarray(values, dtype=np.int64), ">i8")


def int2(values: np.ndarray) -> Fixed:
    """Return a ``smallint`` column (values must fit in 16 bits)."""
    return _fixed(np.asarray(values, dtype=np.int16), ">i2")


def boolean(values: np.ndarray | Sequence[bool]) -> Fixed:
    """Return a ``boolean`` column."""
    return _fixed(np.asarray(values, dtype=bool).astype(np.uint8), "u1")


def timestamptz(micros_since_1970: np.ndarray) -> Fixed:
    """Return a ``timestamptz`` column from UTC microseconds since 1970."""
    micros = np.asarray(micros_since_1970, dtype=np.int64) - POSTGRES_EPOCH_US
    return _fixed(micros, ">i8")


def geography_points(lats: np.ndarray, lngs: np.ndarray, srid: int = 4326) -> Fixed:
    """Return a ``geography(Point)`` column: EWKB points (little-endian, with SRID)."""
    n = len(lats)
    records = np.empty(n, dtype=_POINT)
    records["length"] = _POINT.itemsize - 4
    records["order"] = 1  # little-endian WKB
    records["type"] = _EWKB_POINT_SRID
    records["srid"] = srid
    records["x"] = lngs
    records["y"] = lats
    return Fixed(records.view(np.uint8).reshape(n, _POINT.itemsize))


def text(values: Sequence[str | None] | np.ndarray) -> Varying:
    """Return a ``text``/``varchar`` column (UTF-8); None is NULL.

    Values must not hold NUL (PostgreSQL text cannot); callers validate before.
    """
    if isinstance(values, np.ndarray):
        values = values.tolist()
    n = len(values)
    nulls = [i for i, v in enumerate(values) if v is None] if None in values else []
    strings = list(values) if not nulls else ["" if v is None else v for v in values]
    joined = "".join(strings)
    data = joined.encode()
    if len(data) == len(joined):  # ASCII: characters are bytes
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    else:
        lengths = np.fromiter((len(s.encode()) for s in strings), dtype=np.int64, count=n)
    if nulls:
        lengths[nulls] = -1
    return Varying(np.frombuffer(data, dtype=np.uint8), lengths)


def rows(columns: Sequence[Column]) -> bytes:
    """Return the binary COPY rows of aligned ``columns`` (no header or trailer)."""
    n = len(columns[0].records) if isinstance(columns[0], Fixed) else len(columns[0].lengths)
    sizes = np.full(n, 2, dtype=np.int64)
    for column in columns:
        if isinstance(column, Fixed):
            sizes += column.records.shape[1]
        else:
            sizes += 4 + np.maximum(column.lengths, 0)
    ends = np.cumsum(sizes)
    out = np.empty(int(ends[-1]) if n else 0, dtype=np.uint8)
    if n == 0:
        return b""
    pos = ends - sizes
    out[pos] = (len(columns) >> 8) & 0xFF
    out[pos + 1] = len(columns) & 0xFF
    pos = pos + 2
    for column in columns:
        if isinstance(column, Fixed):
            width = column.records.shape[1]
            out[pos[:, None] + np.arange(width)] = column.records
            pos = pos + width
            continue
        lengths = column.lengths
        header = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        out[pos[:, None] + np.arange(4)] = header
        data_lengths = np.maximum(lengths, 0)
        total = int(data_lengths.sum())
        if total:
            # Byte j of row i's value goes to pos[i] + 4 + j: repeat each row's start
            # shifted by where its bytes begin in ``data``, plus a running index.
            starts = pos + 4 - (np.cumsum(data_lengths) - data_lengths)
            out[np.repeat(starts, data_lengths) + np.arange(total)] = column.data
        pos = pos + 4 + data_lengths
    return out.tobytes()
