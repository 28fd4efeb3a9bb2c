// Live pages: follow the change stream and refresh the page's #live region when something changes.
// Pages without a #live region, or a browser without EventSource, simply stay as rendered.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var region = document.getElementById("live");
  if (!main || !region || !window.EventSource || !main.dataset.liveAfter) return;
  var query = "after=" + encodeURIComponent(main.dataset.liveAfter);
  if (main.dataset.liveRun) query += "&run=" + encodeURIComponent(main.dataset.liveRun);
  var pending = null;
  var busy = false;

  function refresh() {
    pending = null;
    if (busy) { pending = setTimeout(refresh, 300); return; }
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      pending = setTimeout(refresh, 2000);  // never replace a form someone is filling in
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) { region.innerHTML = fresh.innerHTML; region.dispatchEvent(new Event("opsrail:updated")); }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  var source = new EventSource("/console/stream?" + query);
  source.addEventListener("change", function () {
    if (!pending) pending = setTimeout(refresh, 250);
  });
  document.documentElement.dataset.live = "on";
})();
