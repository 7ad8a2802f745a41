//! Checkpoints and recovery through the real binary: a job killed with SIGKILL at random moments
//! and restarted each time ends with exactly the rows of a run without faults; SIGTERM takes a
//! savepoint; a changed plan or a damaged checkpoint is refused with the reason.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A retail stream (one simulated day, paced so a run lasts about 12 s) into three SQLite
/// tables: a 10-minute TUMBLE (append), a running aggregate per store (upsert) and the raw lines
/// (append), as one statement set.
fn script(dir: &Path, db: &str, pacing: &str, checkpointing: bool, window: &str) -> String {
    let set = if checkpointing {
        format!(
            "SET 'execution.checkpointing.interval' = '500 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
            dir.join("checkpoints").display()
        )
    } else {
        String::new()
    };
    let files = dir.join(format!("{db}-files")).display().to_string();
    let db = dir.join(db).display().to_string();
    format!(
        "{set}
CREATE TABLE sales (
  event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '7',
        'start' = '2024-03-01 08:00:00', 'duration' = '1d', 'pacing' = '{pacing}');
CREATE TABLE per_store (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT,
  lines BIGINT, revenue DOUBLE)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'per_store');
CREATE TABLE totals (store_id INT, lines BIGINT, units BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'totals');
CREATE TABLE raw (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'raw');
CREATE TABLE raw_files (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT)
WITH ('connector' = 'filesystem', 'path' = '{files}', 'format' = 'json');
EXECUTE STATEMENT SET BEGIN
INSERT INTO per_store SELECT window_start, window_end, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE sales, DESCRIPTOR(event_time), INTERVAL '{window}' MINUTE))
GROUP BY window_start, window_end, store_id;
INSERT INTO totals SELECT store_id, COUNT(*), SUM(qty) FROM sales GROUP BY store_id;
INSERT INTO raw SELECT event_time, store_id, sku, qty FROM sales;
INSERT INTO raw_files SELECT event_time, store_id, sku, qty FROM sales;
END;
"
    )
}

/// Every row of the three tables and every line of the files, as sorted text (a multiset:
/// duplicates show).
fn contents(db: &Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(db).expect("open result db");
    let mut out = Vec::new();
    let mut files = Vec::new();
    let dir = db.with_file_name(format!(
        "{}-files",
        db.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    for e in std::fs::read_dir(&dir).expect("files").flatten() {
        if !e.file_name().to_string_lossy().starts_with('.') {
            let text = std::fs::read_to_string(e.path()).expect("read part");
            files.extend(text.lines().map(str::to_owned));
        }
    }
    files.sort();
    out.push(("raw_files".to_owned(), files));
    for t in ["per_store", "totals", "raw"] {
        let mut st = conn.prepare(&format!("SELECT * FROM {t}")).expect("select");
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                let mut s = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!("{v:?}|"));
                }
                Ok(s)
            })
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        rows.sort();
        out.push((t.to_owned(), rows));
    }
    out
}

fn run(path: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .args(extra)
        .arg(path)
        .output()
        .expect("run tillflow")
}

/// Runs `tillflow run path` (with `extra` options) until the test hook aborts it right after
/// writing checkpoint `n`; fails the test if the run ends otherwise.
fn crash_after_checkpoint(path: &Path, n: u32, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .args(extra)
        .arg(path)
        .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", n.to_string())
        .output()
        .expect("run");
    assert!(
        !o.status.success(),
        "the hook should have aborted the run after checkpoint {n}"
    );
}

