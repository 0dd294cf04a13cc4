// Draws the plots of the robot, overview, queue and test pages with the
// vendored uPlot.  Each plot is a <div class="hc-plot" data-kind="..."> holding
// a <script type="application/json"> with its data (no inline script runs:
// the Content-Security-Policy allows scripts from 'self' only).
// Times are in the signed-in user's display zone (<body data-tz>, UTC by default),
// as in the tables: 24-hour, the zone on the axis.
(function () {
  "use strict";
  var COLORS = ["#175cd3", "#c62828", "#1a7f37", "#b54708", "#6941c6", "#0e7490", "#667085", "#be185d"];
  var OUTCOME = {"succeeded": "#1a7f37", "failed": "#c62828", "cancelled": "#98a2b3", "lost": "#b54708",
                 "in flight": "#175cd3"};

  // the exported report inlines this script in <head>, where there is no <body> yet
  var ZONE = (document.body && document.body.getAttribute("data-tz")) || "UTC";
  // sv-SE writes "2026-12-03 14:40": ISO order, 24-hour
  var STAMP = new Intl.DateTimeFormat("sv-SE", {timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit",
                                                hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
  function utc(ts) { return STAMP.format(new Date(ts * 1000)).replace(",", ""); }
  var TIME_AXIS = {label: "time (" + ZONE + ")", values: function (u, splits, ai, space, incr) {
    return splits.map(function (ts) { return ts == null ? "" : incr >= 86400 ? utc(ts).slice(5, 10) : utc(ts).slice(11); });
  }};
  var TIME_SERIES = {label: ZONE, value: function (u, ts) { return ts == null ? "" : utc(ts); }};

  function width(el) { return Math.max(300, el.clientWidth || 600); }
  function color(i) { return COLORS[i % COLORS.length]; }
  function flat(n, v) { var a = []; for (var i = 0; i < n; i++) a.push(v); return a; }

  function band(el, d) {
    var n = d.t.length, b = d.band;
    var series = [TIME_SERIES, {label: d.label || d.metric, stroke: "#175cd3", width: 1,
                       points: {show: true, size: 5, fill: "#175cd3"}}];
    var data = [d.t, d.v];
    if (b) {
      series.push({label: "mean", stroke: "#667085", dash: [4, 4], points: {show: false}});
      series.push({label: "lower", stroke: "#c62828", dash: [2, 3], points: {show: false}});
      series.push({label: "upper", stroke: "#c62828", dash: [2, 3], points: {show: false}});
      data.push(flat(n, b.mean), flat(n, b.lower), flat(n, b.upper));
    }
    return {opts: {series: series}, data: data};
  }

  function multi(el, d) {
    var tables = d.series.map(function (s) { return [s.t, s.v]; });
    var series = [TIME_SERIES].concat(d.series.map(function (s, i) {
      return {label: s.label, stroke: color(i), paths: function () { return null; },
              points: {show: true, size: 5, fill: color(i)}};
    }));
    return {opts: {series: series}, data: uPlot.join(tables)};
  }

  function hist(el, d) {
    // one bar per bin at the bin's centre (queues overlaid, see-through); x in the metric's unit
    var centres = d.edges.map(function (e) { return e + d.width / 2; });
    var series = [{label: d.metric + (d.unit ? " (" + d.unit + ")" : "")}].concat(d.queues.map(function (q, i) {
      return {label: q.label, stroke: color(i), fill: color(i) + "66", points: {show: false},
              paths: uPlot.paths.bars({size: [0.95, Infinity], align: 0})};
    }));
    return {opts: {series: series, scales: {x: {time: false, range: [d.edges[0], d.edges[d.edges.length - 1] + d.width]}}},
            axes: [{label: d.metric + (d.unit ? " (" + d.unit + ")" : "")}, {label: "jobs"}],
            data: [centres].concat(d.queues.map(function (q) { return q.counts; }))};
  }

  function bars(el, d) {
    // stacked: cumulative sums, the tallest drawn first and the others over it
    var cum = [], acc = flat(d.x.length, 0);
    d.series.forEach(function (s) {
      acc = acc.map(function (v, i) { return v + (s.values[i] || 0); });
      cum.push(acc.slice());
    });
    var order = d.series.map(function (_, i) { return i; }).reverse();
    var series = [{label: "day", value: function (u, ts) { return ts == null ? "" : utc(ts).slice(0, 10); }}].concat(order.map(function (i) {
      var c = OUTCOME[d.series[i].label] || color(i);
      return {label: d.series[i].label, stroke: c, fill: c, paths: uPlot.paths.bars({size: [0.8, 40]}),
              points: {show: false}, value: function (u, v, si, di) {
                return di == null ? "" : d.series[i].values[di]; }};
    }));
    return {opts: {series: series}, data: [d.x].concat(order.map(function (i) { return cum[i]; }))};
  }

  var KINDS = {band: band, multi: multi, hist: hist, bars: bars};

  function draw(el) {
    var node = el.querySelector("script[type='application/json']");
    if (!node || typeof uPlot === "undefined") return;
    var d = JSON.parse(node.textContent);
    var made = KINDS[el.dataset.kind](el, d);
    var axes = made.axes || [TIME_AXIS, {label: d.unit || ""}];
    var opts = Object.assign({title: d.title || "", width: width(el), height: 240, axes: axes}, made.opts);
    new uPlot(opts, made.data, el);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".hc-plot").forEach(draw);
  });
})();
