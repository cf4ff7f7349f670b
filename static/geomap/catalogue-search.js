// The condition search box: suggestions as you type, chosen with the keyboard
// (ArrowDown/ArrowUp, Enter, Escape) or the mouse. Names are set with textContent.
(function () {
  "use strict";

  function setUp(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    var input = form.querySelector("input[name=q]");
    var list = form.querySelector(".suggestions");
    var url = form.dataset.suggestUrl;
    var options = [];
    var active = -1;
    var timer = null;
    var asked = "";

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      options.forEach(function (option, i) {
        option.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      active = index;
      if (index >= 0) input.setAttribute("aria-activedescendant", options[index].id);
      else input.removeAttribute("aria-activedescendant");
    }

    function show(conditions) {
      list.replaceChildren();
      options = conditions.map(function (c, i) {
        var li = document.createElement("li");
        li.id = list.id + "-" + i;
        li.setAttribute("role", "option");
        li.dataset.url = c.url;
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = c.name;
        var code = document.createElement("span");
        code.className = "icd";
        code.textContent = c.code;
        li.append(name, " ", code);
        if (c.matched) {
          var matched = document.createElement("span");
          matched.className = "matched";
          matched.textContent = c.matched;
          if (c.locale) matched.lang = c.locale;
          li.append(" ", matched);
        }
        var state = document.createElement("span");
        state.className = c.enabled ? "count" : "no-map";
        state.textContent = c.enabled ? window.geomap.tn("search.on_map", c.published)
                                      : window.geomap.t("search.no_map");
        li.append(" ", state);
        li.addEventListener("mousedown", function (event) {
          event.preventDefault();
          window.location.assign(c.url);
        });
        list.append(li);
        return li;
      });
      if (options.length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        highlight(-1);
      } else {
        close();
      }
    }

    function fetchSuggestions() {
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      asked = q;
      fetch(url + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { conditions: [] }; })
        .then(function (body) { if (asked === q) show(body.conditions || []); })
        .catch(close);
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, 120);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && options.length) {
        event.preventDefault();
        if (list.hidden) { list.hidden = false; input.setAttribute("aria-expanded", "true"); }
        highlight((active + 1) % options.length);
      } else if (event.key === "ArrowUp" && options.length) {
        event.preventDefault();
        highlight(active <= 0 ? options.length - 1 : active - 1);
      } else if (event.key === "Enter" && active >= 0 && !list.hidden) {
        event.preventDefault();
        window.location.assign(options[active].dataset.url);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  function start() {
    document.querySelectorAll("form.condition-search").forEach(setUp);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
