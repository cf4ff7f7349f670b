/* geomap outlines: Natural Earth TopoJSON as GeoJSON Leaflet can draw.
 *
 * Rings that cross the antimeridian jump from +180 to -180; made continuous, Leaflet
 * no longer draws an edge around the whole world. Used by the world map, the admin
 * choropleth and the pin map of the member settings. */
(function () {
  "use strict";

  var geomap = (window.geomap = window.geomap || {});

  function unwrapRing(ring) {
    var prev = ring[0][0];
    var out = ring.map(function (point, i) {
      var lng = point[0];
      if (i > 0) {
        while (lng - prev > 180) lng -= 360;
        while (lng - prev < -180) lng += 360;
      }
      prev = lng;
      return [lng, point[1]];
    });
    if (Math.abs(out[0][0] - out[out.length - 1][0]) >= 1e-9) return ring;
    // Unwrapping follows the first vertex: a ring that starts in Chukotka would put
    // Afro-Eurasia 360° west. Shift the ring so that its middle lies in -180..180.
    var min = Infinity, max = -Infinity;
    out.forEach(function (p) { if (p[0] < min) min = p[0]; if (p[0] > max) max = p[0]; });
    var shift = -360 * Math.round((min + max) / 2 / 360);
    return shift ? out.map(function (p) { return [p[0] + shift, p[1]]; }) : out;
  }

  function shiftGeometry(geometry, by) {
    var move = function (ring) { return ring.map(function (p) { return [p[0] + by, p[1]]; }); };
    if (geometry.type === "Polygon") {
      return {type: "Polygon", coordinates: geometry.coordinates.map(move)};
    }
    return {type: "MultiPolygon", coordinates: geometry.coordinates.map(function (polygon) {
      return polygon.map(move);
    })};
  }

  // Returns the features repeated 360° west and east: Leaflet does not copy vector
  // layers into its world copies, so a view centred on 180° would show land on one side.
  geomap.worldCopies = function (collection) {
    var features = collection.type === "FeatureCollection" ? collection.features : [collection];
    var out = [];
    [-360, 0, 360].forEach(function (by) {
      features.forEach(function (f) {
        if (!f.geometry) return;
        out.push({type: "Feature", id: f.id, properties: f.properties || {},
                  geometry: by ? shiftGeometry(f.geometry, by) : f.geometry});
      });
    });
    return {type: "FeatureCollection", features: out};
  };

  function unwrapGeometry(geometry) {
    if (geometry.type === "Polygon") {
      geometry.coordinates = geometry.coordinates.map(unwrapRing);
    } else if (geometry.type === "MultiPolygon") {
      geometry.coordinates = geometry.coordinates.map(function (polygon) {
        return polygon.map(unwrapRing);
      });
    }
  }

  // The map's credit line: what it is drawn with and from, in one short line (no
  // prefix: Leaflet's default adds a flag, and on a phone the line must leave room for
  // the scale bar). ``sources``: extra credits, e.g. "GeoNames".
  geomap.credits = function (map, sources) {
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution(
      ['<a href="https://leafletjs.com/">Leaflet</a>'].concat(sources || [], ["Natural Earth"])
        .join(" \u00b7 "));
  };

  // Returns the FeatureCollection of ``topo.objects[name]`` with continuous rings.
  geomap.outlineFeatures = function (topo, name) {
    var collection = topojson.feature(topo, topo.objects[name]);
    var features = collection.type === "FeatureCollection" ? collection.features : [collection];
    features.forEach(function (f) {
      if (f.geometry) unwrapGeometry(f.geometry);
    });
    return collection;
  };
})();
