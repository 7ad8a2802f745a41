//! The Redis sink and lookup table against a real server: a throw-away `redis-server` per test
//! (Debian's package, `scripts/setup.sh` installs it) on a free loopback port, with a
//! password and an append-only file synced at every write, so a restart keeps what it
//! acknowledged. What tillflow wrote is read back with the `redis` crate's own client.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{events, tillflow, COLUMNS};

const PASSWORD: &str = "r3dis-pw-7741";

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut s = Server {
            dir,
            port,
            child: None,
        };
        s.up();
        s
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--requirepass", PASSWORD, "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/setup.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = self.try_client() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL): only what it had written to its log survives.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn try_client(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{}/", self.port))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    fn client(&self, db: i64) -> redis::Connection {
        let mut c = self.try_client().expect("connect to redis");
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(&mut c)
            .expect("SELECT");
        c
    }

    fn url(&self, db: i64) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Every key of database `db` (the checkpoint markers aside) with its value as text,
    /// sorted.
    fn dump(&self, db: i64) -> BTreeMap<String, String> {
        let mut c = self.client(db);
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
        let mut out = BTreeMap::new();
        for k in keys {
            if k.starts_with("tillflow:checkpoint:") {
                continue;
            }
            let ty: String = redis::cmd("TYPE").arg(&k).query(&mut c).expect("TYPE");
            let v = match ty.as_str() {
                "hash" => {
                    let m: BTreeMap<String, String> = redis::cmd("HGETALL")
                        .arg(&k)
                        .query(&mut c)
                        .expect("HGETALL");
                    format!("{m:?}")
                }
                "string" => redis::cmd("GET").arg(&k).query(&mut c).expect("GET"),
                "zset" => {
                    let m: Vec<(String, f64)> = redis::cmd("ZRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(&mut c)
                        .expect("ZRANGE");
                    format!("{m:?}")
                }
                other => panic!("key {k} is a {other}"),
            };
            out.insert(k, v);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sqlite_rows(db: &Path, sql: &str) -> Vec<(i64, i64, f64)> {
    let c = rusqlite::Connection::open(db).expect("sqlite");
    let mut st = c.prepare(sql).expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn a_running_group_by_upserted_into_hashes_strings_and_a_sorted_set_equals_the_embedded_store() {
    let srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = events(d, 2000, false);
    let db = d.join("want.db");
    // counts per store kept only while not a multiple of 7: upserts, and deletes
    let totals = "SELECT store_id, cnt, revenue FROM (
  SELECT store_id, COUNT(*) AS cnt, SUM(qty * unit_price) AS revenue FROM events GROUP BY store_id)
WHERE MOD(cnt, 7) <> 0";
    let url = srv.url(3);
    let script = format!(
        "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE want (store_id INT, cnt BIGINT, revenue DOUBLE, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'totals');
CREATE TABLE h (store_id INT, cnt BIGINT, revenue DOUBLE, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{url}', 'key-pattern' = 'totals:{{store_id}}', 'sink.buffer-flush.max-rows' = '13');
CREATE TABLE s (store_id INT, cnt BIGINT, revenue DOUBLE, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{url}', 'data-type' = 'string', 'key-pattern' = 'json:{{store_id}}');
CREATE TABLE z (store_id INT, cnt BIGINT, revenue DOUBLE, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{url}', 'data-type' = 'sorted-set', 'key-pattern' = 'top-stores',
      'member-column' = 'store_id', 'score-column' = 'revenue');
EXECUTE STATEMENT SET BEGIN
INSERT INTO want {totals};
INSERT INTO h {totals};
INSERT INTO s {totals};
INSERT INTO z {totals};
END;",
        input = input.display(),
        db = db.display(),
    );
    let (ok, err) = tillflow(&script, d);
    assert!(ok, "{err}");
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    let want = sqlite_rows(&db, "SELECT store_id, cnt, revenue FROM totals ORDER BY 1");
    assert!(want.len() > 3, "{want:?}");
    let all = srv.dump(3);
    let mut c = srv.client(3);
    // hashes: a field per column, values as CAST(v AS STRING) writes them; deleted stores gone
    let hashes: Vec<&String> = all.keys().filter(|k| k.starts_with("totals:")).collect();
    assert_eq!(hashes.len(), want.len(), "{all:?}");
    for (store, cnt, revenue) in &want {
        let h: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("totals:{store}"))
            .query(&mut c)
            .expect("HGETALL");
        assert_eq!(h.get("store_id"), Some(&store.to_string()), "{h:?}");
        assert_eq!(h.get("cnt"), Some(&cnt.to_string()), "{h:?}");
        let r: f64 = h["revenue"].parse().expect("revenue");
        assert!(near(r, *revenue), "{h:?} vs {revenue}");
        // the row as JSON
        let j: String = redis::cmd("GET")
            .arg(format!("json:{store}"))
            .query(&mut c)
            .expect("GET");
        let j: serde_json::Value = serde_json::from_str(&j).expect("json");
        assert_eq!(j["store_id"], *store, "{j}");
        assert_eq!(j["cnt"], *cnt, "{j}");
        assert!(near(j["revenue"].as_f64().unwrap_or(-1.0), *revenue), "{j}");
    }
    assert_eq!(
        all.keys().filter(|k| k.starts_with("json:")).count(),
        want.len()
    );
    // the sorted set ranks the stores by revenue
    let z: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("top-stores")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut c)
        .expect("ZRANGE");
    let mut ranked = want.clone();
    ranked.sort_by(|a, b| a.2.total_cmp(&b.2));
    assert_eq!(z.len(), ranked.len(), "{z:?}");
    for ((member, score), (store, _, revenue)) in z.iter().zip(&ranked) {
        assert_eq!(member, &store.to_string());
        assert!(near(*score, *revenue), "{member}: {score} vs {revenue}");
    }
}

/// The paced generator's lines into hashes of database `db`; the job's stderr and status.
fn paced_job(srv: &Server, d: &Path, db: i64) -> (Child, PathBuf) {
    let script = d.join(format!("gen{db}.sql"));
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE s (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '5', 'rows' = '3000', 'pacing' = '1440x');
CREATE TABLE p (receipt_id STRING, sku STRING, lines BIGINT, units BIGINT, PRIMARY KEY (receipt_id, sku) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{}', 'key-pattern' = 'line:{{receipt_id}}:{{sku}}',
      'sink.buffer-flush.max-rows' = '100');
INSERT INTO p SELECT receipt_id, sku, COUNT(*), SUM(qty) FROM s GROUP BY receipt_id, sku;",
            srv.url(db)
        ),
    )
    .expect("script");
    let job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&script)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tillflow");
    (job, script)
}

