"""Building the world map: Leaflet and an empty Leaflet.markercluster group, no markers.

The page holds the Leaflet map, an empty Leaflet.markercluster group and our
``static/geomap/map.js``, which loads the published cells of the current viewport
from the cells API. The markup is the one folium generates for the same map, written
out in ``templates/leaflet_map.html`` and ``leaflet_map.js``: web workers do not import
folium (and its branca, requests and xyzservices) to serve a page. Element ids are
fixed so the same question always gets the same bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from flask import current_app, get_template_attribute, url_for
from markupsafe import Markup
from sqlalchemy.orm import Session

from geomap.geo.places import gazetteer_points
from geomap.privacy import MAX_ZOOM, RESOLUTION_BY_ZOOM
from geomap.web.security import OSM_TILES, tile_url

# The whole world: a map that does not jump between world copies stays within it.
WORLD_BOUNDS = [[-90, -180], [90, 180]]


@dataclass(frozen=True)
class MapParts:
    """The pieces of a rendered map to place in a page."""

    head: Markup
    body: Markup
    script: Markup


@dataclass(frozen=True)
class TileLayer:
    """A raster tile layer under the map: URL template with ``{z}/{x}/{y}``, attribution HTML."""

    url: str
    attribution: str
    layer_id: str = "tiles"
    max_zoom: int = 19

    @property
    def options(self) -> dict:
        """Return Leaflet's ``L.tileLayer`` options (folium's defaults for a TileLayer)."""
        return {"minZoom": 0, "maxZoom": self.max_zoom, "maxNativeZoom": self.max_zoom,
                "noWrap": False, "attribution": self.attribution, "subdomains": "abc",
                "detectRetina": False, "tms": False, "opacity": 1}


@dataclass(frozen=True)
class ClusterGroup:
    """An empty Leaflet.markercluster group whose icons sum member counts (geomap.clusterIcon).

    ``radius`` is markercluster's maxClusterRadius in pixels.
    """

    cluster_id: str
    radius: int

    @property
    def options(self) -> dict:
        """Return ``L.markerClusterGroup``'s options."""
        return {"showCoverageOnHover": False, "maxClusterRadius": self.radius}


@dataclass
class LeafletMap:
    """A Leaflet map of the world as a page shows it, rendered by :func:`map_parts`.

    ``height`` is a CSS length ("100%", "420px"). ``call`` names the function of our
    map scripts that takes over (``geomap.attach``, ``geomap.choropleth`` ...): it gets
    the map, the cluster group (if any) and ``call_options`` (JSON).
    """

    map_id: str
    center: tuple[float, float]
    zoom: int
    max_zoom: int
    height: str
    world_copies: bool = False
    control_scale: bool = False
    scripts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    late_styles: list[str] = field(default_factory=list)
    tile_layer: TileLayer | None = None
    cluster: ClusterGroup | None = None
    call: str = ""
    call_options: dict = field(default_factory=dict)

    @property
    def options(self) -> dict:
        """Return ``L.map``'s options."""
        options = {"center": list(self.center), "zoom": min(self.zoom, self.max_zoom),
                   "zoomControl": True, "preferCanvas": False,
                   "worldCopyJump": self.world_copies, "minZoom": 1, "maxZoom": self.max_zoom}
        if not self.world_copies:
            options["maxBounds"] = WORLD_BOUNDS
        return options


WHOLE_WORLD_ZOOM = 2  # up to this zoom, every map view asks for every tile of its zoom


def first_fetch_urls(slug: str, zoom: int, version: int | None = None) -> list[str]:
    """Return the URLs a map opening at ``zoom`` fetches first, to preload.

    The tiles' version document, and when ``version`` (the current publish version)
    is given and ``zoom`` is at most :data:`WHOLE_WORLD_ZOOM`, every tile of that zoom
    at that version: ``static/geomap/map.js`` asks for the view's tiles with one tile
    of padding around it, which at zoom 2 (a 1,024-px world) is all 16 for any map
    wider than 256 px, so the markers' data arrives while the scripts load. The tile
    URLs are the ones map.js builds from the version document's template.
    """
    urls = [url_for("api.tiles_version", slug=slug)]
    if version and zoom <= WHOLE_WORLD_ZOOM:
        side = 2 ** max(zoom, 0)
        urls += [url_for("tiles.tile", slug=slug, version=version, zoom=zoom, x=x, y=y)
                 for x in range(side) for y in range(side)]
    return urls


