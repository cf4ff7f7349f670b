/* geomap world map: country outlines and viewport-loaded published cells.
 *
 * Markers come from the cells API (published, k-anonymous cells only). Labels are
 * numbers set with textContent; no member text is ever handled here. */
(function () {
  "use strict";

  var geomap = (window.geomap = window.geomap || {});
  var MERCATOR_LAT = 85.0;

  function formatCount(n) {
    return n.toLocaleString("en-US");
  }

  function countIcon(count, extraClass) {
    var size = count < 10 ? 30 : count < 100 ? 36 : count < 1000 ? 42 : count < 10000 ? 50 : 58;
    var el = document.createElement("div");
    var span = document.createElement("span");
    span.textContent = formatCount(count);
    el.appendChild(span);
    return L.divIcon({
      html: el.outerHTML,
      className: "geomap-count " + extraClass,
      iconSize: L.point(size, size),
    });
  }

  geomap.clusterIcon = function (cluster) {
    var total = 0;
    cluster.getAllChildMarkers().forEach(function (marker) {
      total += marker.options.count;
    });
    return countIcon(total, "geomap-cluster");
  };

  // Tile-aligned, padded box so nearby viewports share one cached API answer.
  function requestBox(map) {
    var zoom = map.getZoom();
    var step = 360 / Math.pow(2, Math.max(zoom - 1, 0));
    var b = map.getBounds();
    var west = Math.floor(b.getWest() / step) * step;
    var east = Math.ceil(b.getEast() / step) * step;
    var south = Math.max(-90, Math.floor(b.getSouth() / step) * step);
    var north = Math.min(90, Math.ceil(b.getNorth() / step) * step);
    // Web Mercator stops at ±85.05°: a view touching that edge asks for the cap too,
    // so polar cells are requested (and drawn at the edge) at every zoom.
    if (b.getNorth() >= 84) north = 90;
    if (b.getSouth() <= -84) south = -90;
    if (east - west >= 360) {
      west = -180;
      east = 180;
    }
    return [west, south, east, north].map(function (v) {
      return Math.round(v * 1e6) / 1e6;
    });
  }

  // Drawing the outlines takes the main thread for a few hundred ms: the file is
  // fetched at once but drawn only after the first markers (``markersShown``), so
  // markers appear first. Resolves when the outlines are drawn (or failed).
  function loadOutlines(map, url, markersShown) {
    map.createPane("outlines");
    map.getPane("outlines").style.zIndex = 250;
    var topology = fetch(url).then(function (r) { return r.json(); });
    return Promise.all([topology, markersShown])
      .then(function (results) {
        var topo = results[0];
        var countries = geomap.worldCopies(geomap.outlineFeatures(topo, "countries"));
        L.geoJSON(countries, {
          pane: "outlines",
          interactive: false,
          style: { color: "#a9a294", weight: 0.7, fillColor: "#f7f4ec", fillOpacity: 1 },
        }).addTo(map);
      })
      .catch(function () {});
  }

  geomap.attach = function (map, cluster, options) {
    var container = map.getContainer();
    container.classList.add("geomap-map");
    var firstMarkersShown;
    var markersShown = new Promise(function (resolve) { firstMarkersShown = resolve; });
    var outlinesDrawn = Promise.resolve();
    if (options.outlines) {
      container.classList.add("geomap-no-tiles");
      outlinesDrawn = loadOutlines(map, options.countriesUrl, markersShown);
    }
    map.attributionControl.addAttribution(
      "Places &copy; GeoNames (CC BY 4.0) &middot; Outlines: Natural Earth"
    );
    var lastKey = null;
    var pending = null;

    function refresh() {
      var zoom = map.getZoom();
      var box = requestBox(map);
      var key = zoom + "/" + box.join(",");
      if (key === lastKey) return;
      lastKey = key;
      if (pending) pending.abort();
      pending = new AbortController();
      var url = options.cellsUrl + "?zoom=" + zoom + "&bbox=" + box.join(",");
      fetch(url, { signal: pending.signal })
        .then(function (r) {
          if (!r.ok) throw new Error("cells " + r.status);
          return r.json();
        })
        .then(function (collection) {
          // Each marker goes to the world copy nearest the view's centre (a view
          // centred on 180° shows the cells on both sides), and polar cells to the
          // edge of the Mercator plane.
          var centre = map.getCenter().lng;
          var markers = collection.features.map(function (f) {
            var c = f.geometry.coordinates;
            var count = f.properties.count;
            var lng = c[0] + 360 * Math.round((centre - c[0]) / 360);
            var lat = Math.max(-MERCATOR_LAT, Math.min(MERCATOR_LAT, c[1]));
            return L.marker([lat, lng], {
              icon: countIcon(count, "geomap-cell"),
              count: count,
              keyboard: false,
            });
          });
          cluster.clearLayers();
          cluster.addLayers(markers);
          firstMarkersShown();
          // "loaded" means markers and outlines, so tests and pages can rely on both.
          return outlinesDrawn.then(function () {
            container.dataset.publishedTotal = collection.properties.total;
            container.dataset.loadedZoom = zoom;
            container.dispatchEvent(new CustomEvent("geomap:loaded"));
          });
        })
        .catch(function (err) {
          firstMarkersShown();
          if (err.name !== "AbortError") {
            lastKey = null;
            container.dataset.error = String(err.message);
          }
        });
    }

    map.on("moveend", refresh);
    refresh();
  };
})();
