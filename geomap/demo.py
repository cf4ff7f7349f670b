"""Compatibility alias: demo data moved to :mod:`geomap.ingest.demo`."""

import sys

from geomap.ingest import demo as _moved

sys.modules[__name__] = _moved
