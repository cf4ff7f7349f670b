"""Property tests of the pure privacy rules: roll-up, resolutions, bands, keyed order."""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geomap import privacy

FLOOR = 5

latitudes = st.floats(min_value=-85, max_value=85, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=179.999, allow_nan=False)
points = st.tuples(latitudes, longitudes)


@st.composite
def floor_counts(draw: st.DrawFn) -> dict[int, int]:
    """Counts per floor cell, clustered around a few centres like real communities."""
    centres = draw(st.lists(points, min_size=1, max_size=4))
    counts: dict[int, int] = {}
    for lat, lng in centres:
        base = h3i.latlng_to_cell(lat, lng, FLOOR)
        ring = h3i.grid_disk(base, draw(st.integers(0, 6)))
        chosen = draw(st.lists(st.sampled_from(sorted(ring)), min_size=1, max_size=25))
        for cell in chosen:
            counts[cell] = counts.get(cell, 0) + draw(st.integers(1, 9))
    return counts


@settings(max_examples=150, deadline=None)
@given(counts=floor_counts(), k=st.integers(2, 12))
def test_partition_parts_hold_k_and_every_floor_cell_is_in_exactly_one(
    counts: dict[int, int], k: int,
) -> None:
    parts = privacy.partition(counts, FLOOR, k)
    assert all(c >= k for c in parts.counts.tolist())
    assert parts.total + parts.remainder == sum(counts.values())
    assert parts.cells.tolist() == sorted(set(parts.cells.tolist()))
    cells = np.array(sorted(counts), dtype=np.int64)
    holder = privacy.part_of(parts, cells)
    held = np.zeros(len(parts.cells), dtype=np.int64)
    for cell, index in zip(cells.tolist(), holder.tolist(), strict=True):
        if index >= 0:
            part = int(parts.cells[index])
            assert h3i.cell_to_parent(cell, h3i.get_resolution(part)) == part
            held[index] += counts[cell]
    # Each part holds exactly the members of the floor cells assigned to it.
    assert held.tolist() == parts.counts.tolist()
    assert sum(counts[c] for c, i in zip(cells.tolist(), holder.tolist(), strict=True)
               if i < 0) == parts.remainder


@settings(max_examples=150, deadline=None)
@given(counts=floor_counts(), k=st.integers(2, 12))
def test_partition_keeps_every_dense_floor_cell_as_it_is(counts: dict[int, int], k: int) -> None:
    parts = privacy.partition(counts, FLOOR, k)
    shown = dict(zip(parts.cells.tolist(), parts.counts.tolist(), strict=True))
    for cell, count in counts.items():
        if count >= k:
            assert shown[cell] == count


@settings(max_examples=150, deadline=None)
@given(counts=floor_counts(), k=st.integers(2, 12))
def test_every_nested_difference_between_zooms_is_a_sum_of_parts(counts: dict[int, int],
                                                                  k: int) -> None:
    parts = privacy.partition(counts, FLOOR, k)
    views = {r: privacy.partition_markers(parts, r) for r in range(FLOOR + 1)}
    for resolution, view in views.items():
        assert int(view.counts.sum()) == parts.total  # the same total at every zoom
        assert all(c >= k for c in view.counts.tolist())
        for finer in range(resolution + 1, FLOOR + 1):
            inner = views[finer]
            for cell, cell_res, count in zip(view.cells.tolist(), view.cell_resolutions.tolist(),
                                             view.counts.tolist(), strict=True):
                if cell_res != resolution:
                    continue  # a coarser part shown as itself: not a whole cell
                inside = [
                    c for c, r in zip(inner.cells.tolist(), inner.cell_resolutions.tolist(),
                                      strict=True)
                    if r >= resolution and h3i.cell_to_parent(c, resolution) == cell
                ]
                inside_sum = sum(int(inner.counts[inner.cells.tolist().index(c)])
                                 for c in inside)
                difference = count - inside_sum
                assert difference == 0 or difference >= k


@settings(max_examples=150, deadline=None)
@given(counts=floor_counts(), resolution=st.integers(0, FLOOR), k=st.integers(2, 12))
def test_every_published_count_is_at_least_k(counts: dict[int, int], resolution: int,
                                             k: int) -> None:
    result = privacy.rollup(counts, resolution, k)
    assert all(c >= k for c in result.counts.tolist())


@settings(max_examples=150, deadline=None)
@given(counts=floor_counts(), resolution=st.integers(0, FLOOR), k=st.integers(2, 12))
def test_published_plus_remainder_equals_members(counts: dict[int, int], resolution: int,
                                                 k: int) -> None:
    result = privacy.rollup(counts, resolution, k)
    assert int(result.counts.sum()) + result.remainder == sum(counts.values())
    assert 0 <= result.remainder


@settings(max_examples=100, deadline=None)
@given(counts=floor_counts(), resolution=st.integers(0, FLOOR))
def test_markers_are_at_or_above_the_map_resolution(counts: dict[int, int],
                                                     resolution: int) -> None:
    result = privacy.rollup(counts, resolution, 5)
    for cell, cell_res in zip(result.cells.tolist(), result.cell_resolutions.tolist(),
                              strict=True):
        assert h3i.get_resolution(cell) == cell_res <= resolution
    assert len(set(result.cells.tolist())) == len(result.cells)