#[test]
fn a_redis_restart_mid_run_loses_and_reorders_nothing() {
    let mut srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // a run that is not disturbed, into database 1
    let (job, _) = paced_job(&srv, d, 1);
    let out = job.wait_with_output().expect("job");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = srv.dump(1);
    assert!(want.len() > 1000, "{} keys", want.len());
    // the same run into database 2, with the server killed and started again under it
    let (job, _) = paced_job(&srv, d, 2);
    std::thread::sleep(Duration::from_millis(1000));
    srv.kill();
    std::thread::sleep(Duration::from_millis(700));
    srv.up();
    let out = job.wait_with_output().expect("job");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("reconnecting"),
        "the restart was not noticed: {err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let got = srv.dump(2);
    assert_eq!(got.len(), want.len(), "keys");
    assert!(got == want, "the values differ from the undisturbed run");
}

/// A retail day (paced so a run lasts about 12 s) into Redis: a running aggregate per store
/// (upserts) and 10-minute windows per store (appends keyed by window).
fn checkpointed(d: &Path, url: &str, pacing: &str, checkpointing: bool) -> PathBuf {
    let set = if checkpointing {
        format!(
            "SET 'execution.checkpointing.interval' = '500 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
            d.join("checkpoints").display()
        )
    } else {
        String::new()
    };
    let path = d.join(if checkpointing { "job.sql" } else { "ref.sql" });
    std::fs::write(
        &path,
        format!(
            "{set}CREATE TABLE sales (
  event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '7', 'duration' = '1d', 'pacing' = '{pacing}');
CREATE TABLE totals (store_id INT, lines BIGINT, units BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{url}', 'key-pattern' = 'totals:{{store_id}}');
CREATE TABLE per_store (window_start TIMESTAMP(3), store_id INT, lines BIGINT, revenue DOUBLE)
WITH ('connector' = 'redis', 'url' = '{url}', 'key-pattern' = 'w:{{store_id}}:{{window_start}}', 'data-type' = 'string');
EXECUTE STATEMENT SET BEGIN
INSERT INTO totals SELECT store_id, COUNT(*), SUM(qty) FROM sales GROUP BY store_id;
INSERT INTO per_store SELECT window_start, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE sales, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, store_id;
END;"
        ),
    )
    .expect("write");
    path
}

