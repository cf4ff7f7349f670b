"""The published views: markers at every map resolution, each a sum of whole parts.

A condition's partition (:func:`geomap.privacy.partition`) is computed once per
publish from its counts per floor cell; the markers of every zoom are sums of whole
parts (:func:`geomap.privacy.partition_markers`), the totals are the partition's
total at every zoom, and the region counts (:mod:`geomap.publish.regions`) sum the
same parts, read back from the markers at the floor resolution (the parts themselves).
"""

from __future__ import annotations

from dataclasses import dataclass

import h3.api.basic_int as h3i
import numpy as np

from geomap.privacy import Partition, partition, partition_markers


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


def published_markers(cells: np.ndarray, counts: np.ndarray, k: int, floor: int) -> Markers:
    """Return one condition's markers at every map resolution from its floor counts.

    One partition (:func:`geomap.privacy.partition`), and every zoom's markers are sums
    of its whole parts, so no two published numbers differ by 1 to k-1 members. The
    markers at the floor resolution are the parts themselves.
    """
    return partition_marker_rows(partition((cells, counts), floor, k), floor)


def partition_marker_rows(whole: Partition, floor: int) -> Markers:
    """Return the markers at every map resolution of one condition's partition."""
    parts = [(resolution, partition_markers(whole, resolution))
             for resolution in range(floor + 1)]
    return Markers.from_rows(
        np.concatenate([np.full(len(r.cells), res, np.int64) for res, r in parts]),
        np.concatenate([r.cells for _, r in parts]),
        np.concatenate([r.cell_resolutions for _, r in parts]),
        np.concatenate([r.counts for _, r in parts]),
    )


def cell_lines(condition_id: int, markers: Markers, mask: np.ndarray | None = None
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


