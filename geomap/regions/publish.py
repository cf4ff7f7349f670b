"""Publishing region counts: countries and first-level regions of floor-cell centres.

Public region counts are a function of floor cells only (DESIGN.md): a member is
counted in the country and region that contain the centre of their floor cell, so a
member near a border may be counted on the other side. Every count is suppressed
below k, with complementary suppression so a country's count minus its shown regions
never reveals a small group either (:func:`geomap.privacy.suppressed_parts`).
The admins' exact counts are a separate snapshot refreshed after each publish
(:func:`geomap.regions.counts.refresh_admin_counts`), never published.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import deriver_for
from geomap.geo.reference import raw_connection
from geomap.privacy import suppressed_parts
from geomap.regions.names import country_name, region_names


def publish_regions(session: Session, floor_counts: dict[int, tuple[np.ndarray, np.ndarray]],
                    *, k: int, floor: int, version: int) -> int:
    """Replace the published region counts from counts per floor cell; return the rows."""
    all_cells = np.unique(
        np.concatenate([cells for cells, _ in floor_counts.values()])
        if floor_counts else np.zeros(0, np.int64)
    )
    place_of = deriver_for(session, floor).cell_places(all_cells)
    rows: list[dict] = []
    names = region_names(session, {region for _, region in place_of.values() if region})
    # Each cell's place as small integer ids, so each condition's sums are bincounts.
    places = [(country, region or "") for country, region in
              (place_of[cell] for cell in all_cells.tolist())]
    place_keys = sorted({place for place in places if place[0] is not None})
    place_id = {place: i for i, place in enumerate(place_keys)}
    cell_place = np.array([place_id.get(place, -1) for place in places], dtype=np.int64)
    for condition_id, (cells, counts) in sorted(floor_counts.items()):
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
        for code, count in suppressed_parts(by_country, k).items():
            rows.append(dict(condition_id=condition_id, level="country", code=code,
                             country_code=code, name=country_name(code), count=count,
                             version=version))
        for country, regions in sorted(by_region.items()):
            for code, count in suppressed_parts(regions, k).items():
                if code:
                    rows.append(dict(condition_id=condition_id, level="admin1", code=code,
                                     country_code=country, name=names.get(code, code),
                                     count=count, version=version))
    session.execute(text("DELETE FROM published_regions"))
    columns = ("condition_id", "level", "code", "country_code", "name", "count", "version")
    with raw_connection(session).cursor().copy(
        f"COPY published_regions ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(tuple(row[column] for column in columns))
    return len(rows)