fn reference(dir: &Path) -> Vec<(String, Vec<String>)> {
    let path = dir.join("reference.sql");
    std::fs::write(&path, script(dir, "reference.db", "max", false, "10")).expect("write");
    // on one worker: the runs it is compared with run on two
    let o = run(&path, &["--parallelism", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = contents(&dir.join("reference.db"));
    assert!(rows.iter().all(|(_, r)| !r.is_empty()), "empty reference");
    rows
}

/// Runs the job `kills` times, killing each run (SIGKILL) after a reproducible random wait in
/// `wait_ms`; every run must still be going when it is killed. Run `k` runs on
/// `workers[k % len]` workers and, when `backends` names any, on the state backend
/// `backends[k % len]` (the on-disk one with the smallest memory budget).
fn kill_repeatedly(
    path: &Path,
    extra: &[String],
    kills: u32,
    seed: u64,
    wait_ms: std::ops::Range<u64>,
    workers: &[&str],
    backends: &[&str],
) {
    let mut rng = seed;
    for k in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http"])
            .args(["--parallelism", workers[k as usize % workers.len()]])
            .args(backend_args(backends, k as usize))
            .args(extra)
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let wait = wait_ms.start + next(&mut rng) % (wait_ms.end - wait_ms.start);
        std::thread::sleep(Duration::from_millis(wait));
        assert!(
            child.try_wait().expect("wait").is_none(),
            "run {k} ended early"
        );
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
}

/// The `--set` options that put run `k` on the state backend `backends[k % len]` (none when
/// `backends` is empty): `hashmap` or `disk`, with `+incremental` or `+full` for checkpoints of
/// that kind (else the default: incremental).
fn backend_args(backends: &[&str], k: usize) -> Vec<String> {
    if backends.is_empty() {
        return Vec::new();
    }
    let (backend, kind) = backends[k % backends.len()]
        .split_once('+')
        .unwrap_or((backends[k % backends.len()], ""));
    let mut args = vec![
        "--set".into(),
        format!("state.backend.type={backend}"),
        "--set".into(),
        "state.backend.rocksdb.memory.fixed-per-slot=1mb".into(),
    ];
    if !kind.is_empty() {
        args.push("--set".into());
        args.push(format!(
            "execution.checkpointing.incremental={}",
            kind == "incremental"
        ));
    }
    args
}

/// Reproducible kill moments.
fn next(state: &mut u64) -> u64 {
    common::splitmix(state)
}

fn compare(got: &[(String, Vec<String>)], want: &[(String, Vec<String>)]) {
    for ((table, g), (_, w)) in got.iter().zip(want) {
        let missing = w.iter().filter(|r| !g.contains(r)).count();
        assert_eq!(
            g.len(),
            w.len(),
            "table {table}: {} rows, the run without faults wrote {} ({missing} of its rows missing)",
            g.len(),
            w.len()
        );
        assert!(
            g == w,
            "table {table}: same count, different rows ({missing} differ)"
        );
    }
}

/// Killed again and again, each restart on another number of workers (2, 3, 1, 4, …), so
/// every restore hands the keyed state of a window, a running aggregate and the sinks' prepared
/// rows to a different set of workers: the rows equal those of a fault-free run on one.
#[test]
fn killed_anywhere_it_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "7200x", true, "10")).expect("write");
    let kills: u32 = std::env::var("TILLFLOW_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = 42u64;
    let mut killed = 0;
    let mut restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while killed < kills {
        assert!(
            Instant::now() < deadline,
            "the job did not get through {kills} kills"
        );
        let workers = ["2", "3", "1", "4"][restarts % 4];
        let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--parallelism", workers])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        restarts += 1;
        // somewhere in 0.3–1.5 s: during start-up, restore, processing or a checkpoint
        std::thread::sleep(Duration::from_millis(300 + next(&mut rng) % 1200));
        match child.try_wait().expect("wait") {
            None => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                killed += 1;
            }
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                assert!(status.success(), "run {restarts} failed: {err}");
                break; // finished before it could be killed again
            }
        }
    }
    assert!(
        killed >= kills,
        "only {killed} kills: the job finished early"
    );
    // the last run goes to the end
    let o = run(&path, &["--parallelism", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare(&contents(&dir.path().join("out.db")), &want);
    // a finished job's checkpoints are gone, so the next run starts afresh
    let left = std::fs::read_dir(dir.path().join("checkpoints/job"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains("chk-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "checkpoints left after the job finished");
}

#[test]
fn sigterm_saves_and_a_changed_plan_or_a_damaged_checkpoint_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "7200x", true, "10")).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = serving(&path, port);
    std::thread::sleep(Duration::from_millis(2500));
    // the running job's checkpoints are on its metrics
    let metrics = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        text
    };
    let completed: f64 = metrics
        .lines()
        .find(|l| l.starts_with("tillflow_checkpoints_completed_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no checkpoint metric in: {metrics}"));
    assert!(completed >= 1.0, "checkpoints completed: {completed}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let o = child.wait_with_output().expect("wait");
    assert!(
        o.status.success(),
        "SIGTERM should end the job cleanly: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let chk = dir.path().join("checkpoints/job");
    let saved: Vec<_> = std::fs::read_dir(&chk)
        .expect("checkpoint dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("chk-"))
        })
        .collect();
    assert_eq!(saved.len(), 1, "one checkpoint retained: {saved:?}");
    // the stopped job fired no open window: its windows end before the simulated time reached
    let partial = contents(&dir.path().join("out.db"));
    assert_eq!(partial[3].0, "raw");
    assert!(
        partial[3].1.len() < want[3].1.len(),
        "the job had not finished"
    );

    // a different window size is a different plan: refused, naming the operator
    let changed = dir.path().join("changed");
    std::fs::create_dir_all(&changed).expect("dir");
    let other = changed.join("job.sql");
    std::fs::write(&other, script(dir.path(), "out.db", "7200x", true, "15")).expect("write");
    let o = run(&other, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a changed plan must be refused");
    assert!(
        err.contains("different plan") && err.contains("was `"),
        "the error should say what differs: {err}"
    );

    // a damaged checkpoint is refused, not loaded
    let state = saved[0].join("state.bin");
    let good = std::fs::read(&state).expect("read");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&state, &bad).expect("damage");
    let o = run(&path, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a damaged checkpoint must be refused");
    assert!(err.contains("corrupt") && err.contains("SHA-256"), "{err}");
    std::fs::write(&state, &good).expect("repair");

    // resumed from the savepoint on three workers (it was taken on two), the job ends with the
    // rows of a run without faults
    let o = run(&path, &["--parallelism", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare(&contents(&dir.path().join("out.db")), &want);
}

#[test]
fn a_crash_between_writing_a_checkpoint_and_committing_it_is_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "7200x", true, "10")).expect("write");
    // checkpoint 4 is durable, its rows are not in SQLite: the restart must commit them
    crash_after_checkpoint(&path, 4, &[]);
    let conn = rusqlite::Connection::open(dir.path().join("out.db")).expect("db");
    let marker: i64 = conn
        .query_row(
            "SELECT MAX(checkpoint) FROM tillflow_checkpoints",
            [],
            |r| r.get(0),
        )
        .expect("marker");
    assert_eq!(marker, 3, "checkpoint 4 was written but not committed");
    drop(conn);
    let o = run(&path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// The checkpoint a bounded job takes at its end holds no operator state (every operator has
/// seen the end of its input); a crash after it and before the sinks commit is recovered from
/// it: the restart commits the last rows and ends.
#[test]
fn a_crash_after_the_final_checkpoint_commits_the_last_rows_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    // no checkpoint during the run: the job's end takes checkpoint 1
    let sql = script(dir.path(), "out.db", "max", true, "10").replace("'500 ms'", "'1 h'");
    std::fs::write(&path, sql).expect("write");
    crash_after_checkpoint(&path, 1, &[]);
    let conn = rusqlite::Connection::open(dir.path().join("out.db")).expect("db");
    let raw: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(raw, 0, "checkpoint 1 was written but not committed");
    drop(conn);
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--no-http"])
        .arg(&path)
        .output()
        .expect("run tillflow");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resumed from checkpoint 1"),
        "resumed from the final checkpoint: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// An S3-protocol server (s3rver, installed by `scripts/setup.sh`) on a free port, storing into a
/// temporary directory; stopped when dropped.
struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    fn start(dir: &Path) -> S3Server {
        let tools = std::env::var("TILLFLOW_TOOLS").unwrap_or_else(|_| {
            format!(
                "{}/.cache/tillflow-tools",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let bin = Path::new(&tools).join("node/node_modules/.bin/s3rver");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup.sh",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--configure-bucket", "checkpoints", "--silent"])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3rver");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s3rver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn checkpoints_in_an_s3_object_store_survive_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let s3_dir = dir.path().join("s3");
    std::fs::create_dir_all(&s3_dir).expect("dir");
    let s3 = S3Server::start(&s3_dir);
    let local = script(dir.path(), "out.db", "7200x", true, "10");
    let sets = format!(
        "SET 's3.endpoint' = 'http://127.0.0.1:{}';
SET 's3.access-key' = 'S3RVER';
SET 's3.secret-key' = 'S3RVER';
SET 's3.region' = 'us-east-1';
SET 's3.path.style.access' = 'true';
SET 'state.checkpoints.dir' = 's3://checkpoints/tillflow';
",
        s3.port
    );
    // the S3 directory replaces the local one
    let text: String = local
        .lines()
        .filter(|l| !l.starts_with("SET 'state.checkpoints.dir'"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("job.sql");
    std::fs::write(&path, format!("{sets}{text}")).expect("write");
    kill_repeatedly(&path, &[], 4, 7, 900..1900, &["2"], &[]);
    // checkpoints are objects in the store, none on the local disk
    let objects = std::fs::read_dir(s3_dir.join("checkpoints/tillflow/job"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(objects >= 1, "no checkpoint in the object store");
    assert!(!dir.path().join("checkpoints").exists());
    let o = run(&path, &["--no-http"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// The retail demo's pipelines (joins, OVER aggregates, sessions, Top-N, keep-last
/// deduplication, CUMULATE, forecasting models: every kind of state) over four generated streams, killed six times and
/// restarted, each time on another number of workers (4, 1, 3, 2, then 3) and switching
/// between the heap and the on-disk state backend: every result table equals a run without
/// faults.
#[test]
fn the_retail_demo_pipelines_survive_kills() {
    let examples = common::root().join("examples/retail/demo");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let demo: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read") + "\n")
        .collect();
    // each restart on another number of workers: every operator kind's keyed state moves
    let (got, want) = killed_and_rescaled(
        &demo,
        &["4", "1", "3", "2"],
        "3",
        &["hashmap", "disk+full", "hashmap+full", "disk"],
    );
    assert_eq!(
        got.len(),
        12,
        "the demo's result tables: {:?}",
        got.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    // in 12 simulated hours every table has rows but the forecasts' (they need a day), the
    // trends' (whole weeks) and the stock-out alerts' (stock runs short later in the day)
    let empty: Vec<&String> = want
        .iter()
        .filter(|(_, r)| r.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert!(
        empty
            .iter()
            .all(|t| ["store_forecast", "sku_trends", "stockout_alerts"].contains(&t.as_str())),
        "empty demo tables: {empty:?}"
    );
    compare(&got, &want);
}

/// The keyed state the demo does not hold — keep-first deduplication, a Top-N over an updating
/// aggregate, an interval join, a session window, a HOP with a Top-N per window, and window
/// aggregates in two phases (whose local halves flush before every checkpoint) — killed six
/// times and restarted on 3, 1, 4, 2 and then 2 workers: every table equals a run without
/// faults on one.
#[test]
fn every_kind_of_keyed_state_moves_to_another_number_of_workers() {
    every_kind_of_keyed_state(&[]);
}

/// The same job (every kind of keyed state, an online model's learners too) killed six times,
/// its runs switching between the heap and the on-disk state backend (with the smallest memory budget, so nearly every entry lives on disk), between
/// incremental and full checkpoints, and between numbers of workers: each checkpoint, written
/// by one backend, restores on the other, and the rows equal a fault-free run's.
#[test]
fn every_kind_of_keyed_state_survives_kills_on_either_backend_and_switching_between_them() {
    every_kind_of_keyed_state(&["disk", "hashmap+full", "disk+full", "hashmap"]);
}

/// Incremental checkpoints across kills: the job's runs all on two workers, so every restored
/// state goes on from its chain of sections (its next checkpoint a delta on the one it was
/// restored from), on the heap and on disk in turn, with the smallest retention (the
/// checkpoints a chain needs are kept): the rows equal a fault-free run's.
#[test]
fn incremental_checkpoints_go_on_from_their_chains_across_kills() {
    every_kind_of_keyed_state_on(&["2"], &["disk", "hashmap"]);
}

fn every_kind_of_keyed_state(backends: &[&str]) {
    every_kind_of_keyed_state_on(&["3", "1", "4", "2"], backends);
}

/// The job of [`every_kind_of_keyed_state_moves_to_another_number_of_workers`], its runs on
/// `workers[k % len]` and `backends[k % len]`.
fn every_kind_of_keyed_state_on(workers: &[&str], backends: &[&str]) {
    // without late records: which late record an interval join still matches depends on how
    // its two inputs interleave (in Flink too), and that differs with the pacing
    let tables = std::fs::read_to_string(common::root().join("examples/retail/demo/00_tables.sql"))
        .expect("tables")
        .replace("${LATE}", "0");
    let queries = "
CREATE TABLE first_sale (sku STRING, receipt_id STRING, store_id INT, event_time TIMESTAMP(3))
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'first_sale');
CREATE TABLE top_skus (store_id INT, rn BIGINT, sku STRING, units BIGINT,
  PRIMARY KEY (store_id, rn) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'top_skus');
CREATE TABLE viewed_then_bought (store_id INT, sales BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'viewed_then_bought');
CREATE TABLE visits (channel STRING, session_start TIMESTAMP(3), session_end TIMESTAMP(3),
  events BIGINT) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'visits');
CREATE TABLE busiest (window_end TIMESTAMP(3), store_id INT, lines BIGINT, rn BIGINT)
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'busiest');
CREATE TABLE per_minute (ws TIMESTAMP(3), store_id INT, lines BIGINT, units INT, skus BIGINT)
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'per_minute');
CREATE MODEL units_model INPUT (lines BIGINT, `minute` STRING) OUTPUT (units_hat DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units',
      'optimizer' = 'adagrad', 'features.hash-buckets' = '256');
CREATE TABLE units_forecast (ws TIMESTAMP(3), store_id INT, units DOUBLE, units_hat DOUBLE)
WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'units_forecast');
EXECUTE STATEMENT SET BEGIN
INSERT INTO first_sale SELECT sku, receipt_id, store_id, event_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY sku ORDER BY event_time ASC) AS rn FROM pos_sales)
WHERE rn = 1;
INSERT INTO top_skus SELECT store_id, rn, sku, units FROM (
  SELECT store_id, sku, units,
         ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY units DESC, sku ASC) AS rn
  FROM (SELECT store_id, sku, CAST(SUM(qty) AS BIGINT) AS units FROM pos_sales GROUP BY store_id, sku))
WHERE rn <= 3;
INSERT INTO viewed_then_bought SELECT s.store_id, COUNT(*) FROM pos_sales s JOIN clickstream c
  ON s.sku = c.sku AND c.event_time BETWEEN s.event_time - INTERVAL '2' MINUTE AND s.event_time
GROUP BY s.store_id;
INSERT INTO visits SELECT channel, window_start, window_end, COUNT(*)
FROM TABLE(SESSION(TABLE clickstream PARTITION BY channel, DESCRIPTOR(event_time), INTERVAL '20' SECOND))
GROUP BY channel, window_start, window_end;
INSERT INTO busiest SELECT window_end, store_id, lines, rn FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY lines DESC, store_id ASC) AS rn
  FROM (SELECT window_start, window_end, store_id, COUNT(*) AS lines
        FROM TABLE(HOP(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '10' MINUTE, INTERVAL '30' MINUTE))
        GROUP BY window_start, window_end, store_id))
WHERE rn <= 2;
INSERT INTO per_minute SELECT window_start, store_id, COUNT(*), SUM(qty), COUNT(DISTINCT sku)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
INSERT INTO units_forecast SELECT window_start, store_id, units, units_hat
FROM ML_PREDICT((SELECT window_start, store_id, COUNT(*) AS lines,
                        DATE_FORMAT(window_start, 'mm') AS `minute`, CAST(SUM(qty) AS DOUBLE) AS units
                 FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
                 GROUP BY window_start, window_end, store_id) PARTITION BY store_id,
                MODEL units_model, DESCRIPTOR(lines, `minute`));
END;
";
    let (got, want) = killed_and_rescaled(&format!("{tables}\n{queries}"), workers, "2", backends);
    assert_eq!(
        got.len(),
        7,
        "{:?}",
        got.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (t, rows) in &want {
        assert!(
            !rows.is_empty(),
            "table {t} has rows in the run without faults"
        );
    }
    compare(&got, &want);
}

/// An incremental checkpoint lists the earlier checkpoints it builds on in its manifest (each
/// file with its size and SHA-256); they are kept beside it, and a restore verifies them: one
/// damaged or missing is refused naming it, and once it is back the job resumes and ends with
/// the rows of a run without faults.
#[test]
fn an_incremental_checkpoint_keeps_and_verifies_the_checkpoints_it_builds_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "3000x", true, "10")).expect("write");
    let incremental = ["--set", "execution.checkpointing.incremental=true"];
    crash_after_checkpoint(&path, 6, &incremental);
    let chk = dir.path().join("checkpoints/job");
    let latest = chk.join("chk-000006");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest.join("MANIFEST.json")).expect("manifest"))
            .expect("json");
    let shared = manifest["shared"].as_array().cloned().unwrap_or_default();
    assert!(
        !shared.is_empty(),
        "checkpoint 6 builds on earlier ones: {manifest}"
    );
    for f in &shared {
        let name = f["name"].as_str().expect("name");
        let bytes = std::fs::read(chk.join(name)).expect("a checkpoint built on is kept");
        assert_eq!(
            bytes.len() as u64,
            f["bytes"].as_u64().expect("bytes"),
            "{name}"
        );
        assert_eq!(f["sha256"].as_str().expect("sha256").len(), 64);
    }
    let earlier = chk.join(shared[0]["name"].as_str().expect("name"));
    let id = shared[0]["checkpoint"].as_u64().expect("checkpoint");
    let good = std::fs::read(&earlier).expect("read");
    let mut bad = good.clone();
    let end = bad.len() - 1;
    bad[end] ^= 0x55;
    std::fs::write(&earlier, &bad).expect("damage");
    let o = run(&path, &incremental);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a damaged checkpoint built on must be refused"
    );
    assert!(
        err.contains(&format!("chk-{id:06}")) && err.contains("a later checkpoint builds on"),
        "{err}"
    );
    std::fs::remove_file(&earlier).expect("remove");
    let o = run(&path, &incremental);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a missing checkpoint built on must be refused"
    );
    assert!(
        err.contains(&format!("builds on the keyed state of checkpoint {id}")),
        "{err}"
    );
    std::fs::write(&earlier, &good).expect("repair");
    // resumed (on the heap without tracking: an incremental checkpoint restores there too)
    let o = run(&path, &["--parallelism", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// Runs `script` (the demo's tables and queries, `${DB}` and the demo's variables filled in)
/// once without faults on one worker, then with checkpoints every 700 ms, killed six times and
/// restarted on `workers` in turn, and to its end on `last`: every table of both runs.
#[allow(clippy::type_complexity)]
fn killed_and_rescaled(
    script: &str,
    workers: &[&str],
    last: &str,
    backends: &[&str],
) -> (Vec<(String, Vec<String>)>, Vec<(String, Vec<String>)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let models = common::root()
        .join("examples/retail/demo/models")
        .display()
        .to_string();
    let vars = |db: &str, pacing: &str| -> Vec<String> {
        [
            ("SEED", "42"),
            ("DURATION", "12h"),
            ("START", "2024-03-01 00:00:00"),
            ("END", "2024-03-01 12:00:00"),
            ("OUT_OF_ORDER", "0.02"),
            ("LATE", "0.002"),
            ("RATE", "60"),
            ("ANOMALIES", "3@2024-03-01 10:00:00+2h*3"),
            ("TREND_SKU", "40"),
            ("TREND_START", "2024-03-01 06:00:00"),
            ("PACING", pacing),
            ("DB", &d.join(db).display().to_string()),
            ("MODELS", &models),
        ]
        .iter()
        .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
        .collect()
    };
    let reference = d.join("reference.sql");
    std::fs::write(&reference, script).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http", "--parallelism", "1"])
        .args(vars("reference.db", "max"))
        .arg(&reference)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = d.join("demo.sql");
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '700 ms';\nSET 'state.checkpoints.dir' = '{}';\n{script}",
            d.join("checkpoints").display()
        ),
    )
    .expect("write");
    kill_repeatedly(
        &path,
        &vars("out.db", "3000x"),
        6,
        3,
        1500..3000,
        workers,
        backends,
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http", "--parallelism", last])
        .args(backend_args(backends, 0))
        .args(vars("out.db", "3000x"))
        .arg(&path)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tables = |db: &str| -> Vec<(String, Vec<String>)> {
        let conn = rusqlite::Connection::open(d.join(db)).expect("db");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'tillflow_checkpoints' ORDER BY name")
            .expect("tables")
            .query_map([], |r| r.get(0))
            .expect("names")
            .map(|r| r.expect("name"))
            .collect();
        names
            .into_iter()
            .map(|t| {
                let mut st = conn.prepare(&format!("SELECT * FROM {t}")).expect("select");
                let n = st.column_count();
                let mut rows: Vec<String> = st
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i)
                                    .map(|v| format!("{v:?}"))
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .map(|v| v.join("|"))
                    })
                    .expect("rows")
                    .map(|r| r.expect("row"))
                    .collect();
                rows.sort();
                (t, rows)
            })
            .collect()
    };
    (tables("out.db"), tables("reference.db"))
}

