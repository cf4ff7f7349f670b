"""One room for every number that leaves the database for anyone but its owner.

- :mod:`geomap.publish.step`: the publish transaction (full or incremental), which
  computes one k-anonymous partition per condition (:func:`geomap.privacy.partition`);
- :mod:`geomap.publish.views`: the markers of every zoom and the totals, sums of parts;
- :mod:`geomap.publish.regions`: public country and region counts, sums of parts;
- :mod:`geomap.publish.snapshots`: private snapshots refreshed after a publish: the
  admins' exact counts per floor cell's region (:mod:`geomap.publish.admin_counts`,
  which also reads them for the admin pages) and the nearby index
  (:mod:`geomap.publish.nearby_index`);
- :mod:`geomap.publish.published`: the public read side (published tables only);
- :mod:`geomap.publish.schedule`: publishing on an interval;
- :mod:`geomap.publish.models`: the bookkeeping tables of incremental publishing.

docs/privacy.md states what is published and what an attacker can derive from it.
"""

from geomap.publish.snapshots import refresh_snapshots
from geomap.publish.step import (
    EXTRA_PUBLISHERS,
    WHOLE_CONDITION_CELLS,
    PublishSummary,
    publish,
)

__all__ = [
    "EXTRA_PUBLISHERS",
    "WHOLE_CONDITION_CELLS",
    "PublishSummary",
    "publish",
    "refresh_snapshots",
]
