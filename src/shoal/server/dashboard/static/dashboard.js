// shoal dashboard: confirmations, CSRF header for htmx, live logs over server-sent events, countdowns.
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (e) {
    var csrf = document.body.getAttribute("data-csrf");
    if (csrf) { e.detail.headers["X-CSRF-Token"] = csrf; }
  });

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  function refresh() {
    document.body.dispatchEvent(new CustomEvent("shoal:refresh"));
  }

  var refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) { return; }
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 400);
  }

  function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  function setupLogs(section) {
    var log = document.getElementById("log");
    var stepSelect = document.getElementById("log-step");
    var search = document.getElementById("log-search");
    var follow = document.getElementById("log-follow");
    var count = document.getElementById("log-count");
    var status = document.getElementById("log-status");
    var download = document.getElementById("log-download");
    var names = {};
    try {
      var n = JSON.parse(document.getElementById("step-names").textContent);
      var r = JSON.parse(document.getElementById("step-refs").textContent);
      for (var i = 0; i < r.length; i++) { names[r[i]] = n[i]; }
    } catch (err) { names = {}; }
    var only = section.getAttribute("data-step") || "";
    var query = "";
    var lastRef = null;
    var total = 0;
    var dropped = 0;
    var MAX_LINES = 50000;
    var baseDownload = download.getAttribute("href").split("?")[0];

    function visible(el) {
      var ref = el.getAttribute("data-ref");
      if (only && ref !== only) { return false; }
      if (query && el.classList.contains("line")) {
        return el.getAttribute("data-text").toLowerCase().indexOf(query) !== -1;
      }
      return !(query && el.classList.contains("sect"));
    }

    function paint(el) {
      var show = visible(el);
      el.hidden = !show;
      if (!el.classList.contains("line")) { return; }
      var text = el.getAttribute("data-text");
      var body = el.lastChild;
      if (show && query) {
        var re = new RegExp(escapeRegExp(query), "gi");
        body.textContent = "";
        var last = 0, m;
        while ((m = re.exec(text)) !== null) {
          body.appendChild(document.createTextNode(text.slice(last, m.index)));
          var mark = document.createElement("mark");
          mark.textContent = m[0];
          body.appendChild(mark);
          last = m.index + m[0].length;
          if (m[0].length === 0) { re.lastIndex++; }
        }
        body.appendChild(document.createTextNode(text.slice(last)));
      } else if (body.childNodes.length !== 1 || body.firstChild.nodeType !== 3) {
        body.textContent = text;
      }
    }

    function counts() {
      if (!query && !only) { count.textContent = total + " lines" + (dropped ? " (" + dropped + " not shown)" : ""); return; }
      var shown = log.querySelectorAll(".line:not([hidden])").length;
      count.textContent = shown + " of " + total + (query ? " lines match" : " lines");
    }

    function repaint() {
      var items = log.children;
      for (var i = 0; i < items.length; i++) { paint(items[i]); }
      counts();
      download.setAttribute("href", only ? baseDownload + "?ref=" + encodeURIComponent(only) : baseDownload);
    }

    function append(lines) {
      var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      var frag = document.createDocumentFragment();
      for (var i = 0; i < lines.length; i++) {
        var seq = lines[i][0], ref = lines[i][1], text = lines[i][2];
        if (ref !== lastRef) {
          var sect = document.createElement("div");
          sect.className = "sect";
          sect.setAttribute("data-ref", ref);
          sect.textContent = "▸ " + (names[ref] || ref || "execution");
          paint(sect);
          frag.appendChild(sect);
          lastRef = ref;
        }
        var line = document.createElement("div");
        line.className = "line";
        line.setAttribute("data-ref", ref);
        line.setAttribute("data-text", text);
        var num = document.createElement("span");
        num.className = "n";
        num.textContent = String(seq);
        var body = document.createElement("span");
        body.textContent = text;
        line.appendChild(num);
        line.appendChild(body);
        paint(line);
        frag.appendChild(line);
        total++;
      }
      log.appendChild(frag);
      if (total - dropped > MAX_LINES) {
        // Keep the page responsive on huge logs: the oldest lines leave the view, Download has them all.
        while (total - dropped > MAX_LINES && log.firstChild) {
          if (log.firstChild.classList.contains("line")) { dropped++; }
          log.removeChild(log.firstChild);
        }
        status.textContent = "Showing the last " + MAX_LINES + " lines; Download has the whole log.";
      }
      counts();
      if (follow.checked && (atBottom || log.getAttribute("data-state") === "live")) {
        log.scrollTop = log.scrollHeight;
      }
    }

    stepSelect.addEventListener("change", function () { only = stepSelect.value; repaint(); });
    var searchTimer = null;
    search.addEventListener("input", function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(function () { query = search.value.trim().toLowerCase(); repaint(); }, 150);
    });

    if (!window.EventSource) {
      status.textContent = "This browser cannot follow logs; use Download.";
      return;
    }
    var source = new EventSource(section.getAttribute("data-events"));
    source.addEventListener("log", function (e) { append(JSON.parse(e.data)); });
    source.addEventListener("step", function () { refreshSoon(); });
    source.addEventListener("end", function (e) {
      source.close();
      var data = JSON.parse(e.data);
      log.setAttribute("data-state", "done");
      status.textContent = "Execution " + data.status + ". " + total + " log lines.";
      counts();
      refresh();
    });
    source.addEventListener("open", function () {
      if (log.getAttribute("data-state") === "live") { status.textContent = "Following the live logs…"; }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { status.textContent = "Log stream closed."; }
      else { status.textContent = "Reconnecting to the log stream…"; }
    };
  }

  function tickCountdowns() {
    var els = document.querySelectorAll("time.countdown");
    var now = Date.now();
    for (var i = 0; i < els.length; i++) {
      var t = Date.parse(els[i].getAttribute("datetime"));
      if (isNaN(t)) { continue; }
      var s = Math.round((t - now) / 1000);
      if (s <= 0) { els[i].textContent = "expired"; continue; }
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      els[i].textContent = "in " + (h ? h + "h " : "") + (h || m ? m + "m " : "") + (h ? "" : sec + "s");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("logs");
    if (section && section.getAttribute("data-events")) { setupLogs(section); }
    if (document.querySelector("time.countdown")) { tickCountdowns(); setInterval(tickCountdowns, 1000); }
  });
})();
