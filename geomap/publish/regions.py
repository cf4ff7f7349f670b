"""Publishing region counts: countries and first-level regions, sums of whole parts.

Public region counts are sums of the same partition as the markers
(:func:`geomap.privacy.partition`): each part (an H3 cell of mixed resolution with at
least k members) is counted in the country and region of its centre, as the key
deriver places a cell. So every region count, every country count, and every
difference between a country and its regions is a sum of whole parts: 0 or at least
k. A member may be counted in a neighbouring region when the part that holds them is
centred there. :func:`geomap.privacy.suppressed_parts_many` is kept as a second guard (it
never has anything to suppress when every part holds k). The admins' exact counts
are a separate, unpublished snapshot (:mod:`geomap.publish.snapshots`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver, deriver_for
from geomap.geo.reference import raw_connection
from geomap.privacy import (
    ManyPartitions,
    markers_many,
    pack_keys,
    suppressed_parts_many,
    unpack_marker_keys,
)
from geomap.regions.names import country_name, region_names

_EMPTY = np.zeros(0, np.int64)


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
    ids = sorted(parts)
    part_conditions = np.concatenate(
        [np.full(len(parts[cid][0]), cid, np.int64) for cid in ids] or [_EMPTY])
    part_cells = np.concatenate([parts[cid][0] for cid in ids] or [_EMPTY]).astype(np.int64)
    part_counts = np.concatenate([parts[cid][1] for cid in ids] or [_EMPTY]).astype(np.int64)
    deriver = deriver_for(session, floor)
    counts = region_counts(deriver, part_conditions, part_cells, part_counts, k, floor)
    return write_region_counts(session, counts, version=version, conditions=conditions,
                               enabled=enabled)


def write_region_counts(session: Session, counts: RegionCounts, *, version: int,
                        conditions: list[int] | None = None,
                        enabled: list[int] | None = None) -> int:
    """Write region counts made by :func:`region_counts`; return the rows written.

    ``conditions``, ``enabled``, ``version``: as for :func:`publish_regions`.
    """
    names = region_names(session, {region for _country, region in counts.places if region})
    if enabled is not None:
        session.execute(text("DELETE FROM published_regions "
                             "WHERE condition_id <> ALL(CAST(:ids AS smallint[]))"),
                        {"ids": list(enabled)})
    if conditions is None:
        country_names = {country: country_name(country)
                         for country, _region in counts.places}
        rows = [(condition_id, "country", code, code, country_names[code], count)
                for condition_id, code, count in counts.countries]
        rows += [(condition_id, "admin1", code, country, names.get(code, code), count)
                 for condition_id, country, code, count in counts.regions]
        session.execute(text("DELETE FROM published_regions"))
        columns = ("condition_id", "level", "code", "country_code", "name", "count", "version")
        with raw_connection(session).cursor().copy(
            f"COPY published_regions ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((*row, version))
        return len(rows)
    countries = sorted({country for country, _region in counts.places})
    regions = sorted({place for place in counts.places if place[1]})
    # Each distinct area once: (level, code, country, name); rows refer to it by index.
    areas = ([("country", code, code, country_name(code)) for code in countries]
             + [("admin1", code, country, names.get(code, code)) for country, code in regions])
    index = {code: i for i, code in enumerate(countries)}
    index.update({place: len(countries) + i for i, place in enumerate(regions)})
    row_conditions = np.array([row[0] for row in counts.countries]
                              + [row[0] for row in counts.regions], np.int64)
    row_areas = np.array([index[row[1]] for row in counts.countries]
                         + [index[(row[1], row[2])] for row in counts.regions], np.int64)
    row_counts = np.array([-1 if row[-1] is None else row[-1]
                           for rows in (counts.countries, counts.regions) for row in rows],
                          np.int64)
    return _write_changed_rows(session, conditions, areas,
                               (row_conditions, row_areas, row_counts), version)


@dataclass(frozen=True)
class RegionCounts:
    """The public region counts of many conditions (count None: suppressed).

    ``countries``: (condition, country code, count); ``regions``: (condition, country
    code, region code, count), first-level regions only; ``places``: every
    (country, region) a part is counted in.
    """

    countries: list[tuple[int, str, int | None]]
    regions: list[tuple[int, str, str, int | None]]
    places: list[tuple[str, str]]


def region_counts(deriver: KeyDeriver, conditions: np.ndarray, cells: np.ndarray,
                  counts: np.ndarray, k: int, floor: int) -> RegionCounts:
    """Count many conditions' parts by country and region, suppressed as published.

    ``conditions``, ``cells``, ``counts``: the parts of every condition (aligned int
    arrays). Each part counts in its centre's place (:meth:`KeyDeriver.cell_places`);
    counts are then suppressed within the world and within each country
    (:func:`geomap.privacy.suppressed_parts_many`) and by the marker rule
    (:func:`_markers_undercut`). All conditions at once: no work per condition.
    """
    unique_cells, inverse = np.unique(cells, return_inverse=True)
    place_of = deriver.cell_places(unique_cells)
    cell_place = [place_of[cell] for cell in unique_cells.tolist()]
    places = sorted({(country, region or "") for country, region in cell_place
                     if country is not None})
    place_id = {place: i for i, place in enumerate(places)}
    countries = sorted({country for country, _region in places})
    country_id = {country: i for i, country in enumerate(countries)}
    place_country = np.array([country_id[country] for country, _region in places], np.int64)
    # Per part: its place (-1: a centre in no country is counted in no region).
    part_place = np.array([place_id.get((country, region or ""), -1)
                           for country, region in cell_place], np.int64)[inverse]
    known = part_place >= 0
    wide = max(len(places), 1)
    region_keys, region_sums = _sum_by(conditions[known] * wide + part_place[known],
                                       counts[known])
    region_conditions, region_places = region_keys // wide, region_keys % wide
    region_countries = place_country[region_places]
    country_keys, country_sums = _sum_by(
        region_conditions * max(len(countries), 1) + region_countries, region_sums)
    country_conditions = country_keys // max(len(countries), 1)
    country_codes = country_keys % max(len(countries), 1)
    # Countries within the world, regions (the regionless rest included) within a
    # country; place ids are sorted by code, so they break ties like the codes.
    country_shown = suppressed_parts_many(country_conditions, country_codes, country_sums, k)
    region_shown = suppressed_parts_many(region_conditions * max(len(countries), 1)
                                         + region_countries, region_places, region_sums, k)
    named = np.array([bool(region) for _country, region in places] or [False])[region_places]
    country_value = np.where(country_shown, country_sums, 0)
    region_value = np.where(region_shown & named, region_sums, 0)
    hide_countries, hide_regions = _markers_undercut(
        deriver, conditions, cells, counts, floor, k,
        (country_keys, country_value), (region_keys, region_value),
        (place_id, country_id, wide, max(len(countries), 1)))
    country_shown &= ~hide_countries
    region_shown &= ~hide_regions
    return RegionCounts(
        countries=[(condition, countries[code], int(count) if shown else None)
                   for condition, code, count, shown in zip(
                       country_conditions.tolist(), country_codes.tolist(),
                       country_sums.tolist(), country_shown.tolist(), strict=True)],
        regions=[(condition, places[place][0], places[place][1], int(count) if shown else None)
                 for condition, place, count, shown, has_name in zip(
                     region_conditions.tolist(), region_places.tolist(),
                     region_sums.tolist(), region_shown.tolist(), named.tolist(), strict=True)
                 if has_name],
        places=places,
    )


def _markers_undercut(deriver: KeyDeriver, conditions: np.ndarray, cells: np.ndarray,
                      counts: np.ndarray, floor: int, k: int,
                      country_counts: tuple[np.ndarray, np.ndarray],
                      region_counts_: tuple[np.ndarray, np.ndarray],
                      ids: tuple[dict, dict, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return which country and region counts a marker centred in their area undercuts.

    A marker nests in the region of its centre only when every part it sums is counted
    there; a coarse marker may also hold parts centred in a neighbouring region, and
    then "region minus marker" is no sum of parts and could happen to be a small true
    count. Hiding that region (or country) count removes the pair; what a country
    minus its shown regions leaves grows by a count of at least k, so it stays safe.
    ``country_counts`` / ``region_counts_``: (packed keys, shown count or 0) as made
    by :func:`region_counts`; the masks returned are aligned with them. Hiding only
    ever sets a count to None, so whether a count is hidden depends on the shown
    counts alone: every marker of every zoom is compared at once.
    """
    place_id, country_id, wide, country_wide = ids
    country_keys, country_value = country_counts
    region_keys, region_value = region_counts_
    hide_countries = np.zeros(len(country_keys), dtype=bool)
    hide_regions = np.zeros(len(region_keys), dtype=bool)
    if len(cells) == 0:
        return hide_countries, hide_regions
    marker_keys, marker_counts = markers_many(
        ManyPartitions(pack_keys(conditions, cells), counts, _EMPTY, _EMPTY), floor)
    marker_conditions, _resolutions, marker_cells = unpack_marker_keys(marker_keys)
    # Only markers that some shown count of their condition exceeds by 1..k-1 need a place.
    shown_keys = np.unique(np.concatenate([
        (country_keys // country_wide << 32) | country_value,
        (region_keys // wide << 32) | region_value,
    ]))
    if len(shown_keys) == 0:
        return hide_countries, hide_regions
    # The first shown count above each marker's, of its condition: risky if within k-1.
    wanted = (marker_conditions << 32) | marker_counts
    above = np.minimum(np.searchsorted(shown_keys, wanted + 1), len(shown_keys) - 1)
    risky = (shown_keys[above] > wanted) & (shown_keys[above] < wanted + k)
    marker_conditions, marker_cells = marker_conditions[risky], marker_cells[risky]
    marker_counts = marker_counts[risky]
    if len(marker_cells) == 0:
        return hide_countries, hide_regions
    unique_cells, inverse = np.unique(marker_cells, return_inverse=True)
    place_of = deriver.cell_places(unique_cells)
    cell_place = [place_of[cell] for cell in unique_cells.tolist()]
    marker_country = np.array([country_id.get(country, -1) for country, _r in cell_place],
                              np.int64)[inverse]
    marker_region = np.array([place_id.get((country, region), -1) if region else -1
                              for country, region in cell_place], np.int64)[inverse]
    for keys, value, hide, area, width in (
            (country_keys, country_value, hide_countries, marker_country, country_wide),
            (region_keys, region_value, hide_regions, marker_region, wide)):
        placed = area >= 0
        wanted = marker_conditions[placed] * width + area[placed]
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = keys[at] == wanted if len(keys) else np.zeros(len(wanted), dtype=bool)
        gap = value[at] - marker_counts[placed]
        undercut = found & (value[at] > 0) & (gap >= 1) & (gap < k)
        hide[at[undercut]] = True
    return hide_countries, hide_regions


def _sum_by(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct keys (sorted) and the sum of ``values`` of each."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse, weights=values, minlength=len(unique)).astype(np.int64)


def _write_changed_rows(session: Session, conditions: list[int],
                        areas: list[tuple[str, str, str, str]],
                        rows: tuple[np.ndarray, np.ndarray, np.ndarray], version: int) -> int:
    """Replace the stored rows of ``conditions`` that ``rows`` drop or change.

    Returns the rows written (count changed in place, or inserted). ``areas``: (level,
    code, country, name); ``rows``: (condition, index in ``areas``, count, -1 where
    suppressed), aligned. A row whose count (and name) stays keeps its row and its
    version: the version is the publish that last changed it. The stored rows come back
    as integers (address, condition, index of the area they name exactly, count), are
    compared with the new ones in numpy, and only the rows that differ are written: a
    changed count in place, a row whose area is gone (or named otherwise) deleted, a
    new one inserted. No text is compared row by row.
    """
    from geomap.publish.step import (
        IntegerArray,
        SmallintArray,
        TidArray,
        _fetch_columns,
        _send_arrays_binary,
        array_cursor,
    )

    _send_arrays_binary(session)
    cursor = array_cursor(session)
    levels, codes, countries, names = (list(column) for column in zip(*areas, strict=True)) \
        if areas else ([], [], [], [])
    area_sql = ("unnest(CAST(%(al)s AS text[]), CAST(%(ac)s AS text[]), CAST(%(acc)s AS text[]), "
                "CAST(%(an)s AS text[])) WITH ORDINALITY AS a (level, code, country_code, name, i)")
    area_params = {"al": levels, "ac": codes, "acc": countries, "an": names}
    # The stored rows grouped by what they name (a few thousand groups, by hashing:
    # sorting 125,000 rows by four text columns costs several times more), each group
    # matched with the area of that exact name (-1: none), then spread back to rows:
    # (address, condition, area, count) as integer arrays. No JIT.
    cursor.execute("SET LOCAL enable_sort = off; SET LOCAL jit = off")
    stored_at, stored_conditions, stored_areas, stored_counts = _fetch_columns(
        session,
        "WITH g AS MATERIALIZED (SELECT level, code, country_code, name, array_agg(ctid) AS ts, "
        "array_agg(condition_id::bigint) AS cs, array_agg(coalesce(count, -1)::bigint) AS ks "
        "FROM published_regions WHERE condition_id = ANY(CAST(%(ids)s AS smallint[])) "
        "GROUP BY 1, 2, 3, 4) "
        "SELECT array_agg(u.t), array_agg(u.c), array_agg(coalesce(a.i - 1, -1)), "
        "array_agg(u.k) FROM g LEFT JOIN " + area_sql + " ON a.level = g.level "
        "AND a.code = g.code AND a.country_code = g.country_code AND a.name = g.name "
        "CROSS JOIN LATERAL unnest(g.ts, g.cs, g.ks) AS u (t, c, k)",
        {"ids": list(conditions), **area_params}, 4)
    width = max(len(areas), 1)
    new_conditions, new_areas, new_counts = (np.asarray(column, np.int64) for column in rows)
    new_keys = new_conditions * width + new_areas
    order = np.argsort(new_keys)
    new_keys, new_counts = new_keys[order], new_counts[order]
    # A stored row of an area (named as now) that is still counted is kept, its count
    # updated if it changed; any other stored row goes.
    stored_keys = stored_conditions * width + stored_areas
    matched = np.zeros(len(stored_keys), dtype=bool)
    at = np.zeros(len(stored_keys), np.int64)
    if len(new_keys):
        at = np.minimum(np.searchsorted(new_keys, stored_keys), len(new_keys) - 1)
        matched = (stored_areas >= 0) & (new_keys[at] == stored_keys)
    changed = matched & (new_counts[at] != stored_counts) if len(new_keys) else matched
    gone = stored_at[~matched]
    cursor.execute("DELETE FROM published_regions WHERE ctid = ANY(%(t)s)",
                   {"t": TidArray(gone)})
    deleted = cursor.rowcount
    cursor.execute("SET LOCAL enable_hashjoin = off")
    cursor.execute(
        "UPDATE published_regions p SET count = nullif(d.k, -1), version = %(v)s "
        "FROM unnest(CAST(%(t)s AS tid[]), CAST(%(k)s AS int[])) AS d (t, k) "
        "WHERE p.ctid = d.t",
        {"t": TidArray(stored_at[changed]), "k": IntegerArray(new_counts[at[changed]]),
         "v": version})
    updated = cursor.rowcount
    cursor.execute("RESET enable_hashjoin")
    if [deleted, updated] != [len(gone), int(changed.sum())]:
        raise RuntimeError("published region rows changed while being compared")
    fresh = np.flatnonzero(~np.isin(new_keys, stored_keys[matched]))
    cursor.execute(
        "INSERT INTO published_regions "
        "(condition_id, level, code, country_code, name, count, version) "
        "SELECT r.c, a.level, a.code, a.country_code, a.name, nullif(r.k, -1), %(v)s "
        "FROM unnest(CAST(%(c)s AS smallint[]), CAST(%(a)s AS int[]), CAST(%(k)s AS int[])) "
        "AS r (c, a, k) JOIN " + area_sql + " ON a.i = r.a + 1",
        {"c": SmallintArray(new_keys[fresh] // width),
         "a": IntegerArray(new_keys[fresh] % width), "k": IntegerArray(new_counts[fresh]),
         "v": version, **area_params})
    inserted = cursor.rowcount
    cursor.execute("RESET enable_sort; RESET jit")
    return updated + inserted