#[test]
fn killed_anywhere_with_checkpoints_redis_ends_with_a_fault_free_runs_values() {
    let srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reference = checkpointed(d, &srv.url(1), "max", false);
    let (ok, err) = tillflow(&std::fs::read_to_string(&reference).expect("read"), d);
    assert!(ok, "{err}");
    let want = srv.dump(1);
    assert!(want.len() > 100, "{} keys", want.len());
    let job = checkpointed(d, &srv.url(2), "7200x", true);
    let mut rng = 11u64;
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while killed < 3 {
        assert!(
            Instant::now() < deadline,
            "the job did not get through 3 kills"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--parallelism", ["2", "1", "3"][killed]])
            .arg(&job)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(
            1000 + common::splitmix(&mut rng) % 2000,
        ));
        match child.try_wait().expect("wait") {
            None => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                killed += 1;
            }
            Some(status) => panic!("the job ended ({status}) before it was killed"),
        }
    }
    // what a killed run committed is a checkpoint's, whole: its marker names it
    let mut c = srv.client(2);
    let markers: Vec<String> = redis::cmd("KEYS")
        .arg("tillflow:checkpoint:*")
        .query(&mut c)
        .expect("KEYS");
    assert!(!markers.is_empty(), "no checkpoint was committed");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--parallelism", "2"])
        .arg(&job)
        .current_dir(d)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = srv.dump(2);
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .take(3)
        .collect();
    assert!(
        differ.is_empty(),
        "differs from the fault-free run: {differ:?}"
    );
    assert_eq!(got.len(), want.len(), "keys");
}

