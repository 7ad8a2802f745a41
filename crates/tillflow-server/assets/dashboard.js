// tillflow dashboard: reads the HTTP API of the running job (docs/api.md) and draws the retail
// view (the demo's result tables) and the operations view (the operator graph's counters).
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const revenue = new Map(); // store -> Map(window_start ms -> revenue)
const stock = new Map(); // "store/sku" -> latest stock row (the API keeps only the last 100 changes)
const seen = new Set(); // stock rows already applied, so a poll does not apply a change twice
const anomalies = new Map(); // "store/hour" -> alert row (kept: the API holds only the latest rows)
const stockouts = new Map(); // "store/sku" -> latest projected stock-out
let chart = null;
let jobId = null;

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

function fill(id, head, rows, rowClass) {
  const t = document.getElementById(id);
  t.replaceChildren();
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

function ms(ts) {
  return Date.parse(ts.replace(" ", "T") + "Z");
}

function fmt(x, d = 2) {
  return x === null || x === undefined ? "" : Number(x).toFixed(d);
}

// a lag in ms, readable: "850 ms", "12.5 s", "3.2 h", "41 d" (replayed history lags by days)
function duration(ms) {
  const a = Math.abs(ms);
  if (a < 1000) return fmt(ms, 0) + " ms";
  if (a < 120e3) return fmt(ms / 1e3, 1) + " s";
  if (a < 7200e3) return fmt(ms / 60e3, 1) + " min";
  if (a < 172800e3) return fmt(ms / 3600e3, 1) + " h";
  return fmt(ms / 86400e3, 0) + " d";
}

// the latest value per key of a table's rows (changelogs carry "op")
function latest(rows, key) {
  const m = new Map();
  for (const r of rows) {
    const k = key(r);
    if (r.op === "-D" || r.op === "-U") m.delete(k);
    else m.set(k, r);
  }
  return [...m.values()];
}

function drawRevenue(rows) {
  for (const r of rows) {
    if (!revenue.has(r.store_id)) revenue.set(r.store_id, new Map());
    revenue.get(r.store_id).set(ms(r.window_start), r.revenue);
  }
  const totals = [...revenue.entries()]
    .map(([s, m]) => [s, [...m.values()].reduce((a, b) => a + b, 0)])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([s]) => s);
  const xs = [...new Set(totals.flatMap((s) => [...revenue.get(s).keys()]))].sort((a, b) => a - b);
  if (xs.length === 0) return;
  const data = [xs.map((x) => x / 1000)];
  for (const s of totals) data.push(xs.map((x) => revenue.get(s).get(x) ?? null));
  const el = document.getElementById("revenue-chart");
  const colors = ["#3b6fd8", "#d8573b", "#2e9d5b", "#9b59b6", "#c49a00"];
  if (!chart || chart.series.length !== totals.length + 1) {
    if (chart) chart.destroy();
    chart = new uPlot(
      {
        width: Math.max(el.clientWidth, 600),
        height: 260,
        series: [{}].concat(totals.map((s, i) => ({ label: "store " + s, stroke: colors[i], width: 2 }))),
        axes: [{}, { label: "revenue" }],
      },
      data,
      el
    );
  } else {
    chart.setData(data);
  }
  el.dataset.points = String(xs.length);
  el.dataset.last = String(xs[xs.length - 1]);
}

