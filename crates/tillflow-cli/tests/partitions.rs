//! Partitioned filesystem tables through the real binary, read by independent readers (DuckDB's
//! Hive partitioning, pyarrow): Hive-style directories without the partition columns in the
//! files, partitions committed with `_SUCCESS` only once the watermark passed them, partition
//! columns read back from the paths, exactly once across crashes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::canon;

/// Every directory under `dir` holding a file named `name`.
fn dirs_with(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() == name {
                out.push(d.clone());
            }
        }
    }
    out.sort();
    out
}

/// The visible part files of a partition directory.
fn parts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| e.path())
        .collect()
}

/// A bounded job into a table partitioned by day and hour (JSON and Parquet): the files sit in
/// `dt=…/hr=…/` without the partition columns; DuckDB's Hive partitioning reads the rows of an
/// unpartitioned JSON sink of the same query; tillflow reads the partition columns back from the
/// paths; every partition is committed at the end of the input.
#[test]
fn a_partitioned_table_lays_out_hive_directories_that_duckdb_and_tillflow_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 20_000, false);
    let cols = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, dt STRING, hr STRING";
    let select = "SELECT event_time, store_id, sku, qty, DATE_FORMAT(event_time, 'yyyy-MM-dd'), DATE_FORMAT(event_time, 'HH') FROM events";
    let p = dir.path().join("p");
    let pj = dir.path().join("pj");
    let flat = dir.path().join("flat");
    let script = format!(
        "CREATE TABLE events ({events}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE p ({cols}) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem', 'path' = '{p}',
  'format' = 'parquet', 'sink.partition-commit.policy.kind' = 'success-file');
CREATE TABLE pj ({cols}) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem', 'path' = '{pj}', 'format' = 'json');
CREATE TABLE flat ({cols}) WITH ('connector' = 'filesystem', 'path' = '{flat}', 'format' = 'json');
EXECUTE STATEMENT SET BEGIN
INSERT INTO p {select};
INSERT INTO pj {select};
INSERT INTO flat {select};
END;",
        events = common::COLUMNS,
        input = input.display(),
        p = p.display(),
        pj = pj.display(),
        flat = flat.display(),
    );
    let (ok, err) = common::tillflow(&script, dir.path());
    assert!(ok, "{err}");
    let want = canon(&["json", &flat.to_string_lossy(), "event_time:ts"]);
    assert_eq!(want.len(), 20_000);
    let hours: std::collections::BTreeSet<String> = want
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            format!("dt={}/hr={}", f[4], f[5])
        })
        .collect();
    assert!(hours.len() > 3, "{hours:?}");
    // the directories are the partitions; each committed at the end
    let committed: Vec<String> = dirs_with(&p, "_SUCCESS")
        .iter()
        .map(|d| {
            d.strip_prefix(&p)
                .expect("under")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(committed, hours.iter().cloned().collect::<Vec<_>>());
    // no success files without the policy
    assert!(dirs_with(&pj, "_SUCCESS").is_empty());
    // the files hold the other columns only
    let schema = canon(&["schema", &p.to_string_lossy()]).join("\n");
    assert!(
        !schema.contains("dt:") && !schema.contains("hr:") && schema.contains("sku:"),
        "{schema}"
    );
    let got = canon(&[
        "duckdb-hive",
        &p.to_string_lossy(),
        "SELECT event_time, store_id, sku, qty, dt, hr FROM t",
    ]);
    assert_eq!(got, want);
    let back = dir.path().join("back");
    let script = format!(
        "CREATE TABLE pj ({cols}) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem', 'path' = '{pj}', 'format' = 'json');
CREATE TABLE p ({cols}) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem', 'path' = '{p}', 'format' = 'parquet');
CREATE TABLE back ({cols}) WITH ('connector' = 'filesystem', 'path' = '{back}', 'format' = 'json');
INSERT INTO back SELECT * FROM pj UNION ALL SELECT * FROM p;",
        pj = pj.display(),
        p = p.display(),
        back = back.display(),
    );
    let (ok, err) = common::tillflow(&script, dir.path());
    assert!(ok, "{err}");
    let mut twice: Vec<String> = want.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
    twice.sort();
    assert_eq!(
        canon(&["json", &back.to_string_lossy(), "event_time:ts"]),
        twice
    );
}

/// A paced day of sales into hourly Parquet partitions with checkpoints every 200 ms and the
/// partition-time trigger: while the job runs, hours are committed one after another (some
/// committed while later ones are still open), and no part file of a partition is written after
/// its `_SUCCESS` appeared — the watermark had passed the hour when it was committed. A crash after a
/// checkpoint and a restart leave exactly the rows of a run without faults.
#[test]
fn partitions_are_committed_as_the_watermark_passes_them_exactly_once_across_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = |out: &str, pacing: &str, checkpoints: bool| {
        let set = if checkpoints {
            format!(
                "SET 'execution.checkpointing.interval' = '200 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                dir.path().join("chk").display()
            )
        } else {
            String::new()
        };
        format!(
            "{set}CREATE TABLE sales (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '5', 'duration' = '1d', 'pacing' = '{pacing}');
CREATE TABLE lake (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, dt STRING, hr STRING)
PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'parquet',
  'sink.partition-commit.trigger' = 'partition-time',
  'partition.time-extractor.timestamp-pattern' = '$dt $hr:00:00',
  'sink.partition-commit.delay' = '1 h',
  'sink.partition-commit.policy.kind' = 'success-file');
INSERT INTO lake SELECT event_time, store_id, sku, qty, DATE_FORMAT(event_time, 'yyyy-MM-dd'), DATE_FORMAT(event_time, 'HH') FROM sales;",
            out = dir.path().join(out).display(),
        )
    };
    let reference = dir.path().join("reference.sql");
    std::fs::write(&reference, script("reference", "max", false)).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&reference)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = canon(&["parquet", &dir.path().join("reference").to_string_lossy()]);
    assert!(want.len() > 1000, "{} rows", want.len());

    let job = dir.path().join("job.sql");
    std::fs::write(&job, script("lake", "14400x", true)).expect("write");
    let lake = dir.path().join("lake");
    // the first run crashes right after checkpoint 12
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&job)
        .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", "12")
        .output()
        .expect("run");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // the restart runs to the end; watch the partitions while it does
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&job)
        .spawn()
        .expect("run");
    let started = Instant::now();
    let mut partial = false;
    // each committed hour's part files when its _SUCCESS was first seen
    let mut at_commit: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the job did not end"
        );
        let done = dirs_with(&lake, "_SUCCESS");
        for d in &done {
            if !at_commit.contains_key(d) {
                let mut files: Vec<PathBuf> = parts(d);
                files.sort();
                at_commit.insert(d.clone(), files);
            }
        }
        let committed = done.len();
        let open = std::fs::read_dir(&lake)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|h| !h.path().join("_SUCCESS").exists())
            .count();
        if committed > 0 && open > 0 {
            partial = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        partial,
        "no moment with some hours committed and later ones open"
    );
    let got = canon(&["parquet", &lake.to_string_lossy()]);
    assert_eq!(got.len(), want.len(), "rows after a crash");
    assert!(got == want, "the rows differ from a run without faults");
    // each committed hour: no part file came after its commit (the watermark had passed it)
    assert!(!at_commit.is_empty());
    for (d, files) in &at_commit {
        let mut now: Vec<PathBuf> = parts(d);
        now.sort();
        assert_eq!(&now, files, "{} got files after its commit", d.display());
    }
}

