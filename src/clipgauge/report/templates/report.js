(function () {
  "use strict";
  function sortKey(cell) {
    var text = cell.getAttribute("data-sort");
    if (text === null) { text = cell.textContent.trim(); }
    var number = Number(text);
    return text !== "" && !isNaN(number) ? number : text.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a !== typeof b) { return typeof a === "number" ? -1 : 1; }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, column) {
      th.tabIndex = 0;
      th.classList.add("sort");
      th.title = "sort by this column";
      function sort() {
        var body = table.tBodies[0];
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          return dir * compare(sortKey(r1.cells[column]), sortKey(r2.cells[column]));
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
  document.querySelectorAll("label.grid-order").forEach(function (label) {
    var select = label.querySelector("select");
    var grid = document.getElementById(select.getAttribute("data-grid"));
    if (!grid) { return; }
    label.hidden = false;
    select.addEventListener("change", function () {
      var cards = Array.prototype.slice.call(grid.children);
      var order = select.value;
      cards.sort(function (a, b) {
        var sa = Number(a.getAttribute("data-score")), sb = Number(b.getAttribute("data-score"));
        var ra = Number(a.getAttribute("data-row")), rb = Number(b.getAttribute("data-row"));
        if (order.charAt(0) === "m") {  // a metric column: "mK:low" or "mK:high"; rows without a value last
          var key = "data-" + order.split(":")[0], high = order.split(":")[1] === "high";
          var va = a.getAttribute(key), vb = b.getAttribute(key);
          if (va === "" || va === null || vb === "" || vb === null) {
            return ((va === "" || va === null) - (vb === "" || vb === null)) || (ra - rb);
          }
          return (high ? Number(vb) - Number(va) : Number(va) - Number(vb)) || (ra - rb);
        }
        if (order === "worst") { return (sa - sb) || (ra - rb); }
        if (order === "best") { return (sb - sa) || (ra - rb); }
        return ra - rb;
      });
      cards.forEach(function (c) { grid.appendChild(c); });
    });
  });
})();