async function retail() {
  const tables = await getJson("/api/jobs/" + jobId + "/tables");
  const t = Object.fromEntries(tables.map((x) => [x.table, x.rows]));
  if (t.sales_per_store_minute) drawRevenue(t.sales_per_store_minute);
  if (t.top_skus_10min) {
    const rows = t.top_skus_10min;
    const last = rows.length ? rows[rows.length - 1].window_start : null;
    fill("top-skus", [["SKU"], ["revenue", 1], ["units", 1]],
      rows.filter((r) => r.window_start === last).map((r) => ({ cells: [r.sku, fmt(r.revenue), r.units] })));
  }
  if (t.stock_levels) {
    for (const r of t.stock_levels) {
      const id = JSON.stringify(r);
      if (seen.has(id)) continue;
      seen.add(id);
      const k = r.store_id + "/" + r.sku;
      if (r.op === "-D" || r.op === "-U") stock.delete(k);
      else stock.set(k, r);
    }
    if (seen.size > 5000) seen.clear();
    const alerts = [...stock.values()]
      .filter((r) => r.alert !== "ok")
      .sort((a, b) => a.on_hand - b.on_hand)
      .slice(0, 50);
    fill("alerts", [["store"], ["SKU"], ["on hand", 1], ["alert"], ["hours to stock-out", 1]],
      alerts.map((r) => ({ alert: r.alert, cells: [r.store_id, r.sku, r.on_hand, r.alert, fmt(r.hours_to_stockout, 1)] })),
      (r) => r.alert);
  }
  if (t.promo_uplift) {
    fill("uplift", [["promotion"], ["on"], ["discount", 1], ["units", 1], ["uplift %", 1]],
      latest(t.promo_uplift, (r) => r.promo_id).map((r) => ({
        cells: [r.promo_id, r.sku || "category " + r.category, fmt(100 * r.discount_pct, 0) + "%", r.promo_units, fmt(r.uplift_pct, 1)],
      })));
  }
  if (t.store_forecast) {
    for (const r of t.store_forecast) {
      if (r.alert) anomalies.set(r.store_id + "/" + r.window_start, r);
    }
    const rows = [...anomalies.values()].sort((a, b) => (a.window_start < b.window_start ? 1 : -1)).slice(0, 20);
    fill("anomalies", [["store"], ["hour"], ["receipts", 1], ["expected", 1], ["score", 1], ["alert"]],
      rows.map((r) => ({ alert: r.alert, cells: [r.store_id, r.window_start.slice(0, 16), r.receipts, fmt(r.expected, 0), fmt(r.score, 1), r.alert] })),
      (r) => (r.alert === "drop" ? "out" : "low"));
  }
  if (t.stockout_alerts) {
    for (const r of t.stockout_alerts) stockouts.set(r.store_id + "/" + r.sku, r);
    if (stockouts.size > 5000) stockouts.clear();
    const rows = [...stockouts.values()].sort((a, b) => a.hours_left - b.hours_left).slice(0, 20);
    fill("stockouts", [["store"], ["SKU"], ["on hand", 1], ["units/h", 1], ["hours left", 1]],
      rows.map((r) => ({ cells: [r.store_id, r.sku, r.on_hand, fmt(r.units_per_hour, 2), fmt(r.hours_left, 1)] })));
  }
  if (t.sku_trends) {
    const rows = t.sku_trends;
    const last = rows.length ? rows[rows.length - 1].week_end : null;
    fill("trends", [["SKU"], ["week to"], ["units", 1], ["growth/day", 1]],
      rows.filter((r) => r.week_end === last).sort((a, b) => b.growth - a.growth).slice(0, 8)
        .map((r) => ({ cells: [r.sku, r.week_end.slice(0, 10), r.units, fmt(100 * r.growth, 1) + " %"] })));
  }
  if (t.funnel_per_channel) {
    const by = new Map();
    for (const r of t.funnel_per_channel) {
      const c = by.get(r.channel) || { sessions: 0, bought: 0, carted: 0 };
      c.sessions += r.sessions; c.bought += r.bought; c.carted += r.carted;
      by.set(r.channel, c);
    }
    fill("funnel", [["channel"], ["sessions", 1], ["carted", 1], ["bought", 1], ["conversion", 1]],
      [...by.entries()].map(([ch, c]) => ({ cells: [ch, c.sessions, c.carted, c.bought, fmt(c.bought / Math.max(c.sessions, 1), 3)] })));
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function short(name) {
  const n = name.replace(/\s+/g, " ");
  return n.length > 34 ? n.slice(0, 33) + "…" : n;
}

// the operator graph as boxes in columns by depth (sources left, sinks right), edges as curves
function drawGraph(nodes) {
  const W = 250, H = 46, GX = 60, GY = 14;
  const cols = new Map();
  for (const n of nodes) {
    if (!cols.has(n.depth)) cols.set(n.depth, []);
    cols.get(n.depth).push(n);
  }
  const pos = new Map();
  let rows = 0;
  for (const [d, ns] of cols) {
    ns.forEach((n, i) => pos.set(n.id, { x: 10 + d * (W + GX), y: 10 + i * (H + GY) }));
    rows = Math.max(rows, ns.length);
  }
  const width = 20 + cols.size * (W + GX) - GX, height = 20 + rows * (H + GY) - GY;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg" });
  for (const n of nodes) {
    const to = pos.get(n.id);
    for (const i of n.inputs) {
      const from = pos.get(i);
      if (!from) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2, mx = (x1 + x2) / 2;
      svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge" }, root);
    }
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const g = svg("g", { class: "node " + n.kind, transform: `translate(${p.x},${p.y})`, "data-rate": String(n.rows_per_sec) }, root);
    svg("title", {}, g).textContent = n.name;
    svg("rect", { width: W, height: H, rx: 5 }, g);
    svg("text", { x: 8, y: 18, class: "name" }, g).textContent =
      short(n.name) + (n.parallelism > 1 ? " ×" + n.parallelism : "");
    const lag = n.watermark_lag_ms === null ? "" : " · wm lag " + duration(n.watermark_lag_ms);
    const bad = n.late_dropped + n.bad_records ? " · " + (n.late_dropped + n.bad_records) + " late/bad" : "";
    svg("text", { x: 8, y: 36, class: "figs" }, g).textContent = fmt(n.rows_per_sec, 0) + " rows/s" + lag + bad;
  }
  const el = document.getElementById("graph");
  el.replaceChildren(root);
  el.dataset.nodes = String(nodes.length);
  el.dataset.edges = String(nodes.reduce((a, n) => a + n.inputs.length, 0));
}

function mib(bytes) {
  return fmt(bytes / 1048576, 1) + " MiB";
}

function size(bytes) {
  return bytes < 1048576 ? fmt(bytes / 1024, 1) + " KiB" : mib(bytes);
}

function ops(job) {
  const c = job.checkpoints;
  const chk = c && c.completed
    ? " · checkpoint " + c.last_id + ": " + mib(c.last_bytes) +
      (c.last_full_bytes > c.last_bytes ? " (" + mib(c.last_full_bytes) + " in all)" : "") +
      " in " + fmt(c.last_duration_ms, 0) + " ms, paused " + fmt(c.last_pause_ms, 0) + " ms"
    : "";
  const s = job.state_store;
  const store = s
    ? " · state in memory " + mib(s.memory_bytes) + " of " + mib(s.memory_budget) + ", on disk " + mib(s.disk_bytes)
    : "";
  document.getElementById("job").textContent =
    job.name + " · " + job.state + " · " + job.records + " records · " + fmt(job.records_per_sec, 0) + "/s" + chk + store;
  fill("nodes",
    [["kind"], ["node"], ["workers", 1], ["rows in", 1], ["rows out", 1], ["rows/s", 1], ["per worker: rows/s · busy · back-pressured"], ["watermark lag (s)", 1], ["late", 1], ["bad", 1], ["state keys", 1], ["state", 1]],
    job.nodes.map((n) => ({
      cells: [n.kind, n.name, n.parallelism || 1, n.rows_in, n.rows_out, fmt(n.rows_per_sec, 0),
        (n.workers || []).map((w) => fmt(w.rows_per_sec, 0) + " · " + fmt(100 * w.busy, 0) + "% · " + fmt(100 * w.backpressured, 0) + "%").join(" | "),
        n.watermark_lag_ms === null ? "" : fmt(n.watermark_lag_ms / 1000, 1), n.late_dropped, n.bad_records, n.state_entries,
        n.state_entries || n.state_bytes ? size(n.state_bytes || 0) : ""],
    })));
  drawGraph(job.nodes);
}

async function tick() {
  try {
    const jobs = await getJson("/api/jobs");
    if (jobs.length) {
      jobId = jobs[0].id;
      ops(jobs[0]);
      await retail();
    }
  } catch (e) {
    document.getElementById("job").textContent = String(e);
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
  });
}
// a link to /#ops opens the operations view
show(location.hash === "#ops" ? "ops" : "retail");
tick();
setInterval(tick, 1000);
