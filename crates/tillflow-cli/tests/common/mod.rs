//! Helpers shared by the integration tests that run scripts through the real binary against
//! external systems (Kafka, PostgreSQL).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `script` into `dir` and runs it quietly; (success, stderr).
pub fn tillflow(script: &str, dir: &Path) -> (bool, String) {
    let path = dir.join(format!("q{}.sql", script.len()));
    std::fs::write(&path, script).expect("write script");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .output()
        .expect("run tillflow");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every line of every file under `dir`, sorted.
pub fn lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.extend(text.lines().map(str::to_owned));
        }
    }
    out.sort();
    out
}

/// The columns of the Flink cases' retail events.
pub const COLUMNS: &str = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING";

/// The first `n` events of the Flink cases' input in `dir/events.ndjson`, sorted by event time
/// when `sorted`.
pub fn events(dir: &Path, n: usize, sorted: bool) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("tests/flink/events20k.ndjson")).expect("events");
    let mut ls: Vec<&str> = text.lines().take(n).collect();
    if sorted {
        ls.sort_by_key(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["event_time"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
    }
    let p = dir.join("events.ndjson");
    std::fs::write(&p, ls.join("\n") + "\n").expect("write events");
    p
}
