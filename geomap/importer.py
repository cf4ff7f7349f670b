"""Compatibility alias: the importer moved to :mod:`geomap.ingest.importer`."""

import sys

from geomap.ingest import importer as _moved

sys.modules[__name__] = _moved
