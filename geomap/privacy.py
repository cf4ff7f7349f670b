"""The privacy rules of DESIGN.md as pure functions: cells, roll-up, bands, keyed order.

Everything public is a function of floor cells only. These functions take floor cells
(H3 indexes as 64-bit integers) and never exact points, except :func:`floor_cells`,
which is where exact points are coarsened.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import h3.api.basic_int as h3i

# numpy is imported by the functions that count or rank cells: the public pages use
# only the constants and scalar rules here, and web workers then never load it.
if TYPE_CHECKING:
    import numpy as np

# Map zoom (Leaflet, 0 = whole world) -> H3 resolution of the markers shown at it.
# Roughly one cell edge per 60-120 screen pixels; never finer than the floor.
RESOLUTION_BY_ZOOM: tuple[int, ...] = (0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 7, 7, 7)
MAX_ZOOM = len(RESOLUTION_BY_ZOOM) - 1

# Distance bands between floor-cell centres, in km: (upper bound, label).
DISTANCE_BANDS: tuple[tuple[float, str], ...] = (
    (25.0, "<25 km"),
    (50.0, "25–50 km"),
    (100.0, "50–100 km"),
    (250.0, "100–250 km"),
    (500.0, "250–500 km"),
    (float("inf"), "500+ km"),
)

VECTOR_CELLS_MIN = 2_000
"""From this many points on, :func:`floor_cells` indexes them vectorised."""

_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT  # the resolution bits of an H3 index


def map_resolution(zoom: int, floor: int) -> int:
    """Return the H3 resolution of the markers shown at map ``zoom``: never finer than floor."""
    if not 0 <= zoom <= MAX_ZOOM:
        raise ValueError(f"zoom must be between 0 and {MAX_ZOOM}")
    return min(RESOLUTION_BY_ZOOM[zoom], floor)


def floor_cells(lats: Sequence[float] | np.ndarray, lngs: Sequence[float] | np.ndarray,
                floor: int) -> np.ndarray:
    """Return the floor cell (H3 index at resolution ``floor``) of each exact point.

    Large batches of finite points are indexed vectorised by ``h3ronpy`` (the h3o
    port of H3, identical cells; imported only then, so web workers never load it);
    small ones, and anything non-finite (which raises, as h3 does), point by point.
    """
    import numpy as np

    if len(lats) >= VECTOR_CELLS_MIN:
        lat_array = np.asarray(lats, dtype=np.float64)
        lng_array = np.asarray(lngs, dtype=np.float64)
        if len(lat_array) == len(lng_array) and np.isfinite(lat_array).all() \
                and np.isfinite(lng_array).all():
            from h3ronpy.vector import coordinates_to_cells

            cells = coordinates_to_cells(lat_array, lng_array, floor)
            if cells.null_count == 0:
                return np.asarray(cells).view(np.int64)
    to_cell = h3i.latlng_to_cell
    return np.fromiter(
        (to_cell(lat, lng, floor) for lat, lng in zip(lats, lngs, strict=True)),
        dtype=np.int64,
        count=len(lats),
    )


def cell_resolutions(cells: np.ndarray) -> np.ndarray:
    """Return the H3 resolution (0..15, int16) of each H3 cell (vectorised get_resolution)."""
    import numpy as np

    bits = np.asarray(cells, dtype=np.int64).astype(np.uint64)
    return ((bits & np.uint64(_RES_MASK)) >> np.uint64(_RES_SHIFT)).astype(np.int16)


def cell_parents(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Return the parent at ``resolution`` of each H3 cell (vectorised cell_to_parent).

    Each cell's own resolution must be ``resolution`` or finer.
    """
    import numpy as np

    bits = cells.astype(np.uint64)
    keep_digits = np.uint64(45 - 3 * resolution)  # digits 1..resolution stay
    low = (np.uint64(1) << keep_digits) - np.uint64(1)
    bits = (bits & ~np.uint64(_RES_MASK)) | (np.uint64(resolution) << np.uint64(_RES_SHIFT)) | low
    return bits.astype(np.int64)


@dataclass(frozen=True)
class Rollup:
    """Published markers at one map resolution, and the members left unpublished."""

    cells: np.ndarray  # H3 cells (int64), each at cell_resolutions[i] <= resolution
    cell_resolutions: np.ndarray
    counts: np.ndarray  # every count >= k
    remainder: int  # members whose roll-up never reached k, even at resolution 0


