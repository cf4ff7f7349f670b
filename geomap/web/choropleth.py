"""A country choropleth for admins, built with folium from our own assets.

The page gets the counts per country (ISO numeric codes, as in world-atlas) and our
``static/geomap/choropleth.js`` colours the country outlines we serve. Element ids
are fixed so the same counts always give the same bytes.
"""

from __future__ import annotations

import folium
from branca.element import MacroElement
from flask import url_for
from jinja2 import Template
from markupsafe import Markup

from geomap.web.maps import MapParts


class CountryCounts(MacroElement):
    """Colours the countries of the map by member count."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        geomap.choropleth({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, options: dict) -> None:
        """Draw the counts in ``options`` over the outlines at ``options['countriesUrl']``."""
        super().__init__()
        self._name = "CountryCounts"
        self._id = "counts"
        self.options = options


def country_choropleth(counts: dict[str, int], height: str = "420px") -> MapParts:
    """Return a world map with countries coloured by ``counts`` (ISO numeric → members)."""
    world = folium.Map(location=[25.0, 10.0], zoom_start=1, tiles=None, min_zoom=1,
                       max_zoom=6, height=height, world_copy_jump=False, max_bounds=True)
    world._id = "choropleth"
    world.options.update(minZoom=1, maxZoom=6)
    world.default_js = [
        ("leaflet", url_for("static", filename="vendor/leaflet/leaflet.js")),
        ("topojson", url_for("static", filename="vendor/topojson-client.min.js")),
        ("geomap_outlines", url_for("static", filename="geomap/outlines.js")),
        ("choropleth", url_for("static", filename="geomap/choropleth.js")),
    ]
    world.default_css = [
        ("leaflet_css", url_for("static", filename="vendor/leaflet/leaflet.css")),
        ("geomap_css", url_for("static", filename="geomap/map.css")),
    ]
    CountryCounts(
        {
            "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
            "counts": counts,
        }
    ).add_to(world)
    figure = world.get_root()
    figure.render()
    # folium's output is built from our own options and admin counts (numbers) only.
    return MapParts(
        head=Markup(figure.header.render()),  # noqa: S704
        body=Markup(figure.html.render()),  # noqa: S704
        script=Markup(figure.script.render()),  # noqa: S704
    )
