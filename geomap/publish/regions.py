"""Publishing region counts: countries and first-level regions, sums of whole parts.

Public region counts are sums of the same partition as the markers
(:func:`geomap.privacy.partition`): each part (an H3 cell of mixed resolution with at
least k members) is counted in the country and region of its centre, as the key
deriver places a cell. So every region count, every country count, and every
difference between a country and its regions is a sum of whole parts: 0 or at least
k. A member may be counted in a neighbouring region when the part that holds them is
centred there. :func:`geomap.privacy.suppressed_parts` is kept as a second guard (it
never has anything to suppress when every part holds k). The admins' exact counts
are a separate, unpublished snapshot (:mod:`geomap.publish.snapshots`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver, deriver_for
from geomap.geo.reference import raw_connection
from geomap.privacy import Partition, cell_resolutions, partition_markers, suppressed_parts
from geomap.regions.names import country_name, region_names


def publish_regions(session: Session, parts: dict[int, tuple[np.ndarray, np.ndarray]],
                    *, k: int, floor: int, version: int, conditions: list[int] | None = None,
                    enabled: list[int] | None = None) -> int:
    """Replace the published region counts; return the rows written.

    ``parts`` maps a condition id to its partition's (cells, counts), cells sorted.
    With ``conditions``, only the rows of those conditions are replaced (``parts``
    holds them); with ``enabled``, the rows of any other condition are dropped. A
    condition's counts and their suppression depend on its own parts only, so this
    gives the same rows as replacing all; ``version`` is the publish that last wrote
    a row.
    """
    all_cells = np.unique(
        np.concatenate([cells for cells, _ in parts.values()])
        if parts else np.zeros(0, np.int64)
    )
    deriver = deriver_for(session, floor)
    place_of = deriver.cell_places(all_cells)
    rows: list[dict] = []
    names = region_names(session, {region for _, region in place_of.values() if region})
    # Each part's place as small integer ids, so each condition's sums are bincounts.
    places = [(country, region or "") for country, region in
              (place_of[cell] for cell in all_cells.tolist())]
    place_keys = sorted({place for place in places if place[0] is not None})
    place_id = {place: i for i, place in enumerate(place_keys)}
    cell_place = np.array([place_id.get(place, -1) for place in places], dtype=np.int64)
    for condition_id, (cells, counts) in sorted(parts.items()):
        ids = cell_place[np.searchsorted(all_cells, cells)]
        known = ids >= 0  # a centre in no country is counted in no region
        sums = np.bincount(ids[known], weights=counts[known], minlength=len(place_keys))
        by_country: dict[str, int] = defaultdict(int)
        by_region: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for index in np.flatnonzero(sums).tolist():
            country, region = place_keys[index]
            count = int(sums[index])
            by_country[country] += count
            # Members whose centre has no region stay in the country's hidden remainder.
            by_region[country][region] += count
        shown_countries = suppressed_parts(by_country, k)
        shown_regions = {country: suppressed_parts(regions, k)
                         for country, regions in by_region.items()}
        _hide_small_differences_with_markers(
            deriver, Partition(cells=cells, cell_resolutions=cell_resolutions(cells),
                               counts=counts, remainder=0),
            floor, k, shown_countries, shown_regions)
        for code, count in shown_countries.items():
            rows.append(dict(condition_id=condition_id, level="country", code=code,
                             country_code=code, name=country_name(code), count=count,
                             version=version))
        for country, regions in sorted(shown_regions.items()):
            for code, count in regions.items():
                if code:
                    rows.append(dict(condition_id=condition_id, level="admin1", code=code,
                                     country_code=country, name=names.get(code, code),
                                     count=count, version=version))
    if enabled is not None:
        session.execute(text("DELETE FROM published_regions "
                             "WHERE condition_id <> ALL(CAST(:ids AS smallint[]))"),
                        {"ids": list(enabled)})
    columns = ("condition_id", "level", "code", "country_code", "name", "count", "version")
    if conditions is None:
        session.execute(text("DELETE FROM published_regions"))
        written = rows
    else:
        written = _write_changed_rows(session, conditions, rows)
    with raw_connection(session).cursor().copy(
        f"COPY published_regions ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for row in written:
            copy.write_row(tuple(row[column] for column in columns))
    return len(written)


def _write_changed_rows(session: Session, conditions: list[int], rows: list[dict]
                        ) -> list[dict]:
    """Delete the stored rows of ``conditions`` that ``rows`` drop or change; return the new.

    A row whose count (and name) stays keeps its row and its version: the version is
    the publish that last changed it.
    """
    stored = {
        (condition_id, level, code): (country, name, count)
        for condition_id, level, code, country, name, count in session.execute(
            text("SELECT condition_id, level, code, country_code, name, count "
                 "FROM published_regions WHERE condition_id = ANY(CAST(:ids AS smallint[]))"),
            {"ids": conditions},
        ).all()
    }
    fresh = {(row["condition_id"], row["level"], row["code"]): row for row in rows}
    changed = [row for key, row in fresh.items()
               if stored.get(key) != (row["country_code"], row["name"], row["count"])]
    gone = [key for key in stored if key not in fresh] + [
        (row["condition_id"], row["level"], row["code"]) for row in changed
        if (row["condition_id"], row["level"], row["code"]) in stored]
    if gone:
        session.execute(
            text("DELETE FROM published_regions r USING unnest(CAST(:c AS smallint[]), "
                 "CAST(:l AS text[]), CAST(:code AS text[])) AS d (c, l, code) "
                 "WHERE r.condition_id = d.c AND r.level = d.l AND r.code = d.code"),
            {"c": [key[0] for key in gone], "l": [key[1] for key in gone],
             "code": [key[2] for key in gone]},
        )
    return changed


def _hide_small_differences_with_markers(
    deriver: KeyDeriver, parts: Partition, floor: int, k: int,
    countries: dict[str, int | None], regions: dict[str, dict[str, int | None]],
) -> None:
    """Suppress (in place) each count that a marker centred in its area undercuts by 1..k-1.

    A marker nests in the region of its centre only when every part it sums is counted
    there; a coarse marker may also hold parts centred in a neighbouring region, and
    then "region minus marker" is no sum of parts and could happen to be a small true
    count. Hiding that region (or country) count removes the pair; what a country
    minus its shown regions leaves grows by a count of at least k, so it stays safe.
    """
    shown = [count for count in countries.values() if count] + [
        count for by_code in regions.values() for count in by_code.values() if count]
    if not shown:
        return
    # Marker counts that some shown count exceeds by 1..k-1: only those need a place.
    risky = np.unique(np.concatenate(
        [np.asarray(shown, dtype=np.int64) - gap for gap in range(1, k)]))
    candidates: list[np.ndarray] = []
    marker_counts: list[np.ndarray] = []
    for resolution in range(floor + 1):
        markers = partition_markers(parts, resolution)
        near = np.isin(markers.counts, risky)
        candidates.append(markers.cells[near])
        marker_counts.append(markers.counts[near])
    cells = np.concatenate(candidates)
    if len(cells) == 0:
        return
    counts = np.concatenate(marker_counts)
    # Hiding only ever sets a count to None, so whether a count is hidden depends on
    # the original counts alone: compare all markers at once, per distinct cell.
    unique_cells, inverse = np.unique(cells, return_inverse=True)
    place_of = deriver.cell_places(unique_cells)
    places = [place_of[cell] for cell in unique_cells.tolist()]
    country_shown = np.array([countries.get(country) or 0 if country is not None else 0
                              for country, _region in places], dtype=np.int64)
    region_shown = np.array([regions.get(country, {}).get(region) or 0
                             if country is not None and region else 0
                             for country, region in places], dtype=np.int64)
    for shown, level in ((country_shown, "country"), (region_shown, "region")):
        gap = shown[inverse] - counts
        undercut = (shown[inverse] > 0) & (gap >= 1) & (gap < k)
        for index in np.unique(inverse[undercut]).tolist():
            country, region = places[index]
            if level == "country":
                countries[country] = None
            else:
                regions[country][region] = None
