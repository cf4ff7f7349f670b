"""Incremental re-partition (geomap.privacy.repartition): the same as partitioning anew."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geomap import privacy
from tests.test_privacy import FLOOR, floor_counts


def state(counts: dict[int, int], k: int) -> tuple[dict[int, int], dict[int, int]]:
    """Return ({part: count}, {leftover cell: count}) of one condition's floor counts."""
    cells = np.array(sorted(counts), dtype=np.int64)
    values = np.array([counts[c] for c in cells.tolist()], dtype=np.int64)
    parts, left_cells, left_counts = privacy.partition_leftovers((cells, values), FLOOR, k)
    return (dict(zip(parts.cells.tolist(), parts.counts.tolist(), strict=True)),
            dict(zip(left_cells.tolist(), left_counts.tolist(), strict=True)))


@settings(max_examples=150, deadline=None)
@given(before=st.lists(floor_counts(), min_size=1, max_size=3),
       changes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6),
                                  st.integers(-9, 9)), min_size=1, max_size=30),
       k=st.integers(2, 12))
def test_repartition_gives_what_partitioning_the_new_counts_gives(
    before: list[dict[int, int]], changes: list[tuple[int, int, int]], k: int
) -> None:
    conditions = {condition + 1: counts for condition, counts in enumerate(before)}
    after = {condition: dict(counts) for condition, counts in conditions.items()}
    for which, pick, delta in changes:
        condition = 1 + which % len(conditions)
        cells = sorted(after[condition] | conditions[condition])
        cell = cells[pick % len(cells)]
        after[condition][cell] = max(0, after[condition].get(cell, 0) + delta)
    old_state = {condition: state(counts, k) for condition, counts in conditions.items()}
    new_state = {condition: state({c: n for c, n in counts.items() if n}, k)
                 for condition, counts in after.items()}
    changed = sorted((condition, cell) for condition in after
                     for cell in set(after[condition]) | set(conditions[condition])
                     if after[condition].get(cell, 0) != conditions[condition].get(cell, 0))
    lookups: list[int] = []

    def holdings(ids: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lookups.append(len(cells))
        parts = [old_state[c][0].get(cell, 0) for c, cell in zip(ids.tolist(), cells.tolist(),
                                                                  strict=True)]
        left = [old_state[c][1].get(cell, 0) for c, cell in zip(ids.tolist(), cells.tolist(),
                                                                 strict=True)]
        return np.array(parts, np.int64), np.array(left, np.int64)

    ids = np.array([c for c, _ in changed], np.int64)
    cells = np.array([cell for _, cell in changed], np.int64)
    result = privacy.repartition(
        ids, cells,
        np.array([conditions[c].get(cell, 0) for c, cell in changed], np.int64),
        np.array([after[c].get(cell, 0) for c, cell in changed], np.int64),
        FLOOR, k, holdings)
    for condition in conditions:
        parts, left = (dict(d) for d in old_state[condition])
        for kind, target, ids_, cells_, olds, news in (
            ("part", parts, result.part_conditions, result.part_cells, result.part_old,
             result.part_new),
            ("leftover", left, result.leftover_conditions, result.leftover_cells,
             result.leftover_old, result.leftover_new),
        ):
            for c, cell, was, now in zip(ids_.tolist(), cells_.tolist(), olds.tolist(),
                                         news.tolist(), strict=True):
                if c != condition:
                    continue
                assert target.get(cell, 0) == was, (kind, cell)
                if now:
                    target[cell] = now
                else:
                    target.pop(cell, None)
        assert (parts, left) == new_state[condition]
    # Only ancestors of changed cells are looked at: at most one per resolution each.
    assert sum(lookups) <= len(changed) * FLOOR


@settings(max_examples=60, deadline=None)
@given(communities=st.lists(floor_counts(), min_size=1, max_size=4), k=st.integers(2, 12))
def test_partitioning_many_conditions_at_once_gives_each_ones_partition(
    communities: list[dict[int, int]], k: int
) -> None:
    ids = np.concatenate([np.full(len(c), 7 + 3 * i, np.int64)
                          for i, c in enumerate(communities)])
    cells = np.concatenate([np.array(sorted(c), np.int64) for c in communities])
    counts = np.concatenate([np.array([c[x] for x in sorted(c)], np.int64)
                             for c in communities])
    many = privacy.partition_many(ids, cells, counts, FLOOR, k)
    marker_keys, marker_counts = privacy.markers_many(many, FLOOR)
    part_ids, part_cells = privacy.unpack_keys(many.part_keys)
    left_ids, left_cells = privacy.unpack_keys(many.leftover_keys)
    marker_ids, marker_res, marker_cells = privacy.unpack_marker_keys(marker_keys)
    for i, community in enumerate(communities):
        condition = 7 + 3 * i
        parts, left_c, left_n = privacy.partition_leftovers(
            (np.array(sorted(community), np.int64),
             np.array([community[x] for x in sorted(community)], np.int64)), FLOOR, k)
        mine = part_ids == condition
        assert part_cells[mine].tolist() == parts.cells.tolist()
        assert many.part_counts[mine].tolist() == parts.counts.tolist()
        mine = left_ids == condition
        assert (left_cells[mine].tolist(), many.leftover_counts[mine].tolist()) == (
            left_c.tolist(), left_n.tolist())
        for resolution in range(FLOOR + 1):
            markers = privacy.partition_markers(parts, resolution)
            mine = (marker_ids == condition) & (marker_res == resolution)
            assert sorted(zip(marker_cells[mine].tolist(), marker_counts[mine].tolist(),
                              strict=True)) == sorted(zip(markers.cells.tolist(),
                                                          markers.counts.tolist(),
                                                          strict=True))
