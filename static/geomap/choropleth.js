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

  geomap.choropleth = function (map, options) {
    var container = map.getContainer();
    container.classList.add("geomap-map", "geomap-no-tiles");
    var counts = options.counts;
    var codes = options.featureCodes || {};
    // Joined by alpha-2 code, like the counts (Kosovo, N. Cyprus, Somaliland included).
    function countOf(f) {
      var key = f.id != null ? String(f.id) : (f.properties && f.properties.name) || "";
      return counts[codes[key]] || 0;
    }
    var breaks = classBreaks(Object.keys(counts).map(function (k) { return counts[k]; }));
    map.attributionControl.addAttribution(geomap.t("choropleth.outlines"));
    addLegend(map, breaks);
    fetch(options.countriesUrl)
      .then(function (r) { return r.json(); })
      .then(function (topo) {
        var countries = geomap.worldCopies(geomap.outlineFeatures(topo, "countries"));
        L.geoJSON(countries, {
          style: function (f) {
            return { color: "#a9a294", weight: 0.6, fillOpacity: 1,
                     fillColor: colour(countOf(f), breaks) };
          },
          onEachFeature: function (f, layer) {
            var label = document.createElement("span");
            var count = countOf(f);
            label.textContent = geomap.t("choropleth.tooltip",
              {country: f.properties.name || "", count: formatCount(count)});
            layer.bindTooltip(label, { sticky: true });
          },
        }).addTo(map);
        container.dataset.coloured = String(Object.keys(counts).length);
        container.dispatchEvent(new CustomEvent("geomap:loaded"));
      });
  };
})();
