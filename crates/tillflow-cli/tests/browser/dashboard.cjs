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
    await page.waitForFunction(() => Number(document.getElementById("revenue-chart").dataset.points) > 0, null, { timeout: 20000 });
    seen.points = Number(await chart.getAttribute("data-points"));
    seen.last = Number(await chart.getAttribute("data-last"));
    seen.canvas = await page.locator("#revenue-chart canvas").count();
    // the demo goes on: the chart gains later minutes while we watch
    await page.waitForFunction(
      (before) => Number(document.getElementById("revenue-chart").dataset.last) > before,
      seen.last,
      { timeout: 20000 }
    );
    seen.last2 = Number(await chart.getAttribute("data-last"));
    await page.waitForFunction(() => document.querySelectorAll("#alerts tr").length > 1, null, { timeout: 20000 });
    seen.alerts = (await page.locator("#alerts tr").count()) - 1;
    seen.alertKinds = await page.locator("#alerts tr td:nth-child(4)").allTextContents();
    seen.funnel = await page.locator("#funnel tr td:first-child").allTextContents();
    seen.topSkus = (await page.locator("#top-skus tr").count()) - 1;
    seen.stockouts = (await page.locator("#stockouts tr").count()) - 1;
    seen.opsHiddenBefore = await page.locator("#ops").isHidden();
    await page.screenshot({ path: path.join(shots, "dashboard-retail.png"), fullPage: true });
    // the operations view: the drawn graph and the counters
    await page.click("#tab-ops");
    await page.waitForSelector("#graph svg g.node", { timeout: 10000 });
    seen.retailHiddenAfter = await page.locator("#retail").isHidden();
    seen.graphNodes = await page.locator("#graph svg g.node").count();
    seen.graphEdges = await page.locator("#graph svg path.edge").count();
    seen.sinkBoxes = await page.locator("#graph svg g.node.sink").count();
    seen.rates = (await page.locator("#graph svg g.node").evaluateAll((gs) => gs.map((g) => Number(g.dataset.rate))));
    seen.header = await page.locator("#job").textContent();
    seen.stateSizes = await page.locator("#nodes tr td:last-child").allTextContents();
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
