//! The `parquet` format through the real binary, checked by independent readers (pyarrow and
//! DuckDB, installed pinned by `scripts/setup.sh`): a Parquet sink holds the JSON sink's rows with
//! Flink's type mapping, tillflow reads what pyarrow wrote, and checkpointed Parquet part files
//! survive crashes exactly once.

use std::path::Path;
use std::process::Command;

mod common;
use common::canon;

fn run(script: &str, dir: &Path) {
    let (ok, err) = common::tillflow(script, dir);
    assert!(ok, "{err}");
}

/// The same rows into a JSON directory and a Parquet one (zstd, several row groups): pyarrow
/// reads from the Parquet files exactly the JSON sink's rows, with Flink's Parquet types
/// (INT96 timestamps, fixed-length decimals, annotated small integers), and DuckDB sums them
/// to the same totals.
#[test]
fn a_parquet_sink_holds_the_json_sinks_rows_as_pyarrow_and_duckdb_read_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 20_000, false);
    let columns = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty SMALLINT, unit_price DOUBLE, price DECIMAL(10, 2), day_of DATE, customer_id STRING, big BOOLEAN, f FLOAT";
    let select = "SELECT event_time, store_id, sku, CAST(qty AS SMALLINT), unit_price, CAST(unit_price AS DECIMAL(10, 2)), CAST(event_time AS DATE), customer_id, qty > 3, CAST(unit_price AS FLOAT) FROM events";
    let script = format!(
        "CREATE TABLE events ({cols}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({columns}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE p ({columns}) WITH ('connector' = 'filesystem', 'path' = '{p}', 'format' = 'parquet',
  'parquet.compression' = 'ZSTD', 'parquet.block.size' = '65536');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {select};
INSERT INTO p {select};
END;",
        cols = common::COLUMNS,
        input = input.display(),
        j = dir.path().join("j").display(),
        p = dir.path().join("p").display(),
    );
    run(&script, dir.path());
    let p = dir.path().join("p");
    let j = dir.path().join("j");
    let kinds = "event_time:ts,day_of:date,price:dec";
    let want = canon(&["json", &j.to_string_lossy(), kinds]);
    assert_eq!(want.len(), 20_000);
    let got = canon(&["parquet", &p.to_string_lossy()]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let schema = canon(&["schema", &p.to_string_lossy()]).join("\n");
    for t in [
        "event_time: timestamp[ns]", // INT96, as Flink writes TIMESTAMP
        "qty: int16",
        "price: decimal128(10, 2)",
        "day_of: date32[day]",
        "f: float",
    ] {
        assert!(schema.contains(t), "{t} in {schema}");
    }
    let sums = canon(&[
        "duckdb",
        &p.to_string_lossy(),
        "SELECT COUNT(*), SUM(price), COUNT(DISTINCT sku), MIN(event_time) FROM t",
    ]);
    // the JSON rows' price column (the sixth), summed in cents
    let cents = |s: &str| -> i64 {
        let (units, frac) = s.split_once('.').unwrap_or((s, ""));
        let neg = units.starts_with('-');
        let v = units.trim_start_matches('-').parse::<i64>().expect("units") * 100
            + format!("{frac:0<2}").parse::<i64>().expect("cents");
        if neg {
            -v
        } else {
            v
        }
    };
    let want_cents: i64 = want
        .iter()
        .map(|r| r.split('|').nth(5).expect("price"))
        .filter(|p| *p != "None")
        .map(cents)
        .sum();
    let skus: std::collections::BTreeSet<&str> =
        want.iter().filter_map(|r| r.split('|').nth(2)).collect();
    assert_eq!(sums.len(), 1);
    let fields: Vec<&str> = sums[0].split('|').collect();
    assert_eq!(fields[0], "20000");
    assert_eq!(cents(fields[1]), want_cents);
    assert_eq!(fields[2], skus.len().to_string());
    assert_eq!(
        fields[3],
        want[0].split('|').next().expect("first"),
        "earliest event"
    );
}

