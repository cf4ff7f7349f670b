"""Building the world map with folium, from our own assets and without any markers.

The page holds the Leaflet map, an empty Leaflet.markercluster group and our
``static/geomap/map.js``, which loads the published cells of the current viewport
from the cells API. Element ids are fixed (folium would draw random ones) so the
same question always gets the same bytes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import folium
import numpy as np
from branca.element import MacroElement
from flask import current_app, url_for
from folium.plugins import MarkerCluster
from jinja2 import Template
from markupsafe import Markup
from sqlalchemy.orm import Session

from geomap.geo.places import gazetteer_points
from geomap.privacy import MAX_ZOOM, RESOLUTION_BY_ZOOM
from geomap.web.security import OSM_TILES, tile_url

# Sums the member counts of the markers in a cluster; counts are numbers we publish,
# and the label is set with textContent (no member text ever reaches this code).
CLUSTER_ICON = """function (cluster) {
    return geomap.clusterIcon(cluster);
}"""


@dataclass(frozen=True)
class MapParts:
    """The pieces of a rendered map to place in a page."""

    head: Markup
    body: Markup
    script: Markup


def first_viewport_url(slug: str, zoom: int) -> str | None:
    """Return the URL the map fetches first (the tiles' version document), to preload."""
    return url_for("api.tiles_version", slug=slug)


class ClusterScript(MacroElement):
    """Calls one of geomap's map scripts with the map, its cluster group and ``options``."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        {{ this.function }}({{ this._parent.get_name() }}, {{ this.cluster.get_name() }},
                      {{ this.options|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, function: str, name: str, element_id: str, cluster: MarkerCluster,
                 options: dict) -> None:
        """Call the JS ``function`` (e.g. ``geomap.attach``) as element ``name``_``element_id``."""
        super().__init__()
        self._name = name
        self._id = element_id
        self.function = function
        self.cluster = cluster
        self.options = options


def local_cluster(element_id: str, radius: int, extra_js: tuple = ()) -> MarkerCluster:
    """Return a MarkerCluster with our own assets, the summing icon and a fixed id.

    ``radius`` is markercluster's maxClusterRadius in pixels; ``extra_js`` lists further
    (name, URL) scripts the page needs after map.js.
    """
    cluster = MarkerCluster(
        icon_create_function=CLUSTER_ICON,
        options={"showCoverageOnHover": False, "maxClusterRadius": radius},
    )
    cluster._id = element_id
    cluster.default_js = [
        ("markercluster",
         url_for("static", filename="vendor/markercluster/leaflet.markercluster.js")),
        ("topojson", url_for("static", filename="vendor/topojson-client.min.js")),
        ("geomap_outlines", url_for("static", filename="geomap/outlines.js")),
        ("geomap", url_for("static", filename="geomap/map.js")),
        *extra_js,
    ]
    cluster.default_css = [
        ("markercluster_css", url_for("static", filename="vendor/markercluster/MarkerCluster.css")),
    ]
    return cluster


@lru_cache(maxsize=1)
def feature_codes() -> dict[str, str]:
    """Return {world-atlas feature id (or name, for features without one): alpha-2 code}.

    The same codes as the counts (:func:`geomap.geo.reference.country_code`), so the
    choropleth shows Kosovo (XK), Northern Cyprus and Somaliland.
    """
    from geomap.geo.reference import countries_geojson_path, country_code

    codes = {}
    for feature in json.loads(countries_geojson_path().read_text())["features"]:
        code = country_code(feature)
        key = feature.get("id")
        key = str(key) if key is not None else feature.get("properties", {}).get("name")
        if code and key:
            codes[key] = code
    return codes


_territory_parts: dict[str, dict[str, dict[str, str]]] = {}


def territory_parts(session: Session) -> dict[str, dict[str, str]]:
    """Return {feature key: {polygon index: alpha-2 code}} of territories inside outlines.

    A polygon of a Natural Earth 1:50m outline most of whose gazetteer places carry
    another code is that territory's shape (French Guiana, Réunion … in France,
    Svalbard in Norway): we follow the gazetteer's country, as the counts do
    (docs/geography.md). Polygon indexes follow the outline's MultiPolygon, the same
    order ``topojson.feature`` gives the browser. Computed once per process and database.
    """
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    if key not in _territory_parts:
        _territory_parts[key] = _territory_parts_of(session)
    return _territory_parts[key]


def _territory_parts_of(session: Session) -> dict[str, dict[str, str]]:
    import shapely

    from geomap.geo.reference import countries_geojson_path

    polygons, owners = [], []
    for feature in json.loads(countries_geojson_path().read_text())["features"]:
        geometry = feature.get("geometry") or {}
        key = feature.get("id")
        key = str(key) if key is not None else feature.get("properties", {}).get("name")
        own = feature_codes().get(key or "")
        if geometry.get("type") != "MultiPolygon" or not own:
            continue
        for index, rings in enumerate(geometry["coordinates"]):
            polygon = shapely.Polygon(rings[0], rings[1:])
            if polygon.is_valid and polygon.bounds[2] - polygon.bounds[0] <= 180:
                # (rings across 180°, in Chukotka and Fiji, are never territories)
                polygons.append(polygon)
                owners.append((key, str(index), own))
    lats, lngs, codes, _ = gazetteer_points(session)
    place_idx, polygon_idx = shapely.STRtree(polygons).query(
        shapely.points(lngs, lats), predicate="within")
    votes: dict[int, Counter] = {}
    for place, polygon in zip(place_idx.tolist(), polygon_idx.tolist(), strict=True):
        votes.setdefault(polygon, Counter())[codes[place]] += 1
    parts: dict[str, dict[str, str]] = {}
    for polygon, counter in sorted(votes.items()):
        key, index, own = owners[polygon]
        code = min(counter.items(), key=lambda item: (-item[1], item[0]))[0]
        if code != own:
            parts.setdefault(key, {})[index] = code
    return parts


def territory_points(session: Session, counts: dict[str, int]) -> dict[str, list[float]]:
    """Return {code: [lat, lng]} of counted codes that no outline or territory draws.

    The point is the code's most populous gazetteer place (public GeoNames data).
    """
    drawn = set(feature_codes().values()) | {
        code for parts in territory_parts(session).values() for code in parts.values()}
    lats, lngs, codes, populations = gazetteer_points(session)
    out: dict[str, list[float]] = {}
    for code in sorted(set(counts) - drawn):
        rows = np.flatnonzero(codes == code)
        if len(rows):
            best = rows[np.argmax(populations[rows])]
            out[code] = [round(float(lats[best]), 3), round(float(lngs[best]), 3)]
    return out


def useful_max_zoom(floor: int) -> int:
    """Return the deepest zoom worth showing: two levels past where markers stop refining."""
    finest = next((zoom for zoom, res in enumerate(RESOLUTION_BY_ZOOM) if res >= floor),
                  MAX_ZOOM)
    return min(MAX_ZOOM, finest + 2)


def local_map(map_id: str, *, center: tuple[float, float], zoom: int, max_zoom: int,
              height: str, world_copies: bool = False, **options: object) -> folium.Map:
    """Return a folium map with no tiles, a fixed element id and Leaflet from our static/.

    With ``world_copies`` the map may be centred anywhere, 180° included (Fiji, the
    Bering Strait): no bounds, and the view jumps between world copies.
    """
    world = folium.Map(location=list(center), zoom_start=min(zoom, max_zoom), tiles=None,
                       min_zoom=1, max_zoom=max_zoom, height=height,
                       world_copy_jump=world_copies, max_bounds=not world_copies, **options)
    world._id = map_id
    # Without a tile layer Leaflet needs the zoom range on the map itself.
    world.options.update(minZoom=1, maxZoom=max_zoom)
    world.default_js = [("leaflet", url_for("static", filename="vendor/leaflet/leaflet.js"))]
    world.default_css = [
        ("leaflet_css", url_for("static", filename="vendor/leaflet/leaflet.css")),
        ("geomap_css", url_for("static", filename="geomap/map.css")),
    ]
    return world


# folium adds a second viewport tag that forbids pinch zoom; our pages have their own.
_FOLIUM_VIEWPORT = re.compile(r"<meta\s+name=\"viewport\"[^>]*>\s*", re.IGNORECASE)


def map_parts(world: folium.Map) -> MapParts:
    """Render ``world`` and return its head, body and script for a page."""
    figure = world.get_root()
    figure.render()
    head = _FOLIUM_VIEWPORT.sub("", figure.header.render())
    # folium's output is built from our own options and published or admin numbers only.
    return MapParts(
        head=Markup(head),  # noqa: S704
        body=Markup(figure.html.render()),  # noqa: S704
        script=Markup(figure.script.render()),  # noqa: S704
    )


def world_map(*, slug: str, tiles: str, tiles_attribution: str, center: tuple[float, float],
              zoom: int, height: str = "100%", join_url: str | None = None,
              join_target: str | None = None) -> MapParts:
    """Return the world map of condition ``slug``, loading its markers by viewport.

    ``join_url``: where each area's popup invites visitors to join (None: no invitation);
    ``join_target``: the link's target, ``"_blank"`` for the embed (None: same window).
    """
    max_zoom = useful_max_zoom(current_app.config["GEOMAP_FLOOR_RESOLUTION"])
    world = local_map("world", center=center, zoom=zoom, max_zoom=max_zoom, height=height,
                      control_scale=True, world_copies=True)
    url = tile_url(tiles)
    if url:
        attribution = (
            '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> '
            "contributors"
            if url == OSM_TILES
            else Markup.escape(tiles_attribution or "Map tiles")
        )
        layer = folium.TileLayer(tiles=url, attr=str(attribution), name="tiles", max_zoom=19)
        layer._id = "tiles"
        layer.add_to(world)
    cluster = local_cluster("markers", 60)
    cluster.add_to(world)
    ClusterScript(
        "geomap.attach", "ViewportLayer", "viewport", cluster,
        {
            "cellsUrl": url_for("api.cells", slug=slug),
            "versionUrl": url_for("api.tiles_version", slug=slug),
            "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
            # Deep zoom: 1:10m outlines and gazetteer place labels (static/geomap/map.js).
            "detailUrl": url_for("static", filename="vendor/world-atlas/countries-10m.json"),
            "labelsUrl": url_for("api.place_labels"),
            "outlines": url is None,
            "joinUrl": join_url,
            "joinTarget": join_target,
        },
    ).add_to(world)
    return map_parts(world)
