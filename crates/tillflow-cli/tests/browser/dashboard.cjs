// Drives the dashboard of a running `tillflow demo` in headless Chromium with playwright-core
// and prints what it saw as one JSON object; tests/http.rs asserts on it.
//   node dashboard.cjs URL SCREENSHOT_DIR
// Chromium: $TILLFLOW_CHROMIUM or Debian's /usr/bin/chromium. playwright-core: on NODE_PATH
// (scripts/setup.sh installs it under ~/.cache/tillflow-tools/node).
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");

async function main() {
  const [url, shots] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.TILLFLOW_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const seen = { errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    page.on("console", (m) => {
      if (m.type() === "error") seen.errors.push("console: " + m.text());
    });
    page.on("pageerror", (e) => seen.errors.push("page: " + e.message));
    page.on("requestfailed", (r) => seen.errors.push("request: " + r.url()));
    await page.goto(url);
    const chart = page.locator("#revenue-chart");
    const points = () => Number(document.getElementById("revenue-chart").dataset.points);
    await page.waitForFunction(points, null, { timeout: 30000 });
    seen.points = Number(await chart.getAttribute("data-points"));
    seen.last = Number(await chart.getAttribute("data-last"));
    seen.series = Number(await chart.getAttribute("data-series"));
    seen.canvas = await page.locator("#revenue-chart canvas").count();
    // the legend names each line with its figure for the period, not a cursor's "--"
    seen.legend = await page.locator("#revenue-chart .u-legend").textContent();
    // the demo goes on: the chart gains later hours while we watch
    await page.waitForFunction(
      (before) => Number(document.getElementById("revenue-chart").dataset.last) > before,
      seen.last,
      { timeout: 30000 }
    );
    seen.last2 = Number(await chart.getAttribute("data-last"));
    // the units forecasts beside the units sold, once an hour has closed
    await page.waitForFunction(() => Number(document.getElementById("forecast-chart").dataset.points) > 0, null, { timeout: 30000 });
    seen.forecast_points = Number(await page.locator("#forecast-chart").getAttribute("data-points"));
    seen.forecast_legend = await page.locator("#forecast-chart .u-legend").textContent();
    // a few simulated days in: the stock, funnel and promotion panels have rows
    await page.waitForFunction(
      () => ["funnel", "uplift", "top-skus"].every((id) => document.querySelectorAll("#" + id + " tr").length > 1),
      null,
      { timeout: 30000 }
    );
    // every panel names its period (a date) and says why when it is empty
    seen.titles = await page.locator("#retail .card h2").allTextContents();
    seen.panels = await page.locator("#retail .card").evaluateAll((cards) =>
      cards.map((c) => ({
        title: c.querySelector("h2").textContent,
        rows: c.querySelectorAll("tr").length,
        why: (c.querySelector(".why") || {}).textContent || "",
        chart: !!c.querySelector("canvas"),
      }))
    );
    // the stock panel is the API's stock state: every store×SKU where the page and the API
    // differ has changed since the page's last look (the demo goes on between the two)
    seen.stock = await page.evaluate(async () => {
      const key = (r) => r.store_id + "/" + r.sku;
      const mine = new Set(rowsOf("stock_levels").filter((r) => r.alert !== "ok").map(key));
      const seenUpTo = cursor;
      const get = async (q) => (await (await fetch("/api/jobs/retail-demo/tables" + q)).json()).find((x) => x.table === "stock_levels");
      const now = await get("");
      const later = await get("?since=" + seenUpTo);
      const api = new Set(now.rows.filter((r) => r.alert !== "ok").map(key));
      const changed = new Set(later.rows.map(key));
      const unexplained = [...mine].filter((k) => !api.has(k) && !changed.has(k))
        .concat([...api].filter((k) => !mine.has(k) && !changed.has(k)));
      const shown = document.querySelectorAll("#alerts tr").length;
      return {
        page: mine.size, api: api.size, unexplained, shown: shown ? shown - 1 : 0,
        kinds: [...document.querySelectorAll("#alerts tr td:nth-child(6)")].map((x) => x.textContent),
      };
    });
    seen.stockoutHours = await page.locator("#stockouts tr td:nth-child(6)").allTextContents();
    seen.funnel = await page.locator("#funnel tr td:first-child").allTextContents();
    seen.conversion = await page.locator("#funnel tr td:nth-child(4)").allTextContents();
    // no panel's table is wider than its card (nothing cut off)
    seen.overflowing = await page.locator("#retail .card").evaluateAll((cards) =>
      cards.filter((c) => c.scrollWidth > c.clientWidth + 1).map((c) => c.querySelector("h2").textContent));
    seen.uplift = await page.locator("#uplift tr td:nth-child(5)").allTextContents();
    seen.topSkus = (await page.locator("#top-skus tr").count()) - 1;
    seen.opsHiddenBefore = await page.locator("#ops").isHidden();
    await page.screenshot({ path: path.join(shots, "dashboard-retail.png"), fullPage: true });
    // a store chosen: one line, named for it
    const store = await page.locator("#store option").nth(1).getAttribute("value");
    await page.selectOption("#store", store);
    await page.waitForFunction(() => document.getElementById("revenue-chart").dataset.series === "1", null, { timeout: 10000 });
    seen.storeTitle = await page.locator("#revenue-title").textContent();
    seen.store = store;
    // the whole run: the period starts with the data
    await page.click("#periods button[data-hours='0']");
    seen.wholeRun = await page.locator("#period-text").textContent();
    await page.screenshot({ path: path.join(shots, "dashboard-store.png"), fullPage: true });
    // the operations view: the drawn graph and the counters
    await page.click("#tab-ops");
    await page.waitForSelector("#graph svg g.node", { timeout: 10000 });
    seen.retailHiddenAfter = await page.locator("#retail").isHidden();
    const graph = page.locator("#graph");
    seen.graphNodes = Number(await graph.getAttribute("data-nodes"));
    seen.graphMembers = Number(await graph.getAttribute("data-members"));
    seen.graphBoxes = await page.locator("#graph svg g.node").count();
    seen.graphEdges = await page.locator("#graph svg path.edge").count();
    seen.graphEdgesSaid = Number(await graph.getAttribute("data-edges"));
    seen.sinkNames = await page.locator("#graph svg g.node.sink text.name").allTextContents();
    seen.boxNames = await page.locator("#graph svg g.node text.name").allTextContents();
    seen.figures = await page.locator("#graph svg g.node text.figs").allTextContents();
    seen.fits = await page.evaluate(() => {
      const svg = document.querySelector("#graph svg").getBoundingClientRect();
      const card = document.getElementById("graph").getBoundingClientRect();
      return svg.width <= card.width + 1;
    });
    seen.rates = await page.locator("#graph svg g.node").evaluateAll((gs) => gs.map((g) => Number(g.dataset.rate)));
    seen.header = await page.locator("#job").textContent();
    seen.columns = await page.locator("#nodes tr th").allTextContents();
    const col = (name) => seen.columns.indexOf(name) + 1;
    seen.stateSizes = await page.locator(`#nodes tr td:nth-child(${col("state")})`).allTextContents();
    seen.models = (await page.locator(`#nodes tr td:nth-child(${col("model: learned · error")})`).allTextContents()).filter((t) => t);
    seen.streamLags = await page.locator(`#nodes tr td:nth-child(${col("behind the stream")})`).allTextContents();
    seen.wallLags = await page.locator(`#nodes tr td:nth-child(${col("behind the wall clock")})`).allTextContents();
    seen.hash = await page.evaluate(() => location.hash);
    await page.screenshot({ path: path.join(shots, "dashboard-ops.png"), fullPage: true });
  } catch (e) {
    seen.errors.push("driver: " + e.message);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: ["driver: " + e.message] }) + "\n");
});
