"""The soulmates map: my soulmates by area, built with the world map's own map code.

Each marker is an area (a floor cell, never finer) with its number of soulmates;
Leaflet.markercluster groups areas further with the world map's count icon;
clicking an area lists its soulmates. Names reach the page as JSON data and are put
into the page with ``textContent`` by ``static/geomap/symptoms.js``, never into folium
popups or JS strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from branca.element import MacroElement
from flask import url_for
from folium.plugins import MarkerCluster
from jinja2 import Template

from geomap.privacy import MAX_ZOOM
from geomap.symptoms.soulmates import SoulmateArea
from geomap.web.maps import CLUSTER_ICON, MapParts, local_map, map_parts


class SoulmateAreas(MacroElement):
    """Adds the soulmate areas to the map's cluster group."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        geomap.soulmateAreas({{ this._parent.get_name() }}, {{ this.cluster.get_name() }},
                             {{ this.options|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, cluster: MarkerCluster, options: dict) -> None:
        """Show ``options['areas']`` in ``cluster``."""
        super().__init__()
        self._name = "SoulmateAreas"
        self._id = "areas"
        self.cluster = cluster
        self.options = options


def soulmates_map(areas: Sequence[SoulmateArea], height: str = "420px") -> MapParts:
    """Return the map of ``areas``: one marker per area with its number of soulmates."""
    world = local_map("soulmates", center=(25.0, 10.0), zoom=1, max_zoom=min(MAX_ZOOM, 9),
                      height=height)
    cluster = MarkerCluster(
        icon_create_function=CLUSTER_ICON,
        options={"showCoverageOnHover": False, "maxClusterRadius": 40},
    )
    cluster._id = "soulmate_markers"
    cluster.default_js = [
        ("markercluster",
         url_for("static", filename="vendor/markercluster/leaflet.markercluster.js")),
        ("topojson", url_for("static", filename="vendor/topojson-client.min.js")),
        ("geomap_outlines", url_for("static", filename="geomap/outlines.js")),
        ("geomap", url_for("static", filename="geomap/map.js")),
        ("geomap_symptoms", url_for("static", filename="geomap/symptoms.js")),
    ]
    cluster.default_css = [
        ("markercluster_css", url_for("static", filename="vendor/markercluster/MarkerCluster.css")),
    ]
    cluster.add_to(world)
    SoulmateAreas(cluster, {
        "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
        "areas": [
            {"cell": a.cell, "lat": round(a.lat, 5), "lng": round(a.lng, 5), "place": a.place,
             "count": len(a.pseudonyms), "pseudonyms": list(a.pseudonyms)}
            for a in areas
        ],
    }).add_to(world)
    return map_parts(world)