/// A directory of NDJSON files read by the filesystem source, checkpointed every 20 ms and
/// crashed right after checkpoint 3 is written: the restart resumes in the right file at the
/// right line, and the windows equal a run without the crash.
#[test]
fn a_directory_source_resumes_in_the_file_and_line_it_had_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let text = std::fs::read_to_string(common::root().join("tests/flink/events20k.ndjson"))
        .expect("events");
    let lines: Vec<&str> = text.lines().collect();
    let input = d.join("input");
    std::fs::create_dir_all(&input).expect("dir");
    for (i, chunk) in lines.chunks(lines.len() / 3 + 1).enumerate() {
        std::fs::write(
            input.join(format!("part-{i}.ndjson")),
            chunk.join("\n") + "\n",
        )
        .expect("write");
    }
    let script = |db: &str, checkpoints: bool| {
        let set = if checkpoints {
            format!(
                "SET 'execution.checkpointing.interval' = '5 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                d.join("checkpoints").display()
            )
        } else {
            String::new()
        };
        format!(
            "{set}CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE w (window_start TIMESTAMP(3), store_id INT, n BIGINT, revenue DOUBLE)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'w');
INSERT INTO w SELECT window_start, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;",
            input.display(),
            d.join(db).display()
        )
    };
    let reference = d.join("reference.sql");
    std::fs::write(&reference, script("reference.db", false)).expect("write");
    let o = run(&reference, &["--no-http"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = d.join("job.sql");
    std::fs::write(&path, script("out.db", true)).expect("write");
    // early in the run, so a fast machine cannot finish the input first
    crash_after_checkpoint(&path, 2, &["--no-http"]);
    let o = run(&path, &["--no-http"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let rows = |db: &str| {
        sorted_rows(
            &d.join(db),
            "SELECT window_start || '|' || store_id || '|' || n || '|' || revenue FROM w",
        )
    };
    let (got, want) = (rows("out.db"), rows("reference.db"));
    assert!(!want.is_empty());
    assert_eq!(
        got.len(),
        want.len(),
        "windows after the crash vs without it"
    );
    assert!(got == want, "same count, different windows");
}

/// A GROUP BY with a state TTL on the watermark's clock (customers forgotten after ten minutes
/// of event time without a sale), killed right after its second checkpoint and resumed on two
/// workers, ends with the rows of an uninterrupted run on one: each entry's time and the
/// clock came back with the state. Without the TTL the rows differ (the TTL mattered).
#[test]
fn a_state_ttl_resumes_from_a_checkpoint_as_if_never_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = common::root().join("tests/flink/events20k.ndjson");
    let script = |db: &str, checkpoints: bool, ttl: bool| {
        let mut set = String::new();
        if ttl {
            set.push_str(
                "SET 'table.exec.state.ttl' = '10 min';\nSET 'tillflow.state.ttl.clock' = 'watermark';\n",
            );
        }
        if checkpoints {
            set.push_str(&format!(
                "SET 'execution.checkpointing.interval' = '5 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                d.join("checkpoints").display()
            ));
        }
        format!(
            "{set}CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE c (customer_id STRING, n BIGINT, qty BIGINT, PRIMARY KEY (customer_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'c');
INSERT INTO c SELECT customer_id, COUNT(*), SUM(qty) FROM events
WHERE customer_id IS NOT NULL GROUP BY customer_id;",
            input.display(),
            d.join(db).display()
        )
    };
    let rows = |db: &str| {
        sorted_rows(
            &d.join(db),
            "SELECT customer_id || '|' || n || '|' || qty FROM c",
        )
    };
    let file = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    for (name, db, ttl) in [
        ("reference.sql", "reference.db", true),
        ("plain.sql", "plain.db", false),
    ] {
        let o = run(
            &file(name, script(db, false, ttl)),
            &["--no-http", "--parallelism", "1"],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let path = file("job.sql", script("out.db", true, true));
    crash_after_checkpoint(&path, 2, &["--no-http", "--parallelism", "2"]);
    let o = run(&path, &["--no-http", "--parallelism", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (got, want) = (rows("out.db"), rows("reference.db"));
    assert!(want.len() > 100, "{} customers", want.len());
    assert!(
        got == want,
        "rows after the crash differ from an uninterrupted run's"
    );
    assert!(rows("plain.db") != want, "the TTL changed nothing");
}

/// The one text column `select` reads from the SQLite file `db`, sorted.
fn sorted_rows(db: &Path, select: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut st = conn.prepare(select).expect("select");
    let mut v: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    v.sort();
    v
}

/// Starts `tillflow run path` serving its API on `port`.
fn serving(path: &Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--parallelism", "2"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// `tillflow stop` as a user runs it against a job's HTTP address and answers.
fn stop(port: u16, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["stop", "--http", &format!("127.0.0.1:{port}")])
        .args(extra)
        .output()
        .expect("run tillflow stop")
}

/// The job `id`'s completed checkpoints as its API shows them (`None` before it serves).
fn completed_checkpoints(port: u16, id: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /api/jobs/{id} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["checkpoints"]["completed"].as_u64()
}

/// `tillflow stop --savepoint` through the HTTP API: the checkpointed job takes a savepoint and
/// exits cleanly, the next run resumes from it and ends with a fault-free run's rows. A job
/// without checkpoints refuses `--savepoint` (and keeps running), and a plain `stop` drains it.
#[test]
fn tillflow_stop_takes_a_savepoint_that_the_next_run_resumes_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };

    // a job without checkpoints (bounded, no interval set): no savepoint to be had
    let plain = dir.path().join("plain.sql");
    std::fs::write(&plain, script(dir.path(), "plain.db", "7200x", false, "10")).expect("write");
    let port = free_port();
    let mut child = serving(&plain, port);
    let started = Instant::now();
    while !stop(port, &["nobody_sql"])
        .stderr
        .starts_with(b"error: no job `nobody_sql`")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the API never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = stop(port, &["--savepoint"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "--savepoint must be refused: {err}");
    assert!(err.contains("not checkpointed"), "{err}");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the refused stop stopped the job"
    );
    let o = stop(port, &["plain_sql"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("job `plain_sql` stopped"));
    let status = child.wait().expect("wait");
    assert!(status.success(), "a drained job exits cleanly");
    let drained = contents(&dir.path().join("plain.db"));
    assert!(
        drained[3].1.len() < want[3].1.len(),
        "the job had not finished"
    );
    // draining fired the open windows: the last window covers the last line read
    let conn = rusqlite::Connection::open(dir.path().join("plain.db")).expect("open");
    let covered: bool = conn
        .query_row(
            "SELECT (SELECT MAX(window_end) FROM per_store) > (SELECT MAX(event_time) FROM raw)",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert!(
        covered,
        "the open windows did not fire when the job drained"
    );

    // a checkpointed job stops with a savepoint
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "7200x", true, "10")).expect("write");
    let port = free_port();
    let mut child = serving(&path, port);
    let started = Instant::now();
    while completed_checkpoints(port, "job_sql").unwrap_or(0) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint completed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = stop(port, &["--savepoint"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("stopped with a savepoint"), "{out}");
    let status = child.wait().expect("wait");
    assert!(status.success(), "stopping with a savepoint exits cleanly");
    let saved = std::fs::read_dir(dir.path().join("checkpoints/job"))
        .expect("checkpoint dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        .count();
    assert_eq!(saved, 1, "the savepoint is kept");
    let partial = contents(&dir.path().join("out.db"));
    assert!(
        partial[3].1.len() < want[3].1.len(),
        "the job had not finished"
    );
    // nothing listens any more: stop says so
    let o = stop(port, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tillflow job serves its API"));
    // resumed from the savepoint, the job ends with the rows of a run without faults
    let o = run(&path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// A checkpoint directory that cannot take the next checkpoint (a file stands where its
/// temporary directory must go, as a full or broken disk would refuse it — even root cannot
/// write there) fails the job with the path and the reason; the last good checkpoint stays,
/// and once the directory is writable again the job resumes from it and ends with a
/// fault-free run's rows.
#[test]
fn an_unwritable_checkpoint_directory_fails_clearly_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = reference(dir.path());
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "7200x", true, "10")).expect("write");
    let chk = dir.path().join("checkpoints/job");
    let child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let complete = |chk: &Path| -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(chk)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .strip_prefix("chk-")
                            .and_then(|n| n.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    };
    let started = Instant::now();
    let latest = loop {
        if let Some(&id) = complete(&chk).last().filter(|&&id| id >= 2) {
            break id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut blocked = Vec::new();
    for id in latest + 1..latest + 60 {
        let f = chk.join(format!(".chk-{id:06}.inprogress"));
        if std::fs::write(&f, b"blocked").is_ok() {
            blocked.push(f);
        }
    }
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the job must fail: {err}");
    assert!(
        err.contains(&chk.display().to_string())
            && err.contains(".inprogress")
            && err.contains("The last complete checkpoint is kept"),
        "the error names the checkpoint's place: {err}"
    );
    let kept = complete(&chk);
    let good = *kept.last().expect("a checkpoint is kept");
    assert!(good >= latest, "kept {kept:?}, had {latest}");
    // writable again: the job resumes from the last good checkpoint
    for f in &blocked {
        let _ = std::fs::remove_file(f);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--no-http"])
        .arg(&path)
        .output()
        .expect("run tillflow");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("resumed from checkpoint {good} ")),
        "{err}"
    );
    compare(&contents(&dir.path().join("out.db")), &want);
}

/// A second process of a job that is running is refused, naming the job, the process that runs
/// it and what to do, and leaves the running one's checkpoints alone; once the first has been
/// killed, the job starts again at once (the lease ends with its process) and resumes.
#[test]
fn a_second_run_of_a_running_job_is_refused_until_the_first_has_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("job.sql");
    std::fs::write(&path, script(dir.path(), "out.db", "720x", true, "10")).expect("write");
    let mut first = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let chk = dir.path().join("checkpoints/job");
    let has_checkpoint = |chk: &Path| {
        std::fs::read_dir(chk).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_checkpoint(&chk) {
        assert!(
            Instant::now() < deadline,
            "the first run wrote no checkpoint"
        );
        assert!(
            first.try_wait().expect("wait").is_none(),
            "the first run ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run(&path, &[]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second run should be refused");
    assert!(
        err.contains("job `job` is already running")
            && err.contains(&format!("process {}", first.id()))
            && err.contains("--job-name"),
        "{err}"
    );
    // refused before touching anything: the first run goes on checkpointing
    assert!(
        first.try_wait().expect("wait").is_none(),
        "the first run was disturbed"
    );
    // --fresh is refused too, and removes nothing
    let fresh = run(&path, &["--fresh"]);
    assert!(!fresh.status.success());
    assert!(
        has_checkpoint(&chk),
        "a refused --fresh removed the running job's checkpoints"
    );
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let mut again = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        again.try_wait().expect("wait").is_none(),
        "the job did not start again after its first run was killed"
    );
    again.kill().expect("SIGKILL");
    let o = again.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resumed from checkpoint"), "{err}");
}

/// Flink's 'pipeline.name' names the job, and so where its checkpoints go, unless --job-name
/// names it; a script whose earlier runs checkpointed under its file's name is not started
/// afresh silently once 'pipeline.name' names it.
#[test]
fn pipeline_name_names_the_job_and_its_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("job.sql");
    let text = script(dir.path(), "out.db", "7200x", true, "10");
    let has_checkpoint = |name: &str| {
        std::fs::read_dir(dir.path().join("checkpoints").join(name)).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        })
    };
    std::fs::write(&path, &text).expect("write");
    crash_after_checkpoint(&path, 1, &[]);
    assert!(has_checkpoint("job"), "no checkpoint under the file's name");
    std::fs::write(&path, format!("SET 'pipeline.name' = 'sales';\n{text}")).expect("write");
    let o = run(&path, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "the run under a new name started afresh"
    );
    assert!(
        err.contains("'pipeline.name' = 'sales' names this job") && err.contains("--job-name job"),
        "{err}"
    );
    crash_after_checkpoint(&path, 1, &["--fresh"]);
    assert!(
        has_checkpoint("sales"),
        "no checkpoint under the pipeline's name"
    );
    crash_after_checkpoint(&path, 1, &["--fresh", "--job-name", "other"]);
    assert!(has_checkpoint("other"), "--job-name does not name the job");
}
