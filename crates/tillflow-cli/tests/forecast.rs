//! The forecasting functions checked against independent implementations: additive Holt-Winters
//! against Python statsmodels' ExponentialSmoothing with the same fixed parameters and
//! initialisation, EWMA and EWMVAR against pandas (tests/forecast/reference.py), to 1e-6 relative.

mod common;

use common::tillflow;
use std::process::Command;

/// A seasonal series with trend and noise (deterministic).
fn series(n: usize) -> Vec<f64> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
            let t = i as f64;
            100.0 + 12.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin() + 0.4 * t + 6.0 * noise
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn holt_winters_and_ewma_equal_statsmodels_and_pandas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ys = series(150);
    let input = dir.path().join("series.ndjson");
    let text: String = ys
        .iter()
        .enumerate()
        .map(|(i, y)| {
            format!(
                "{{\"ts\": \"2024-03-01 {:02}:{:02}:00\", \"y\": {y}}}\n",
                i / 60,
                i % 60
            )
        })
        .collect();
    std::fs::write(&input, text).expect("input");
    let out = dir.path().join("out");
    let script = format!(
        "CREATE TABLE t (ts TIMESTAMP(3), y DOUBLE, WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE o (ts TIMESTAMP(3), y DOUBLE, hw1 DOUBLE, hw3 DOUBLE, lvl DOUBLE, e DOUBLE, v DOUBLE, expected DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO o SELECT ts, y,
  HOLT_WINTERS(y, 0.3, 0.1, 0.2, 12) OVER w,
  HOLT_WINTERS(y, 0.3, 0.1, 0.2, 12, 3) OVER w,
  HW_LEVEL(y, 0.3, 0.1, 0.2, 12) OVER w,
  EWMA(y, 0.2) OVER w,
  EWMVAR(y, 0.2) OVER w,
  HW_FORECAST(y, 0.3, 0.1, 0.2, 12, 0) OVER w
FROM t WINDOW w AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);",
        input = input.display(),
        out = out.display()
    );
    let (ok, err) = tillflow(&script, dir.path());
    assert!(ok, "{err}");
    let mut rows: Vec<serde_json::Value> = common::lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    rows.sort_by_key(|r| r["ts"].as_str().unwrap_or("").to_owned());
    assert_eq!(rows.len(), ys.len());

    let series_file = dir.path().join("series.json");
    std::fs::write(&series_file, serde_json::to_string(&ys).expect("json")).expect("series");
    let o = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/forecast/reference.py"
        ))
        .arg(&series_file)
        .args(["0.3", "0.1", "0.2", "12", "3", "0.2"])
        .output()
        .expect("python3 (scripts/setup.sh installs statsmodels)");
    assert!(
        o.status.success(),
        "reference.py: {} (scripts/setup.sh test installs statsmodels)",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reference json");
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64();
    let mut checked = [0usize; 5];
    for (i, r) in rows.iter().enumerate() {
        // warm-up: nothing until the first season is complete
        if i < 11 {
            assert!(r["hw1"].is_null() && r["lvl"].is_null(), "row {i}: {r}");
        }
        if let Some(w) = want["hw1"][i.to_string()].as_f64() {
            let got = f(r, "hw1").unwrap_or(f64::NAN);
            assert!(
                close(got, w),
                "HOLT_WINTERS h=1 after value {i}: {got} vs statsmodels {w}"
            );
            checked[0] += 1;
            // what row i+1 expected (horizon 0) is what row i forecast one step ahead
            if let Some(next) = rows.get(i + 1) {
                let e = f(next, "expected").unwrap_or(f64::NAN);
                assert!(close(e, w), "HW_FORECAST h=0 at {}: {e} vs {w}", i + 1);
            }
        }
        if let Some(w) = want["hwh"][i.to_string()].as_f64() {
            let got = f(r, "hw3").unwrap_or(f64::NAN);
            assert!(
                close(got, w),
                "HOLT_WINTERS h=3 after value {i}: {got} vs statsmodels {w}"
            );
            checked[1] += 1;
        }
        if let Some(w) = want["level"][i.to_string()].as_f64() {
            let got = f(r, "lvl").unwrap_or(f64::NAN);
            assert!(
                close(got, w),
                "HW_LEVEL after value {i}: {got} vs statsmodels {w}"
            );
            checked[2] += 1;
        }
        let w = want["ewma"][i].as_f64().unwrap_or(f64::NAN);
        let got = f(r, "e").unwrap_or(f64::NAN);
        assert!(close(got, w), "EWMA at {i}: {got} vs pandas {w}");
        checked[3] += 1;
        if i > 0 {
            let w = want["ewmvar"][i].as_f64().unwrap_or(f64::NAN);
            let got = f(r, "v").unwrap_or(f64::NAN);
            assert!(close(got, w), "EWMVAR at {i}: {got} vs pandas {w}");
            checked[4] += 1;
        }
    }
    assert!(
        checked[0] > 130 && checked[1] > 15 && checked[2] > 130,
        "{checked:?}"
    );
}

