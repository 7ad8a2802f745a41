// tillflow dashboard: reads the HTTP API of the running job (docs/api.md) and draws the retail
// view (the demo's result tables, over a period of the stream's own time) and the operations view
// (the operator graph and its counters). It loads each table once and then asks only for the
// changes after the last one it has (`/tables?since=N`): an updating table is its current row per
// primary key, an append table its latest rows.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const HOUR = 3600e3;
const LEAD_HOURS = 6; // the demo's replenishment lead time (examples/retail/demo/30_stock.sql)
const tables = new Map(); // table -> { key: [...], rows: Map(key -> row) | Array }
let cursor = null; // the sequence number of the last change loaded
let jobId = null;
let job = null;
let chart = null;
let periodHours = 24;
let storeFilter = "";

async function getJson(path) {
  const r = await fetch(path, { headers });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// a table of rows, or — when there are none — the reason, in the panel's "why" line
function fill(id, head, rows, why, rowClass) {
  const t = document.getElementById(id);
  t.replaceChildren();
  const w = document.getElementById(id + "-why");
  if (w) w.textContent = rows.length ? "" : why;
  if (!rows.length) return;
  const tr = document.createElement("tr");
  for (const [h, num] of head) {
    const th = document.createElement("th");
    th.textContent = h;
    if (num) th.className = "num";
    tr.appendChild(th);
  }
  t.appendChild(tr);
  for (const r of rows) {
    const row = document.createElement("tr");
    if (rowClass) row.className = rowClass(r);
    r.cells.forEach((v, i) => row.appendChild(cell(v, head[i][1] ? "num" : "")));
    t.appendChild(row);
  }
}

function title(id, text) {
  document.getElementById(id).textContent = text;
}

function ms(ts) {
  return Date.parse(ts.replace(" ", "T") + "Z");
}

// "2024-03-14 20:00" from milliseconds
function when(t) {
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

function fmt(x, d = 2) {
  return x === null || x === undefined ? "" : Number(x).toFixed(d);
}

function money(x) {
  return x === null || x === undefined
    ? ""
    : Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function count(x) {
  return Number(x || 0).toLocaleString("en-US");
}

// a lag in ms, readable: "850 ms", "12.5 s", "3.2 min", "4.1 h", "41 d"
function duration(ms) {
  const a = Math.abs(ms);
  if (a < 1000) return fmt(ms, 0) + " ms";
  if (a < 120e3) return fmt(ms / 1e3, 1) + " s";
  if (a < 7200e3) return fmt(ms / 60e3, 1) + " min";
  if (a < 172800e3) return fmt(ms / 3600e3, 1) + " h";
  return fmt(ms / 86400e3, 0) + " d";
}

// folds the API's changes into the tables (a keyed table: its row per key; else its rows); a
// table the server says to load again ("reset") is replaced by the whole view it sends
function apply(changes) {
  for (const t of changes) {
    let have = tables.get(t.table);
    if (!have || t.reset) {
      have = { key: t.key, rows: t.key.length ? new Map() : [] };
      tables.set(t.table, have);
    }
    if (have.key.length) {
      for (const r of t.rows) {
        const k = have.key.map((c) => r[c]).join("\u001f");
        if (r.op === "-D" || r.op === "-U") have.rows.delete(k);
        else have.rows.set(k, r);
      }
    } else {
      have.rows.push(...t.rows);
      if (have.rows.length > 50000) have.rows.splice(0, have.rows.length - 50000);
    }
    cursor = Math.max(cursor ?? 0, t.seq);
  }
}

function rowsOf(name) {
  const t = tables.get(name);
  if (!t) return [];
  return t.key.length ? [...t.rows.values()] : t.rows;
}

// the stream's own clock: the newest event time the job has seen (replayed history runs days
// behind the wall clock, and the demo's data is from 2024)
function streamNow() {
  if (job && job.stream_time) return ms(job.stream_time);
  const hours = rowsOf("sales_per_store_hour");
  return hours.length ? ms(hours[hours.length - 1].window_end) : null;
}

// the first instant of data the dashboard knows of
function streamStart() {
  const hours = rowsOf("sales_per_store_hour");
  let first = Infinity;
  for (const r of hours) first = Math.min(first, ms(r.window_start));
  return Number.isFinite(first) ? first : null;
}

function period() {
  const now = streamNow();
  if (now === null) return null;
  const start = streamStart() ?? now;
  const from = periodHours ? Math.max(now - periodHours * HOUR, start) : start;
  return { from, to: now, text: when(from) + " to " + when(now) };
}

// a period holds what ends after its start and by its end (an hour ending at the start is before it)
function inPeriod(p, t) {
  return t > p.from && t <= p.to;
}

function drawRevenue(p) {
  const hours = rowsOf("sales_per_store_hour").filter((r) => inPeriod(p, ms(r.window_end)));
  const byStore = new Map();
  for (const r of hours) {
    if (!byStore.has(r.store_id)) byStore.set(r.store_id, new Map());
    byStore.get(r.store_id).set(ms(r.window_start), r.revenue);
  }
  const select = document.getElementById("store");
  const known = [...new Set(rowsOf("sales_per_store_hour").map((r) => r.store_id))].sort((a, b) => a - b);
  if (select.options.length !== known.length + 1) {
    select.replaceChildren(new Option("top 5 stores", ""));
    for (const s of known) select.appendChild(new Option("store " + s, String(s)));
    select.value = storeFilter;
  }
  const total = (s) => [...(byStore.get(s) || new Map()).values()].reduce((a, b) => a + b, 0);
  const stores = storeFilter
    ? [Number(storeFilter)]
    : [...byStore.keys()].sort((a, b) => total(b) - total(a)).slice(0, 5);
  const el = document.getElementById("revenue-chart");
  const what = storeFilter ? "store " + storeFilter : "the 5 stores with the most revenue in the period";
  title("revenue-title", "Revenue per hour, " + what + " — " + p.text + " (stream time, UTC)");
  if (!hours.length) {
    document.getElementById("revenue-why").textContent = "No hour has closed in this period yet: an hour's revenue is shown once the hour is over.";
    el.dataset.points = "0";
    return;
  }
  document.getElementById("revenue-why").textContent = "Hours without a sale (the stores are closed from 22:00 to 08:00) count as 0.";
  // every hour of the period, so the lines run on through closed hours at 0
  const first = Math.min(...hours.map((r) => ms(r.window_start)));
  const last = Math.max(...hours.map((r) => ms(r.window_start)));
  const xs = [];
  for (let t = first; t <= last; t += HOUR) xs.push(t);
  const data = [xs.map((x) => x / 1000)];
  for (const s of stores) {
    const m = byStore.get(s) || new Map();
    data.push(xs.map((x) => m.get(x) ?? 0));
  }
  const colors = ["#3b6fd8", "#d8573b", "#2e9d5b", "#9b59b6", "#c49a00"];
  const labels = stores.map((s) => "store " + s + ": " + money(total(s)) + " in the period");
  const key = labels.join("|");
  if (!chart || chart.key !== key) {
    if (chart) chart.destroy();
    chart = new uPlot(
      {
        width: Math.max(el.clientWidth - 10, 600),
        height: 280,
        legend: { live: false },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        series: [{}].concat(stores.map((s, i) => ({ label: labels[i], stroke: colors[i % colors.length], width: 2, spanGaps: true }))),
        axes: [
          // 24-hour clock; a day's date at its midnight
          { space: 56, values: (u, ticks) => ticks.map((t) => (t % 86400 === 0 ? when(t * 1000).slice(5, 10) : when(t * 1000).slice(11))) },
          { label: "revenue per hour", size: 70 },
        ],
      },
      data,
      el
    );
    chart.key = key;
  } else {
    chart.setData(data);
  }
  el.dataset.points = String(xs.length);
  el.dataset.last = String(xs[xs.length - 1]);
  el.dataset.series = String(stores.length);
}

function drawStock() {
  const levels = rowsOf("stock_levels");
  const asOf = levels.reduce((m, r) => (r.as_of > m ? r.as_of : m), "");
  const needing = levels
    .filter((r) => r.alert === "out" || r.alert === "low")
    .sort((a, b) => (a.alert === b.alert ? (a.hours_left ?? 0) - (b.hours_left ?? 0) : a.alert === "out" ? -1 : 1));
  title("stock-title", "Stock needing action — now (" + (asOf ? asOf.slice(0, 16) : "no movement yet") + ")");
  fill("alerts", [["store"], ["SKU"], ["on hand", 1], ["sold 24 h", 1], ["cover (h)", 1], ["alert"]],
    needing.slice(0, 50).map((r) => ({
      alert: r.alert,
      cells: [r.store_id, r.sku, r.on_hand, r.units_24h, fmt(r.hours_left, 1), r.alert],
    })),
    levels.length
      ? "None of the " + count(levels.length) + " store×SKU is out of stock or has less than the " + LEAD_HOURS + " h replenishment lead time of cover."
      : "No stock movement has arrived yet.",
    (r) => r.alert);
  if (needing.length) {
    document.getElementById("alerts-why").textContent =
      "out: nothing on hand; low: less than the " + LEAD_HOURS + " h replenishment lead time of cover at the last 24 hours' sales." +
      (needing.length > 50 ? " The 50 most urgent of " + needing.length + "." : "");
  }
  return asOf;
}

function drawStockouts(p) {
  const raised = rowsOf("stockout_alerts").filter((r) => inPeriod(p, ms(r.at)));
  title("stockouts-title", "Stock-out alerts raised — " + p.text);
  fill("stockouts", [["at"], ["store"], ["SKU"], ["on hand", 1], ["units/h", 1], ["hours left", 1]],
    raised.slice(-20).reverse().map((r) => ({ cells: [r.at.slice(5, 16), r.store_id, r.sku, r.on_hand, fmt(r.units_per_hour, 2), fmt(r.hours_left, 1)] })),
    "No sale left a store×SKU with less than " + LEAD_HOURS + " h of cover in this period (the alerts come from the same stock state as the panel beside).");
}

function drawTop() {
  const rows = rowsOf("top_skus_10min");
  const last = rows.length ? rows[rows.length - 1] : null;
  title("top-title", last ? "Top SKUs by revenue — " + last.window_start.slice(0, 16) + " to " + last.window_end.slice(11, 16) : "Top SKUs by revenue — latest 10 minutes");
  fill("top-skus", [["#"], ["SKU"], ["revenue", 1], ["units", 1]],
    last ? rows.filter((r) => r.window_start === last.window_start).sort((a, b) => a.rn - b.rn)
      .map((r) => ({ cells: [r.rn, r.sku, money(r.revenue), r.units] })) : [],
    "No 10-minute window has closed yet.");
}

function drawUplift(p) {
  const now = p.to;
  const promos = rowsOf("promo_uplift").filter((r) => inPeriod(p, ms(r.start_time)))
    .sort((a, b) => (a.start_time < b.start_time ? 1 : -1));
  title("uplift-title", "Promotion uplift — promotions started " + p.text);
  fill("uplift", [["on"], ["off", 1], ["runs"], ["units", 1], ["uplift", 1]],
    promos.slice(0, 20).map((r) => {
      const running = ms(r.end_time) > now;
      const uplift = r.uplift_pct !== null && r.uplift_pct !== undefined
        ? (r.uplift_pct >= 0 ? "+" : "") + fmt(r.uplift_pct, 0) + " %" + (running ? " so far" : "")
        : running ? "measuring…" : "too few sales";
      return {
        cells: [r.sku || "all " + r.category, fmt(100 * r.discount_pct, 0) + " %",
          r.start_time.slice(5, 10) + " " + r.start_time.slice(11, 13) + "–" + r.end_time.slice(11, 13), r.promo_units, uplift],
      };
    }),
    "No promotion started in this period.");
  document.getElementById("uplift-why").textContent = promos.length
    ? "Uplift: the promoted units' share of all units while the promotion runs against the rest of its day; too few sales: under 10 units to compare."
    : "No promotion started in this period.";
}

function drawFunnel(p) {
  const by = new Map();
  for (const r of rowsOf("funnel_per_channel")) {
    if (!inPeriod(p, ms(r.window_end))) continue;
    const c = by.get(r.channel) || { sessions: 0, bought: 0, carted: 0 };
    c.sessions += r.sessions; c.bought += r.bought; c.carted += r.carted;
    by.set(r.channel, c);
  }
  title("funnel-title", "Online funnel — sessions ended " + p.text);
  fill("funnel", [["channel"], ["sessions", 1], ["orders", 1], ["conversion", 1], ["carts abandoned", 1]],
    [...by.entries()].sort().map(([ch, c]) => ({
      cells: [ch, count(c.sessions), count(c.bought), fmt(100 * c.bought / Math.max(c.sessions, 1), 1) + " %",
        fmt(100 * (1 - c.bought / Math.max(c.carted, 1)), 0) + " %"],
    })),
    "No session has ended in this period (a session ends after 30 minutes without a click; the funnel table is written per hour).");
}

function drawAnomalies(p, start) {
  const alerts = rowsOf("store_forecast").filter((r) => r.alert && inPeriod(p, ms(r.window_start)))
    .sort((a, b) => (a.window_start < b.window_start ? 1 : -1));
  title("anomalies-title", "Sales anomalies (receipts per store-hour vs forecast) — " + p.text);
  const learning = start !== null && p.to < start + 7 * 24 * HOUR;
  fill("anomalies", [["store"], ["hour"], ["receipts", 1], ["expected", 1], ["score", 1], ["alert"]],
    alerts.slice(0, 20).map((r) => ({ alert: r.alert, cells: [r.store_id, r.window_start.slice(0, 16), r.receipts, fmt(r.expected, 0), fmt(r.score, 1), r.alert] })),
    learning
      ? "None yet: the forecasts learn each store's day during the first week (until " + when(start + 7 * 24 * HOUR) + "); alerts before then are not trusted."
      : "No store-hour in this period was further from its forecast than a score of ±4.",
    (r) => (r.alert === "drop" ? "out" : "low"));
}

function drawTrends(start) {
  const rows = rowsOf("sku_trends");
  const last = rows.reduce((m, r) => (r.week_end > m ? r.week_end : m), "");
  title("trends-title", last ? "Trending SKUs — units in the week to " + last.slice(0, 10) + ", growth per day" : "Trending SKUs — units per week, growth per day");
  fill("trends", [["SKU"], ["units in the week", 1], ["growth/day", 1]],
    rows.filter((r) => r.week_end === last).sort((a, b) => b.growth - a.growth).slice(0, 8)
      .map((r) => ({ cells: [r.sku, count(r.units), (r.growth >= 0 ? "+" : "") + fmt(100 * r.growth, 1) + " %"] })),
    start !== null
      ? "Needs a whole week of data: the first week ends " + when(start + 7 * 24 * HOUR) + "."
      : "Needs a whole week of data.");
}

let forecastChart = null;

// units sold per hour against the three forecasts of examples/retail/demo/80_units_forecast.sql
// (summed over the categories of the store chosen, or of every store): a forecast's point is
// missing for an hour where it had no value for every category yet (Holt-Winters waits for a
// day of history); the legend gives each forecast's sMAPE over the store × category hours of
// the period where all three have one
function drawForecast(p) {
  const rows = rowsOf("units_forecast").filter(
    (r) => inPeriod(p, ms(r.window_start) + HOUR) && (!storeFilter || String(r.store_id) === storeFilter)
  );
  const el = document.getElementById("forecast-chart");
  const what = storeFilter ? "store " + storeFilter : "all stores";
  title("forecast-title", "Units per hour and their forecasts, " + what + " — " + p.text + " (stream time, UTC)");
  if (!rows.length) {
    document.getElementById("forecast-why").textContent =
      "No store-hour has closed in " + p.text + " yet: an hour's units and forecasts are shown once the hour is over.";
    el.dataset.points = "0";
    return;
  }
  document.getElementById("forecast-why").textContent =
    "Each forecast was made before the hour's units were known; only the two models see the promotions coming. sMAPE: mean of |units − forecast| / mean(units, forecast), per store × category hour.";
  const cols = ["units", "online", "onnx", "holt_winters"];
  const byHour = new Map();
  const err = [0, 0, 0, 0];
  let scored = 0;
  for (const r of rows) {
    const t = ms(r.window_start);
    if (!byHour.has(t)) byHour.set(t, { sum: [0, 0, 0, 0], n: [0, 0, 0, 0], rows: 0 });
    const h = byHour.get(t);
    h.rows += 1;
    cols.forEach((c, i) => {
      if (r[c] !== null && r[c] !== undefined) {
        h.sum[i] += r[c];
        h.n[i] += 1;
      }
    });
    if (cols.every((c) => r[c] !== null && r[c] !== undefined)) {
      scored += 1;
      for (let i = 1; i < cols.length; i++) {
        const d = Math.abs(r.units) + Math.abs(r[cols[i]]);
        err[i] += d > 0 ? (2 * Math.abs(r.units - r[cols[i]])) / d : 0;
      }
    }
  }
  const xs = [...byHour.keys()].sort((a, b) => a - b);
  const data = [xs.map((x) => x / 1000)].concat(
    cols.map((_, i) => xs.map((x) => {
      const h = byHour.get(x);
      return h.n[i] === h.rows ? h.sum[i] : null;
    }))
  );
  const smape = (i) => (scored ? " (sMAPE " + fmt((100 * err[i]) / scored, 1) + " %)" : "");
  const labels = ["units sold", "online model" + smape(1), "ONNX model" + smape(2), "Holt-Winters" + smape(3)];
  const colors = ["#222222", "#3b6fd8", "#2e9d5b", "#d8573b"];
  const key = labels.join("|");
  if (!forecastChart || forecastChart.key !== key) {
    if (forecastChart) forecastChart.destroy();
    forecastChart = new uPlot(
      {
        width: Math.max(el.clientWidth - 10, 600),
        height: 260,
        legend: { live: false },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        series: [{}].concat(labels.map((l, i) => ({ label: l, stroke: colors[i], width: i ? 1.5 : 2.5, dash: i ? [6, 3] : undefined }))),
        axes: [
          { space: 56, values: (u, ticks) => ticks.map((t) => (t % 86400 === 0 ? when(t * 1000).slice(5, 10) : when(t * 1000).slice(11))) },
          { label: "units per hour", size: 70 },
        ],
      },
      data,
      el
    );
    forecastChart.key = key;
  } else {
    forecastChart.setData(data);
  }
  el.dataset.points = String(xs.length);
  el.dataset.scored = String(scored);
}

function retail() {
  const p = period();
  if (!p) {
    document.getElementById("period-text").textContent = "waiting for the first events…";
    return;
  }
  document.getElementById("period-text").textContent = p.text + " (stream time, UTC)";
  const start = streamStart();
  drawRevenue(p);
  drawForecast(p);
  drawStock();
  drawStockouts(p);
  drawTop();
  drawUplift(p);
  drawFunnel(p);
  drawAnomalies(p, start);
  drawTrends(start);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// a node's name as the plan knows it: sources and sinks by their table, operators by the plan's
// operator name (without its id)
function label(n) {
  if (n.kind === "source") {
    const m = /^(\w+)(?:\[[^\]]*\])? table `([^`]+)`/.exec(n.name);
    return m ? m[2] + " (" + m[1] + ")" : n.name;
  }
  if (n.kind === "sink") {
    const m = /^(\w+)(?:\[[^\]]*\])? table (\S+)/.exec(n.name);
    return m ? "→ " + m[2] : "→ " + n.name;
  }
  return n.name.replace(/\[\d+\]$/, "");
}

// chains of operators, much as Flink chains them: a node with one input joins its input's box
// when that input feeds nothing else and runs on as many workers; sources and sinks keep their
// own boxes
function chains(nodes) {
  const consumers = new Map();
  for (const n of nodes) for (const i of n.inputs) consumers.set(i, (consumers.get(i) || 0) + 1);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const boxOf = new Map();
  const boxes = [];
  for (const n of [...nodes].sort((a, b) => a.depth - b.depth)) {
    const input = n.inputs.length === 1 ? byId.get(n.inputs[0]) : null;
    const chained = n.kind === "operator" && input && input.kind === "operator" &&
      consumers.get(input.id) === 1 && (input.parallelism || 1) === (n.parallelism || 1);
    if (chained) {
      const b = boxOf.get(input.id);
      b.members.push(n);
      boxOf.set(n.id, b);
      continue;
    }
    const b = { id: boxes.length, kind: n.kind, members: [n], inputs: [] };
    boxes.push(b);
    boxOf.set(n.id, b);
  }
  for (const b of boxes) {
    const ins = new Set();
    for (const i of b.members[0].inputs) ins.add(boxOf.get(i).id);
    b.inputs = [...ins];
    b.last = b.members[b.members.length - 1];
  }
  for (const b of boxes) b.depth = 0;
  // depth: the longest path from a source, over boxes
  for (let changed = true, k = 0; changed && k < boxes.length; k++) {
    changed = false;
    for (const b of boxes) {
      const d = b.inputs.length ? Math.max(...b.inputs.map((i) => boxes[i].depth + 1)) : 0;
      if (d !== b.depth) { b.depth = d; changed = true; }
    }
  }
  return boxes;
}

function shorten(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

// the graph as boxes in columns by depth (sources left, sinks right), fitted to the page's width
function drawGraph(nodes) {
  const boxes = chains(nodes);
  const W = 270, H = 50, GX = 46, GY = 12;
  const cols = new Map();
  for (const b of boxes) {
    if (!cols.has(b.depth)) cols.set(b.depth, []);
    cols.get(b.depth).push(b);
  }
  const pos = new Map();
  let rows = 0;
  for (const [d, bs] of cols) {
    bs.forEach((b, i) => pos.set(b.id, { x: 10 + d * (W + GX), y: 10 + i * (H + GY) }));
    rows = Math.max(rows, bs.length);
  }
  const width = 20 + cols.size * (W + GX) - GX, height = 20 + rows * (H + GY) - GY;
  const el = document.getElementById("graph");
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", id: "graph-svg", preserveAspectRatio: "xMinYMin meet" });
  for (const b of boxes) {
    const to = pos.get(b.id);
    for (const i of b.inputs) {
      const from = pos.get(i);
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2, mx = (x1 + x2) / 2;
      svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge" }, root);
    }
  }
  let edges = 0;
  for (const b of boxes) edges += b.inputs.length;
  for (const b of boxes) {
    const p = pos.get(b.id);
    // a chain by what it does: its operators but the projections and filters (Calc) around them
    const kinds = b.members.map(label);
    const doing = kinds.filter((k, i) => k !== "Calc" && kinds.indexOf(k) === i);
    const names = doing.length ? doing : [kinds[0]];
    const last = b.last;
    const g = svg("g", { class: "node " + b.kind, transform: `translate(${p.x},${p.y})`, "data-rate": String(last.rows_per_sec), "data-members": String(b.members.length) }, root);
    svg("title", {}, g).textContent = b.members.map((m) => m.name).join("\n→ ");
    g.dataset.kinds = kinds.join(" → ");
    svg("rect", { width: W, height: H, rx: 5 }, g);
    const par = Math.max(...b.members.map((m) => m.parallelism || 1));
    svg("text", { x: 8, y: 18, class: "name" }, g).textContent =
      shorten(names.join(" → ").replace("LocalWindowAggregate → WindowAggregate", "WindowAggregate (two-phase)"), 36) +
      (par > 1 ? " ×" + par : "");
    const lagged = b.members.filter((m) => m.stream_lag_ms !== null && m.stream_lag_ms !== undefined);
    const lag = lagged.length ? " · wm −" + duration(Math.max(...lagged.map((m) => m.stream_lag_ms))) : "";
    const late = b.members.reduce((a, m) => a + (m.late_dropped || 0), 0);
    const bad = b.members.reduce((a, m) => a + (m.bad_records || 0), 0);
    svg("text", { x: 8, y: 36, class: "figs" }, g).textContent =
      count(Math.round(last.rows_per_sec)) + " rows/s" + lag + (late ? " · late " + count(late) : "") + (bad ? " · bad " + count(bad) : "");
  }
  el.replaceChildren(root);
  el.dataset.nodes = String(nodes.length);
  el.dataset.boxes = String(boxes.length);
  el.dataset.edges = String(edges);
  el.dataset.members = String(boxes.reduce((a, b) => a + b.members.length, 0));
}

function mib(bytes) {
  return fmt(bytes / 1048576, 1) + " MiB";
}

// a model that learns on the stream: rows learned, and its error (each prediction made before
// the model learned the row); recent: the last few thousand rows
function modelText(m) {
  if (!m) return "";
  const num = (v, d) => v === null || v === undefined ? "–" : fmt(v, d);
  if (m.accuracy !== null && m.accuracy !== undefined) {
    return m.learned + " · accuracy " + fmt(100 * m.accuracy, 1) + "% · log loss " + num(m.log_loss, 3);
  }
  return m.learned + " · MAE " + num(m.mae, 2) + " (recent " + num(m.recent_mae, 2) + ") · RMSE " + num(m.rmse, 2);
}

function size(bytes) {
  return bytes < 1048576 ? fmt(bytes / 1024, 1) + " KiB" : mib(bytes);
}

function ops(j) {
  const c = j.checkpoints;
  const chk = c && c.completed
    ? " · checkpoint " + c.last_id + ": " + mib(c.last_bytes) +
      (c.last_full_bytes > c.last_bytes ? " (" + mib(c.last_full_bytes) + " in all)" : "") +
      " in " + fmt(c.last_duration_ms, 0) + " ms, paused " + fmt(c.last_pause_ms, 0) + " ms"
    : "";
  const s = j.state_store;
  const store = s
    ? " · state in memory " + mib(s.memory_bytes) + " of " + mib(s.memory_budget) + ", on disk " + mib(s.disk_bytes)
    : "";
  const data = j.stream_time ? " · data at " + j.stream_time.slice(0, 16) : "";
  document.getElementById("job").textContent =
    j.name + " · " + j.state + " · " + j.records + " records · " + fmt(j.records_per_sec, 0) + "/s" + data + chk + store;
  fill("nodes",
    [["kind"], ["node"], ["workers", 1], ["rows in", 1], ["rows out", 1], ["rows/s", 1], ["per worker: rows/s · busy · back-pressured"],
      ["watermark"], ["behind the stream", 1], ["behind the wall clock", 1], ["late", 1], ["bad", 1], ["state keys", 1], ["state", 1],
      ["model: learned · error"]],
    j.nodes.map((n) => ({
      cells: [n.kind, label(n), n.parallelism || 1, n.rows_in, n.rows_out, fmt(n.rows_per_sec, 0),
        (n.workers || []).map((w) => fmt(w.rows_per_sec, 0) + " · " + fmt(100 * w.busy, 0) + "% · " + fmt(100 * w.backpressured, 0) + "%").join(" | "),
        n.watermark ? n.watermark.slice(0, 19) : "",
        n.stream_lag_ms === null || n.stream_lag_ms === undefined ? "" : duration(n.stream_lag_ms),
        n.watermark_lag_ms === null ? "" : duration(n.watermark_lag_ms),
        n.late_dropped, n.bad_records, n.state_entries,
        n.state_entries || n.state_bytes ? size(n.state_bytes || 0) : "",
        modelText(n.model)],
    })),
    "");
  drawGraph(j.nodes);
}

let polling = false;

async function tick() {
  // one poll at a time: two polls from the same cursor would apply the same changes twice
  if (polling) return;
  polling = true;
  try {
    const jobs = await getJson("/api/jobs");
    if (jobs.length) {
      if (jobs[0].id !== jobId) {
        jobId = jobs[0].id;
        tables.clear();
        cursor = null;
      }
      job = jobs[0];
      ops(job);
      const path = "/api/jobs/" + jobId + "/tables" + (cursor === null ? "" : "?since=" + cursor);
      apply(await getJson(path));
      retail();
    }
  } catch (e) {
    document.getElementById("job").textContent = String(e);
  } finally {
    polling = false;
  }
}

function show(section) {
  for (const s of ["retail", "ops"]) document.getElementById(s).hidden = s !== section;
  for (const s of ["retail", "ops"]) document.getElementById("tab-" + s).className = s === section ? "on" : "";
}
for (const s of ["retail", "ops"]) {
  document.getElementById("tab-" + s).addEventListener("click", () => {
    history.replaceState(null, "", location.pathname + location.search + "#" + s);
    show(s);
    if (s === "ops" && job) drawGraph(job.nodes);
  });
}
for (const b of document.querySelectorAll("#periods button")) {
  b.addEventListener("click", () => {
    periodHours = Number(b.dataset.hours);
    for (const o of document.querySelectorAll("#periods button")) o.className = o === b ? "on" : "";
    retail();
  });
}
document.getElementById("store").addEventListener("change", (e) => {
  storeFilter = e.target.value;
  retail();
});
// a link to /#ops opens the operations view
show(location.hash === "#ops" ? "ops" : "retail");
tick();
setInterval(tick, 1000);