/// The README's lake example runs as written: two generated days as 48 hourly partitions,
/// every one committed, and DuckDB's query of the README reads every line.
#[test]
fn the_lake_example_lands_two_days_of_hourly_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(common::root().join("examples/retail/lake_pos_lines.sql"))
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lake = dir.path().join("out/lake/pos_lines");
    assert_eq!(dirs_with(&lake, "_SUCCESS").len(), 48);
    let hours = canon(&[
        "duckdb-hive",
        &lake.to_string_lossy(),
        "SELECT dt, hr, COUNT(*) FROM t GROUP BY ALL",
    ]);
    assert_eq!(hours.len(), 48);
    let lines: u64 = hours
        .iter()
        .map(|h| {
            h.rsplit('|')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("count")
        })
        .sum();
    let all = canon(&["parquet", &lake.to_string_lossy()]).len() as u64;
    assert_eq!(lines, all);
    assert!(all > 10_000, "{all} lines");
}

/// Without checkpoints a part file rolls when it has been open for the rollover interval: a
/// paced four-second run with a one-second interval leaves several complete part files, which
/// hold exactly the rows of a run that rolled nothing.
#[test]
fn part_files_roll_at_the_rollover_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = |out: &str, pacing: &str, roll: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '0';
CREATE TABLE sales (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '3', 'start' = '2024-03-01 04:00:00',
  'duration' = '5h', 'pacing' = '{pacing}');
CREATE TABLE out (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json'{roll});
INSERT INTO out SELECT * FROM sales;",
            dir.path().join(out).display()
        )
    };
    let (ok, err) = common::tillflow(&script("whole", "max", ""), dir.path());
    assert!(ok, "{err}");
    let (ok, err) = common::tillflow(
        &script(
            "rolled",
            "7200x",
            ", 'sink.rolling-policy.rollover-interval' = '1 s'",
        ),
        dir.path(),
    );
    assert!(ok, "{err}");
    let parts = |d: &str| {
        std::fs::read_dir(dir.path().join(d))
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
            .count()
    };
    assert_eq!(parts("whole"), 1);
    assert!(parts("rolled") >= 3, "{} part files", parts("rolled"));
    let want = common::lines(&dir.path().join("whole"));
    assert!(want.len() > 100);
    assert_eq!(common::lines(&dir.path().join("rolled")), want);
}