@settings(max_examples=100, deadline=None)
@given(counts=floor_counts(), resolution=st.integers(0, FLOOR))
def test_rollup_is_a_function_of_counts_only(counts: dict[int, int], resolution: int) -> None:
    shuffled = dict(reversed(list(counts.items())))
    a = privacy.rollup(counts, resolution, 5)
    b = privacy.rollup(shuffled, resolution, 5)
    assert a.cells.tolist() == b.cells.tolist()
    assert a.counts.tolist() == b.counts.tolist()


@settings(max_examples=200, deadline=None)
@given(point=points, resolution=st.integers(0, FLOOR))
def test_vectorised_parents_match_h3(point: tuple[float, float], resolution: int) -> None:
    cell = h3i.latlng_to_cell(*point, FLOOR)
    assert privacy.cell_parents(np.array([cell]), resolution)[0] == h3i.cell_to_parent(
        cell, resolution
    )


@settings(max_examples=50, deadline=None)
@given(
    lats=st.lists(st.floats(min_value=-90, max_value=90, allow_nan=False), min_size=1,
                  max_size=50),
    lngs=st.lists(st.floats(min_value=-180, max_value=180, allow_nan=False), min_size=1,
                  max_size=50),
    floor=st.integers(0, 15),
)
def test_vectorised_floor_cells_match_h3(lats: list[float], lngs: list[float],
                                         floor: int) -> None:
    """Bulk indexing (h3ronpy) gives every point the cell h3 gives it, poles and 180° too."""
    size = privacy.VECTOR_CELLS_MIN
    lat_array = np.resize(np.array(lats + [90.0, -90.0, 0.0]), size)
    lng_array = np.resize(np.array(lngs + [180.0, -180.0, 179.9999999]), size)
    expected = [h3i.latlng_to_cell(lat, lng, floor)
                for lat, lng in zip(lat_array.tolist(), lng_array.tolist(), strict=True)]
    assert privacy.floor_cells(lat_array, lng_array, floor).tolist() == expected


@given(zoom=st.integers(0, privacy.MAX_ZOOM), floor=st.integers(0, 7))
def test_map_resolution_is_never_finer_than_the_floor(zoom: int, floor: int) -> None:
    assert privacy.map_resolution(zoom, floor) <= floor


def test_map_resolution_grows_with_zoom() -> None:
    resolutions = [privacy.map_resolution(z, FLOOR) for z in range(privacy.MAX_ZOOM + 1)]
    assert resolutions == sorted(resolutions)
    assert resolutions[0] == 0 and resolutions[-1] == FLOOR


def test_distance_bands_cover_every_distance() -> None:
    assert privacy.distance_band(0) == "<25 km"
    assert privacy.distance_band(24.99) == "<25 km"
    assert privacy.distance_band(25) == "25–50 km"
    assert privacy.distance_band(99.9) == "50–100 km"
    assert privacy.distance_band(250) == "250–500 km"
    assert privacy.distance_band(20_000) == "500+ km"


@given(a=points, b=points)
def test_band_depends_on_cells_not_points(a: tuple[float, float],
                                          b: tuple[float, float]) -> None:
    cell_a = h3i.latlng_to_cell(*a, FLOOR)
    cell_b = h3i.latlng_to_cell(*b, FLOOR)
    # Any point of the same cells gives the same band: the cell centres decide.
    centre_a = h3i.cell_to_latlng(cell_a)
    assert h3i.latlng_to_cell(*centre_a, FLOOR) == cell_a
    band = privacy.distance_band(privacy.cell_distance_km(cell_a, cell_b))
    assert band == privacy.distance_band(
        privacy.cell_distance_km(h3i.latlng_to_cell(*centre_a, FLOOR), cell_b)
    )


@given(parts=st.lists(st.integers(), min_size=1, max_size=4))
def test_keyed_order_is_stable_and_secret_dependent(parts: list[int]) -> None:
    assert privacy.keyed_order("s1", *parts) == privacy.keyed_order("s1", *parts)
    assert privacy.keyed_order("s1", *parts) != privacy.keyed_order("s2", *parts)


@given(observer=st.integers(1, 2**40))
def test_nearby_offsets_are_stable_keyed_and_64_bit(observer: int) -> None:
    offset = privacy.nearby_offset("s1", observer)
    assert offset == privacy.nearby_offset("s1", observer)
    assert -(2**63) <= offset < 2**63
    assert offset != privacy.nearby_offset("s2", observer)
    assert offset != privacy.nearby_offset("s1", observer + 1)


def test_nearby_offsets_spread_over_the_whole_key_range() -> None:
    # A searcher's order may start anywhere: offsets cover the order keys' whole range
    # (a 64-bit hash of the member id) evenly.
    offsets = [privacy.nearby_offset("secret", observer) for observer in range(1, 4001)]
    quarters = [sum(1 for o in offsets if (o >> 62) == q) for q in (-2, -1, 0, 1)]
    assert all(900 < count < 1100 for count in quarters), quarters


def test_suppress_small() -> None:
    assert privacy.suppress_small(0, 5) == 0
    assert privacy.suppress_small(3, 5) is None
    assert privacy.suppress_small(5, 5) == 5
