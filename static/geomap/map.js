/* geomap world map: country outlines and viewport-loaded published cells.
 *
 * Markers come from the cells API (published, k-anonymous cells only). Labels are
 * numbers set with textContent; no member text is ever handled here. */
(function () {
  "use strict";

  var geomap = (window.geomap = window.geomap || {});
  var MERCATOR_LAT = 85.0;

  function formatCount(n) {
    return geomap.formatNumber(n);
  }

  // Circle sizes by count; the legend on the map page lists the same steps.
  geomap.sizeSteps = [[10, 30], [100, 36], [1000, 42], [10000, 50], [Infinity, 58]];

  function iconSize(count) {
    for (var i = 0; i < geomap.sizeSteps.length; i++) {
      if (count < geomap.sizeSteps[i][0]) return geomap.sizeSteps[i][1];
    }
    return 58;
  }

  function members(count) {
    return geomap.tn("map.members", count);
  }

  // The visible number is hidden from screen readers; a full sentence names the marker.
  function countIcon(count, extraClass, name) {
    var size = iconSize(count);
    var el = document.createElement("div");
    var span = document.createElement("span");
    span.textContent = formatCount(count);
    span.setAttribute("aria-hidden", "true");
    el.appendChild(span);
    var label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = name;
    el.appendChild(label);
    return L.divIcon({
      html: el.outerHTML,
      className: "geomap-count " + extraClass,
      iconSize: L.point(size, size),
    });
  }

  geomap.countIcon = countIcon;

  geomap.clusterIcon = function (cluster) {
    var total = 0;
    var areas = cluster.getAllChildMarkers();
    areas.forEach(function (marker) {
      total += marker.options.count;
    });
    return countIcon(total, "geomap-cluster",
                     geomap.tn("map.cluster", areas.length, {members: members(total)}));
  };

  // An area's label in the page's language: the place (GeoNames' name) and the country
  // named by the browser's CLDR data (Intl.DisplayNames); the English label where the
  // browser cannot name the country.
  var regionNames = null;
  function countryName(code) {
    if (regionNames === null) {
      try { regionNames = new Intl.DisplayNames([document.documentElement.lang || "en"],
                                                {type: "region"}); }
      catch (e) { regionNames = false; }
    }
    try { return regionNames && code ? regionNames.of(code) : null; } catch (e) { return null; }
  }
  function areaName(p) {
    var country = countryName(p.country_code);
    if (!country || country === p.country_code) return p.label ? geomap.isolate(p.label) : "";
    if (!p.place) return geomap.t("map.country_area", {country: country});
    return geomap.t("map.place_area", {place: geomap.isolate(p.place), country: country});
  }

  // Popup of one area: count, label and a call to join, built with textContent only.
  function areaPopup(count, label, options) {
    var box = document.createElement("div");
    box.className = "geomap-popup";
    var strong = document.createElement("strong");
    strong.textContent = members(count);
    box.appendChild(strong);
    var place = document.createElement("p");
    place.textContent = label ? geomap.t("map.area", {place: label})
                              : geomap.t("map.area_unnamed");
    box.appendChild(place);
    if (options.joinUrl) {
      var join = document.createElement("a");
      join.href = options.joinUrl;
      join.className = "geomap-join";
      join.textContent = geomap.t("map.join");
      if (options.joinTarget) {  // the embed: leave the frame, keep the host page
        join.target = options.joinTarget;
        join.rel = "noopener";
        var note = document.createElement("span");
        note.className = "geomap-visually-hidden";
        note.textContent = geomap.t("map.new_tab");
        join.appendChild(note);
      }
      box.appendChild(join);
    }
    return box;
  }

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

  // Reading and drawing the outlines takes the main thread for a few hundred ms: the
  // file is requested at once, but its JSON is parsed (tens of MB of small arrays, and
  // the garbage collections they cause) and drawn only once the first markers
  // (``markersShown``) are on screen, so markers appear first. Resolves when the
  // outlines are drawn (or failed).
  function loadOutlines(map, url, markersShown) {
    map.createPane("outlines");
    map.getPane("outlines").style.zIndex = 250;
    var response = fetch(url);
    return Promise.all([response, markersShown.then(afterNextPaint)])
      .then(function (results) { return results[0].json(); })
      .then(function (topo) {
        var countries = geomap.worldCopies(geomap.outlineFeatures(topo, "countries"));
        return L.geoJSON(countries, {
          pane: "outlines",
          interactive: false,
          style: OUTLINE_STYLE,
        }).addTo(map);
      })
      .catch(function () {});
  }

  // Resolves after the browser has painted the next frame. A promise continuation
  // alone runs before the frame is rendered, so work chained to it would hold back
  // the paint of what was just added; a task queued from requestAnimationFrame runs
  // after that frame.
  function afterNextPaint() {
    return new Promise(function (resolve) {
      requestAnimationFrame(function () { setTimeout(resolve, 0); });
    });
  }

  var OUTLINE_STYLE = { color: "#a9a294", weight: 0.7, fillColor: "#f7f4ec", fillOpacity: 1 };

  // ---- Deep zoom: finer outlines and place labels ------------------------------
  // From DETAIL_ZOOM on, Natural Earth 1:10m outlines replace the 1:50m ones (fetched
  // the first time the map is zoomed in, so the first paint stays light) and the most
  // populous gazetteer places of the view are written on the map. Both come from us.
  var DETAIL_ZOOM = 5;
  var NEAR_180 = 150;

  function reaches180(feature) {
    var far = false;
    (function walk(c) {
      if (far) return;
      if (typeof c[0] === "number") { if (Math.abs(c[0]) > NEAR_180) far = true; return; }
      c.forEach(walk);
    })(feature.geometry.coordinates);
    return far;
  }

  // The features once, plus copies 360° west and east of those that reach near 180°
  // (copying every 1:10m feature would triple the work of each zoom for nothing).
  function detailCopies(collection) {
    var near = collection.features.filter(function (f) { return f.geometry && reaches180(f); });
    var copies = geomap.worldCopies({ type: "FeatureCollection", features: near }).features;
    var n = near.length;
    return { type: "FeatureCollection",
             features: collection.features.concat(copies.slice(0, n), copies.slice(2 * n)) };
  }

  function featureBounds(feature) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    (function walk(c) {
      if (typeof c[0] === "number") {
        if (c[0] < b[0]) b[0] = c[0];
        if (c[1] < b[1]) b[1] = c[1];
        if (c[0] > b[2]) b[2] = c[0];
        if (c[1] > b[3]) b[3] = c[1];
        return;
      }
      c.forEach(walk);
    })(feature.geometry.coordinates);
    return L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  }

  // Only the 1:10m features near the view are on the map (Leaflet projects every
  // point of every layer it holds at each zoom): each feature's layer is made the
  // first time the view comes near it, and taken off when the view leaves.
  function attachDetailOutlines(map, url, coarseDrawn) {
    var container = map.getContainer();
    var detail = null;  // [{bounds, feature, layer}]
    var loading = null;
    function showNear() {
      var near = map.getBounds().pad(0.5);
      detail.forEach(function (item) {
        var wanted = near.intersects(item.bounds);
        if (wanted && !item.layer) {
          item.layer = L.geoJSON(item.feature, {
            pane: "outlines", interactive: false, style: OUTLINE_STYLE,
          });
        }
        if (!item.layer) return;
        if (wanted && !map.hasLayer(item.layer)) item.layer.addTo(map);
        if (!wanted && map.hasLayer(item.layer)) map.removeLayer(item.layer);
      });
    }
    function hideAll() {
      detail.forEach(function (item) {
        if (item.layer && map.hasLayer(item.layer)) map.removeLayer(item.layer);
      });
    }
    function update() {
      var deep = map.getZoom() >= DETAIL_ZOOM;
      if (deep && !loading) {
        loading = fetch(url)
          .then(function (r) { return r.json(); })
          .then(function (topo) {
            var features = detailCopies(geomap.outlineFeatures(topo, "countries")).features;
            detail = features.filter(function (f) { return f.geometry; }).map(function (f) {
              return { bounds: featureBounds(f), feature: f, layer: null };
            });
            update();
          })
          .catch(function () {});
      }
      coarseDrawn.then(function (coarse) {
        if (!detail) return;
        if (deep) {
          showNear();
          if (coarse && map.hasLayer(coarse)) map.removeLayer(coarse);
        } else {
          if (coarse && !map.hasLayer(coarse)) coarse.addTo(map);
          hideAll();
        }
        container.dataset.outlineScale = deep ? "10m" : "50m";
      });
    }
    map.on("moveend", update);
    update();
  }

  function labelRect(map, label, lng) {
    var point = map.latLngToContainerPoint([label.lat, lng]);
    var width = label.name.length * 7 + 8;
    return [point.x - width / 2, point.y - 9, point.x + width / 2, point.y + 9];
  }

  function overlaps(a, b) {
    return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  }

  // Labels arrive most populous first; a label that would overlap one already placed
  // is left out. Names are set with textContent; the labels are hidden from screen
  // readers (the markers carry the sentences that matter).
  function attachPlaceLabels(map, url) {
    var container = map.getContainer();
    map.createPane("placeLabels");
    map.getPane("placeLabels").style.zIndex = 450;
    map.getPane("placeLabels").style.pointerEvents = "none";
    var layer = L.layerGroup().addTo(map);
    var lastKey = null;
    var pending = null;
    function place(labels) {
      layer.clearLayers();
      var centre = map.getCenter().lng;
      var taken = [];
      labels.forEach(function (label) {
        var lng = label.lng + 360 * Math.round((centre - label.lng) / 360);
        var rect = labelRect(map, label, lng);
        if (taken.some(function (other) { return overlaps(rect, other); })) return;
        taken.push(rect);
        var text = document.createElement("span");
        text.textContent = label.name;
        text.setAttribute("aria-hidden", "true");
        L.marker([label.lat, lng], {
          pane: "placeLabels", interactive: false, keyboard: false,
          icon: L.divIcon({ className: "geomap-place-label", html: text.outerHTML,
                            iconSize: null }),
        }).addTo(layer);
      });
      container.dataset.placeLabels = String(taken.length);
      container.dispatchEvent(new CustomEvent("geomap:labels"));
    }
    function refresh() {
      var zoom = map.getZoom();
      if (zoom < DETAIL_ZOOM) {
        layer.clearLayers();
        lastKey = null;
        container.dataset.placeLabels = "0";
        return;
      }
      var box = requestBox(map);
      var key = zoom + "/" + box.join(",");
      if (key === lastKey) return;
      lastKey = key;
      if (pending) pending.abort();
      pending = new AbortController();
      fetch(url + "?zoom=" + zoom + "&bbox=" + box.join(","), { signal: pending.signal })
        .then(function (r) {
          if (!r.ok) throw new Error("labels:" + r.status);  // a code for tests, never shown
          return r.json();
        })
        .then(function (body) { place(body.labels); })
        .catch(function (err) { if (err.name !== "AbortError") lastKey = null; });
    }
    map.on("moveend", refresh);
    refresh();
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
      if (options.detailUrl) attachDetailOutlines(map, options.detailUrl, outlinesDrawn);
      if (options.labelsUrl) attachPlaceLabels(map, options.labelsUrl);
    }
    geomap.credits(map, ["GeoNames"]);
    var lastKey = null;
    var pending = null;
    var shown = {};  // the markers on the map, by zoom, place, count and name

    // The XYZ tiles (256 px, Web Mercator) covering the view at ``zoom``, one row of
    // padding around it; x wraps around the world, y stops at the poles.
    function viewTiles(zoom) {
      var n = Math.pow(2, zoom);
      var bounds = map.getPixelBounds();
      var x0 = Math.floor(bounds.min.x / 256) - 1, x1 = Math.floor(bounds.max.x / 256) + 1;
      var y0 = Math.max(0, Math.floor(bounds.min.y / 256) - 1);
      var y1 = Math.min(n - 1, Math.floor(bounds.max.y / 256) + 1);
      var rows = [];
      for (var y = y0; y <= y1; y++) rows.push(y);
      // Polar cells are drawn at ±MERCATOR_LAT: a view reaching that latitude needs
      // the edge row of tiles too (its outer edge is the pole), however deep the zoom.
      var view = map.getBounds();
      if (view.getNorth() >= MERCATOR_LAT && y0 > 0) rows.unshift(0);
      if (view.getSouth() <= -MERCATOR_LAT && y1 < n - 1) rows.push(n - 1);
      var seen = {};
      var tiles = [];
      for (var x = x0; x <= x1 && tiles.length < 4 * n * n; x++) {
        var wx = ((x % n) + n) % n;
        if (seen[wx]) continue;
        seen[wx] = true;
        rows.forEach(function (row) { tiles.push([zoom, wx, row]); });
      }
      return tiles;
    }

    function getJSON(url, signal) {
      return fetch(url, { signal: signal }).then(function (r) {
        if (!r.ok) throw new Error("tiles:" + r.status);  // a code for tests, never shown
        return r.json();
      });
    }

    // Markers of the view: from version-stamped tiles (any HTTP cache may keep them;
    // the short-lived version document says which version is current), or from the
    // cells API for a box when the page gives no version URL.
    function loadMarkers(zoom, signal) {
      if (!options.versionUrl) {
        var box = requestBox(map);
        return getJSON(options.cellsUrl + "?zoom=" + zoom + "&bbox=" + box.join(","), signal)
          .then(function (collection) {
            return { features: collection.features, total: collection.properties.total };
          });
      }
      return getJSON(options.versionUrl, signal).then(function (version) {
        var urls = viewTiles(zoom).map(function (t) {
          return version.tiles.replace("{z}", t[0]).replace("{x}", t[1]).replace("{y}", t[2]);
        });
        return Promise.all(urls.map(function (u) { return getJSON(u, signal); }));
      }).then(function (collections) {
        var features = [];
        collections.forEach(function (c) { features = features.concat(c.features); });
        return { features: features, total: collections[0].properties.total };
      });
    }

    function refresh() {
      var zoom = map.getZoom();
      var key = options.versionUrl ? zoom + "/" + viewTiles(zoom).join(";")
                                   : zoom + "/" + requestBox(map).join(",");
      if (key === lastKey) return;
      lastKey = key;
      if (pending) pending.abort();
      pending = new AbortController();
      loadMarkers(zoom, pending.signal)
        .then(function (collection) {
          // Each marker goes to the world copy nearest the view's centre (a view
          // centred on 180° shows the cells on both sides), and polar cells to the
          // edge of the Mercator plane.
          var centre = map.getCenter().lng;
          // Markers already on the map for the same area stay (with any popup open
          // on them: a popup's own pan to fit the view must not close it); only those
          // that left the view go and only new ones are added.
          var next = {};
          var added = [];
          collection.features.forEach(function (f) {
            var c = f.geometry.coordinates;
            var count = f.properties.count;
            var label = areaName(f.properties);
            var name = label ? geomap.t("map.marker", {members: members(count), place: label})
                             : members(count);
            var lng = c[0] + 360 * Math.round((centre - c[0]) / 360);
            var lat = Math.max(-MERCATOR_LAT, Math.min(MERCATOR_LAT, c[1]));
            var id = [zoom, lat, lng, count, name].join("|");
            while (next[id]) id += "+";
            var marker = shown[id];
            if (!marker) {
              marker = L.marker([lat, lng], {
                icon: countIcon(count, "geomap-cell", name),
                count: count,
                keyboard: true,
              });
              marker.bindPopup(function () { return areaPopup(count, label, options); });
              added.push(marker);
            }
            next[id] = marker;
          });
          if (added.length === collection.features.length) {
            cluster.clearLayers();  // nothing stays (a new zoom): one sweep
          } else {
            cluster.removeLayers(Object.keys(shown).filter(function (id) { return !next[id]; })
              .map(function (id) { return shown[id]; }));
          }
          cluster.addLayers(added);
          shown = next;
          firstMarkersShown();
          // "loaded" means markers and outlines, so tests and pages can rely on both.
          return outlinesDrawn.then(function () {
            container.dataset.publishedTotal = collection.total;
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
