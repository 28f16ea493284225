/* pytest-dnnbench dashboard: the index's filters and sorting, a model page's charts (Plotly, shipped with the
 * site). No network: every file this script uses is in the site. */
(function () {
  "use strict";

  function done() {
    document.body.setAttribute("data-ready", "1");
    document.body.setAttribute("data-drawn-ms", String(Math.round(performance.now())));
  }

  // -- the index: filter by model (a glob), platform, mode; sort by any column ---------------------------------
  function globRegExp(text) {
    var t = text.trim();
    if (!t) return null;
    var body = t.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp(t.indexOf("*") >= 0 || t.indexOf("?") >= 0 ? "^" + body + "$" : body, "i");
  }

  function setUpIndex(table) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var model = document.getElementById("f-model");
    var platform = document.getElementById("f-platform");
    var mode = document.getElementById("f-mode");
    var count = document.getElementById("f-count");
    function filter() {
      var re = globRegExp(model.value);
      var shown = 0;
      rows.forEach(function (r) {
        var ok = (!re || re.test(r.getAttribute("data-model"))) &&
          (!platform.value || r.getAttribute("data-platform") === platform.value) &&
          (!mode.value || r.getAttribute("data-mode") === mode.value);
        r.hidden = !ok;
        if (ok) shown += 1;
      });
      count.textContent = shown + " of " + rows.length + " histories";
    }
    [model, platform, mode].forEach(function (el) {
      el.addEventListener("input", filter);
      el.addEventListener("change", filter);
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var kind = th.getAttribute("data-sort");
      if (!kind) return;
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (o) {
          if (o.hasAttribute("data-sort")) o.setAttribute("aria-sort", "none");
        });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var key = function (r) {
          var cell = r.cells[col];
          if (kind === "num") {
            var v = parseFloat(cell.getAttribute("data-v"));
            return isNaN(v) ? Infinity : v;
          }
          return cell.textContent.toLowerCase();
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        var body = table.tBodies[0];
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
    filter();
  }

  // -- a model's page: latency and memory over the runs, per batch size ------------------------------------------
  var FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 14, color: "#222" };

  function trace(s, kind) {
    var y = kind === "latency" ? s.latency : s.memory_mib;
    var t = {
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: s.x,
      y: y,
      line: { color: s.color, dash: s.dash, width: 2 },
      marker: {
        color: s.color,
        size: 7,
        symbol: s.busy.map(function (b) { return b ? s.symbol + "-open" : s.symbol; }),
      },
      customdata: s.x.map(function (_, i) {
        return [s.commit[i], s.n[i] == null ? "?" : s.n[i], s.ci_low[i], s.ci_high[i],
          s.busy[i] ? "busy or unusable" : "usable", s.run[i], s.failed[i] ? " · gate FAILED" : ""];
      }),
      connectgaps: true,
    };
    if (kind === "latency") {
      t.error_y = {
        type: "data", symmetric: false, thickness: 1, width: 0, color: s.color,
        array: s.ci_high.map(function (h, i) { return h == null ? null : h - s.latency[i]; }),
        arrayminus: s.ci_low.map(function (l, i) { return l == null ? null : s.latency[i] - l; }),
      };
      t.hovertemplate = "%{fullData.name}<br>commit %{customdata[0]} · run %{customdata[5]}<br>%{x|%Y-%m-%d %H:%M} UTC" +
        "<br>median %{y:.4g} ms (95 %% interval %{customdata[2]:.4g} to %{customdata[3]:.4g}), n %{customdata[1]}" +
        "<br>%{customdata[4]}%{customdata[6]}<extra></extra>";
    } else {
      t.hovertemplate = "%{fullData.name}<br>commit %{customdata[0]} · run %{customdata[5]}<br>%{x|%Y-%m-%d %H:%M} UTC" +
        "<br>memory %{y:,.0f} MiB<br>%{customdata[4]}<extra></extra>";
    }
    return t;
  }

  function draw(div, series) {
    var kind = div.getAttribute("data-kind");
    var batch = Number(div.getAttribute("data-batch"));
    var mine = series.filter(function (s) {
      return s.batch === batch && (kind === "latency" || s.memory_mib.some(function (v) { return v != null; }));
    });
    if (!mine.length) {
      div.className = "chart empty";
      div.textContent = "No " + kind + " figure recorded at batch size " + batch + ".";
      div.setAttribute("data-traces", "0");
      return Promise.resolve();
    }
    var traces = mine.map(function (s) { return trace(s, kind); });
    var annotations = [], shapes = [];
    if (kind === "latency") {
      var cx = [], cy = [], ctext = [], ccolor = [], crun = [];
      mine.forEach(function (s) {
        s.changes.forEach(function (c) {
          cx.push(c.x); cy.push(c.y); crun.push(c.run);
          ctext.push("change " + c.step + " at " + c.commit + (c.accepted ? " (accepted)" : "") + ", p " + c.p.toPrecision(2));
          ccolor.push(c.worse ? "#D55E00" : "#009E73");
          annotations.push({
            x: c.x, y: c.y, text: c.commit + " " + c.step, showarrow: true, arrowhead: 2, ax: 0, ay: -34,
            font: { size: 13, color: c.worse ? "#A04000" : "#006B4F" }, bgcolor: "rgba(255,255,255,0.85)",
          });
        });
        s.accepted.forEach(function (a) {
          shapes.push({ type: "line", xref: "x", yref: "paper", x0: a.x, x1: a.x, y0: 0, y1: 1,
            line: { color: "#555", width: 1.5, dash: "dot" } });
          annotations.push({ x: a.x, xref: "x", yref: "paper", y: 1, yanchor: "bottom", showarrow: false,
            text: "accepted: " + (a.reason.length > 40 ? a.reason.slice(0, 39) + "…" : a.reason), font: { size: 12, color: "#333" } });
        });
      });
      if (cx.length) {
        traces.push({
          type: "scatter", mode: "markers", name: "change points", x: cx, y: cy, text: ctext,
          marker: { symbol: "x-thin-open", size: 16, line: { width: 3, color: ccolor }, color: ccolor },
          customdata: crun.map(function (r) { return [null, null, null, null, null, r]; }),
          hovertemplate: "%{text}<extra></extra>",
        });
      }
    }
    var layout = {
      font: FONT,
      height: 400,
      margin: { l: 80, r: 24, t: 48, b: 60 },
      title: { text: (kind === "latency" ? "Latency" : "Memory") + " at batch size " + batch, font: { size: 16 } },
      xaxis: { title: { text: "run start (UTC)" }, type: "date", automargin: true },
      yaxis: { title: { text: kind === "latency" ? "latency (ms per batch)" : "memory of the process (MiB)" }, rangemode: "tozero", automargin: true },
      legend: { orientation: "h", y: -0.25 },
      hovermode: "closest",
      annotations: annotations,
      shapes: shapes,
      plot_bgcolor: "#fff",
    };
    div.setAttribute("data-traces", String(traces.length));
    return Plotly.newPlot(div, traces, layout, { displaylogo: false, responsive: true }).then(function (gd) {
      gd.on("plotly_click", function (ev) {
        var p = ev.points && ev.points[0];
        var run = p && p.customdata && p.customdata[5];
        if (run != null) window.location.href = "../runs/" + run + ".html";
      });
    });
  }

  function setUpModel(data) {
    var note = document.getElementById("no-script");
    if (note) note.hidden = true;
    if (!window.Plotly) {
      if (note) { note.hidden = false; note.textContent = "Plotly did not load: assets/plotly.min.js is missing."; }
      return Promise.resolve();
    }
    var charts = Array.prototype.slice.call(document.querySelectorAll("div.chart"));
    return Promise.all(charts.map(function (div) { return draw(div, data.series); }));
  }

  var table = document.getElementById("histories");
  if (table) setUpIndex(table);
  if (window.DNN_MODEL) {
    setUpModel(window.DNN_MODEL).then(done, function (e) { console.error(e); });
  } else {
    done();
  }
})();
