// The live tail of the events page: new matching events as they are
// recorded, over server-sent events. The page works without it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var rows = document.getElementById("live-rows");
  var state = document.getElementById("live-state");
  live.hidden = false;
  var MAX_ROWS = 500;
  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text || "";
    }
    tr.appendChild(td);
  }
  var q = live.getAttribute("data-query") || "";
  var src = new EventSource("/api/v1/events/stream" + (q ? "?" + q : ""));
  src.addEventListener("open", function () { state.textContent = "(following)"; });
  src.addEventListener("error", function () { state.textContent = "(reconnecting…)"; });
  src.addEventListener("lagged", function (m) { state.textContent = "(" + m.data + ")"; });
  src.addEventListener("routine", function (m) { state.textContent = "(following; " + m.data + ")"; });
  src.addEventListener("event", function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (err) { return; }
    var tr = document.createElement("tr");
    tr.className = "new sev-" + (e.severity || "none");
    tr.setAttribute("data-seq", String(e.seq));
    cell(tr, e.timestamp, "/events/" + encodeURIComponent(String(e.seq)));
    cell(tr, e.action);
    cell(tr, e.severity);
    cell(tr, e.rule_id);
    cell(tr, e.route);
    cell(tr, e.source_device || e.user);
    cell(tr, e.control_id);
    cell(tr, e.reason);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > MAX_ROWS) { rows.removeChild(rows.lastChild); }
  });
})();
