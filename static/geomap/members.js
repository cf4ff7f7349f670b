// Settings page: city type-ahead over our own gazetteer API and a pin on a small map.
// Place names are inserted with textContent only; nothing typed leaves our server.
(function () {
  "use strict";
  var form = document.getElementById("location-form");
  if (!form) { return; }
  var input = document.getElementById("city-input");
  var list = document.getElementById("city-suggestions");
  var choice = document.getElementById("location-choice");
  var placeId = form.querySelector("input[name=place_id]");
  var lat = form.querySelector("input[name=lat]");
  var lng = form.querySelector("input[name=lng]");
  var timer = null;
  var marker = null;
  var map = null;

  function clearList() { list.replaceChildren(); list.hidden = true; }

  function pick(place) {
    placeId.value = String(place.id);
    lat.value = ""; lng.value = "";
    input.value = place.label;
    choice.textContent = "Chosen: " + place.label;
    if (marker) { map.removeLayer(marker); marker = null; }
    clearList();
  }

  function show(places) {
    list.replaceChildren();
    places.forEach(function (place) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "city-option";
      button.textContent = place.label + " (" + place.region_code + ")";
      button.addEventListener("click", function () { pick(place); });
      item.appendChild(button);
      list.appendChild(item);
    });
    list.hidden = places.length === 0;
  }

  input.addEventListener("input", function () {
    placeId.value = "";
    clearTimeout(timer);
    var q = input.value.trim();
    if (q.length < 2) { clearList(); return; }
    timer = setTimeout(function () {
      fetch("/api/v1/places?q=" + encodeURIComponent(q), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : {places: []}; })
        .then(function (data) { if (input.value.trim() === q) { show(data.places); } });
    }, 150);
  });

  var holder = document.getElementById("pin-map");
  if (holder && window.L) {
    var start = holder.dataset.lat ? [Number(holder.dataset.lat), Number(holder.dataset.lng)] : null;
    map = L.map(holder, {worldCopyJump: true}).setView(start || [30, 10], start ? 9 : 2);
    holder.classList.add("geomap-map", "geomap-no-tiles");
    fetch(holder.dataset.outlines)
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (topo) {
        if (topo && window.topojson) {
          var land = geomap.outlineFeatures(topo, "land");
          L.geoJSON(land, {interactive: false,
                           style: {color: "#8a7f8f", weight: 1, fillColor: "#efeae2", fillOpacity: 1}})
            .addTo(map).bringToBack();
        }
      });
    if (start) { L.circleMarker(start, {radius: 7, color: "#7a2a6e", fillOpacity: 0.6}).addTo(map); }
    map.on("click", function (event) {
      var p = event.latlng.wrap();
      lat.value = p.lat.toFixed(6); lng.value = p.lng.toFixed(6);
      placeId.value = ""; input.value = "";
      if (marker) { marker.setLatLng(p); } else { marker = L.circleMarker(p, {radius: 7, color: "#2b2530", fillOpacity: 0.6}).addTo(map); }
      choice.textContent = "Pin dropped at " + p.lat.toFixed(4) + ", " + p.lng.toFixed(4);
    });
  }
})();
