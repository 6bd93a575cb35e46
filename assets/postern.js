// Progressive enhancement for the dashboard; every page works without it.
// 1. <time datetime="…Z"> elements are shown in the viewer's own time zone.
// 2. The message list (newest page only) is fetched again every 5 s; new rows replace the
//    table body. Polling pauses while the tab is hidden and after 25 minutes without input,
//    so an unattended tab does not keep its session alive forever.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) {
        el.title = el.getAttribute("datetime");
        el.textContent = at.toLocaleString();
      }
    });
  }
  function poll(table) {
    var lastInput = Date.now();
    ["keydown", "pointerdown", "scroll"].forEach(function (name) {
      addEventListener(name, function () { lastInput = Date.now(); }, { passive: true });
    });
    setInterval(function () {
      if (document.hidden || Date.now() - lastInput > 25 * 60 * 1000) return;
      fetch(location.href, { credentials: "same-origin", redirect: "error" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("table#messages");
          if (!fresh || fresh.dataset.newest === table.dataset.newest) return;
          var body = document.importNode(fresh.tBodies[0], true);
          table.replaceChild(body, table.tBodies[0]);
          table.dataset.newest = fresh.dataset.newest;
          localTimes(body);
          // The first message ends dev mode's "No mail yet" commands.
          var started = document.getElementById("getting-started");
          if (started && !doc.getElementById("getting-started")) started.remove();
        })
        .catch(function () {});
    }, 5000);
  }
  function start() {
    localTimes(document);
    // Destructive forms ask first (without script they submit as they are).
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    var table = document.querySelector("table#messages[data-live]");
    if (table) poll(table);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
