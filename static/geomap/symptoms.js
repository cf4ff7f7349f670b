/* geomap symptoms: the symptom combobox (keyboard accessible, ARIA 1.2 pattern) and
 * the soulmates map's areas. Everything from the server is put in the page with
 * textContent; nothing typed leaves our own server. */
(function () {
  "use strict";
  var geomap = (window.geomap = window.geomap || {});

  function setupCombobox() {
    var form = document.getElementById("symptom-form");
    if (!form) { return; }
    var input = document.getElementById("symptom-input");
    var list = document.getElementById("symptom-options");
    var picked = form.querySelector("input[name=hpo_id]");
    var options = [];
    var active = -1;
    var timer = null;

    function close() {
      list.replaceChildren(); list.hidden = true; options = []; active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function highlight(index) {
      options.forEach(function (item, i) { item.el.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", options[index].el.id);
        options[index].el.scrollIntoView({block: "nearest"});
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function choose(index) {
      var term = options[index].term;
      picked.value = term.hpo_id;
      input.value = term.label;
      close();
      form.submit();
    }

    function show(terms) {
      list.replaceChildren(); options = []; active = -1;
      terms.forEach(function (term, i) {
        var item = document.createElement("li");
        item.id = "symptom-option-" + i;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", "false");
        item.className = "symptom-option";
        var label = document.createElement("span");
        label.textContent = term.label;
        item.appendChild(label);
        if (term.matched && term.matched !== term.label) {
          var matched = document.createElement("span");
          matched.className = "muted";
          matched.textContent = " (" + term.matched + ")";
          item.appendChild(matched);
        }
        var id = document.createElement("small");
        id.className = "hpo-id";
        id.textContent = term.hpo_id;
        item.appendChild(id);
        item.addEventListener("mousedown", function (event) { event.preventDefault(); choose(i); });
        list.appendChild(item);
        options.push({el: item, term: term});
      });
      list.hidden = terms.length === 0;
      input.setAttribute("aria-expanded", terms.length ? "true" : "false");
    }

    input.addEventListener("input", function () {
      picked.value = "";
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      timer = setTimeout(function () {
        fetch("/api/v1/symptom-terms?q=" + encodeURIComponent(q), {credentials: "same-origin"})
          .then(function (r) { return r.ok ? r.json() : {terms: []}; })
          .then(function (data) { if (input.value.trim() === q) { show(data.terms); } });
      }, 150);
    });

    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && options.length) {
        event.preventDefault(); highlight((active + 1) % options.length);
      } else if (event.key === "ArrowUp" && options.length) {
        event.preventDefault(); highlight(active <= 0 ? options.length - 1 : active - 1);
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault(); choose(active);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  // The soulmates map: one marker per area with its count (the world map's icons);
  // clicking an area lists who is there below the map.
  geomap.soulmateAreas = function (map, cluster, options) {
    var container = map.getContainer();
    container.classList.add("geomap-map", "geomap-no-tiles");
    geomap.credits(map, ["GeoNames"]);
    var panel = document.getElementById("soulmate-area");
    function list(area) {
      if (!panel) { return; }
      panel.replaceChildren();
      var heading = document.createElement("h3");
      heading.textContent = geomap.tn("soulmates.heading", area.count,
                                      {place: geomap.isolate(area.place)});
      var names = document.createElement("ul");
      area.pseudonyms.forEach(function (name) {
        var item = document.createElement("li");
        item.className = "area-soulmate";
        item.textContent = name;
        names.appendChild(item);
      });
      panel.appendChild(heading);
      panel.appendChild(names);
    }
    var markers = options.areas.map(function (area) {
      var name = geomap.tn("soulmates.marker", area.count, {place: geomap.isolate(area.place)});
      var icon = geomap.countIcon(area.count, "geomap-cell", name);
      var marker = L.marker([area.lat, area.lng], {icon: icon, count: area.count, keyboard: true});
      marker.on("add", function () {
        var el = marker.getElement();
        if (el) {
          el.dataset.cell = area.cell;
          el.setAttribute("role", "button");
          el.setAttribute("aria-label", name);
        }
      });
      marker.on("click", function () { list(area); });
      return marker;
    });
    cluster.addLayers(markers);
    if (markers.length) {
      map.fitBounds(L.featureGroup(markers).getBounds().pad(0.5), {maxZoom: 6});
    }
    fetch(options.countriesUrl).then(function (r) { return r.json(); }).then(function (topo) {
      map.createPane("outlines");
      map.getPane("outlines").style.zIndex = 250;
      L.geoJSON(geomap.outlineFeatures(topo, "countries"), {
        pane: "outlines", interactive: false,
        style: {color: "#a9a294", weight: 0.7, fillColor: "#f7f4ec", fillOpacity: 1},
      }).addTo(map);
    }).catch(function () {}).then(function () {
      container.dataset.areas = String(options.areas.length);
      container.dispatchEvent(new CustomEvent("geomap:loaded"));
    });
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setupCombobox);
  } else {
    setupCombobox();
  }
})();
