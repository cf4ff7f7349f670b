"""Compatibility alias: the loader moved to :mod:`geomap.ingest.members_bulk`."""

import sys

from geomap.ingest import members_bulk as _moved

sys.modules[__name__] = _moved
