/* Admin region table: sort by any column (countries, and regions within each country)
 * and filter by country or region name. Values are read from the table cells. */
(function () {
  "use strict";

  var table = document.getElementById("region-table");
  if (!table) return;
  var filter = document.getElementById("region-filter");
  var state = { column: 1, descending: true };

  function value(row, column) {
    var cell = row.cells[column];
    var text = cell.firstChild.textContent.trim();
    if (column === 0) return text;
    return cell.dataset.value !== undefined ? Number(cell.dataset.value)
                                            : Number(text.replace(/[^0-9-]/g, ""));
  }

  function compare(column, descending) {
    return function (a, b) {
      var x = value(a, column);
      var y = value(b, column);
      var result = column === 0 ? x.localeCompare(y) : x - y;
      return descending ? -result : result;
    };
  }

  function sort(column) {
    state.descending = state.column === column ? !state.descending : column !== 0;
    state.column = column;
    var order = compare(column, state.descending);
    var bodies = Array.prototype.slice.call(table.tBodies);
    bodies
      .sort(function (a, b) { return order(a.rows[0], b.rows[0]); })
      .forEach(function (body) {
        var regions = Array.prototype.slice.call(body.rows, 1);
        regions.sort(order).forEach(function (row) { body.appendChild(row); });
        table.insertBefore(body, table.tFoot);
      });
    table.querySelectorAll("button.sort").forEach(function (button) {
      var sorted = Number(button.dataset.column) === column;
      button.parentNode.setAttribute(
        "aria-sort", sorted ? (state.descending ? "descending" : "ascending") : "none");
    });
  }

  function applyFilter() {
    var needle = filter.value.trim().toLowerCase();
    Array.prototype.forEach.call(table.tBodies, function (body) {
      body.hidden = Boolean(needle) && body.textContent.toLowerCase().indexOf(needle) === -1;
    });
  }

  table.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () { sort(Number(button.dataset.column)); });
  });
  if (filter) filter.addEventListener("input", applyFilter);
})();
