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
        "15_sales_per_store_hour.sql",
        include_str!("../../../examples/retail/demo/15_sales_per_store_hour.sql"),
    ),
    (
        "20_top_skus_10min.sql",
        include_str!("../../../examples/retail/demo/20_top_skus_10min.sql"),
    ),
    (
        "25_sales_per_sku_day.sql",
        include_str!("../../../examples/retail/demo/25_sales_per_sku_day.sql"),
    ),
    (
        "30_stock.sql",
        include_str!("../../../examples/retail/demo/30_stock.sql"),
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
        "70_sku_trends.sql",
        include_str!("../../../examples/retail/demo/70_sku_trends.sql"),
    ),
    (
        "80_units_forecast.sql",
        include_str!("../../../examples/retail/demo/80_units_forecast.sql"),
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
/// The offline model the units forecast runs (scripts/train-demo-model.py makes it), written to
/// a temporary directory when the demo starts.
const UNITS_MODEL: &[u8] = include_bytes!("../../../examples/retail/demo/models/units_ratio.onnx");

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
    let start = tillflow_retail::Config::default().start;
    let end = start.saturating_add(duration_us);
    vars.insert("START".to_string(), timestamp_text(start));
    vars.insert("END".to_string(), timestamp_text(end));
    vars.insert("PACING".to_string(), pacing.clone());
    vars.insert("DB".to_string(), db.clone());
    // a little disorder, as real feeds have: 2 % out of order, 0.2 % late
    vars.insert("OUT_OF_ORDER".to_string(), "0.02".to_string());
    vars.insert("LATE".to_string(), "0.002".to_string());
    vars.insert("RATE".to_string(), "60".to_string());
    let models =
        tempfile::tempdir().map_err(|e| format!("a directory for the demo's model: {e}"))?;
    std::fs::write(models.path().join("units_ratio.onnx"), UNITS_MODEL).map_err(|e| {
        format!(
            "writing the demo's model to {}: {e}",
            models.path().display()
        )
    })?;
    vars.insert("MODELS".to_string(), models.path().display().to_string());
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
    let keys = crate::http::table_keys(&plan);
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
    let publisher =
        status.map(|s| crate::http::Publisher::new(s, "retail-demo").with_table_keys(keys));
    if let Some(p) = &publisher {
        p.attach(&mut job);
    }
    let result = job.run();
    if let Some(p) = &publisher {
        p.finish(result.as_ref().ok());
    }
    let report = result.map_err(|e| format!("demo job failed: {e}"))?;
    // the sinks close their SQLite connection (and fold its write-ahead log into the file)
    drop(job);
    bar.finish_and_clear();
    let records: u64 = report.sources.iter().map(|(_, m)| m.records).sum();
    eprintln!(
        "generated and processed {records} events in {:.1} s; results in {db}",
        report.elapsed.as_secs_f64()
    );
    print!(
        "{}",
        summary(&db, start, end).map_err(|e| format!("reading {db}: {e}"))?
    );
    eprintln!("explore: sqlite3 {db} '.tables'");
    crate::http::keep_serving(&a.http, serving, &stop, a.quiet);
    Ok(())
}

fn timestamp_text(t: i64) -> String {
    let mut text = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut text, t, 0);
    text
}

