/* Admin choropleth: our country outlines coloured by member counts (numbers only).
 * Country names come from the outlines file; tooltips are built with textContent. */
(function () {
  "use strict";

  var geomap = (window.geomap = window.geomap || {});
  var COLOURS = ["#f3e8f1", "#e2bfdc", "#c98bbf", "#a8579b", "#7a2a6e", "#4f1748"];

  function classBreaks(values) {
    var sorted = values.filter(function (v) { return v > 0; }).sort(function (a, b) { return a - b; });
    var breaks = [];
    for (var i = 1; i < COLOURS.length; i++) {
      breaks.push(sorted.length ? sorted[Math.floor((i / COLOURS.length) * (sorted.length - 1))] : 0);
    }
    return breaks;
  }

  function colour(count, breaks) {
    if (!count) return "#ffffff";
    var index = 0;
    while (index < breaks.length && count > breaks[index]) index++;
    return COLOURS[index];
  }

  function formatCount(n) { return geomap.formatNumber(n); }

  // A legend control: one swatch per colour class with its count range (textContent only).
  function addLegend(map, breaks) {
    var legend = L.control({ position: "bottomleft" });
    legend.onAdd = function () {
      var box = L.DomUtil.create("div", "choropleth-legend");
      var title = document.createElement("strong");
      title.textContent = geomap.t("choropleth.title");
      box.appendChild(title);
      var list = document.createElement("ul");
      var rows = [["#ffffff", geomap.t("choropleth.none")]];
      var low = 1;
      for (var i = 0; i < COLOURS.length; i++) {
        var high = i < breaks.length ? breaks[i] : null;
        if (high !== null && high < low) continue;
        var text = high === null ? geomap.t("choropleth.or_more", {count: formatCount(low)})
          : low === high ? formatCount(low)
          : geomap.t("choropleth.range", {low: formatCount(low), high: formatCount(high)});
        rows.push([COLOURS[i], text]);
        if (high === null) break;
        low = high + 1;
      }
      rows.forEach(function (row) {
        var item = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.className = "choropleth-swatch";
        swatch.style.background = row[0];
        swatch.setAttribute("aria-hidden", "true");
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(row[1]));
        list.appendChild(item);
      });
      box.appendChild(list);
      return box;
    };
    legend.addTo(map);
  }

  // Territories the outlines merge into another country (French Guiana in France) get
  // their own polygons, coloured by their own code (``options.territoryParts``: feature
  // key -> polygon index -> code, from the server, which follows the gazetteer).
  function withTerritories(collection, parts) {
    var out = [];
    collection.features.forEach(function (f) {
      var key = f.id != null ? String(f.id) : (f.properties && f.properties.name) || "";
      var split = parts[key];
      if (!split || !f.geometry || f.geometry.type !== "MultiPolygon") { out.push(f); return; }
      var rest = [];
      f.geometry.coordinates.forEach(function (polygon, i) {
        var code = split[String(i)];
        if (!code) { rest.push(polygon); return; }
        out.push({ type: "Feature", properties: { code: code },
                   geometry: { type: "Polygon", coordinates: polygon } });
      });
      out.push({ type: "Feature", id: f.id, properties: f.properties,
                 geometry: { type: "MultiPolygon", coordinates: rest } });
    });
    return { type: "FeatureCollection", features: out };
  }

  // Counted codes no polygon draws (small islands): a dot at their largest place.
  function addTerritoryDots(map, options, breaks) {
    var points = options.territoryPoints || {};
    Object.keys(points).forEach(function (code) {
      var count = options.counts[code] || 0;
      var dot = L.circleMarker(points[code], {
        radius: 6, color: "#4f1748", weight: 1, fillOpacity: 1,
        fillColor: colour(count, breaks), className: "choropleth-dot",
      }).addTo(map);
      var label = document.createElement("span");
      label.textContent = ((options.names || {})[code] || code) + ": " + formatCount(count);
      dot.bindTooltip(label, { sticky: true });
    });
    return Object.keys(points).length;
  }

  geomap.choropleth = function (map, options) {
    var container = map.getContainer();
    container.classList.add("geomap-map", "geomap-no-tiles");
    var counts = options.counts;
    var codes = options.featureCodes || {};
    // Joined by alpha-2 code, like the counts (Kosovo, N. Cyprus, Somaliland included).
    function codeOf(f) {
      if (f.properties && f.properties.code) return f.properties.code;
      var key = f.id != null ? String(f.id) : (f.properties && f.properties.name) || "";
      return codes[key];
    }
    function countOf(f) {
      return counts[codeOf(f)] || 0;
    }
    var breaks = classBreaks(Object.keys(counts).map(function (k) { return counts[k]; }));
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution(geomap.t("choropleth.outlines"));
    addLegend(map, breaks);
    fetch(options.countriesUrl)
      .then(function (r) { return r.json(); })
      .then(function (topo) {
        var split = withTerritories(geomap.outlineFeatures(topo, "countries"),
                                    options.territoryParts || {});
        var countries = geomap.worldCopies(split);
        L.geoJSON(countries, {
          style: function (f) {
            return { color: "#a9a294", weight: 0.6, fillOpacity: 1,
                     fillColor: colour(countOf(f), breaks) };
          },
          onEachFeature: function (f, layer) {
            var label = document.createElement("span");
            var count = countOf(f);
            var name = f.properties.name || (options.names || {})[codeOf(f)] || "";
            label.textContent = geomap.t("choropleth.tooltip",
              {country: name, count: formatCount(count)});
            layer.bindTooltip(label, { sticky: true });
          },
        }).addTo(map);
        container.dataset.territories = String(
          split.features.filter(function (f) { return f.properties.code; }).length
          + addTerritoryDots(map, options, breaks));
        container.dataset.coloured = String(Object.keys(counts).length);
        container.dispatchEvent(new CustomEvent("geomap:loaded"));
      });
  };
})();
