"""The soulmates map: my soulmates by area, built with the world map's own map code.

Each marker is an area (a floor cell, never finer) with its number of soulmates;
Leaflet.markercluster groups areas further with the world map's count icon;
clicking an area lists its soulmates. Names reach the page as JSON data and are put
into the page with ``textContent`` by ``static/geomap/symptoms.js``, never into
popups or JS strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import url_for

from geomap.privacy import MAX_ZOOM
from geomap.symptoms.soulmates import SoulmateArea
from geomap.web.maps import ClusterGroup, MapParts, local_map, map_parts


def soulmates_map(areas: Sequence[SoulmateArea], height: str = "420px") -> MapParts:
    """Return the map of ``areas``: one marker per area with its number of soulmates."""
    world = local_map("soulmates", center=(25.0, 10.0), zoom=1, max_zoom=min(MAX_ZOOM, 9),
                      height=height, cluster=ClusterGroup("soulmate_markers", 40),
                      cluster_js=(url_for("static", filename="geomap/symptoms.js"),))
    world.call = "geomap.soulmateAreas"
    world.call_options = {
        "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
        "areas": [
            {"cell": a.cell, "lat": round(a.lat, 5), "lng": round(a.lng, 5), "place": a.place,
             "count": len(a.pseudonyms), "pseudonyms": list(a.pseudonyms)}
            for a in areas
        ],
    }
    return map_parts(world)
