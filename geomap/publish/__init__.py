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

from __future__ import annotations

from importlib import import_module
from typing import Any

# The publish step and the snapshots (numpy, Shapely, the privacy partition) load on
# first use: web workers read published tables through geomap.publish.published and
# never publish.
_LAZY = {
    "EXTRA_PUBLISHERS": "geomap.publish.step",
    "WHOLE_CONDITION_CELLS": "geomap.publish.step",
    "PublishSummary": "geomap.publish.step",
    "publish": "geomap.publish.step",
    "refresh_snapshots": "geomap.publish.snapshots",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Return the publish step's names from their modules, imported on first use."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