def rollup(floor_counts: Mapping[int, int] | tuple[np.ndarray, np.ndarray], resolution: int,
           k: int) -> Rollup:
    """Return the k-anonymous markers for ``resolution`` from counts per floor cell.

    Counts are summed into cells at ``resolution``; a cell with at least k members is
    published there; the members of sparser cells roll up into the parent cell (H3
    parents) and are published there once the parent gathers k, and so on up to
    resolution 0. What never reaches k is the remainder, counted only in totals.
    """
    import numpy as np

    if isinstance(floor_counts, tuple):
        cells, counts = floor_counts
    else:
        cells = np.fromiter(floor_counts.keys(), dtype=np.int64, count=len(floor_counts))
        counts = np.fromiter(floor_counts.values(), dtype=np.int64, count=len(floor_counts))
    return _rollup(np.asarray(cells, dtype=np.int64), np.asarray(counts, dtype=np.int64),
                   resolution, k)[0]


def _rollup(cells: np.ndarray, counts: np.ndarray, resolution: int, k: int
            ) -> tuple[Rollup, np.ndarray, np.ndarray]:
    """Return the roll-up, and the cells coarser than ``resolution`` left below k (leftovers)."""
    import numpy as np

    out_cells: list[np.ndarray] = []
    out_res: list[np.ndarray] = []
    out_counts: list[np.ndarray] = []
    left_cells: list[np.ndarray] = [np.zeros(0, np.int64)]
    left_counts: list[np.ndarray] = [np.zeros(0, np.int64)]
    for level in range(resolution, -1, -1):
        if len(cells) == 0:
            break
        cells, counts = _sum_by(cell_parents(cells, level), counts)
        dense = counts >= k
        out_cells.append(cells[dense])
        out_counts.append(counts[dense])
        out_res.append(np.full(int(dense.sum()), level, dtype=np.int16))
        cells, counts = cells[~dense], counts[~dense]
        if level < resolution:
            left_cells.append(cells)
            left_counts.append(counts)
    rolled = Rollup(
        cells=np.concatenate(out_cells) if out_cells else np.zeros(0, np.int64),
        cell_resolutions=np.concatenate(out_res) if out_res else np.zeros(0, np.int16),
        counts=np.concatenate(out_counts) if out_counts else np.zeros(0, np.int64),
        remainder=int(counts.sum()),
    )
    return rolled, np.concatenate(left_cells), np.concatenate(left_counts)


@dataclass(frozen=True)
class Partition:
    """One condition's k-anonymous partition: the only numbers any public view sums.

    Each part is an H3 cell (mixed resolutions, sorted by cell) holding at least k
    members: the members of that cell's floor cells that no finer part holds. Every
    floor cell with members belongs to exactly one part (its nearest ancestor, itself
    included, among the parts) or to the remainder; ``remainder`` counts the members of
    base (res-0) cells whose leftover never reached k, and is published nowhere.
    """

    cells: np.ndarray  # int64 H3 cells, sorted
    cell_resolutions: np.ndarray  # int16
    counts: np.ndarray  # int64, every count >= k
    remainder: int

    @property
    def total(self) -> int:
        """Return the members the parts hold (the published total at every zoom)."""
        return int(self.counts.sum())


def partition(floor_counts: Mapping[int, int] | tuple[np.ndarray, np.ndarray], floor: int,
              k: int) -> Partition:
    """Return the k-anonymous partition of members counted per floor cell.

    Bottom-up, as fine as k allows: a floor cell with at least k members is a part of
    its own; the members of sparser cells gather in the parent cell, which becomes a
    part (shown at its centre) once what gathered there reaches k, and so on up to
    resolution 0. A cell is never split unless every piece that would be published
    keeps k, so dense areas stay at the floor resolution. Pure: a function of the
    counts per floor cell only.
    """
    import numpy as np

    rolled = rollup(floor_counts, floor, k)
    order = np.argsort(rolled.cells, kind="stable")
    return Partition(
        cells=rolled.cells[order],
        cell_resolutions=rolled.cell_resolutions[order].astype(np.int16),
        counts=rolled.counts[order],
        remainder=rolled.remainder,
    )


