//! `tillflow demo`: a retail day, generated and analysed live, into an embedded SQLite file.
//!
//! The pipelines are the SQL files of `examples/retail/demo/` (compiled into the binary): they read
//! the built-in generator and write to the demo database. Afterwards the demo reads its own results
//! back from that file for a short summary.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tillflow_sql::session::Session;

const PIPELINES: &[(&str, &str)] = &[
    (
        "00_tables.sql",
        include_str!("../../../examples/retail/demo/00_tables.sql"),
    ),
    (
        "10_sales_per_store_minute.sql",
        include_str!("../../../examples/retail/demo/10_sales_per_store_minute.sql"),
    ),
    (
        "20_top_skus_10min.sql",
        include_str!("../../../examples/retail/demo/20_top_skus_10min.sql"),
    ),
    (
        "30_stock_alerts.sql",
        include_str!("../../../examples/retail/demo/30_stock_alerts.sql"),
    ),
    (
        "35_promo_uplift.sql",
        include_str!("../../../examples/retail/demo/35_promo_uplift.sql"),
    ),
    (
        "40_funnel_per_channel.sql",
        include_str!("../../../examples/retail/demo/40_funnel_per_channel.sql"),
    ),
    (
        "50_revenue_today.sql",
        include_str!("../../../examples/retail/demo/50_revenue_today.sql"),
    ),
    (
        "60_store_anomalies.sql",
        include_str!("../../../examples/retail/demo/60_store_anomalies.sql"),
    ),
    (
        "65_stockout_forecast.sql",
        include_str!("../../../examples/retail/demo/65_stockout_forecast.sql"),
    ),
    (
        "70_sku_trends.sql",
        include_str!("../../../examples/retail/demo/70_sku_trends.sql"),
    ),
];

/// What the demo's generator injects for the forecasting pipelines to find: a spike at one store
/// and a drop at another (in the second week, once the forecasts have a week of history), and a
/// SKU trending up from the fifth day.
pub const STORY: [(&str, &str); 3] = [
    (
        "ANOMALIES",
        "3@2024-03-09 10:00:00+2h*3; 9@2024-03-12 16:00:00+2h*0.2",
    ),
    ("TREND_SKU", "40"),
    ("TREND_START", "2024-03-05 00:00:00"),
];

/// Options of `tillflow demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the results go (replaced if it exists).
    #[arg(long, default_value = "tillflow-demo.db")]
    pub db: PathBuf,
    /// Simulated time to generate.
    #[arg(long, default_value = "14d")]
    pub duration: String,
    /// Random seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Pace the events in real time (a simulated day then takes a day).
    #[arg(long)]
    pub realtime: bool,
    /// Simulated seconds per second (default: about a minute for the whole run; 0 = as fast as possible).
    #[arg(long)]
    pub speed: Option<f64>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Workers for the pipelines' keyed part (default: the cores the process may run on).
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    /// Also serve live stock per store × SKU and each store's best sellers from this Redis
    /// (`redis://[user:password@]host:port/db`; examples/retail/redis_live_stock.sql).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    #[command(flatten)]
    pub http: crate::http::HttpArgs,
}

/// The pipelines `--redis` adds.
const REDIS_PIPELINES: &str = include_str!("../../../examples/retail/redis_live_stock.sql");

