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
  var PIN_ZOOM = 5;  // country scale: a saved or refused pin is shown with its surroundings
  // The place being chosen (a pin, or a city from the list) before it is saved.
  function pinMarker(latlng) {
    return L.circleMarker(latlng, {radius: 7, color: "#2b2530", fillOpacity: 0.6}).addTo(map);
  }
  var map = null;

  var status = document.getElementById("city-status");
  var options = [];
  var active = -1;

  // ARIA 1.2 combobox: the input owns a listbox; arrow keys move the active option,
  // Enter picks it, Escape closes the list; a live region says how many were found.
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", "city-suggestions");
  list.setAttribute("role", "listbox");

  function setActive(index) {
    options.forEach(function (option, i) {
      option.el.setAttribute("aria-selected", i === index ? "true" : "false");
      option.el.classList.toggle("active", i === index);
    });
    active = index;
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", options[index].el.id);
      options[index].el.scrollIntoView({block: "nearest"});
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function clearList() {
    list.replaceChildren(); list.hidden = true; options = []; active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function pick(place) {
    placeId.value = String(place.id);
    lat.value = ""; lng.value = "";
    input.value = place.label;
    choice.textContent = geomap.t("places.chosen", {place: place.label});
    if (marker) { map.removeLayer(marker); marker = null; }
    // The map follows the list: the chosen place, where the text under the map says.
    if (map && place.lat != null && place.lng != null) {
      marker = pinMarker([place.lat, place.lng]);
      map.setView([place.lat, place.lng], PIN_ZOOM);
    }
    clearList();
    if (status) { status.textContent = ""; }
  }

  function show(places) {
    list.replaceChildren();
    options = [];
    active = -1;
    places.forEach(function (place, i) {
      var item = document.createElement("li");
      item.id = "city-option-" + i;
      item.className = "city-option";
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", "false");
      var name = document.createElement("span");
      name.className = "city-name";
      name.textContent = place.name;
      var where = document.createElement("span");
      where.className = "city-where";
      where.textContent = [place.region, place.country].filter(Boolean).join(", ");
      item.appendChild(name);
      item.appendChild(where);
      item.addEventListener("mousedown", function (event) { event.preventDefault(); });
      item.addEventListener("click", function () { pick(place); });
      list.appendChild(item);
      options.push({el: item, place: place});
    });
    if (places.length === 0) {
      var none = document.createElement("li");
      none.className = "city-none";
      none.setAttribute("role", "option");
      none.setAttribute("aria-disabled", "true");
      none.textContent = geomap.t("places.none_long");
      list.appendChild(none);
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    if (status) {
      status.textContent = places.length ? geomap.tn("places.found", places.length)
                                         : geomap.t("places.none");
    }
  }

  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown" && options.length) {
      event.preventDefault(); setActive(active < options.length - 1 ? active + 1 : 0);
    } else if (event.key === "ArrowUp" && options.length) {
      event.preventDefault(); setActive(active > 0 ? active - 1 : options.length - 1);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault(); pick(options[active].place);
    } else if (event.key === "Escape") {
      clearList();
    }
  });
  input.addEventListener("blur", function () { setTimeout(clearList, 150); });

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
    // A first view centred on land (central Europe), with Africa and Asia around it;
    // a saved place at country scale (PIN_ZOOM), where coasts and borders still show
    // around it: the map has no tiles, and closer in, the view would be all land.
    map = L.map(holder, {worldCopyJump: true}).setView(start || [48, 15], start ? PIN_ZOOM : 2);
    holder.classList.add("geomap-map", "geomap-no-tiles");
    geomap.credits(map);
    fetch(holder.dataset.outlines)
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (topo) {
        if (topo && window.topojson) {
          var countries = geomap.worldCopies(geomap.outlineFeatures(topo, "countries"));
          L.geoJSON(countries, {interactive: false,
                                style: {color: "#8a7f8f", weight: 1, fillColor: "#efeae2", fillOpacity: 1}})
            .addTo(map).bringToBack();
        }
      });
    if (start) { L.circleMarker(start, {radius: 7, color: "#7a2a6e", fillOpacity: 0.6}).addTo(map); }
    // A refused pin (far from land) comes back in the form: show it, ready to confirm.
    if (lat.value && lng.value && !isNaN(Number(lat.value)) && !isNaN(Number(lng.value))) {
      var pending = [Number(lat.value), Number(lng.value)];
      marker = pinMarker(pending);
      map.setView(pending, PIN_ZOOM);
      choice.textContent = geomap.t("places.pin", {lat: pending[0].toFixed(4), lng: pending[1].toFixed(4)});
    }
    map.on("click", function (event) {
      var p = event.latlng.wrap();
      lat.value = p.lat.toFixed(6); lng.value = p.lng.toFixed(6);
      placeId.value = ""; input.value = "";
      if (marker) { marker.setLatLng(p); } else { marker = pinMarker(p); }
      choice.textContent = geomap.t("places.pin", {lat: p.lat.toFixed(4), lng: p.lng.toFixed(4)});
    });
  }
})();