def partition_leftovers(floor_counts: tuple[np.ndarray, np.ndarray], floor: int, k: int
                        ) -> tuple[Partition, np.ndarray, np.ndarray]:
    """Return :func:`partition` and its leftovers: (cells, counts) sorted by cell.

    A leftover is a cell coarser than the floor, no part, into which 1..k-1 members of
    sparser cells gathered (at resolution 0: the base cell's remainder). Parts and
    leftovers together are the roll-up's whole state: :func:`repartition` updates it
    from changed floor counts without looking at any other floor cell.
    """
    import numpy as np

    cells, counts = floor_counts
    rolled, left_cells, left_counts = _rollup(np.asarray(cells, dtype=np.int64),
                                              np.asarray(counts, dtype=np.int64), floor, k)
    order = np.argsort(rolled.cells, kind="stable")
    parts = Partition(cells=rolled.cells[order],
                      cell_resolutions=rolled.cell_resolutions[order].astype(np.int16),
                      counts=rolled.counts[order], remainder=rolled.remainder)
    left_order = np.argsort(left_cells, kind="stable")
    return parts, left_cells[left_order], left_counts[left_order]


# (condition, cell) pairs packed into one int64, for cells of resolution 7 or coarser:
# H3 bits 24-55 (resolution, base cell, digits 1-7) below the condition id; the bits
# left out are constant for those cells (mode 1, digits 8-15 unused = 7).
_PACK_SHIFT = 24
_PACK_MASK = (1 << 32) - 1
_PACK_FILL = (1 << 59) | ((1 << _PACK_SHIFT) - 1)


