/* otel-metrics UI: charts (uPlot) from the JSON blocks the server rendered, the trace page's span list and
   details, and the alert actions. No framework, no network beyond this server. */
(function () {
  "use strict";

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // -- charts --------------------------------------------------------------------------------------------
  function formatValue(unit, v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "0";
    if (unit === "$") return "$" + (Math.abs(v) < 1 ? Number(v.toPrecision(2)) : v.toFixed(2));
    if (unit === "ms") return v < 1000 ? Number(v.toPrecision(3)) + " ms" : Number((v / 1000).toPrecision(3)) + " s";
    if (unit === "%") return Number(v.toPrecision(3)) + "%";
    return Number(v.toPrecision(3)) + unit;
  }

  function drawChart(block) {
    var spec = JSON.parse(block.textContent);
    var target = document.getElementById(block.getAttribute("data-chart"));
    if (!target || typeof uPlot === "undefined") return;
    var names = Object.keys(spec.lines);
    if (!spec.x.length || !names.length) { target.appendChild(el("p", { "class": "empty" }, "No data in this window.")); return; }
    var palette = ["--s0", "--s1", "--s2", "--s3", "--s4", "--s5", "--s6", "--s7"].map(css);
    var bars = spec.kind === "bars" && typeof uPlot.paths.bars === "function";
    var series = [{}].concat(names.map(function (name, i) {
      var color = palette[i % palette.length];
      return {
        label: name, stroke: color, width: 2, spanGaps: false,
        fill: bars ? color + "99" : undefined,
        paths: bars ? uPlot.paths.bars({ size: [0.8, 40], align: 1 }) : undefined,
        points: { show: spec.x.length < 40 && !bars },
        value: function (u, v) { return formatValue(spec.unit, v); },
      };
    }));
    var axis = { stroke: css("--muted"), grid: { stroke: css("--border"), width: 1 }, ticks: { stroke: css("--border") } };
    var opts = {
      width: Math.max(target.clientWidth, 200), height: 200, series: series,
      scales: {
        x: { time: true, range: function () { return [spec.x[0], spec.x[spec.x.length - 1] + spec.step]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      axes: [axis, Object.assign({}, axis, { size: 64, values: function (u, vals) { return vals.map(function (v) { return formatValue(spec.unit, v); }); } })],
      cursor: { points: { size: 6 } },
      // UTC like every time the pages print, whatever the browser's zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { live: true },
    };
    var data = [spec.x].concat(names.map(function (n) { return spec.lines[n]; }));
    var plot = new uPlot(opts, data, target);
    target.setAttribute("data-drawn", "true");
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(function () { plot.setSize({ width: Math.max(target.clientWidth, 200), height: 200 }); }).observe(target);
    }
  }
  document.querySelectorAll("script[data-chart]").forEach(drawChart);

  // -- trace page ----------------------------------------------------------------------------------------
  // The spans come as one JSON array (row: span id, depth, name, service index, error, cost, left %, width %,
  // duration, offset ms); only the rows in and near view are in the DOM, so a 5,000-span trace draws a screenful.
  // A selected span's details come from /ui/traces/<trace>/spans/<span> (once each).
  var rows = document.getElementById("span-rows");
  var detail = document.getElementById("span-detail");
  var spanData = document.getElementById("span-data");
  if (rows && detail && spanData) {
    var traceId = rows.getAttribute("data-trace-id");
    var timeline = JSON.parse(spanData.textContent);
    var data = timeline.rows, services = timeline.services;
    var ROW = 25, MARGIN = 15;
    var spacer = el("div", { "class": "spacer" });
    spacer.style.height = data.length * ROW + "px";
    rows.appendChild(spacer);
    var drawn = new Map();
    var cache = {};
    var current = -1;

    function rowElement(i) {
      var d = data[i];
      var row = el("div", {
        "class": "row svc-" + (d[3] % 8) + (d[4] ? " error" : ""), role: "option", id: "span-row-" + i,
        "data-index": i, "data-span-id": d[0], "data-service": services[d[3]],
        "aria-posinset": i + 1, "aria-setsize": data.length, tabindex: "-1",
        style: "top:" + i * ROW + "px;--d:" + d[1] + ";--l:" + d[6] + "%;--w:" + d[7] + "%",
      });
      var name = el("span", { "class": "n" }, d[2] + " ");
      name.appendChild(el("small", null, services[d[3]]));
      if (d[5]) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("em", null, d[5])); }
      row.appendChild(name);
      row.appendChild(el("i"));
      row.appendChild(el("span", { "class": "dur" }, d[8]));
      if (i === current) { row.setAttribute("aria-selected", "true"); row.tabIndex = 0; }
      return row;
    }

    function draw() {
      var first = Math.max(0, Math.floor(rows.scrollTop / ROW) - MARGIN);
      var last = Math.min(data.length, Math.ceil((rows.scrollTop + rows.clientHeight) / ROW) + MARGIN);
      // The selected row stays (it may have focus) wherever the list is scrolled.
      drawn.forEach(function (row, i) { if ((i < first || i >= last) && i !== current) { row.remove(); drawn.delete(i); } });
      for (var i = first; i < last; i++) {
        if (!drawn.has(i)) { var row = rowElement(i); drawn.set(i, row); spacer.appendChild(row); }
      }
    }
    var pending = false;
    rows.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    });

    function table(title, obj) {
      var keys = Object.keys(obj || {});
      if (!keys.length) return null;
      var frag = document.createDocumentFragment();
      frag.appendChild(el("h3", null, title + " (" + keys.length + ")"));
      var t = el("table");
      keys.forEach(function (k) {
        var tr = el("tr");
        var v = obj[k];
        tr.appendChild(el("td", null, k));
        tr.appendChild(el("td", null, typeof v === "string" ? v : JSON.stringify(v)));
        t.appendChild(tr);
      });
      frag.appendChild(t);
      return frag;
    }

    function usd(v) { return v === null || v === undefined ? "–" : "$" + Number(v).toFixed(6).replace(/0+$/, "").replace(/\.$/, ""); }
    function ms(v) { return v === 0 ? "0 ms" : v < 1 ? (v * 1000).toFixed(0) + " µs" : v < 1000 ? Number(v.toPrecision(3)) + " ms" : (v / 1000).toFixed(2) + " s"; }

    function render(s, offset) {
      detail.textContent = "";
      detail.appendChild(el("h2", null, s.name));
      var facts = {
        service: s.service, kind: s.kind, status: s.status + (s.status_message ? ": " + s.status_message : ""),
        start: "+" + ms(offset), duration: ms(s.duration_ms), "span id": s.span_id,
        "parent span id": s.parent_span_id || "(root)", scope: s.scope || "–",
      };
      if (s.model) facts.model = s.model;
      if (s.input_tokens !== null || s.output_tokens !== null) facts.tokens = (s.input_tokens || 0) + " in · " + (s.output_tokens || 0) + " out";
      facts.cost = usd(s.cost_usd);
      detail.appendChild(table("Span", facts));
      if (s.exceptions.length) {
        detail.appendChild(el("h3", null, "Exceptions (" + s.exceptions.length + ")"));
        s.exceptions.forEach(function (x) {
          var box = el("div", { "class": "exception" });
          box.appendChild(el("strong", { "class": "error" }, (x.type || "exception") + ": " + (x.message || "")));
          if (x.stacktrace) box.appendChild(el("pre", null, x.stacktrace));
          detail.appendChild(box);
        });
      }
      if (s.events.length) {
        detail.appendChild(el("h3", null, "Events (" + s.events.length + ")"));
        var t = el("table");
        s.events.forEach(function (e) {
          var tr = el("tr");
          tr.appendChild(el("td", null, "+" + ms(e.offset_ms) + " " + e.name));
          tr.appendChild(el("td", null, Object.keys(e.attributes).length ? JSON.stringify(e.attributes) : ""));
          t.appendChild(tr);
        });
        detail.appendChild(t);
      }
      [["Attributes", s.attributes], ["Resource", s.resource]].forEach(function (pair) {
        var part = table(pair[0], pair[1]);
        if (part) detail.appendChild(part);
      });
      if (s.links.length) {
        detail.appendChild(el("h3", null, "Links (" + s.links.length + ")"));
        var ul = el("ul");
        s.links.forEach(function (l) {
          var li = el("li");
          li.appendChild(el("a", { href: "/traces/" + encodeURIComponent(l.trace_id) }, l.trace_id + " / " + l.span_id));
          ul.appendChild(li);
        });
        detail.appendChild(ul);
      }
    }

    function show(i) {
      var spanId = data[i][0], offset = data[i][9];
      if (cache[spanId]) { render(cache[spanId], offset); return; }
      detail.textContent = "";
      detail.appendChild(el("p", { "class": "muted" }, "Loading…"));
      fetch("/ui/traces/" + encodeURIComponent(traceId) + "/spans/" + encodeURIComponent(spanId), { credentials: "same-origin" })
        .then(function (resp) { return resp.json().then(function (body) { return { ok: resp.ok, body: body }; }); })
        .then(function (r) {
          if (!r.ok) throw new Error(r.body.error || "not found");
          cache[spanId] = r.body;
          if (current === i) render(r.body, offset);
        })
        .catch(function (err) {
          if (current !== i) return;
          detail.textContent = "";
          detail.appendChild(el("p", { "class": "error" }, "Could not load this span: " + err.message));
        });
    }

    function select(i, focus) {
      if (i < 0 || i >= data.length) return;
      var before = drawn.get(current);
      if (before) { before.removeAttribute("aria-selected"); before.tabIndex = -1; }
      current = i;
      // Scrolled to the selected row first, so it is drawn.
      if (i * ROW < rows.scrollTop) rows.scrollTop = i * ROW;
      else if ((i + 1) * ROW > rows.scrollTop + rows.clientHeight) rows.scrollTop = (i + 1) * ROW - rows.clientHeight;
      draw();
      var row = drawn.get(i);
      row.setAttribute("aria-selected", "true");
      row.tabIndex = 0;
      if (focus) row.focus({ preventScroll: true });
      show(i);
    }
    rows.addEventListener("click", function (ev) {
      var row = ev.target.closest(".row");
      if (row) select(Number(row.getAttribute("data-index")), true);
    });
    rows.addEventListener("keydown", function (ev) {
      var step = { ArrowDown: 1, ArrowUp: -1, PageDown: 20, PageUp: -20 }[ev.key];
      if (step) { ev.preventDefault(); select(Math.max(0, Math.min(data.length - 1, current + step)), true); }
      else if (ev.key === "Home") { ev.preventDefault(); select(0, true); }
      else if (ev.key === "End") { ev.preventDefault(); select(data.length - 1, true); }
      else if (ev.key === "Enter" || ev.key === " ") {
        var row = ev.target.closest(".row");
        if (row) { ev.preventDefault(); select(Number(row.getAttribute("data-index")), true); }
      }
    });
    draw();
    // Open on the first error span, else the root.
    var firstError = data.findIndex(function (d) { return d[4] === 1; });
    select(firstError >= 0 ? firstError : 0, false);
    rows.setAttribute("data-spans", String(data.length));
  }

  // -- alert actions -------------------------------------------------------------------------------------
  var statusLine = document.getElementById("change-status");
  document.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var id = button.getAttribute("data-id"), action = button.getAttribute("data-action");
      var row = button.closest("tr");
      row.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      fetch("/ui/alerts/" + encodeURIComponent(id) + "/" + action, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: "{}",
      }).then(function (resp) {
        return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
      }).then(function (r) {
        if (!r.ok) throw new Error(r.body.error || "refused");
        row.querySelector(".alert-status").textContent = r.body.status;
        row.querySelectorAll("button").forEach(function (b) {
          if (r.body.status === "resolved" || b.getAttribute("data-action") === "ack") b.remove(); else b.disabled = false;
        });
        if (statusLine) statusLine.textContent = "Alert " + id + " " + r.body.status + ".";
      }).catch(function (err) {
        row.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        if (statusLine) statusLine.textContent = "Alert " + id + ": " + err.message;
      });
    });
  });

  // -- budget form: the JSON body of PUT /api/v1/budgets, posted to /ui/budgets; the page reloads to show it -----
  var budgetForm = document.getElementById("budget-form");
  if (budgetForm) {
    budgetForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = new FormData(budgetForm), status = document.getElementById("budget-status");
      var body = { scope: data.get("scope"), name: data.get("name"), period: data.get("period"), amount_usd: Number(data.get("amount_usd")) };
      if (data.get("warning_ratio")) body.warning_ratio = Number(data.get("warning_ratio"));
      var button = budgetForm.querySelector("button");
      button.disabled = true;
      fetch("/ui/budgets", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      }).then(function (resp) {
        return resp.json().then(function (b) { return { ok: resp.ok, body: b }; });
      }).then(function (r) {
        if (!r.ok) throw new Error(r.body.error || "refused");
        status.textContent = "Budget " + r.body.scope + " " + r.body.name + " saved.";
        window.location.reload();
      }).catch(function (err) {
        button.disabled = false;
        status.textContent = "Budget not saved: " + err.message;
      });
    });
  }
})();