/// A Parquet file pyarrow wrote (timestamps in ms, µs, ns and with a zone, DATE, every integer
/// width, FLOAT/DOUBLE, BOOLEAN, STRING, DECIMAL, NULLs; zstd, row groups of 300) is read by
/// tillflow into exactly pyarrow's rows.
#[test]
fn tillflow_reads_the_parquet_pyarrow_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.parquet");
    let want = canon(&["write", &file.to_string_lossy()]);
    assert_eq!(want.len(), 1000);
    let cols = "ts_ms TIMESTAMP(3), ts_us TIMESTAMP(6), ts_ns TIMESTAMP(6), ts_utc TIMESTAMP_LTZ(6), d DATE, i8 TINYINT, i16 SMALLINT, i32 INT, i64 BIGINT, f32 FLOAT, f64 DOUBLE, b BOOLEAN, s STRING, dec DECIMAL(12, 2)";
    let script = format!(
        "CREATE TABLE src ({cols}) WITH ('connector' = 'filesystem', 'path' = '{file}', 'format' = 'parquet');
CREATE TABLE out ({cols}) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'parquet');
INSERT INTO out SELECT * FROM src;",
        file = file.display(),
        out = dir.path().join("out").display(),
    );
    run(&script, dir.path());
    let got = canon(&["parquet", &dir.path().join("out").to_string_lossy()]);
    assert_eq!(got, want);
}

/// A paced retail stream into Parquet with checkpoints every 200 ms, crashed right after
/// checkpoints 3 and 8 and restarted each time: pyarrow reads exactly the rows of a run without
/// faults (nothing lost, nothing twice), and every part file is complete.
#[test]
fn checkpointed_parquet_parts_survive_crashes_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = |out: &str, checkpoints: bool, pacing: &str| {
        let set = if checkpoints {
            format!(
                "SET 'execution.checkpointing.interval' = '200 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                dir.path().join("chk").display()
            )
        } else {
            String::new()
        };
        format!(
            "{set}CREATE TABLE sales (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '11', 'duration' = '1d', 'pacing' = '{pacing}');
CREATE TABLE lake (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, revenue DECIMAL(12, 2))
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');
INSERT INTO lake SELECT event_time, store_id, sku, qty, CAST(qty * unit_price AS DECIMAL(12, 2)) FROM sales;",
            dir.path().join(out).display(),
        )
    };
    let reference = dir.path().join("reference.sql");
    std::fs::write(&reference, script("reference", false, "max")).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&reference)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = canon(&["parquet", &dir.path().join("reference").to_string_lossy()]);
    assert!(want.len() > 1000, "{} rows", want.len());
    let job = dir.path().join("job.sql");
    std::fs::write(&job, script("lake", true, "14400x")).expect("write");
    for n in [3, 8] {
        let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http"])
            .arg(&job)
            .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", n.to_string())
            .output()
            .expect("run");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(6),
            "the run should abort after checkpoint {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&job)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = canon(&["parquet", &dir.path().join("lake").to_string_lossy()]);
    assert_eq!(got.len(), want.len(), "rows after two crashes");
    assert!(got == want, "the rows differ from a run without faults");
}

/// Nested columns (ROW, ARRAY, MAP, an ARRAY of ROWs; NULL and empty values at every level)
/// into Parquet in Flink's nested layout: pyarrow reads exactly the JSON sink's values, the
/// schema has `LIST` of `element` and `MAP` of `key_value`, and tillflow reads the files back
/// into the same rows.
#[test]
fn nested_columns_round_trip_through_parquet_as_pyarrow_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::nested_events(dir.path(), 600);
    let cols = common::NESTED_COLUMNS;
    let d = |n: &str| dir.path().join(n).display().to_string();
    run(
        &format!(
            "CREATE TABLE src ({cols}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({cols}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE p ({cols}) WITH ('connector' = 'filesystem', 'path' = '{p}', 'format' = 'parquet', 'parquet.block.size' = '4096');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j SELECT * FROM src;
INSERT INTO p SELECT * FROM src;
END;",
            input = input.display(),
            j = d("j"),
            p = d("p"),
        ),
        dir.path(),
    );
    let want = canon(&["json", &d("j")]);
    assert_eq!(want.len(), 600);
    assert!(
        want.iter().any(|r| r.contains("[t2,None,x]")),
        "{:?}",
        &want[..3]
    );
    let got = canon(&["parquet", &d("p")]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let schema = canon(&["schema", &d("p")]).join("\n");
    for part in [
        "item: struct<sku: string, qty: int32>",
        "tags: list<element: string>",
        "attrs: map<string, int32",
        "lines: list<element: struct<sku: string, qty: int32>>",
    ] {
        assert!(schema.contains(part), "{part} in {schema}");
    }
    // tillflow reads its own nested Parquet back
    run(
        &format!(
            "CREATE TABLE p ({cols}) WITH ('connector' = 'filesystem', 'path' = '{p}', 'format' = 'parquet');
CREATE TABLE back ({cols}) WITH ('connector' = 'filesystem', 'path' = '{b}', 'format' = 'json');
INSERT INTO back SELECT * FROM p;",
            p = d("p"),
            b = d("back"),
        ),
        dir.path(),
    );
    assert_eq!(canon(&["json", &d("back")]), want);
}