def pack_keys(conditions: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Return one sortable int64 per (condition, cell); cells of resolution 7 or coarser."""
    import numpy as np

    return ((np.asarray(conditions, np.int64) << 32)
            | ((np.asarray(cells, np.int64) >> _PACK_SHIFT) & _PACK_MASK))


def unpack_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the (conditions, cells) of keys made by :func:`pack_keys`."""
    import numpy as np

    keys = np.asarray(keys, np.int64)
    return keys >> 32, ((keys & _PACK_MASK) << _PACK_SHIFT) | _PACK_FILL


def pack_marker_keys(conditions: np.ndarray, resolutions: np.ndarray, cells: np.ndarray
                     ) -> np.ndarray:
    """Return one int64 per (condition, map resolution, cell), sorting in that order."""
    import numpy as np

    return ((np.asarray(conditions, np.int64) << 48) | (np.asarray(resolutions, np.int64) << 44)
            | ((np.asarray(cells, np.int64) >> _PACK_SHIFT) & _PACK_MASK))


def unpack_marker_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (conditions, resolutions, cells) of keys made by :func:`pack_marker_keys`."""
    import numpy as np

    keys = np.asarray(keys, np.int64)
    return keys >> 48, (keys >> 44) & 15, ((keys & _PACK_MASK) << _PACK_SHIFT) | _PACK_FILL


@dataclass(frozen=True)
class ManyPartitions:
    """The partitions and leftovers of many conditions at once, as packed keys.

    Keys are :func:`pack_keys` of (condition, cell), sorted; the same parts and
    leftovers as :func:`partition_leftovers` of each condition on its own.
    """

    part_keys: np.ndarray
    part_counts: np.ndarray
    leftover_keys: np.ndarray
    leftover_counts: np.ndarray


def _packed_parents(keys: np.ndarray, level: int) -> np.ndarray:
    conditions, cells = unpack_keys(keys)
    return pack_keys(conditions, cell_parents(cells, level))


def partition_many(conditions: np.ndarray, cells: np.ndarray, counts: np.ndarray, floor: int,
                   k: int) -> ManyPartitions:
    """Return the partitions of many conditions' floor counts in one vectorised roll-up."""
    import numpy as np

    keys = pack_keys(conditions, cells)
    counts = np.asarray(counts, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    left: list[tuple[np.ndarray, np.ndarray]] = []
    for level in range(floor, -1, -1):
        if len(keys) == 0:
            break
        keys, counts = _sum_by(_packed_parents(keys, level), counts)
        dense = counts >= k
        parts.append((keys[dense], counts[dense]))
        keys, counts = keys[~dense], counts[~dense]
        if level < floor:
            left.append((keys, counts))

    def joined(found: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys_ = np.concatenate([f[0] for f in found])
        order = np.argsort(keys_, kind="stable")
        return keys_[order], np.concatenate([f[1] for f in found])[order]

    return ManyPartitions(*joined(parts), *joined(left))


def markers_many(parts: ManyPartitions, floor: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the markers of every map resolution of many partitions: (marker keys, counts).

    Marker keys are :func:`pack_marker_keys`, sorted; each marker is what
    :func:`partition_markers` gives for its condition and resolution.
    """
    import numpy as np

    conditions, cells = unpack_keys(parts.part_keys)
    resolutions = cell_resolutions(cells)
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for resolution in range(floor + 1):
        fine = resolutions >= resolution
        summed, sums = _sum_by(
            pack_marker_keys(conditions[fine], resolution,
                             cell_parents(cells[fine], resolution)),
            parts.part_counts[fine])
        keys += [summed, pack_marker_keys(conditions[~fine], resolution, cells[~fine])]
        counts += [sums, parts.part_counts[~fine]]
    all_keys = np.concatenate(keys)
    order = np.argsort(all_keys, kind="stable")
    return all_keys[order], np.concatenate(counts)[order]


@dataclass(frozen=True)
class Repartition:
    """What changed in the partitions of several conditions (0: no part / no leftover).

    ``part_*``: parts whose count changed, appeared or went (old, new counts).
    ``leftover_*``: leftovers (cells coarser than the floor) whose count changed.
    """

    part_conditions: np.ndarray
    part_cells: np.ndarray
    part_old: np.ndarray
    part_new: np.ndarray
    leftover_conditions: np.ndarray
    leftover_cells: np.ndarray
    leftover_old: np.ndarray
    leftover_new: np.ndarray


# (conditions, cells) -> (old part counts, old leftovers), aligned, 0 where there is none
Holdings = Callable[["np.ndarray", "np.ndarray"], "tuple[np.ndarray, np.ndarray]"]


def repartition(conditions: np.ndarray, cells: np.ndarray, old: np.ndarray, new: np.ndarray,
                floor: int, k: int, holdings: Holdings) -> Repartition:
    """Update partitions from changed floor counts: only the changed cells' ancestors.

    ``conditions``, ``cells``: distinct changed (condition, floor cell) pairs with their
    ``old`` and ``new`` member counts. What a cell passes to its parent is its count
    if below k, else nothing (it is a part); so a parent's gathered members change by
    the sum of its changed children's changes, and the cells whose part or leftover
    can change are the changed floor cells' ancestors alone. ``holdings`` returns the
    old part counts and leftovers of cells, one resolution at a time. The result is
    what :func:`partition_leftovers` of the new counts gives, minus the unchanged.
    Raises ValueError if a count would fall below zero (stored state out of step).
    """
    import numpy as np

    keys = pack_keys(conditions, cells)
    old = np.asarray(old, np.int64)
    new = np.asarray(new, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    leftovers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for level in range(floor, -1, -1):
        if level < floor:
            passed = np.where(new < k, new, 0) - np.where(old < k, old, 0)
            moving = passed != 0
            if not moving.any():
                break
            child_conditions, child_cells = unpack_keys(keys[moving])
            keys, inverse = np.unique(
                pack_keys(child_conditions, cell_parents(child_cells, level)),
                return_inverse=True)
            change = np.bincount(inverse, weights=passed[moving],
                                 minlength=len(keys)).astype(np.int64)
            keys, change = keys[change != 0], change[change != 0]
            if len(keys) == 0:
                break
            part_counts, left_counts = holdings(*unpack_keys(keys))
            old = np.where(part_counts > 0, part_counts, left_counts).astype(np.int64)
            new = old + change
            left_old = np.where(old < k, old, 0)
            left_new = np.where(new < k, new, 0)
            differs = left_old != left_new
            leftovers.append((keys[differs], left_old[differs], left_new[differs]))
        if (new < 0).any():
            raise ValueError("a count fell below zero: the stored partition is out of step")
        part_old = np.where(old >= k, old, 0)
        part_new = np.where(new >= k, new, 0)
        differs = part_old != part_new
        parts.append((keys[differs], part_old[differs], part_new[differs]))

    def joined(found: list) -> tuple[np.ndarray, ...]:
        if not found:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        keys_ = np.concatenate([f[0] for f in found])
        return (*unpack_keys(keys_), np.concatenate([f[1] for f in found]),
                np.concatenate([f[2] for f in found]))

    return Repartition(*joined(parts), *joined(leftovers))


def partition_markers(parts: Partition, resolution: int) -> Rollup:
    """Return the markers shown at map ``resolution``: sums of whole parts.

    A part at ``resolution`` or finer is summed into its ancestor at ``resolution``;
    a coarser part is shown as itself. So every marker, every total and every
    difference between two nested markers of any two zooms is a sum of whole parts:
    0 or at least k. ``remainder`` is the partition's, identical at every resolution.
    """
    import numpy as np

    fine = parts.cell_resolutions >= resolution
    ancestors, sums = _sum_by(cell_parents(parts.cells[fine], resolution), parts.counts[fine])
    coarse = ~fine
    return Rollup(
        cells=np.concatenate([ancestors, parts.cells[coarse]]),
        cell_resolutions=np.concatenate(
            [np.full(len(ancestors), resolution, np.int16),
             parts.cell_resolutions[coarse].astype(np.int16)]
        ),
        counts=np.concatenate([sums, parts.counts[coarse]]),
        remainder=parts.remainder,
    )


def part_of(parts: Partition, cells: np.ndarray) -> np.ndarray:
    """Return, per floor cell, the index of the part that holds it (-1: the remainder).

    The holder is the nearest ancestor (the cell itself included) among the parts;
    only meaningful for floor cells that were counted when ``parts`` was made.
    """
    import numpy as np

    cells = np.asarray(cells, dtype=np.int64)
    found = np.full(len(cells), -1, dtype=np.int64)
    if len(parts.cells) == 0 or len(cells) == 0:
        return found
    floor = int(h3i.get_resolution(int(cells[0])))
    for level in range(floor, -1, -1):
        open_ = found < 0
        if not open_.any():
            break
        ancestors = cell_parents(cells[open_], level)
        at = np.minimum(np.searchsorted(parts.cells, ancestors), len(parts.cells) - 1)
        hit = parts.cells[at] == ancestors
        index = np.flatnonzero(open_)
        found[index[hit]] = at[hit]
    return found


def _sum_by(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse, weights=values, minlength=len(unique)).astype(np.int64)


def suppress_small(count: int, k: int) -> int | None:
    """Return ``count`` if it may be published (0 or at least k), else None."""
    return count if count == 0 or count >= k else None


def cell_centre(cell: int) -> tuple[float, float]:
    """Return (lat, lng) of an H3 cell's centre."""
    return h3i.cell_to_latlng(cell)


def cell_distance_km(cell_a: int, cell_b: int) -> float:
    """Return the great-circle distance between two cells' centres, in km."""
    return h3i.great_circle_distance(cell_centre(cell_a), cell_centre(cell_b), unit="km")


def distance_band(km: float) -> str:
    """Return the label of the distance band that ``km`` falls in."""
    for upper, label in DISTANCE_BANDS:
        if km < upper:
            return label
    return DISTANCE_BANDS[-1][1]


def distance_band_index(km: float) -> int:
    """Return the index in :data:`DISTANCE_BANDS` of the band ``km`` falls in."""
    for index, (upper, _label) in enumerate(DISTANCE_BANDS):
        if km < upper:
            return index
    return len(DISTANCE_BANDS) - 1


def keyed_order(secret: bytes | str, *parts: object) -> str:
    """Return a stable, secret-keyed sort key for ``parts`` (HMAC-SHA256, hex).

    Used wherever ordering or placement needs variety: the same question always gets
    the same answer, and the order reveals nothing without the secret.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    message = "\x1f".join(str(part) for part in parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@lru_cache(maxsize=4096)
def observer_key(secret: bytes | str, observer: int) -> bytes:
    """Return HMAC-SHA256(secret, observer) (32 bytes): one HMAC per observer, cached."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(key, f"nearby-order\x1f{observer}".encode(), hashlib.sha256)


def nearby_offset(secret: bytes | str, observer: int) -> int:
    """Return where ``observer``'s nearby order starts: a signed 64-bit integer.

    Nearby lists a band's members by ``nearby_members.order_key`` (a hash of the member
    id, the same for every searcher) rotated to start at this offset: keys from the
    offset up, then the keys below it (migration 0016n_nearbyx). The offset comes from
    :func:`observer_key` (the server secret), so it is stable for an observer, differs
    between observers, and cannot be computed without the secret; it is never sent out.
    """
    return int.from_bytes(observer_key(secret, int(observer))[:8], "little", signed=True)


def sorted_keyed(secret: bytes | str, items: Iterable[tuple[object, ...]]) -> list:
    """Return ``items`` sorted by :func:`keyed_order` of each item's parts."""
    return sorted(items, key=lambda item: keyed_order(secret, *item))


def _ring_steps(max_km: float, resolution: int) -> int:
    """Return a grid_disk radius that surely covers every cell centre within ``max_km``."""
    # Neighbouring centres are about 1.5 edges apart on average; 0.6 of that is a
    # safe lower bound even near the 12 pentagons, where cells are distorted.
    spacing = h3i.average_hexagon_edge_length(resolution, unit="km") * 1.5 * 0.6
    return math.ceil(max_km / spacing) + 1


@lru_cache(maxsize=4096)
def band_rings(cell: int, max_km: float) -> tuple[tuple[int, ...], ...]:
    """Return, per distance band, the cells whose centre lies in that band from ``cell``'s.

    Cells whose centre is ``max_km`` or more away are left out. Distances are between
    cell centres only, so the answer is the same for every point inside ``cell``.
    Plain Python (no numpy: a web worker's member searches load none).
    """
    resolution = h3i.get_resolution(cell)
    # A wide disk of fine cells is slow to build; a disk of coarse parents, widened by
    # a parent's diameter and then expanded into children, covers the same ground fast.
    coarse = max(resolution - 2, 0)
    margin = 2 * h3i.average_hexagon_edge_length(coarse, unit="km") * 1.5
    parents = h3i.grid_disk(h3i.cell_to_parent(cell, coarse), _ring_steps(max_km + margin, coarse))
    candidates = sorted(child for parent in parents
                        for child in h3i.cell_to_children(parent, resolution))
    lat0, lng0 = (math.radians(degrees) for degrees in cell_centre(cell))
    cos0 = math.cos(lat0)
    uppers = [upper for upper, _label in DISTANCE_BANDS]
    rings: list[list[int]] = [[] for _band in DISTANCE_BANDS]
    sin, cos, asin, sqrt, radians = math.sin, math.cos, math.asin, math.sqrt, math.radians
    for other in candidates:
        lat, lng = h3i.cell_to_latlng(other)
        lat, lng = radians(lat), radians(lng)
        a = sin((lat - lat0) / 2) ** 2 + cos0 * cos(lat) * sin((lng - lng0) / 2) ** 2
        km = 2 * 6371.0088 * asin(sqrt(min(max(a, 0.0), 1.0)))
        band = bisect_right(uppers, km)
        # Near a band edge the fast formula and cell_distance_km may round apart: there
        # the one distance rule decides, so rings and nearby's bands never disagree.
        if ((band > 0 and km - uppers[band - 1] < 0.05)
                or (band < len(uppers) and uppers[band] - km < 0.05)
                or abs(km - max_km) < 0.05):
            km = cell_distance_km(cell, other)
            band = bisect_right(uppers, km)
        if km < max_km:
            rings[band].append(other)
    return tuple(tuple(ring) for ring in rings)


def suppressed_parts_many(groups: np.ndarray, ranks: np.ndarray, counts: np.ndarray, k: int
                          ) -> np.ndarray:
    """Return, per part of many wholes at once, whether it is shown (complementary suppression).

    Used for region counts within a country and country counts within the world: a
    part below k is hidden, and so are the smallest remaining parts (ties by key) until
    what is hidden is 0 or at least k, so that the whole minus the shown parts never
    reveals a group of 1 to k-1 members either. ``groups`` names each part's whole,
    ``ranks`` orders its keys within the whole (the tie-break), ``counts`` are the
    parts' counts (> 0), all aligned int arrays. Hiding the smallest shown part of a
    whole whose hidden total is 1 to k-1 makes it more than k: one part at most.
    """
    import numpy as np

    groups = np.asarray(groups, np.int64)
    counts = np.asarray(counts, np.int64)
    shown = counts >= k
    if len(counts) == 0:
        return shown
    ids, inverse = np.unique(groups, return_inverse=True)
    hidden = np.bincount(inverse, weights=np.where(shown, 0, counts),
                         minlength=len(ids)).astype(np.int64)
    short = (hidden > 0) & (hidden < k)
    candidates = np.flatnonzero(shown & short[inverse])
    if len(candidates):
        order = np.lexsort((np.asarray(ranks, np.int64)[candidates], counts[candidates],
                            inverse[candidates]))
        ordered = candidates[order]
        _, first = np.unique(inverse[ordered], return_index=True)
        shown[ordered[first]] = False
    return shown