#[test]
fn lookup_join_reads_hashes_and_caches_them() {
    let srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = events(d, 1500, false);
    // a catalogue of SKU-0001..SKU-0050 (SKU-0051..0060 are missing), with a cost per unit
    let mut c = srv.client(0);
    for g in 1..=50 {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("product:SKU-{g:04}"))
            .arg("sku")
            .arg(format!("SKU-{g:04}"))
            .arg("category")
            .arg(if g % 2 == 0 { "even" } else { "odd" })
            .arg("cost")
            .arg(format!("{:.2}", g as f64 / 10.0));
        if g == 7 {
            // a field the table does not declare is ignored
            cmd.arg("colour").arg("red");
        }
        cmd.query::<()>(&mut c).expect("HSET");
    }
    let calls = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(c)
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_hgetall:calls="))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let out = d.join("out");
    let script = |join: &str, cache: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}, proc AS PROCTIME())
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE products (sku STRING, category STRING, cost DECIMAL(10, 2), PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{}', 'key-pattern' = 'product:{{sku}}'{cache});
CREATE TABLE o (sku STRING, qty INT, category STRING, cost DECIMAL(10, 2))
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o
SELECT e.sku, e.qty, p.category, p.cost
FROM events AS e {join} JOIN products FOR SYSTEM_TIME AS OF e.proc AS p ON e.sku = p.sku;",
            input.display(),
            srv.url(0),
            out.display()
        )
    };
    let (ok, err) = tillflow(&script("LEFT", ""), d);
    assert!(ok, "{err}");
    let uncached = calls(&mut c);
    let got: Vec<serde_json::Value> = common::lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(got.len(), 1500, "LEFT keeps every row");
    let mut found = 0;
    for g in &got {
        let sku = g["sku"].as_str().unwrap_or_default();
        let n: i64 = sku.trim_start_matches("SKU-").parse().unwrap_or(0);
        if n <= 50 {
            found += 1;
            assert_eq!(
                g["category"],
                if n % 2 == 0 { "even" } else { "odd" },
                "{g}"
            );
            assert!(
                (g["cost"].as_f64().unwrap_or(-1.0) - n as f64 / 10.0).abs() < 1e-9,
                "{g}"
            );
        } else {
            assert!(g["category"].is_null() && g["cost"].is_null(), "{g}");
        }
    }
    assert!(found > 1000 && found < 1500, "{found} rows found");
    // the join looks a batch's distinct keys up together: each of the 60 SKUs once a batch
    assert!(uncached > 60, "{uncached} lookups for 1500 rows");
    // INNER drops the unknown SKUs; with a cache, a SKU is read about once
    std::fs::remove_dir_all(&out).expect("clear");
    let (ok, err) = tillflow(
        &script(
            "",
            ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '1000'",
        ),
        d,
    );
    assert!(ok, "{err}");
    assert_eq!(common::lines(&out).len(), found);
    let cached = calls(&mut c) - uncached;
    assert!(
        cached <= 60 && cached * 2 < uncached,
        "{cached} lookups with a cache of 60 SKUs (uncached: {uncached})"
    );
    // the same catalogue as JSON strings (a row each, as the json format writes it)
    for g in 1..=50 {
        redis::cmd("SET")
            .arg(format!("pj:SKU-{g:04}"))
            .arg(format!(
                "{{\"sku\":\"SKU-{g:04}\",\"category\":\"{}\",\"cost\":{}}}",
                if g % 2 == 0 { "even" } else { "odd" },
                g as f64 / 10.0
            ))
            .query::<()>(&mut c)
            .expect("SET");
    }
    std::fs::remove_dir_all(&out).expect("clear");
    let (ok, err) = tillflow(
        &script("LEFT", "").replace(
            "'key-pattern' = 'product:{sku}'",
            "'key-pattern' = 'pj:{sku}', 'data-type' = 'string'",
        ),
        d,
    );
    assert!(ok, "{err}");
    let strings: Vec<serde_json::Value> = common::lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut sorted_got: Vec<String> = got.iter().map(|v| v.to_string()).collect();
    let mut sorted_strings: Vec<String> = strings.iter().map(|v| v.to_string()).collect();
    sorted_got.sort();
    sorted_strings.sort();
    assert_eq!(
        sorted_strings, sorted_got,
        "JSON strings look up as hashes do"
    );
}

#[test]
fn bad_passwords_patterns_and_lookups_are_clear_errors() {
    let srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = events(d, 10, false);
    let job = |with: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE r (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED) WITH ('connector' = 'redis', {with});
INSERT INTO r SELECT store_id, COUNT(*) FROM events GROUP BY store_id;",
            input.display()
        )
    };
    let wrong = format!(
        "'url' = 'redis://:wrong-secret-99@127.0.0.1:{}/0'",
        srv.port
    );
    let (ok, err) = tillflow(&job(&wrong), d);
    assert!(!ok);
    assert!(
        err.contains("table `r`") && err.contains(&format!("127.0.0.1:{}/0", srv.port)),
        "{err}"
    );
    assert!(
        !err.contains("wrong-secret-99"),
        "the password was printed: {err}"
    );
    for (with, want) in [
        (
            format!("'url' = '{}', 'key-pattern' = 'c:{{store}}'", srv.url(0)),
            "names column `store`",
        ),
        (
            format!("'url' = '{}', 'key-pattern' = 'c:{{cnt}}'", srv.url(0)),
            "must be the PRIMARY KEY",
        ),
        (
            format!("'url' = '{}', 'data-type' = 'list'", srv.url(0)),
            "'data-type' = 'list'",
        ),
        (
            format!("'url' = '{}', 'ttl' = 'forever'", srv.url(0)),
            "'ttl' = 'forever' is not a duration",
        ),
    ] {
        let path = d.join("v.sql");
        std::fs::write(&path, job(&with)).expect("write");
        let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .arg("validate")
            .arg(&path)
            .output()
            .expect("validate");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{with}: {err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    // a key already holding another type of value: the job fails, saying so
    let mut c6 = srv.client(6);
    for store in 0..100 {
        redis::cmd("SET")
            .arg(format!("clash:{store}"))
            .arg("x")
            .query::<()>(&mut c6)
            .expect("SET");
    }
    let (ok, err) = tillflow(
        &job(&format!(
            "'url' = '{}', 'key-pattern' = 'clash:{{store_id}}'",
            srv.url(6)
        )),
        d,
    );
    assert!(
        !ok && err.contains("WRONGTYPE") && err.contains("another type of value"),
        "{err}"
    );
    // a TTL expires what it wrote
    let (ok, err) = tillflow(
        &job(&format!(
            "'url' = '{}', 'key-pattern' = 'ttl:{{store_id}}', 'ttl' = '1 h'",
            srv.url(5)
        )),
        d,
    );
    assert!(ok, "{err}");
    let mut c = srv.client(5);
    let keys: Vec<String> = redis::cmd("KEYS").arg("ttl:*").query(&mut c).expect("KEYS");
    assert!(!keys.is_empty());
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).expect("PTTL");
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{k}: {ttl} ms");
    }
}

