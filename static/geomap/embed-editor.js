/* The embed editor: builds the iframe snippet with our oEmbed endpoint (one snippet
 * builder, on the server), shows it in the preview and copies it. */
(function () {
  "use strict";

  var form = document.getElementById("embed-form");
  if (!form) return;
  var condition = document.getElementById("embed-condition");
  var size = document.getElementById("embed-size");
  var width = document.getElementById("embed-width");
  var height = document.getElementById("embed-height");
  var snippet = document.getElementById("embed-snippet");
  var preview = document.getElementById("embed-preview");
  var status = document.getElementById("embed-copied");
  var sizes = JSON.parse(size.dataset.sizes);
  var lat = document.getElementById("embed-lat");
  var lng = document.getElementById("embed-lng");
  var zoom = document.getElementById("embed-zoom");
  var lang = document.getElementById("embed-lang");
  var pending = null;

  // The embed URL carries the initial view (lat, lng, zoom) when one is set.
  function embedSrc() {
    var src = condition.options[condition.selectedIndex].dataset.src;
    var params = new URLSearchParams();
    if (lat.value !== "" && lng.value !== "") {
      params.set("lat", lat.value);
      params.set("lng", lng.value);
    }
    if (zoom.value !== "") params.set("zoom", zoom.value);
    if (lang && lang.value !== "") params.set("lang", lang.value);
    var query = params.toString();
    return query ? src + "?" + query : src;
  }

  function update() {
    var src = embedSrc();
    var url = form.dataset.oembedUrl + "?" + new URLSearchParams({
      url: src, maxwidth: width.value, maxheight: height.value, format: "json",
    }).toString();
    if (pending) pending.abort();
    pending = new AbortController();
    fetch(url, { signal: pending.signal })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) {
            throw new Error(body.error ? body.error.message
                                       : window.geomap.t("embed.error", {status: r.status}));
          }
          return body;
        });
      })
      .then(function (answer) {
        snippet.value = answer.html;
        // The html is our own oEmbed answer: an iframe with escaped attributes. Parsed
        // inertly and shown without its style attribute, which this page's CSP refuses.
        var frame = new DOMParser().parseFromString(answer.html, "text/html")
          .querySelector("iframe");
        frame.removeAttribute("style");
        preview.replaceChildren(document.importNode(frame, true));
        status.textContent = "";
      })
      .catch(function (err) {
        if (err.name !== "AbortError") status.textContent = err.message;
      });
  }

  size.addEventListener("change", function () {
    var chosen = sizes[size.value];
    if (chosen) {
      width.value = chosen[0];
      height.value = chosen[1];
    }
    update();
  });
  [width, height].forEach(function (input) {
    input.addEventListener("change", function () {
      size.value = "custom";
      update();
    });
  });
  condition.addEventListener("change", update);
  if (lang) lang.addEventListener("change", update);
  [lat, lng, zoom].forEach(function (input) { input.addEventListener("change", update); });

  // Reads the view of the map in the preview (same origin) into the view fields.
  document.getElementById("embed-use-view").addEventListener("click", function () {
    var frame = preview.querySelector("iframe");
    var win = frame && frame.contentWindow;
    var map = win && win.map_world;
    if (!map) {
      status.textContent = window.geomap.t("embed.loading");
      return;
    }
    var centre = map.getCenter().wrap();
    lat.value = centre.lat.toFixed(2);
    lng.value = centre.lng.toFixed(2);
    zoom.value = String(map.getZoom());
    update();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    update();
  });

  document.getElementById("embed-copy").addEventListener("click", function () {
    var text = snippet.value;
    var done = function () { status.textContent = window.geomap.t("embed.copied"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        snippet.select();
        document.execCommand("copy");
        done();
      });
    } else {
      snippet.select();
      document.execCommand("copy");
      done();
    }
  });
})();
