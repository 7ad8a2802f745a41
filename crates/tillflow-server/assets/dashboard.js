// tillflow dashboard: reads the HTTP API of the running job (docs/api.md) and draws the retail
// view (the demo's result tables) and the operations view (the operator graph's counters).
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const revenue = new Map(); // store -> Map(window_start ms -> revenue)
const stock = new Map(); // "store/sku" -> latest stock row (the API keeps only the last 100 changes)
const seen = new Set(); // stock rows already applied, so a poll does not apply a change twice
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

function ops(job) {
  document.getElementById("job").textContent =
    job.name + " · " + job.state + " · " + job.records + " records · " + fmt(job.records_per_sec, 0) + "/s";
  fill("nodes",
    [["kind"], ["node"], ["rows in", 1], ["rows out", 1], ["rows/s", 1], ["watermark lag (s)", 1], ["late", 1], ["bad", 1], ["state", 1]],
    job.nodes.map((n) => ({
      cells: [n.kind, n.name, n.rows_in, n.rows_out, fmt(n.rows_per_sec, 0),
        n.watermark_lag_ms === null ? "" : fmt(n.watermark_lag_ms / 1000, 1), n.late_dropped, n.bad_records, n.state_entries],
    })));
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

for (const [tab, section] of [["tab-retail", "retail"], ["tab-ops", "ops"]]) {
  document.getElementById(tab).addEventListener("click", () => {
    for (const s of ["retail", "ops"]) document.getElementById(s).hidden = s !== section;
    for (const b of ["tab-retail", "tab-ops"]) document.getElementById(b).className = b === tab ? "on" : "";
  });
}
tick();
setInterval(tick, 1000);