def cluster_assets(extra_js: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Return (scripts, stylesheets) a map with a cluster group needs after Leaflet's.

    ``extra_js`` lists further script URLs the page needs after map.js.
    """
    scripts = [
        url_for("static", filename="vendor/markercluster/leaflet.markercluster.js"),
        url_for("static", filename="vendor/topojson-client.min.js"),
        url_for("static", filename="geomap/outlines.js"),
        url_for("static", filename="geomap/map.js"),
        *extra_js,
    ]
    return scripts, [url_for("static", filename="vendor/markercluster/MarkerCluster.css")]


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
    import numpy as np  # the admin choropleth's, not every page's

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
              height: str, world_copies: bool = False, control_scale: bool = False,
              extra_js: tuple[str, ...] = (), cluster: ClusterGroup | None = None,
              cluster_js: tuple[str, ...] = ()) -> LeafletMap:
    """Return a map with no tiles, a fixed element id and Leaflet from our static/.

    With ``world_copies`` the map may be centred anywhere, 180° included (Fiji, the
    Bering Strait): no bounds, and the view jumps between world copies. ``extra_js``
    are scripts right after Leaflet's; with a ``cluster`` group come markercluster,
    our map scripts and then ``cluster_js``.
    """
    scripts = [url_for("static", filename="vendor/leaflet/leaflet.js"), *extra_js]
    late_styles: list[str] = []
    if cluster is not None:
        more_js, late_styles = cluster_assets(cluster_js)
        scripts += more_js
    return LeafletMap(
        map_id=map_id, center=center, zoom=zoom, max_zoom=max_zoom, height=height,
        world_copies=world_copies, control_scale=control_scale, scripts=scripts,
        styles=[url_for("static", filename="vendor/leaflet/leaflet.css"),
                url_for("static", filename="geomap/map.css")],
        late_styles=late_styles, cluster=cluster,
    )


def map_parts(world: LeafletMap) -> MapParts:
    """Render ``world`` (templates/leaflet_map.html and .js): its head, body and script."""
    # Built from our own options and published or admin numbers only; JSON through
    # tojson (HTML-safe), ids and function names are our constants.
    return MapParts(
        head=Markup(get_template_attribute("leaflet_map.html", "head")(world)),  # noqa: S704
        body=Markup(get_template_attribute("leaflet_map.html", "body")(world)),  # noqa: S704
        script=Markup(get_template_attribute("leaflet_map.js", "script")(world)),  # noqa: S704
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
                      control_scale=True, world_copies=True,
                      cluster=ClusterGroup("markers", 60))
    url = tile_url(tiles)
    if url:
        attribution = (
            '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> '
            "contributors"
            if url == OSM_TILES
            else Markup.escape(tiles_attribution or "Map tiles")
        )
        world.tile_layer = TileLayer(url, str(attribution))
    world.call = "geomap.attach"
    world.call_options = {
        "cellsUrl": url_for("api.cells", slug=slug),
        "versionUrl": url_for("api.tiles_version", slug=slug),
        "countriesUrl": url_for("static", filename="vendor/world-atlas/countries-50m.json"),
        # Deep zoom: 1:10m outlines and gazetteer place labels (static/geomap/map.js).
        "detailUrl": url_for("static", filename="vendor/world-atlas/countries-10m.json"),
        "labelsUrl": url_for("api.place_labels"),
        "outlines": url is None,
        "joinUrl": join_url,
        "joinTarget": join_target,
    }
    return map_parts(world)
