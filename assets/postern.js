// Progressive enhancement for the dashboard; every page works without it.
// 1. <time datetime="…Z"> is shown in the viewer's time zone; class "ago" as "5 min ago"
//    (the exact time on hover).
// 2. Forms with data-confirm ask first.
// 3. Live regions (data-live="scope", data-version) follow the server's Server-Sent Events
//    (/live): when the version moves, the page is fetched again and the region replaced.
//    Without EventSource, or when the stream fails, the page polls every 5 s instead. Both
//    pause after 25 minutes without input, so an unattended tab does not keep its session
//    alive; new mail is counted in the tab's title until the next keypress or click.
// 4. Tabs (nav.tabs + section.tab): one section at a time, by the URL's #fragment.
// 5. The inbox's keys: j/k move, Enter opens, / searches, # deletes, u marks unread.
// 6. "Copy" next to commands; the payload's "copy as curl" follows its URL field.
(function () {
  "use strict";
  var IDLE = 25 * 60 * 1000;
  var lastInput = Date.now();
  var title = document.title;
  var unseen = 0;

  function ago(at) {
    var s = Math.round((Date.now() - at) / 1000);
    if (s < 45) return "just now";
    var m = Math.round(s / 60);
    if (m < 60) return m + " min ago";
    var h = Math.round(m / 60);
    if (h < 24) return h + " h ago";
    var d = Math.round(h / 24);
    if (d < 7) return d + (d === 1 ? " day ago" : " days ago");
    return at.toLocaleDateString();
  }
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      el.title = at.toLocaleString() + " (" + el.getAttribute("datetime") + ")";
      el.textContent = el.classList.contains("ago") ? ago(at) : at.toLocaleString();
    });
  }

  function confirms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function newestId(region) {
    var table = region.querySelector("[data-newest]");
    return table ? Number(table.dataset.newest) : 0;
  }

  // Fetches the page again and swaps every live region (the server renders them all).
  function refresh() {
    return fetch(location.href, { credentials: "same-origin", redirect: "error" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (region) {
          var fresh = doc.getElementById(region.id);
          if (!fresh || fresh.dataset.version === region.dataset.version) return;
          var before = newestId(region);
          var selected = document.querySelector("#messages tr.selected");
          var node = document.importNode(fresh, true);
          region.replaceWith(node);
          localTimes(node);
          confirms(node);
          var after = newestId(node);
          if (after > before) {
            node.querySelectorAll("#messages tbody tr[data-id]").forEach(function (row) {
              if (Number(row.dataset.id) > before) unseen += 1;
            });
            document.title = "(" + unseen + ") " + title;
          }
          if (selected) {
            var again = node.querySelector('tr[data-id="' + selected.dataset.id + '"]');
            if (again) again.classList.add("selected");
          }
        });
        // The first message ends dev mode's "No mail yet" commands.
        var started = document.getElementById("getting-started");
        if (started && !doc.getElementById("getting-started")) started.remove();
      });
  }

  function live() {
    var regions = document.querySelectorAll("[data-live][id]");
    if (!regions.length) return;
    var scope = regions[0].dataset.live;
    var source = null;
    var polling = null;
    function idle() { return Date.now() - lastInput > IDLE; }
    function poll() {
      if (polling) return;
      polling = setInterval(function () {
        if (document.hidden || idle()) return;
        refresh().catch(function () {});
      }, 5000);
    }
    function open() {
      if (!window.EventSource) return poll();
      source = new EventSource("/live?scope=" + encodeURIComponent(scope));
      source.addEventListener("change", function (event) {
        var region = document.querySelector("[data-live][id]");
        if (region && event.data !== region.dataset.version) refresh().catch(function () {});
      });
      source.onerror = function () {
        // The browser retries a dropped stream; one it gave up on falls back to polling.
        if (source.readyState === EventSource.CLOSED) { source = null; poll(); }
      };
    }
    open();
    setInterval(function () {
      if (source && idle()) { source.close(); source = null; }
    }, 60000);
    ["keydown", "pointerdown"].forEach(function (name) {
      addEventListener(name, function () {
        if (!source && !polling && window.EventSource) open();
      }, { passive: true });
    });
  }

  function tabs() {
    var nav = document.querySelector("nav.tabs");
    if (!nav) return;
    var links = nav.querySelectorAll("a[href^='#']");
    var sections = document.querySelectorAll("section.tab");
    document.body.classList.add("js-tabs");
    function show(id) {
      var found = false;
      sections.forEach(function (s) { if (s.id === id) found = true; });
      if (!found) id = sections[0].id;
      sections.forEach(function (s) { s.hidden = s.id !== id; });
      links.forEach(function (a) {
        a.setAttribute("aria-selected", a.getAttribute("href") === "#" + id ? "true" : "false");
      });
    }
    links.forEach(function (a) {
      a.addEventListener("click", function (event) {
        event.preventDefault();
        var id = a.getAttribute("href").slice(1);
        history.replaceState(null, "", "#" + id);
        show(id);
      });
    });
    addEventListener("hashchange", function () { show(location.hash.slice(1)); });
    show(location.hash.slice(1));
  }

  function keys() {
    if (!document.getElementById("messages")) return;
    function rows() { return Array.prototype.slice.call(document.querySelectorAll("#messages tbody tr[data-id]")); }
    function current() { return document.querySelector("#messages tr.selected"); }
    function select(row) {
      var old = current();
      if (old) old.classList.remove("selected");
      if (!row) return;
      row.classList.add("selected");
      row.scrollIntoView({ block: "nearest" });
    }
    function post(path, question) {
      var form = document.getElementById("row-action");
      if (!form || (question && !confirm(question))) return;
      form.action = path;
      form.submit();
    }
    addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
      var list = rows();
      var row = current();
      var at = row ? list.indexOf(row) : -1;
      switch (event.key) {
        case "j": select(list[Math.min(at + 1, list.length - 1)]); break;
        case "k": select(list[Math.max(at - 1, 0)]); break;
        case "Enter":
          if (!row) return;
          location.href = "/messages/" + row.dataset.id; break;
        case "/":
          var box = document.getElementById("q");
          if (!box) return;
          box.focus(); box.select(); break;
        case "#": case "Delete":
          if (!row) return;
          post("/messages/" + row.dataset.id + "/delete", "Delete this message?"); break;
        case "u":
          if (!row) return;
          post("/messages/" + row.dataset.id + "/unread"); break;
        default: return;
      }
      event.preventDefault();
    });
  }

  function copies() {
    if (!navigator.clipboard) return;
    document.querySelectorAll("code.copy").forEach(function (code) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "Copy";
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(code.textContent).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        });
      });
      (code.closest("pre") || code).insertAdjacentElement("afterend", button);
    });
  }

  function replay() {
    var field = document.getElementById("replay-url");
    var curl = document.getElementById("replay-curl");
    if (!field || !curl) return;
    field.addEventListener("input", function () {
      curl.textContent = curl.dataset.fetch + " | curl -X POST -H 'Content-Type: " + curl.dataset.type +
        "' --data-binary @- '" + field.value.replace(/'/g, "%27") + "'";
    });
  }

  function start() {
    localTimes(document);
    setInterval(function () { localTimes(document); }, 60000);
    confirms(document);
    ["keydown", "pointerdown", "scroll"].forEach(function (name) {
      addEventListener(name, function () {
        lastInput = Date.now();
        if (name !== "scroll" && unseen) { unseen = 0; document.title = title; }
      }, { passive: true });
    });
    live();
    tabs();
    keys();
    copies();
    replay();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