/// `1234567.891` as `1,234,567.89`.
fn money(x: f64) -> String {
    let cents = (x * 100.0).round() as i64;
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!(
        "{sign}{}.{:02}",
        thousands((cents / 100) as i64),
        cents % 100
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The closing summary, read back from the demo database: every figure names its period. The
/// data runs from `start` to `end` (µs).
pub fn summary(db: &str, start: i64, end: i64) -> rusqlite::Result<String> {
    use std::fmt::Write;
    let conn = rusqlite::Connection::open(db)?;
    let mut s = String::new();
    let days = (end - start) as f64 / tillflow_types::temporal::MICROS_PER_DAY as f64;
    let run = format!(
        "whole run, {} to {}",
        timestamp_text(start).get(..16).unwrap_or_default(),
        timestamp_text(end).get(..16).unwrap_or_default()
    );

    // the last day the cumulative windows reached, and how far into it
    let last_day: Option<(String, String)> = conn
        .query_row(
            "SELECT window_start, MAX(window_end) FROM revenue_today \
             WHERE window_start = (SELECT MAX(window_start) FROM revenue_today)",
            [],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                ))
            },
        )
        .map(|(a, b)| a.zip(b))?;
    if let Some((day, until)) = last_day {
        // the pipeline leaves out the steps after the data's end: the last one says how far it got
        let whole = until.get(11..16) == Some("00:00");
        let _ = writeln!(
            s,
            "\nRevenue by store on {}{}, top 5:",
            day.get(..10).unwrap_or(&day),
            if whole {
                " (the whole day)".to_owned()
            } else {
                format!(" (so far: until {})", until.get(11..16).unwrap_or(&until))
            }
        );
        let mut st = conn.prepare(
            "SELECT store_id, revenue, receipts FROM revenue_today \
             WHERE window_start = ?1 AND window_end = ?2 ORDER BY revenue DESC LIMIT 5",
        )?;
        for r in st.query_map([&day, &until], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (store, revenue, receipts) = r?;
            let _ = writeln!(
                s,
                "  store {store:>3}  {:>12}  ({} receipts)",
                money(revenue),
                thousands(receipts)
            );
        }
    }

    let _ = writeln!(s, "Best sellers by revenue ({run}):");
    let mut st = conn.prepare(
        "SELECT sku, category, SUM(revenue), SUM(units) FROM sales_per_sku_day \
         GROUP BY sku, category ORDER BY 3 DESC LIMIT 5",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, f64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (sku, category, revenue, units) = r?;
        let _ = writeln!(
            s,
            "  {sku} {category:<14} {:>12}  ({} units)",
            money(revenue),
            thousands(units)
        );
    }
    let mut st = conn.prepare(
        "SELECT category, SUM(revenue) / (SELECT SUM(revenue) FROM sales_per_sku_day) \
         FROM sales_per_sku_day GROUP BY category ORDER BY 2 DESC",
    )?;
    let mix: Vec<String> = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?
        .map(|r| r.map(|(c, f)| format!("{c} {:.0} %", 100.0 * f)))
        .collect::<rusqlite::Result<_>>()?;
    if !mix.is_empty() {
        let _ = writeln!(s, "Revenue by category: {}", mix.join(", "));
    }

    let stock: (Option<String>, i64, i64, i64) = conn.query_row(
        "SELECT MAX(as_of), SUM(alert = 'out'), SUM(alert = 'low'), COUNT(*) FROM stock_levels",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                r.get(3)?,
            ))
        },
    )?;
    let _ = writeln!(
        s,
        "Stock now (as of {}): {} of {} store×SKU out of stock, {} with less than the 6 h lead time of cover",
        stock.0.as_deref().and_then(|t| t.get(..16)).unwrap_or("-"),
        stock.1,
        thousands(stock.3),
        stock.2
    );

    let _ = writeln!(s, "Online funnel ({run}):");
    let mut st = conn.prepare(
        "SELECT channel, SUM(sessions), SUM(carted), SUM(bought) FROM funnel_per_channel \
         GROUP BY channel ORDER BY channel",
    )?;
    for r in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (channel, sessions, carted, bought) = r?;
        let _ = writeln!(
            s,
            "  {channel:>4}: {} sessions, {} orders: conversion {:.1} %, {:.0} % of carts abandoned",
            thousands(sessions),
            thousands(bought),
            100.0 * bought as f64 / sessions.max(1) as f64,
            100.0 * (1.0 - bought as f64 / carted.max(1) as f64)
        );
    }

    let elasticity = tillflow_retail::Config::default().elasticity;
    let (started, measured): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COUNT(uplift_pct) FROM promo_uplift",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let _ = writeln!(
        s,
        "Promotions ({run}): {started} run, {measured} with enough sales to measure; \
         uplift = the promoted units' share while on vs off, that day:"
    );
    let mut st = conn.prepare(
        "SELECT discount_pct, uplift_pct FROM promo_uplift WHERE uplift_pct IS NOT NULL \
         ORDER BY discount_pct, uplift_pct",
    )?;
    let mut by_discount: Vec<(f64, Vec<f64>)> = Vec::new();
    for r in st.query_map([], |r| Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?)))? {
        let (d, u) = r?;
        match by_discount.last_mut() {
            Some((last, v)) if (*last - d).abs() < 1e-9 => v.push(u),
            _ => by_discount.push((d, vec![u])),
        }
    }
    for (d, v) in &by_discount {
        let median = v[v.len() / 2];
        let _ = writeln!(
            s,
            "  {:>3.0} % off: {:>2} promotions, median uplift {median:+.0} % (range {:+.0} to {:+.0} %; \
             a price elasticity of {elasticity} predicts {:+.0} %)",
            d * 100.0,
            v.len(),
            v[0],
            v[v.len() - 1],
            100.0 * ((1.0 - d).powf(-elasticity) - 1.0)
        );
    }

    let _ = writeln!(
        s,
        "Sales anomalies (receipts per store-hour vs forecast, from the second week on):"
    );
    let second_week = timestamp_text(start + 7 * tillflow_types::temporal::MICROS_PER_DAY);
    let mut st = conn.prepare(
        "SELECT store_id, window_start, receipts, expected, score, alert FROM store_forecast \
         WHERE alert IS NOT NULL AND window_start >= ?1 ORDER BY window_start LIMIT 10",
    )?;
    let mut any = false;
    for r in st.query_map([&second_week], |r| {
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
        let _ = writeln!(
            s,
            "  none{}",
            if days <= 7.0 {
                " (the forecasts learn from the first week)"
            } else {
                ""
            }
        );
    }

    // the units forecasts: sMAPE from the second day on, all hours and promotion hours
    let second_day = timestamp_text(start + tillflow_types::temporal::MICROS_PER_DAY);
    let smape = |col: &str| {
        format!(
            "100 * AVG(CASE WHEN ABS(units) + ABS({col}) > 0              THEN 2 * ABS(units - {col}) / (ABS(units) + ABS({col})) ELSE 0 END)"
        )
    };
    let cols = ["online", "onnx", "holt_winters", "seasonal_naive"];
    let select = cols.iter().map(|c| smape(c)).collect::<Vec<_>>().join(", ");
    let complete = cols
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let row = |promo: bool| -> rusqlite::Result<(i64, Vec<Option<f64>>)> {
        conn.query_row(
            &format!(
                "SELECT COUNT(*), {select} FROM units_forecast WHERE window_start >= ?1 AND {complete}{}",
                if promo { " AND promo_share > 0" } else { "" }
            ),
            [&second_day],
            |r| Ok((r.get(0)?, (1..=4).map(|i| r.get(i).ok()).collect())),
        )
    };
    let (n_all, all) = row(false)?;
    let (n_promo, promo) = row(true)?;
    if n_all > 0 {
        let _ = writeln!(
            s,
            "Units per store × category next hour, sMAPE from the second day on (all {} hours | {} promotion hours):",
            thousands(n_all),
            thousands(n_promo)
        );
        for ((name, a), p) in [
            "online model (learns on the stream)",
            "ONNX model (trained offline)",
            "Holt-Winters",
            "seasonal naive (same hour yesterday)",
        ]
        .iter()
        .zip(&all)
        .zip(&promo)
        {
            let f = |v: &Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} %"));
            let _ = writeln!(s, "  {name:<38} {:>7} | {:>7}", f(a), f(p));
        }
    }

    let trend_week: Option<String> =
        conn.query_row("SELECT MAX(week_end) FROM sku_trends", [], |r| r.get(0))?;
    match trend_week {
        Some(week_end) => {
            let _ = writeln!(
                s,
                "Trending SKUs (units in the week to {}, Holt's growth per day):",
                week_end.get(..10).unwrap_or(&week_end)
            );
            let mut st = conn.prepare(
                "SELECT sku, units, growth FROM sku_trends WHERE week_end = ?1 \
                 ORDER BY growth DESC LIMIT 3",
            )?;
            for r in st.query_map([&week_end], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })? {
                let (sku, units, growth) = r?;
                let _ = writeln!(
                    s,
                    "  {sku} {:>6} units, {:+.1} % a day",
                    thousands(units),
                    growth * 100.0
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "Trending SKUs: none yet (a trend needs whole weeks of data: more than 7 days)"
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(money(71004.856), "71,004.86");
        assert_eq!(money(0.5), "0.50");
        assert_eq!(money(-0.5), "-0.50");
        assert_eq!(money(-1234.5), "-1,234.50");
    }
}
