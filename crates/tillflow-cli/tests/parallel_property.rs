//! A property test: random valid window aggregations over the Flink events give the same rows
//! on one worker and on several (with one phase and with two). Each case is drawn from a fixed
//! seed (`TILLFLOW_PROPERTY_SEED`, and `TILLFLOW_PROPERTY_CASES` cases, 10 by default), so a
//! failure prints a query that reproduces it.

use std::path::Path;
use std::process::Command;

mod common;

/// Draws from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        common::splitmix(&mut self.0)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A random window aggregation over `events` into a JSON directory `${OUTPUT}`.
fn query(rng: &mut Rng) -> String {
    let window = rng.pick(&[
        "TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)",
        "TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)",
        "HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)",
        "HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '2' MINUTE, INTERVAL '6' MINUTE)",
        "CUMULATE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)",
        "CUMULATE(TABLE events, DESCRIPTOR(event_time), INTERVAL '2' MINUTE, INTERVAL '10' MINUTE)",
    ]);
    let keys = rng.pick(&[
        "store_id",
        "channel",
        "store_id, channel",
        "sku",
        "channel, sku",
    ]);
    let strategy = rng.pick(&["AUTO", "ONE_PHASE", "TWO_PHASE"]);
    let all = [
        ("COUNT(*)", "BIGINT"),
        ("SUM(qty)", "INT"),
        ("MIN(qty)", "INT"),
        ("MAX(unit_price)", "DOUBLE"),
        ("COUNT(DISTINCT sku)", "BIGINT"),
        ("MAX(sku)", "STRING"),
        ("COUNT(*) FILTER (WHERE qty > 2)", "BIGINT"),
    ];
    let n = 1 + rng.next() % 3;
    let mut aggs = Vec::new();
    for _ in 0..n {
        let a = all[(rng.next() % all.len() as u64) as usize];
        if !aggs.contains(&a) {
            aggs.push(a);
        }
    }
    let key_cols: Vec<&str> = keys.split(", ").collect();
    let types = |k: &str| match k {
        "store_id" => "INT",
        _ => "STRING",
    };
    let mut cols: Vec<String> = vec!["ws TIMESTAMP(3)".into(), "we TIMESTAMP(3)".into()];
    cols.extend(key_cols.iter().map(|k| format!("{k} {}", types(k))));
    cols.extend(
        aggs.iter()
            .enumerate()
            .map(|(i, (_, t))| format!("a{i} {t}")),
    );
    format!(
        "SET 'table.optimizer.agg-phase-strategy' = '{strategy}';
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  customer_id STRING, channel STRING, WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = '${{INPUT}}', 'format' = 'json');
CREATE TABLE o ({}) WITH ('connector' = 'filesystem', 'path' = '${{OUTPUT}}', 'format' = 'json');
INSERT INTO o SELECT window_start, window_end, {keys}, {}
FROM TABLE({window}) GROUP BY window_start, window_end, {keys};",
        cols.join(", "),
        aggs.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
    )
}

/// The sorted output rows of `script` run on `workers`.
fn rows(dir: &Path, script: &str, workers: &str) -> Vec<String> {
    let out = dir.join(format!("out{workers}"));
    let path = dir.join(format!("q{workers}.sql"));
    std::fs::write(&path, script).expect("script");
    let input = common::root().join("tests/flink/events20k.ndjson");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http", "--parallelism", workers])
        .args(["--var", &format!("INPUT={}", input.display())])
        .args(["--var", &format!("OUTPUT={}", out.display())])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        o.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut rows = common::lines(&out);
    rows.sort();
    rows
}

#[test]
fn random_window_aggregations_give_the_same_rows_on_one_worker_and_on_several() {
    let seed = std::env::var("TILLFLOW_PROPERTY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1u64);
    let cases = std::env::var("TILLFLOW_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = Rng(seed);
    for case in 0..cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = query(&mut rng);
        let one = rows(dir.path(), &script, "1");
        assert!(!one.is_empty(), "case {case} has rows:\n{script}");
        for workers in ["2", "3"] {
            let many = rows(dir.path(), &script, workers);
            let missing: Vec<_> = one.iter().filter(|r| !many.contains(r)).take(3).collect();
            assert!(
                many == one,
                "case {case} (seed {seed}) on {workers} workers: {} rows, one worker {}; missing e.g. {missing:?}\n{script}",
                many.len(),
                one.len()
            );
        }
    }
}