#[test]
fn the_demo_serves_live_stock_from_redis_equal_to_its_sqlite_table() {
    let srv = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args([
            "demo",
            "--speed",
            "0",
            "--duration",
            "10h", // two opening hours: every store has sold ten SKUs
            "--quiet",
            "--no-http",
        ])
        .arg("--db")
        .arg(&db)
        .arg("--redis")
        .arg(srv.url(4))
        .current_dir(dir.path())
        .output()
        .expect("demo");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let c = rusqlite::Connection::open(&db).expect("sqlite");
    let mut st = c
        .prepare("SELECT store_id, sku, on_hand, units_24h, alert FROM stock_levels")
        .expect("prepare");
    let want: Vec<(i64, String, i64, i64, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert!(want.len() > 100, "{} stock rows", want.len());
    let all = srv.dump(4);
    assert_eq!(
        all.keys().filter(|k| k.starts_with("stock:")).count(),
        want.len()
    );
    let mut r = srv.client(4);
    for (store, sku, on_hand, units_24h, alert) in &want {
        let h: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("stock:{store}:{sku}"))
            .query(&mut r)
            .expect("HGETALL");
        assert_eq!(h.get("on_hand"), Some(&on_hand.to_string()), "{h:?}");
        assert_eq!(h.get("units_24h"), Some(&units_24h.to_string()), "{h:?}");
        assert_eq!(h.get("alert"), Some(alert), "{h:?}");
    }
    // each store's best sellers, ranked by units
    let top: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(format!("top-skus:{}", want[0].0))
        .arg(0)
        .arg(9)
        .arg("WITHSCORES")
        .query(&mut r)
        .expect("ZREVRANGE");
    assert_eq!(top.len(), 10, "{top:?}");
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1) && top[9].1 >= 1.0);
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tillflow-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn tls_connections_write_and_look_up_through_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    certificates(d);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // TLS only: the plain port is off
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", "srv.crt", "--tls-key-file", "srv.key"])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--requirepass", PASSWORD, "--daemonize", "no"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let ca = std::fs::read(d.join("ca.crt")).expect("ca");
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{port}/0");
    let client = || {
        redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        )
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(c) = client() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let input = events(d, 300, false);
    let job = |extra: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE r (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '{url}', 'key-pattern' = 'tls:{{store_id}}'{extra});
INSERT INTO r SELECT store_id, COUNT(*) FROM events GROUP BY store_id;",
            input.display()
        )
    };
    // the server's certificate is not in the system's trust store: refused, and said why
    let (ok, err) = tillflow(&job(""), d);
    assert!(!ok, "a certificate of an unknown CA was accepted");
    assert!(err.contains("(TLS)") && !err.contains(PASSWORD), "{err}");
    let ca_path = d.join("ca.crt");
    let (ok, err) = tillflow(
        &job(&format!(", 'tls.ca-cert' = '{}'", ca_path.display())),
        d,
    );
    assert!(ok, "{err}");
    let keys: Vec<String> = redis::cmd("KEYS").arg("tls:*").query(&mut c).expect("KEYS");
    let total: i64 = keys
        .iter()
        .map(|k| {
            let n: String = redis::cmd("HGET")
                .arg(k)
                .arg("cnt")
                .query(&mut c)
                .expect("HGET");
            n.parse::<i64>().expect("count")
        })
        .sum();
    assert_eq!(total, 300, "{keys:?}");
    let _ = server.kill();
    let _ = server.wait();
}
