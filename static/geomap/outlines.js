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
    return Math.abs(out[0][0] - out[out.length - 1][0]) < 1e-9 ? out : ring;
  }

  function unwrapGeometry(geometry) {
    if (geometry.type === "Polygon") {
      geometry.coordinates = geometry.coordinates.map(unwrapRing);
    } else if (geometry.type === "MultiPolygon") {
      geometry.coordinates = geometry.coordinates.map(function (polygon) {
        return polygon.map(unwrapRing);
      });
    }
  }

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