/// Runs the demo.
pub fn run(a: &DemoArgs) -> Result<(), String> {
    let duration_us = tillflow_retail::config::parse_duration(&a.duration).ok_or_else(|| {
        format!(
            "--duration: '{}' is not a duration like 1d, 6h, 90min",
            a.duration
        )
    })?;
    let pacing = if a.realtime {
        "realtime".to_owned()
    } else {
        match a.speed {
            Some(s) if s <= 0.0 => "max".to_owned(),
            Some(s) => format!("{s}x"),
            None => format!("{}x", (duration_us as f64 / 1e6 / 60.0).max(1.0)),
        }
    };
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", a.db.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| format!("cannot replace {}: {e}", p.display()))?;
        }
    }
    let db = a.db.display().to_string();
    let mut vars = BTreeMap::new();
    vars.insert("SEED".to_string(), a.seed.to_string());
    vars.insert("DURATION".to_string(), a.duration.clone());
    vars.insert("PACING".to_string(), pacing.clone());
    vars.insert("DB".to_string(), db.clone());
    // a little disorder, as real feeds have: 2 % out of order, 0.2 % late
    vars.insert("OUT_OF_ORDER".to_string(), "0.02".to_string());
    vars.insert("LATE".to_string(), "0.002".to_string());
    vars.insert("RATE".to_string(), "60".to_string());
    for (k, v) in STORY {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut script: String = PIPELINES
        .iter()
        .map(|(_, sql)| format!("{sql}\n"))
        .collect();
    if let Some(url) = &a.redis {
        vars.insert("REDIS_URL".to_string(), url.clone());
        script.push_str(REDIS_PIPELINES);
    }
    let mut session = Session::new();
    session.default_store = Some(db.clone());
    let plan = session
        .execute_script(&script, &vars)
        .map_err(|e| format!("demo pipelines: {e}"))?;
    let pipelines = plan.sink_count();
    eprintln!(
        "tillflow demo: {} of a {}-store chain (seed {}, pacing {pacing}), {pipelines} pipelines -> {db}",
        a.duration,
        tillflow_retail::Config::default().stores,
        a.seed
    );
    let status = crate::http::start(&a.http, a.quiet)?;
    let mut plan = plan;
    plan.keep_recent_rows = status.is_some();
    plan.parallelism = a.parallelism.map(usize::from);
    let mut job = plan.instantiate().map_err(|e| format!("demo: {e}"))?;
    let stop = crate::stop_on_ctrl_c(&job);
    let serving = status.is_some();
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    };
    let progress = bar.clone();
    job.on_progress(Box::new(move |p| {
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        progress.set_message(format!(
            "{} events ({:.0}/s)",
            p.records,
            p.records as f64 / secs
        ));
    }));
    let publisher = status.map(|s| crate::http::Publisher::new(s, "retail-demo"));
    if let Some(p) = &publisher {
        p.attach(&mut job);
    }
    let result = job.run();
    if let Some(p) = &publisher {
        p.finish(result.as_ref().ok());
    }
    let report = result.map_err(|e| format!("demo job failed: {e}"))?;
    bar.finish_and_clear();
    let records: u64 = report.sources.iter().map(|(_, m)| m.records).sum();
    eprintln!(
        "generated and processed {records} events in {:.1} s; results in {db}",
        report.elapsed.as_secs_f64()
    );
    print!(
        "{}",
        summary(&db, tillflow_retail::Config::default().start + duration_us)
            .map_err(|e| format!("reading {db}: {e}"))?
    );
    eprintln!("explore: sqlite3 {db} '.tables'");
    crate::http::keep_serving(&a.http, serving, &stop, a.quiet);
    Ok(())
}

