// hcflask's own few lines of script (the Content-Security-Policy allows no inline script):
//  - a confirmation before every destructive action: <form data-confirm="Really ...?">
//  - every table with a <thead> sorts by a click on a column head (numbers as numbers,
//    "–" last); the order survives the htmx refresh of the live tables.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  }, true);

  var sorted = {};  // table id -> [column, direction]

  function key(cell) {
    var text = (cell ? (cell.dataset.sort || cell.textContent) : "").trim();
    if (text === "" || text === "–" || text === "-") return [2, ""];
    var number = Number(text.replace(/[%,]/g, ""));
    return isNaN(number) ? [1, text.toLowerCase()] : [0, number];
  }

  function sortTable(table, column, direction) {
    var body = table.tBodies[0];
    if (!body) return;
    var all = Array.prototype.slice.call(body.rows);
    // the empty-table message and total rows (class "total") stay where they are, at the end
    var rows = all.filter(function (r) { return r.cells.length > column && !r.classList.contains("total"); });
    var pinned = all.filter(function (r) { return rows.indexOf(r) < 0; });
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]);
      if (x[0] !== y[0]) return x[0] - y[0];
      return (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) * direction;
    });
    rows.concat(pinned).forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === column ? (direction > 0 ? "ascending" : "descending") : "none");
    });
  }

  document.addEventListener("click", function (event) {
    var th = event.target.closest("thead th");
    if (!th || event.target.closest("a, button, input, select")) return;
    var table = th.closest("table");
    var column = th.cellIndex;
    var direction = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    sortTable(table, column, direction);
    if (table.id) sorted[table.id] = [column, direction];
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    Object.keys(sorted).forEach(function (id) {
      var table = document.getElementById(id);
      if (table && event.target.contains(table)) sortTable(table, sorted[id][0], sorted[id][1]);
    });
  });
})();
