"""A country choropleth for admins, a Leaflet map from our own assets.

The page gets the counts per country by ISO 3166-1 alpha-2 code as GeoNames uses them
(the same codes as the counts: XK shows), a table from outline feature to code, and our
``static/geomap/choropleth.js`` colours the country outlines we serve. Territories with
a code of their own that the outlines merge into another country (French Guiana in
France) are drawn as their own polygons, and a counted code with no polygon at all
(a small island) as a dot at its most populous gazetteer place, so every count shows. Element ids
are fixed so the same counts always give the same bytes.
"""

from __future__ import annotations

from flask import url_for

from geomap.database import db
from geomap.regions.names import country_name
from geomap.web.maps import (
    MapParts,
    feature_codes,
    local_map,
    map_parts,
    territory_parts,
    territory_points,
)


def country_choropleth(counts: dict[str, int], height: str = "420px") -> MapParts:
    """Return a world map with countries coloured by ``counts`` (alpha-2 code → members)."""
    parts = territory_parts(db.session)
    points = territory_points(db.session, counts)
    world = local_map("choropleth", center=(25.0, 10.0), zoom=1, max_zoom=6, height=height,
                      extra_js=(url_for("static", filename="vendor/topojson-client.min.js"),
                                url_for("static", filename="geomap/outlines.js"),
                                url_for("static", filename="geomap/choropleth.js")))
    world.call = "geomap.choropleth"
    world.call_options = {
        "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
        "counts": counts,
        "featureCodes": feature_codes(),
        # Territories Natural Earth 1:50m merges into another outline (GF in France)
        # get their own polygons, and counted codes with no polygon at all a dot.
        "territoryParts": parts,
        "territoryPoints": points,
        "names": {code: country_name(code) for code in sorted(
            {c for p in parts.values() for c in p.values()} | set(points))},
    }
    return map_parts(world)
