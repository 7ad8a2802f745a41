//! The forecasting pipelines of examples/retail/ on generated data with known truth: the
//! generator's injected anomalies must be found by the store-anomaly pipeline (precision and recall
//! at the default threshold ≥ 0.9), its forecast must beat a seasonal-naive forecast (sMAPE), and
//! the injected trending SKU must lead the trend ranking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use tillflow_retail::config::Anomaly;

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/retail")
        .join(name)
}

fn run(script: &Path, db: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .arg("run")
        .arg(script)
        .args(["--quiet", "--no-http", "--var"])
        .arg(format!("DB={}", db.display()))
        .output()
        .expect("run tillflow");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn ts(t: i64) -> String {
    let mut s = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut s, t, 3);
    s
}

/// The anomalies the example injects, read from its own `'anomalies'` option (the known truth).
fn injected(sql: &str) -> Vec<Anomaly> {
    let at = sql.find("'anomalies' = '").expect("anomalies option") + 15;
    let list = &sql[at..at + sql[at..].find('\'').expect("end of option")];
    list.split(';')
        .map(|a| Anomaly::parse(a.trim()).expect("anomaly"))
        .collect()
}

#[test]
fn store_anomalies_are_found_and_the_forecast_beats_seasonal_naive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("anomalies.db");
    let script = example("store_anomalies.sql");
    run(&script, &db);
    let truth = injected(&std::fs::read_to_string(&script).expect("example"));
    assert_eq!(truth.len(), 8);
    let conn = rusqlite::Connection::open(&db).expect("db");
    let mut st = conn
        .prepare("SELECT store_id, window_start, receipts, expected, score, alert FROM store_forecast ORDER BY store_id, window_start")
        .expect("query");
    type Row = (i64, String, i64, f64, Option<f64>, Option<String>);
    let rows: Vec<Row> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    // which injected anomaly (if any) an hourly window of a store overlaps
    let hit = |store: i64, start: &str| -> Option<usize> {
        truth.iter().position(|a| {
            let s = ts(a.start);
            let e = ts(a.start + a.duration);
            a.store as i64 == store && start >= &s[..] && start < &e[..]
        })
    };
    // scored from the second week on: the first gives the daily season and the spread a history
    let from = "2024-03-08";
    let (mut tp, mut fp) = (0, 0);
    let mut found = BTreeSet::new();
    for (store, start, _, _, _, alert) in &rows {
        if start.as_str() < from {
            continue;
        }
        if let Some(kind) = alert {
            match hit(*store, start) {
                Some(i) if (kind == "spike") == (truth[i].factor > 1.0) => {
                    tp += 1;
                    found.insert(i);
                }
                _ => fp += 1,
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = found.len() as f64 / truth.len() as f64;
    eprintln!(
        "anomaly alerts: precision {precision:.3} ({tp} of {}), recall {recall:.3} ({} of {})",
        tp + fp,
        found.len(),
        truth.len()
    );
    assert!(
        precision >= 0.9,
        "precision {precision}: {tp} true, {fp} false alerts"
    );
    assert!(
        recall >= 0.9,
        "recall {recall}: found {found:?} of {truth:?}"
    );

    // forecast error on ordinary hours: Holt-Winters vs the same hour the day before
    let mut by_store: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_store.entry(r.0).or_default().push(r);
    }
    let smape = |a: f64, f: f64| {
        if a + f == 0.0 {
            0.0
        } else {
            2.0 * (a - f).abs() / (a.abs() + f.abs())
        }
    };
    let (mut hw, mut naive, mut n) = (0.0, 0.0, 0usize);
    for series in by_store.values() {
        for (i, r) in series.iter().enumerate() {
            if r.1.as_str() < from
                || i < 14
                || hit(r.0, &r.1).is_some()
                || hit(series[i - 14].0, &series[i - 14].1).is_some()
            {
                continue;
            }
            hw += smape(r.2 as f64, r.3);
            naive += smape(r.2 as f64, series[i - 14].2 as f64);
            n += 1;
        }
    }
    let (hw, naive) = (hw / n as f64, naive / n as f64);
    eprintln!("one-hour-ahead sMAPE over {n} store-hours: Holt-Winters {hw:.4}, seasonal naive {naive:.4}");
    assert!(n > 1500, "{n}");
    assert!(
        hw < naive,
        "Holt-Winters sMAPE {hw} does not beat seasonal naive {naive}"
    );
}

#[test]
fn the_trending_sku_leads_the_trend_ranking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("trends.db");
    run(&example("sku_trends.sql"), &db);
    let conn = rusqlite::Connection::open(&db).expect("db");
    let mut st = conn
        .prepare("SELECT week_end, sku, growth FROM sku_trends WHERE week_end >= '2024-03-11' ORDER BY week_end, growth DESC")
        .expect("query");
    let rows: Vec<(String, String, f64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut days: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for (d, sku, g) in &rows {
        days.entry(d.as_str()).or_default().push((sku.as_str(), *g));
    }
    assert!(days.len() >= 4, "{days:?}");
    for (day, ranked) in &days {
        assert_eq!(ranked[0].0, "SKU-00040", "{day}: {:?}", &ranked[..3]);
        assert!(
            ranked[0].1 > 0.05 && ranked[0].1 > ranked[1].1,
            "{day}: {:?}",
            &ranked[..3]
        );
    }
}