#[test]
fn bad_parameters_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (call, msg) in [
        ("EWMA(y, 1.5)", "EWMA: alpha must be in (0, 1], got 1.5"),
        ("HOLT_WINTERS(y, 0.3, 0.1, 0.2, 0)", "season_length must be between 1 and 100000"),
        ("HOLT_WINTERS(y, 0.3, 0.1)", "wrong number of arguments: the function is HOLT_WINTERS(x, alpha, beta, gamma, season_length [, horizon])"),
        ("HOLT_WINTERS(y, 0.3, 0.1, 0.2, 4, 1.5)", "horizon must be a whole number"),
        ("EWMA(y, y)", "parameter `y` must be a constant"),
        ("IS_ANOMALY(y, -1)", "threshold must be positive"),
        ("EWMA(name, 0.5)", "EWMA needs a numeric value, got STRING"),
    ] {
        let script = format!(
            "CREATE TABLE t (ts TIMESTAMP(3), y DOUBLE, name STRING, WATERMARK FOR ts AS ts)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT {call} OVER (ORDER BY ts) FROM t;"
        );
        let (ok, err) = tillflow(&script, dir.path());
        assert!(!ok, "{call} was accepted");
        assert!(err.contains(msg), "{call}: {err}");
    }
}

/// Forecasts kept per key (OVER … PARTITION BY) on three workers give the rows they give on one:
/// each key's state lives on the worker that owns the key and sees that key's rows in order.
#[test]
fn per_key_forecasts_on_several_workers_equal_one_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("series.ndjson");
    let ys = series(150);
    let mut text = String::new();
    for (i, y) in ys.iter().enumerate() {
        for k in 0..7 {
            text.push_str(&format!(
                "{{\"k\": {k}, \"ts\": \"2024-03-01 {:02}:{:02}:00\", \"y\": {}}}\n",
                i / 60,
                i % 60,
                y * (1.0 + k as f64 / 10.0)
            ));
        }
    }
    std::fs::write(&input, text).expect("input");
    let run = |parallelism: usize| {
        let out = dir.path().join(format!("out{parallelism}"));
        let script = format!(
            "SET 'parallelism.default' = '{parallelism}';
CREATE TABLE t (k INT, ts TIMESTAMP(3), y DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE o (k INT, ts TIMESTAMP(3), hw DOUBLE, e DOUBLE, a DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO o SELECT k, ts,
  HOLT_WINTERS(y, 0.3, 0.1, 0.2, 12) OVER w,
  EWMA(y, 0.2) OVER w,
  ANOMALY_SCORE(y, 0.2) OVER w
FROM t WINDOW w AS (PARTITION BY k ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);",
            input = input.display(),
            out = out.display()
        );
        let (ok, err) = tillflow(&script, dir.path());
        assert!(ok, "{err}");
        let mut rows = common::lines(&out);
        rows.sort();
        rows
    };
    let one = run(1);
    assert_eq!(one.len(), 7 * ys.len());
    assert!(one
        .iter()
        .any(|r| r.contains("\"hw\":") && !r.contains("\"hw\":null")));
    assert_eq!(run(3), one, "three workers");
}
