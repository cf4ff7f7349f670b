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
  var pending = null;

  function update() {
    var src = condition.options[condition.selectedIndex].dataset.src;
    var url = form.dataset.oembedUrl + "?" + new URLSearchParams({
      url: src, maxwidth: width.value, maxheight: height.value, format: "json",
    }).toString();
    if (pending) pending.abort();
    pending = new AbortController();
    fetch(url, { signal: pending.signal })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error ? body.error.message : "error " + r.status);
          return body;
        });
      })
      .then(function (answer) {
        snippet.value = answer.html;
        // The html is our own oEmbed answer: an iframe with escaped attributes.
        preview.innerHTML = answer.html;
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
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    update();
  });

  document.getElementById("embed-copy").addEventListener("click", function () {
    var text = snippet.value;
    var done = function () { status.textContent = "Copied to the clipboard."; };
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
