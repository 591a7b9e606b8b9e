// exhaust console: keeps the requests table up to date while a request is
// SUBMITTED or PROCESSING, without reloading the page. Every few seconds
// it fetches the same rows from the server (/console/rows) and puts them
// in place of the table's body; rows keep their size, so nothing moves.
// It stops when no row is pending, and whenever the box is unticked. The
// page works without it ("Refresh now").
(function () {
  "use strict";
  var body = document.getElementById("request-rows");
  var box = document.getElementById("auto-refresh");
  var live = document.getElementById("refresh-status");
  if (!body || !box) {
    return;
  }
  var table = body.closest("table");
  var url = table && table.getAttribute("data-rows-url");
  var timer = null;

  function pending() {
    return body.querySelector("tr[data-pending]") !== null;
  }

  function statuses() {
    var seen = {};
    body.querySelectorAll("tr[data-request]").forEach(function (tr) {
      seen[tr.getAttribute("data-request")] = tr.getAttribute("data-status");
    });
    return seen;
  }

  function schedule() {
    clearTimeout(timer);
    if (box.checked && pending()) {
      timer = setTimeout(tick, 3000);
    }
  }

  function tick() {
    var before = statuses();
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        body.innerHTML = html;
        var after = statuses();
        var changed = [];
        Object.keys(after).forEach(function (id) {
          if (before[id] && before[id] !== after[id]) {
            changed.push("Request " + id + " is now " + after[id] + ".");
          }
        });
        if (changed.length && live) {
          live.textContent = changed.join(" ");
        }
        if (!pending()) {
          box.checked = false;
          box.disabled = true;
        }
      })
      .catch(function () {
        // A failed fetch is tried again at the next tick.
      })
      .then(schedule);
  }

  if (url) {
    box.addEventListener("change", schedule);
    schedule();
  }
})();
