// fotsim report and live view: a small SVG renderer in plain JavaScript.
// It reads the JSON of the fotsim-data block and builds every table and
// chart in #app. Text from the data only ever goes through textContent.
(function () {
  'use strict';

  var SVGNS = document.getElementById('fotsim-svgns').namespaceURI;
  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  var W = 440, H = 270, ML = 50, MR = 14, MT = 12, MB = 40;
  var MAX_MARKERS = 400; // points per chart drawn as circles

  function color(i) { return PALETTE[i % PALETTE.length]; }

  // h builds an HTML element; children are nodes or strings (text).
  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); }
      }
    }
    append(e, children);
    return e;
  }

  function append(e, children) {
    if (children === undefined || children === null) { return; }
    if (!Array.isArray(children)) { children = [children]; }
    children.forEach(function (c) {
      if (c === null || c === undefined) { return; }
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
  }

  // sv builds an SVG element.
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, String(attrs[k])); }
      }
    }
    if (text !== undefined) { e.textContent = String(text); }
    return e;
  }

  function num(v) { return typeof v === 'number' && isFinite(v); }

  // fmt formats v with d decimals (2 by default) as fotsim's text tables
  // do: exact ties round half to even (Go's strconv), never "-0.00";
  // missing values are "-".
  function fmt(v, d) {
    if (!num(v)) { return '-'; }
    if (d === undefined) { d = 2; }
    var s;
    if (d === 2 && Number.isInteger(v * 8) && !Number.isInteger(v * 4) && Math.abs(v) < 1e12) {
      var k = Math.floor(v * 100); // v*100 is exactly k + 0.5
      if (k % 2 !== 0) { k += 1; }
      s = (k / 100).toFixed(2);
    } else {
      s = v.toFixed(d);
    }
    if (/^-0\.?0*$/.test(s)) { s = s.slice(1); }
    return s;
  }

  // meanStd mirrors results.MeanStd: the mean and the sample standard
  // deviation (divisor n-1) in two passes; NaN for none or a missing value.
  function meanStd(xs) {
    var n = xs.length;
    if (n === 0) { return [NaN, NaN]; }
    var m = 0, i;
    for (i = 0; i < n; i++) { m += num(xs[i]) ? xs[i] : NaN; }
    m /= n;
    if (n === 1) { return [m, isNaN(m) ? m : 0]; }
    var ss = 0;
    for (i = 0; i < n; i++) { var d = xs[i] - m; ss += d * d; }
    return [m, Math.sqrt(ss / (n - 1))];
  }

  function meanStdText(xs) {
    var ms = meanStd(xs);
    if (!num(ms[0])) { return '-'; }
    return xs.length === 1 ? fmt(ms[0]) : fmt(ms[0]) + ' \u00b1 ' + fmt(ms[1]);
  }

  function bytes(n) {
    if (!num(n)) { return '-'; }
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0, v = n;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? String(n) + ' B' : v.toFixed(1) + ' ' + units[i];
  }

  function label(r) { return r.method_label || r.method || '?'; }

  // niceTicks returns about n round numbers covering [lo, hi].
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    if (err >= 7.5) { step *= 10; } else if (err >= 3.5) { step *= 5; } else if (err >= 1.5) { step *= 2; }
    var out = [], t = Math.ceil(lo / step) * step;
    for (; t <= hi + step * 1e-9; t += step) { out.push(Math.abs(t) < step * 1e-9 ? 0 : t); }
    return out;
  }

  function tickText(t) {
    var a = Math.abs(t);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) { return t.toExponential(0); }
    return String(Math.round(t * 1000) / 1000);
  }

  function legend(items) {
    var l = h('div', { 'class': 'legend' });
    items.forEach(function (it) {
      var sw = h('span', { 'class': 'swatch' });
      sw.style.background = it.color;
      l.appendChild(h('span', null, [sw, it.name]));
    });
    return l;
  }

  function frame(title, cls) {
    var fig = h('figure', { 'class': 'chart' + (cls ? ' ' + cls : '') });
    fig.appendChild(h('figcaption', null, title));
    var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    svg.appendChild(sv('title', null, title));
    fig.appendChild(svg);
    return { fig: fig, svg: svg };
  }

  function axes(svg, x, y, xt, yt, xlabel, ylabel) {
    yt.forEach(function (t) {
      svg.appendChild(sv('line', { 'class': 'grid', x1: ML, x2: W - MR, y1: y(t), y2: y(t) }));
      svg.appendChild(sv('text', { x: ML - 5, y: y(t) + 4, 'text-anchor': 'end' }, tickText(t)));
    });
    if (xt) {
      xt.forEach(function (t) {
        svg.appendChild(sv('line', { 'class': 'axis', x1: x(t), x2: x(t), y1: H - MB, y2: H - MB + 4 }));
        svg.appendChild(sv('text', { x: x(t), y: H - MB + 16, 'text-anchor': 'middle' }, tickText(t)));
      });
    }
    svg.appendChild(sv('line', { 'class': 'axis', x1: ML, x2: W - MR, y1: H - MB, y2: H - MB }));
    svg.appendChild(sv('line', { 'class': 'axis', x1: ML, x2: ML, y1: MT, y2: H - MB }));
    if (xlabel) { svg.appendChild(sv('text', { x: (ML + W - MR) / 2, y: H - 6, 'text-anchor': 'middle' }, xlabel)); }
    if (ylabel) {
      svg.appendChild(sv('text', { x: -(MT + H - MB) / 2, y: 13, 'text-anchor': 'middle', transform: 'rotate(-90)' }, ylabel));
    }
  }

  // lineChart draws series of [x, y] points (y null = gap) with optional
  // dashed vertical lines (task boundaries). o: {title, xlabel, ylabel,
  // series: [{name, color, points}], vlines, xmin, xmax, ymin, ymax}.
  // Every series path carries data-n, its number of points.
  function lineChart(o) {
    var xs = [], ys = [], total = 0;
    o.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (num(p[0]) && num(p[1])) { xs.push(p[0]); ys.push(p[1]); total++; }
      });
    });
    var xmin = num(o.xmin) ? o.xmin : (xs.length ? Math.min.apply(null, xs) : 0);
    var xmax = num(o.xmax) ? o.xmax : (xs.length ? Math.max.apply(null, xs) : 1);
    var ymin = num(o.ymin) ? o.ymin : (ys.length ? Math.min.apply(null, ys) : 0);
    var ymax = num(o.ymax) ? o.ymax : (ys.length ? Math.max.apply(null, ys) : 1);
    if (!num(o.ymin) && ymin > 0 && ymin < ymax * 0.5) { ymin = 0; }
    if (xmax <= xmin) { xmax = xmin + 1; }
    if (ymax <= ymin) { var pad = Math.abs(ymin) * 0.1 || 1; ymin -= pad; ymax += pad; }
    var x = function (v) { return ML + (v - xmin) / (xmax - xmin) * (W - ML - MR); };
    var y = function (v) { return H - MB - (v - ymin) / (ymax - ymin) * (H - MT - MB); };
    var f = frame(o.title, o.cls);
    var xt = niceTicks(xmin, xmax, 6).filter(function (t) { return t >= xmin && t <= xmax; });
    if (o.integerX) { xt = xt.filter(function (t) { return Number.isInteger(t); }); }
    axes(f.svg, x, y, xt, niceTicks(ymin, ymax, 5), o.xlabel, o.ylabel);
    (o.vlines || []).forEach(function (v) {
      if (num(v) && v > xmin && v < xmax) {
        f.svg.appendChild(sv('line', { 'class': 'boundary', x1: x(v), x2: x(v), y1: MT, y2: H - MB }));
      }
    });
    var markers = total <= MAX_MARKERS;
    o.series.forEach(function (s) {
      var d = '', pen = false, n = 0;
      s.points.forEach(function (p) {
        if (!num(p[0]) || !num(p[1])) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1) + ' ';
        pen = true;
        n++;
      });
      var path = sv('path', { 'class': 'series', d: d || 'M0 0', stroke: s.color, 'data-n': n });
      if (!d) { path.setAttribute('visibility', 'hidden'); }
      f.svg.appendChild(path);
      if (markers) {
        s.points.forEach(function (p) {
          if (!num(p[0]) || !num(p[1])) { return; }
          var c = sv('circle', { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.6, fill: s.color });
          c.appendChild(sv('title', null, s.name + ': ' + tickText(p[0]) + ', ' + fmt(p[1])));
          f.svg.appendChild(c);
        });
      }
    });
    if (total === 0) {
      f.svg.appendChild(sv('text', { x: (ML + W - MR) / 2, y: (MT + H - MB) / 2, 'text-anchor': 'middle' }, o.empty || 'no data yet'));
    }
    f.fig.appendChild(legend(o.series));
    return f.fig;
  }

  // barChart draws one bar per group with a +-std error bar.
  // o: {title, ylabel, bars: [{name, color, mean, std, n}]}.
  function barChart(o) {
    var lo = 0, hi = 0;
    o.bars.forEach(function (b) {
      if (!num(b.mean)) { return; }
      var s = num(b.std) && b.n > 1 ? b.std : 0;
      lo = Math.min(lo, b.mean - s);
      hi = Math.max(hi, b.mean + s);
    });
    if (num(o.ymax)) { hi = Math.max(hi, o.ymax); }
    if (hi <= lo) { hi = lo + 1; }
    hi += (hi - lo) * 0.05;
    var ticks = niceTicks(lo, hi, 5), step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
    if (ticks[0] > lo) { ticks.unshift(ticks[0] - step); }
    lo = Math.min(lo, ticks[0]);
    hi = Math.max(hi, ticks[ticks.length - 1]);
    var y = function (v) { return H - MB - (v - lo) / (hi - lo) * (H - MT - MB); };
    var f = frame(o.title);
    axes(f.svg, null, y, null, ticks, null, o.ylabel);
    var n = o.bars.length, slot = (W - ML - MR) / Math.max(n, 1), bw = Math.min(slot * 0.6, 60);
    o.bars.forEach(function (b, i) {
      var cx = ML + slot * (i + 0.5);
      if (num(b.mean)) {
        var y0 = y(0), y1 = y(b.mean);
        var rect = sv('rect', { x: (cx - bw / 2).toFixed(1), y: Math.min(y0, y1).toFixed(1), width: bw.toFixed(1),
          height: Math.max(Math.abs(y0 - y1), 0.5).toFixed(1), fill: b.color, 'data-mean': b.mean });
        rect.appendChild(sv('title', null, b.name + ': ' + (b.n > 1 ? fmt(b.mean) + ' \u00b1 ' + fmt(b.std) : fmt(b.mean)) + ' (' + b.n + ' seed' + (b.n === 1 ? '' : 's') + ')'));
        f.svg.appendChild(rect);
        if (b.n > 1 && num(b.std)) {
          var ya = y(b.mean - b.std), yb = y(b.mean + b.std);
          f.svg.appendChild(sv('path', { 'class': 'err', d: 'M' + cx + ' ' + ya + 'V' + yb + 'M' + (cx - 6) + ' ' + ya + 'h12M' + (cx - 6) + ' ' + yb + 'h12' }));
        }
      }
      var t = sv('text', { x: cx, y: H - MB + 14, 'text-anchor': 'middle' }, b.name.length > 14 ? b.name.slice(0, 13) + '\u2026' : b.name);
      t.appendChild(sv('title', null, b.name));
      f.svg.appendChild(t);
    });
    f.fig.appendChild(legend(o.bars));
    return f.fig;
  }

  function table(head, rows) {
    var t = h('table');
    t.appendChild(h('thead', null, h('tr', null, head.map(function (c) { return h('th', null, c); }))));
    var tb = h('tbody');
    rows.forEach(function (r) { tb.appendChild(h('tr', null, r.map(function (c) { return h('td', null, c); }))); });
    t.appendChild(tb);
    return t;
  }

  function cellColor(v) {
    var a = Math.max(0, Math.min(100, v)) / 100;
    return 'hsl(210, 65%, ' + (96 - a * 58).toFixed(1) + '%)';
  }

  // matrixTable shows acc[i][j] coloured from light (0%) to dark (100%).
  function matrixTable(r) {
    var m = r.acc_matrix || [], n = r.tasks || 0;
    m.forEach(function (row) { n = Math.max(n, row.length); });
    var head = ['after task'];
    for (var j = 0; j < n; j++) { head.push('task ' + j); }
    var t = h('table', { 'class': 'matrix' });
    t.appendChild(h('caption', null, 'Accuracy (%): row i after task i, column j task j'));
    t.appendChild(h('thead', null, h('tr', null, head.map(function (c) { return h('th', null, c); }))));
    var tb = h('tbody');
    m.forEach(function (row, i) {
      var tr = h('tr', null, h('th', null, String(i)));
      for (var j = 0; j < n; j++) {
        var v = row[j];
        var td = h('td', null, fmt(v));
        if (num(v)) {
          td.style.background = cellColor(v);
          if (v > 60) { td.style.color = '#fff'; }
        } else {
          td.className = 'na';
        }
        tr.appendChild(td);
      }
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    return t;
  }

  // taskEnds returns the round after which each task ended.
  function taskEnds(r) {
    var T = r.tasks || (r.acc_matrix || []).length, ends = [], d = r.tasks_detail || [];
    var sum = 0, ok = d.length === T && T > 0;
    d.forEach(function (t) { sum += t.rounds || 0; });
    if (ok && sum === r.rounds) {
      var c = 0;
      d.forEach(function (t) { c += t.rounds; ends.push(c); });
      return ends;
    }
    for (var i = 0; i < T; i++) { ends.push(T ? Math.round((i + 1) * (r.rounds || T) / T) : i + 1); }
    return ends;
  }

  // curveChart: accuracy on every task over the rounds, from the record's
  // curves and the accuracy matrix (each task's end), with the task
  // boundaries dashed.
  function curveChart(r) {
    var T = r.tasks || (r.acc_matrix || []).length, ends = taskEnds(r), series = [];
    for (var j = 0; j < T; j++) {
      var pts = {};
      (r.curves || []).forEach(function (c) {
        if (c.acc && j < c.acc.length && num(c.acc[j])) { pts[c.round] = c.acc[j]; }
      });
      (r.acc_matrix || []).forEach(function (row, i) {
        if (num(row[j]) && !(ends[i] in pts)) { pts[ends[i]] = row[j]; }
      });
      var list = Object.keys(pts).map(Number).sort(function (a, b) { return a - b; }).map(function (k) { return [k, pts[k]]; });
      series.push({ name: 'task ' + j, color: color(j), points: list });
    }
    return lineChart({ title: 'Accuracy per task over rounds', xlabel: 'round', ylabel: 'accuracy (%)', series: series,
      vlines: ends.slice(0, -1), xmin: 0, xmax: r.rounds || ends[ends.length - 1], ymin: 0, ymax: 100 });
  }

  // subspaceCharts: FOT's basis dimension and projected share per layer
  // after each task, when the record has them.
  function subspaceCharts(r) {
    var d = r.tasks_detail || [], layers = {};
    d.forEach(function (t) { Object.keys(t.basis_dims || {}).forEach(function (k) { layers[k] = true; }); });
    var names = Object.keys(layers).sort();
    if (names.length === 0) { return []; }
    var cap = {};
    d.forEach(function (t) { Object.keys(t.basis_capacity || {}).forEach(function (k) { cap[k] = t.basis_capacity[k]; }); });
    var dims = names.map(function (k, i) {
      return { name: k + (cap[k] ? ' (d_in ' + cap[k] + ')' : ''), color: color(i),
        points: d.map(function (t) { return [t.task, t.basis_dims && k in t.basis_dims ? t.basis_dims[k] : null]; }) };
    });
    var share = names.map(function (k, i) {
      return { name: k, color: color(i), points: d.map(function (t) {
        var v = t.projected_fraction ? t.projected_fraction[k] : null;
        return [t.task, num(v) ? 100 * v : null];
      }) };
    });
    var maxCap = 0;
    names.forEach(function (k) { maxCap = Math.max(maxCap, cap[k] || 0); });
    var T = Math.max(d.length - 1, 1);
    return [
      lineChart({ title: 'FOT basis dimension per layer after each task', xlabel: 'task', ylabel: 'basis vectors k', series: dims,
        xmin: 0, xmax: T, ymin: 0, ymax: maxCap || undefined, integerX: true }),
      lineChart({ title: 'Share of the update removed by the projection', xlabel: 'task', ylabel: '% of ||D||', series: share,
        xmin: 0, xmax: T, ymin: 0, ymax: 100, integerX: true })
    ];
  }

  function anyPretrain(runs) { return runs.some(function (r) { return r.pretrain_tasks > 0; }); }
  function anyDP(runs) { return runs.some(function (r) { return !!r.dp; }); }

  function summary(runs) {
    var pre = anyPretrain(runs), dp = anyDP(runs);
    var head = ['method', 'seed', 'ACC'];
    if (pre) { head.push('ACC after pretrain'); }
    head = head.concat(['FGT', 'BWT', 'max-FGT', 'rounds', 'bytes up', 'bytes down', 'wall']);
    if (dp) { head.push('eps spent (max)'); }
    var rows = runs.map(function (r) {
      var row = [label(r), String(r.seed), fmt(r.acc)];
      if (pre) { row.push(fmt(r.finetune_acc)); }
      row = row.concat([fmt(r.fgt), fmt(r.bwt), fmt(r.max_fgt), String(r.rounds), bytes(r.bytes_up), bytes(r.bytes_down),
        num(r.wall_seconds) ? r.wall_seconds.toFixed(1) + ' s' : '-']);
      if (dp) { row.push(r.dp ? fmt(r.dp.epsilon_spent_max) : '-'); }
      return row;
    });
    var t = table(head, rows);
    t.id = 'summary';
    return t;
  }

  // groups collects the runs by method label, in order of first appearance.
  function groups(runs) {
    var out = [], by = {};
    runs.forEach(function (r) {
      var l = label(r);
      if (!Object.prototype.hasOwnProperty.call(by, l)) { by[l] = { label: l, runs: [] }; out.push(by[l]); }
      by[l].runs.push(r);
    });
    return out;
  }

  function comparison(runs) {
    var gs = groups(runs), pre = anyPretrain(runs);
    var pick = function (g, k) { return g.runs.map(function (r) { return r[k]; }); };
    var head = ['method', 'seeds', 'ACC'];
    if (pre) { head.push('ACC after pretrain'); }
    head = head.concat(['FGT', 'BWT', 'max-FGT']);
    var rows = gs.map(function (g) {
      var row = [g.label, String(g.runs.length), meanStdText(pick(g, 'acc'))];
      if (pre) { row.push(meanStdText(pick(g, 'finetune_acc'))); }
      return row.concat([meanStdText(pick(g, 'fgt')), meanStdText(pick(g, 'bwt')), meanStdText(pick(g, 'max_fgt'))]);
    });
    var t = table(head, rows);
    t.id = 'comparison';
    var bars = function (k) {
      return gs.map(function (g, i) {
        var ms = meanStd(pick(g, k));
        return { name: g.label, color: color(i), mean: ms[0], std: ms[1], n: g.runs.length };
      });
    };
    var charts = h('div', { 'class': 'charts' }, [
      barChart({ title: 'ACC per method (mean \u00b1 std over seeds)', ylabel: 'ACC (%)', bars: bars('acc'), ymax: 100 }),
      barChart({ title: 'FGT per method (mean \u00b1 std over seeds)', ylabel: 'FGT (points)', bars: bars('fgt') })
    ]);
    return [t, charts];
  }

  function runSection(r, i, open) {
    var d = h('details', { 'class': 'run', id: 'run-' + i });
    if (open) { d.open = true; }
    var title = label(r) + ', seed ' + r.seed;
    d.appendChild(h('summary', null, [h('h3', null, title), ' \u2014 ACC ' + fmt(r.acc) + ', FGT ' + fmt(r.fgt) +
      ' (' + (r.scenario || '') + ', ' + (r.dataset || '') + '/' + (r.stream || '') + ', ' + r.tasks + ' tasks, ' + r.rounds + ' rounds)']));
    var body = h('div', { 'class': 'body' });
    body.appendChild(matrixTable(r));
    body.appendChild(curveChart(r));
    subspaceCharts(r).forEach(function (c) { body.appendChild(c); });
    d.appendChild(body);
    return d;
  }

  function renderReport(data, app) {
    var runs = data.runs || [];
    var scen = [];
    runs.forEach(function (r) { if (scen.indexOf(r.scenario) < 0) { scen.push(r.scenario); } });
    document.getElementById('subtitle').textContent = runs.length + ' run' + (runs.length === 1 ? '' : 's') +
      ' of ' + (scen.join(', ') || '-') + '; methods: ' + groups(runs).map(function (g) { return g.label; }).join(', ');
    if (runs.length === 0) { app.appendChild(h('p', { 'class': 'note' }, 'No run records.')); return; }
    app.appendChild(h('h2', null, 'Summary'));
    app.appendChild(summary(runs));
    if (runs.length > 1) {
      app.appendChild(h('h2', null, 'Comparison over seeds'));
      append(app, comparison(runs));
    }
    app.appendChild(h('h2', null, 'Runs'));
    runs.forEach(function (r, i) { app.appendChild(runSection(r, i, runs.length <= 8)); });
  }

  // ---- live view ----

  function renderLive(data, app) {
    var runs = {}, order = [], received = 0, pending = false, finished = false;
    var status = h('span', { 'class': 'status', id: 'status' }, 'connecting');
    var count = h('span', { id: 'received' }, '0');
    var head = h('p', null, ['Metrics source: ', data.source || '-', '. Status: ', status, '. Messages received: ', count, '.']);
    var table0 = h('div', { id: 'live-table' });
    var charts = h('div', { id: 'live-charts' });
    app.appendChild(head);
    app.appendChild(table0);
    app.appendChild(charts);
    document.getElementById('subtitle').textContent = 'Per-round metrics of running fotsim runs, as they arrive.';
    document.getElementById('footer').textContent = 'Written by fotsim. Data, styles and the chart code are in this page; it reads only its own event stream.';

    function setStatus(text, cls) { status.textContent = text; status.className = 'status ' + (cls || ''); }

    function add(m) {
      if (!m || typeof m.run !== 'string' || !num(m.round)) { return; }
      var r = runs[m.run];
      if (!r) {
        r = runs[m.run] = { meta: m, loss: {}, acc: {}, last: m };
        order.push(m.run);
      }
      r.meta = m;
      if (!r.last || m.round >= r.last.round) { r.last = m; }
      r.loss[m.round] = num(m.loss) ? m.loss : null;
      if (Array.isArray(m.acc)) { r.acc[m.round] = m.acc; }
      received++;
      schedule();
    }

    function schedule() {
      if (pending) { return; }
      pending = true;
      setTimeout(function () { pending = false; draw(); }, 60);
    }

    function sorted(obj) { return Object.keys(obj).map(Number).sort(function (a, b) { return a - b; }); }

    function draw() {
      count.textContent = String(received);
      var rows = order.map(function (id) {
        var r = runs[id], m = r.last, accs = [];
        sorted(r.acc).forEach(function (k) { accs = r.acc[k]; });
        var mean = accs.filter(num);
        var ma = mean.length ? mean.reduce(function (a, b) { return a + b; }, 0) / mean.length : NaN;
        return [m.label || m.method || '?', String(m.seed), m.scenario || '', (m.task + 1) + '/' + m.tasks,
          m.round + '/' + m.rounds, fmt(m.loss, 4), fmt(ma), num(m.elapsed_seconds) ? m.elapsed_seconds.toFixed(1) + ' s' : '-'];
      });
      table0.textContent = '';
      if (rows.length) {
        table0.appendChild(table(['method', 'seed', 'scenario', 'task', 'round', 'loss', 'mean acc (last eval)', 'elapsed'], rows));
      } else {
        table0.appendChild(h('p', { 'class': 'note' }, 'No metrics yet.'));
      }
      charts.textContent = '';
      order.forEach(function (id, i) {
        var r = runs[id], m = r.meta, T = m.tasks || 1, R = m.rounds || 1, vl = [];
        for (var t = 1; t < T; t++) { vl.push(Math.round(t * R / T)); }
        var accSeries = [];
        for (var j = 0; j < T; j++) {
          var pts = [];
          sorted(r.acc).forEach(function (k) {
            var a = r.acc[k];
            if (j < a.length && num(a[j])) { pts.push([k, a[j]]); }
          });
          accSeries.push({ name: 'task ' + j, color: color(j), points: pts });
        }
        var lossPts = sorted(r.loss).map(function (k) { return [k, r.loss[k]]; });
        var sec = h('section', { 'class': 'live-run', id: 'live-run-' + i });
        sec.appendChild(h('h2', null, (m.label || m.method || '?') + ', seed ' + m.seed + ' (' + (m.scenario || '') + ')'));
        sec.appendChild(h('div', { 'class': 'charts' }, [
          lineChart({ title: 'Accuracy per task over rounds', xlabel: 'round', ylabel: 'accuracy (%)', series: accSeries,
            vlines: vl, xmin: 0, xmax: R, ymin: 0, ymax: 100, cls: 'acc', empty: 'no evaluation yet (eval.every)' }),
          lineChart({ title: 'Training loss', xlabel: 'round', ylabel: 'mean client loss', cls: 'loss',
            series: [{ name: 'loss', color: color(0), points: lossPts }], vlines: vl, xmin: 0, xmax: R })
        ]));
        charts.appendChild(sec);
      });
      app.setAttribute('data-runs', String(order.length));
      app.setAttribute('data-received', String(received));
    }

    draw();
    if (!data.events || typeof EventSource === 'undefined') {
      setStatus('no event stream', 'bad');
      return;
    }
    var es = new EventSource(data.events);
    es.onopen = function () { if (!finished) { setStatus('connected', 'ok'); } };
    es.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      add(m);
    };
    es.addEventListener('end', function () {
      finished = true;
      es.close();
      setStatus('finished: the source has ended', 'ok');
    });
    es.onerror = function () { if (!finished) { setStatus('disconnected, retrying', 'bad'); } };
  }

  function main() {
    var app = document.getElementById('app');
    try {
      var data = JSON.parse(document.getElementById('fotsim-data').textContent);
      if (data.mode === 'live') { renderLive(data, app); } else { renderReport(data, app); }
      app.setAttribute('data-rendered', 'true');
    } catch (err) {
      app.appendChild(h('p', { 'class': 'error' }, 'This page could not be drawn: ' + err));
      throw err;
    }
  }

  main();
}());