/// The closing summary, read back from the demo database.
pub fn summary(db: &str, end: i64) -> rusqlite::Result<String> {
    use std::fmt::Write;
    let conn = rusqlite::Connection::open(db)?;
    let mut s = String::new();
    let _ = writeln!(s, "\nRevenue by store (today so far, top 5):");
    let mut st = conn.prepare(
        "SELECT store_id, MAX(revenue), MAX(receipts) FROM revenue_today GROUP BY store_id ORDER BY 2 DESC LIMIT 5",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (store, revenue, receipts) = r?;
        let _ = writeln!(
            s,
            "  store {store:>3}  {revenue:>12.2}  ({receipts} receipts)"
        );
    }
    let _ = writeln!(s, "Top SKUs by revenue (whole run):");
    let mut st = conn.prepare(
        "SELECT sku, ROUND(SUM(revenue), 2), SUM(units) FROM top_skus_10min GROUP BY sku ORDER BY 2 DESC LIMIT 5",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (sku, revenue, units) = r?;
        let _ = writeln!(
            s,
            "  {sku}  {revenue:>12.2}  ({units} units in top-10 windows)"
        );
    }
    let (low, out): (i64, i64) = conn.query_row(
        "SELECT SUM(alert = 'low'), SUM(alert = 'out') FROM stock_levels",
        [],
        |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            ))
        },
    )?;
    let _ = writeln!(
        s,
        "Stock alerts now: {low} store×SKU low, {out} out of stock"
    );
    let mut st = conn.prepare(
        "SELECT channel, SUM(sessions), SUM(bought), ROUND(1.0 * SUM(bought) / SUM(sessions), 3) FROM funnel_per_channel GROUP BY channel",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, f64>(3)?,
        ))
    })? {
        let (channel, sessions, bought, conv) = r?;
        let _ = writeln!(
            s,
            "Funnel {channel:>4}: {sessions} sessions, {bought} orders, conversion {conv}"
        );
    }
    let _ = writeln!(
        s,
        "Promotions (units share during vs outside, top 5 by uplift):"
    );
    let mut st = conn.prepare(
        "SELECT promo_id, COALESCE(sku, 'category ' || category), discount_pct, start_time, end_time, promo_units, uplift_pct \
         FROM promo_uplift WHERE uplift_pct IS NOT NULL ORDER BY uplift_pct DESC LIMIT 5",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, f64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, f64>(6)?,
        ))
    })? {
        let (id, what, pct, start, end, units, uplift) = r?;
        let hm = |t: &str| t.get(11..16).unwrap_or(t).to_owned();
        let _ = writeln!(
            s,
            "  {id} {what:<24} {:>3.0}% off {}–{}: {units:>5} units, uplift {uplift:+.1} %",
            pct * 100.0,
            hm(&start),
            hm(&end)
        );
    }
    // the forecasting pipelines: alerts after the first week (the forecasts' warm-up)
    let mut end_text = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut end_text, end, 3);
    let _ = writeln!(
        s,
        "Sales anomalies (receipts vs forecast, after the first week):"
    );
    let mut st = conn.prepare(
        "SELECT store_id, window_start, receipts, expected, score, alert FROM store_forecast \
         WHERE alert IS NOT NULL AND window_start >= '2024-03-08' ORDER BY window_start LIMIT 10",
    )?;
    let mut any = false;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, f64>(3)?,
            r.get::<_, f64>(4)?,
            r.get::<_, String>(5)?,
        ))
    })? {
        let (store, at, receipts, expected, score, alert) = r?;
        any = true;
        let _ = writeln!(
            s,
            "  store {store:>3} {} {alert:<5}: {receipts} receipts, expected {expected:.0} (score {score:+.1})",
            at.get(..16).unwrap_or(&at)
        );
    }
    if !any {
        let _ = writeln!(s, "  none");
    }
    let _ = writeln!(
        s,
        "Trending SKUs (7-day units, growth per day, last whole week):"
    );
    let mut st = conn.prepare(
        "SELECT sku, week_end, units, growth FROM sku_trends \
         WHERE week_end = (SELECT MAX(week_end) FROM sku_trends WHERE week_end <= ?1) \
         ORDER BY growth DESC LIMIT 3",
    )?;
    let mut any = false;
    for r in st.query_map([&end_text], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, f64>(3)?,
        ))
    })? {
        let (sku, week_end, units, growth) = r?;
        any = true;
        let _ = writeln!(
            s,
            "  {sku} {units:>6} units in the week to {}, {:+.1} % a day",
            week_end.get(..10).unwrap_or(&week_end),
            growth * 100.0
        );
    }
    if !any {
        let _ = writeln!(s, "  none yet (needs more than a week)");
    }
    Ok(s)
}
