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
    map.attributionControl.addAttribution("Outlines: Natural Earth");
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
            label.textContent = (f.properties.name || "") + ": " + count.toLocaleString("en-US");
            layer.bindTooltip(label, { sticky: true });
          },
        }).addTo(map);
        container.dataset.coloured = String(Object.keys(counts).length);
        container.dispatchEvent(new CustomEvent("geomap:loaded"));
      });
  };
})();
