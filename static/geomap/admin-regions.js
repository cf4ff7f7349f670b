/* Admin region table: sort by any column (countries, and regions within each country)
 * and filter by country or region name. Numbers and names are read from data-*. */
(function () {
  "use strict";

  var table = document.getElementById("region-table");
  if (!table) return;
  var filter = document.getElementById("region-filter");
  var state = { key: "total", descending: true };

  function compare(key, descending) {
    return function (a, b) {
      var x = a.dataset[key];
      var y = b.dataset[key];
      var result = key === "name" ? x.localeCompare(y) : Number(x) - Number(y);
      return descending ? -result : result;
    };
  }

  function sort(key) {
    state.descending = state.key === key ? !state.descending : key !== "name";
    state.key = key;
    var bodies = Array.prototype.slice.call(table.tBodies);
    var order = compare(key, state.descending);
    bodies.sort(order).forEach(function (body) {
      var regions = Array.prototype.slice.call(body.querySelectorAll("tr.region-row"));
      regions.sort(order).forEach(function (row) { body.appendChild(row); });
      table.insertBefore(body, table.tFoot);
    });
    table.querySelectorAll("button.sort").forEach(function (button) {
      var th = button.parentNode;
      th.setAttribute("aria-sort", button.dataset.key === key
        ? (state.descending ? "descending" : "ascending") : "none");
    });
  }

  function applyFilter() {
    var needle = filter.value.trim().toLowerCase();
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var countryMatches = !needle || body.textContent.toLowerCase().indexOf(needle) !== -1;
      body.hidden = !countryMatches;
    });
  }

  table.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () { sort(button.dataset.key); });
  });
  if (filter) filter.addEventListener("input", applyFilter);
})();
