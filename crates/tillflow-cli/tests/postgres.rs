//! The PostgreSQL sink against a real server: a throw-away cluster per test (initdb into a temp
//! directory, a free loopback port, password authentication, no system service), from Debian's
//! PostgreSQL binaries (`scripts/setup.sh` installs them).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{events, root, tillflow, Broker, COLUMNS};

use common::{Pg as Server, PG_PASSWORD as PASSWORD, PG_USER as USER};

impl Server {
    fn jdbc(&self, table: &str, extra: &str) -> String {
        format!(
            "'connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:{}/postgres', 'table-name' = '{table}', 'username' = '{USER}', 'password' = '{PASSWORD}'{extra}",
            self.port
        )
    }
}

fn sqlite_rows(db: &Path, sql: &str) -> Vec<(String, i64, i64, f64)> {
    let c = rusqlite::Connection::open(db).expect("sqlite");
    let mut st = c.prepare(sql).expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

fn close(a: &[(String, i64, i64, f64)], b: &[(String, i64, i64, f64)]) {
    assert_eq!(a.len(), b.len(), "row counts");
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.0, x.1, x.2), (&y.0, y.1, y.2));
        assert!(
            (x.3 - y.3).abs() <= 1e-6 * y.3.abs().max(1.0),
            "{x:?} vs {y:?}"
        );
    }
}

#[test]
fn appended_and_upserted_results_equal_the_embedded_store() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = events(d, 1500, false);
    let db = d.join("want.db");
    let windows = "SELECT window_start, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id";
    // counts per store kept only while not a multiple of 7: upserts, and deletes
    let totals = "SELECT CAST(store_id AS STRING), store_id, cnt, revenue FROM (
  SELECT store_id, COUNT(*) AS cnt, SUM(qty * unit_price) AS revenue FROM events GROUP BY store_id)
WHERE MOD(cnt, 7) <> 0";
    let script = |sink_w: &str, sink_t: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}, WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE w (window_start TIMESTAMP(3), store_id INT, cnt BIGINT, revenue DOUBLE) WITH ({sink_w});
CREATE TABLE t (name STRING, store_id INT, cnt BIGINT, revenue DOUBLE, PRIMARY KEY (store_id) NOT ENFORCED) WITH ({sink_t});
INSERT INTO w {windows};
INSERT INTO t {totals};",
            input.display()
        )
    };
    let sqlite = |t: &str| {
        format!(
            "'connector' = 'sqlite', 'path' = '{}', 'table-name' = '{t}'",
            db.display()
        )
    };
    let (ok, err) = tillflow(&script(&sqlite("w"), &sqlite("t")), d);
    assert!(ok, "{err}");
    let (ok, err) = tillflow(
        &script(
            &pg.jdbc("w", ", 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '50'"),
            &format!(
                "'connector' = 'postgres', 'url' = 'postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres', 'table-name' = 'totals', 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '7'",
                pg.port
            ),
        ),
        d,
    );
    assert!(ok, "{err}");
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    let mut c = pg.client();
    let pg_rows = |c: &mut postgres::Client, sql: &str| -> Vec<(String, i64, i64, f64)> {
        c.query(sql, &[])
            .expect("query")
            .iter()
            .map(|r| (r.get(0), r.get::<_, i32>(1) as i64, r.get(2), r.get(3)))
            .collect()
    };
    let want_w = sqlite_rows(
        &db,
        "SELECT window_start, store_id, cnt, revenue FROM w ORDER BY 1, 2",
    );
    assert!(want_w.len() > 20);
    let got_w = pg_rows(
        &mut c,
        "SELECT to_char(window_start, 'YYYY-MM-DD HH24:MI:SS.MS'), store_id, cnt, revenue FROM w ORDER BY 1, 2",
    );
    close(&got_w, &want_w);
    let want_t = sqlite_rows(&db, "SELECT name, store_id, cnt, revenue FROM t ORDER BY 2");
    let got_t = pg_rows(
        &mut c,
        "SELECT name, store_id, cnt, revenue FROM totals ORDER BY 2",
    );
    assert!(!want_t.is_empty());
    close(&got_t, &want_t);
}

#[test]
fn a_server_restart_mid_run_loses_and_duplicates_nothing() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let script = d.join("gen.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE s (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '5', 'rows' = '3000', 'pacing' = '1440x');
CREATE TABLE p (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT)
WITH ({});
INSERT INTO p SELECT * FROM s;",
            pg.jdbc("lines", ", 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '100', 'sink.max-retries' = '5'")
        ),
    )
    .expect("script");
    let job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&script)
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tillflow");
    std::thread::sleep(Duration::from_millis(1200));
    pg.ctl(&["restart"]);
    let out = job.wait_with_output().expect("job");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let n: i64 = pg
        .client()
        .query_one("SELECT COUNT(*) FROM lines", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 3000, "every row once ({err})");
    assert!(
        err.contains("reconnecting"),
        "the restart was not noticed: {err}"
    );
    assert!(!err.contains(PASSWORD));
}

#[test]
fn bad_credentials_and_mismatched_columns_are_clear_errors() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let started = Instant::now();
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE s (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE p (a INT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:{}/postgres', 'table-name' = 'x', 'username' = '{USER}', 'password' = 'wrong-pw-77', 'sink.create-table' = 'true');
INSERT INTO p SELECT * FROM s;",
            pg.port
        ),
        d,
    );
    assert!(!ok);
    assert!(
        err.contains("password authentication failed")
            && err.contains(&format!("127.0.0.1:{}/postgres as user {USER}", pg.port)),
        "{err}"
    );
    assert!(
        !err.contains("wrong-pw-77"),
        "the password was printed: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a wrong password is not retried"
    );

    // nothing listening: retried with backoff, then a clear error
    let free = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let started = Instant::now();
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE s (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE p (a INT) WITH ('connector' = 'postgres', 'url' = 'postgres://{USER}:{PASSWORD}@127.0.0.1:{free}/postgres', 'table-name' = 'x');
INSERT INTO p SELECT * FROM s;"
        ),
        d,
    );
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{free}/postgres"
        )) && err.contains("tried 5 time(s)"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "retried with backoff"
    );

    pg.client()
        .batch_execute("CREATE TABLE typed (a integer, b text)")
        .expect("create");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE s (a INT, b DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE p (a INT, b DOUBLE) WITH ({});
INSERT INTO p SELECT * FROM s;",
            pg.jdbc("typed", "")
        ),
        d,
    );
    assert!(!ok);
    assert!(
        err.contains("column `b` is DOUBLE in tillflow but text"),
        "{err}"
    );
}

#[test]
fn lookup_join_enriches_the_stream_in_batches() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = events(d, 1500, false);
    let mut c = pg.client();
    // a catalogue of SKU-0001..SKU-0050 (SKU-0051..0060 are missing), with a cost per unit
    c.batch_execute(
        "CREATE TABLE products (sku text PRIMARY KEY, category text, cost numeric(10,2));
         INSERT INTO products
         SELECT 'SKU-' || lpad(g::text, 4, '0'), CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, g / 10.0
         FROM generate_series(1, 50) g;",
    )
    .expect("catalogue");
    let commits = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .expect("stats")
        .get(0)
    };
    let before = commits(&mut c);
    let out = d.join("out");
    let script = |join: &str, cache: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}, proc AS PROCTIME())
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE products (sku STRING, category STRING, cost DECIMAL(10, 2), PRIMARY KEY (sku) NOT ENFORCED)
WITH ({});
CREATE TABLE o (sku STRING, qty INT, category STRING, cost DECIMAL(10, 2))
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o
SELECT e.sku, e.qty, p.category, p.cost
FROM events AS e {join} JOIN products FOR SYSTEM_TIME AS OF e.proc AS p ON e.sku = p.sku;",
            input.display(),
            pg.jdbc("products", cache),
            out.display()
        )
    };
    let (ok, err) = tillflow(&script("LEFT", ""), d);
    assert!(ok, "{err}");
    let after = commits(&mut c);
    let got: Vec<serde_json::Value> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .flat_map(|f| {
            std::fs::read_to_string(f.path())
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got.len(), 1500, "LEFT keeps every row");
    for g in &got {
        let sku = g["sku"].as_str().unwrap_or_default();
        let n: i64 = sku.trim_start_matches("SKU-").parse().unwrap_or(0);
        if n <= 50 {
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
    // one query per batch of keys, not one per row
    assert!(
        after - before < 60,
        "{} transactions for 1500 rows",
        after - before
    );

    // INNER with a cache drops the unknown SKUs
    std::fs::remove_dir_all(&out).expect("clean");
    let (ok, err) = tillflow(
        &script(
            "",
            ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '20', 'lookup.partial-cache.expire-after-write' = '1 min'",
        ),
        d,
    );
    assert!(ok, "{err}");
    let n = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|f| {
            std::fs::read_to_string(f.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum::<usize>();
    let known = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["sku"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("SKU-")
                .parse::<i64>()
                .unwrap_or(99)
                <= 50
        })
        .count();
    assert_eq!(n, known);
}

#[test]
fn the_margin_example_enriches_generated_sales_from_postgres() {
    let pg = Server::start("");
    let mut c = pg.client();
    c.batch_execute(
        "CREATE TABLE products (sku text PRIMARY KEY, category text, unit_cost numeric(10,2));
         INSERT INTO products SELECT 'SKU-' || lpad(g::text, 5, '0'), 'group-' || (g % 12), round((1 + g % 40) * 0.55, 2)
         FROM generate_series(1, 500) g;",
    )
    .expect("catalogue");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .current_dir(root())
        .args(["run", "--quiet", "examples/retail/postgres_margin.sql"])
        .arg("--var")
        .arg(format!(
            "PG_URL=jdbc:postgresql://127.0.0.1:{}/postgres",
            pg.port
        ))
        .args([
            "--var",
            &format!("PG_USER={USER}"),
            "--var",
            &format!("PG_PASSWORD={PASSWORD}"),
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the same twelve hours of sales, straight from the generator
    let g = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["gen", "pos_sales", "--duration", "12h"])
        .output()
        .expect("gen");
    let mut units = 0i64;
    let mut revenue = 0f64;
    for l in String::from_utf8_lossy(&g.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let q = v["qty"].as_i64().unwrap_or(0);
        units += q;
        revenue += q as f64 * v["unit_price"].as_f64().unwrap_or(0.0);
    }
    assert!(units > 1000, "{units}");
    let r = c
        .query_one(
            "SELECT SUM(units)::bigint, SUM(revenue), COUNT(*) FILTER (WHERE category = 'unknown'), COUNT(DISTINCT category) FROM category_margin",
            &[],
        )
        .expect("query");
    assert_eq!(
        r.get::<_, i64>(0),
        units,
        "every unit sold, in one window each"
    );
    assert!((r.get::<_, f64>(1) - revenue).abs() < 1e-6 * revenue);
    assert_eq!(r.get::<_, i64>(2), 0, "every SKU is in the catalogue");
    assert_eq!(r.get::<_, i64>(3), 12);
}

#[test]
fn kafka_offsets_are_committed_only_after_postgres_has_the_rows() {
    let pg = Server::start("");
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("orders", 1);
    let msgs: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"id": {i}, "amount": {}.5}}"#, i % 97))
        .collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
    b.produce("orders", 0, &refs);
    // the PostgreSQL sink flushes only when the job asks it to (no size or time trigger)
    let script = |bounded: &str| {
        format!(
            "CREATE TABLE orders (id INT, amount DOUBLE) WITH ('connector' = 'kafka', 'topic' = 'orders',
  'properties.bootstrap.servers' = '{}', 'properties.group.id' = 'loader', 'scan.startup.mode' = 'group-offsets',
  'format' = 'json'{bounded});
CREATE TABLE o (id INT, amount DOUBLE, PRIMARY KEY (id) NOT ENFORCED) WITH ({});
INSERT INTO o SELECT * FROM orders;",
            b.addr(),
            pg.jdbc("orders", ", 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '1000000', 'sink.buffer-flush.interval' = '0'")
        )
    };
    let path = d.join("load.sql");
    std::fs::write(&path, script("")).expect("script");
    let mut job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .current_dir(d)
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_millis(3500));
    // killed without any chance to clean up
    job.kill().expect("kill");
    let _ = job.wait();
    // a second run resumes from the committed offsets and reads what is left
    let (ok, err) = tillflow(&script(", 'scan.bounded.mode' = 'latest-offset'"), d);
    assert!(ok, "{err}");
    let n: i64 = pg
        .client()
        .query_one("SELECT COUNT(*) FROM orders", &[])
        .expect("count")
        .get(0);
    assert_eq!(
        n, 2000,
        "rows whose offsets were committed are in PostgreSQL"
    );
}

/// The checkpoint crash test over real systems: retail sales arrive in a 3-partition Kafka topic
/// while a job aggregates them (1-minute TUMBLE per store, running totals per store, the raw
/// lines) into PostgreSQL with checkpoints every 300 ms; the job is killed with SIGKILL at random
/// moments (10 times; `TILLFLOW_SOAK_KILLS` for more) and restarted each time on another number
/// of workers (2, 3, 1, 4, …), PostgreSQL is
/// restarted under one run and the broker stalls under another, then the job is drained with a
/// bounded read. Every table must equal the one a single run without faults writes.
#[test]
fn kafka_to_postgres_killed_anywhere_is_exactly_once() {
    let pg = Server::start("");
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("sales", 3);
    let gen = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["gen", "pos_sales", "--rows", "24000", "--seed", "3"])
        .output()
        .expect("gen");
    assert!(gen.status.success());
    let text = String::from_utf8_lossy(&gen.stdout).into_owned();
    // partitioned by store, as a POS integration keys its messages
    let mut parts: [Vec<&[u8]>; 3] = [vec![], vec![], vec![]];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let store = v["store_id"].as_i64().unwrap_or(0) as usize;
        parts[store % 3].push(line.as_bytes());
    }
    let script = |prefix: &str, group: &str, extra: &str, checkpoints: bool| {
        let set = if checkpoints {
            format!(
                "SET 'execution.checkpointing.interval' = '300 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                d.join("checkpoints").display()
            )
        } else {
            String::new()
        };
        format!(
            "{set}CREATE TABLE sales (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'kafka', 'topic' = 'sales', 'properties.bootstrap.servers' = '{}',
  'properties.group.id' = '{group}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json'{extra});
CREATE TABLE per_minute (window_start TIMESTAMP(3), store_id INT, lines BIGINT, revenue DOUBLE) WITH ({});
CREATE TABLE totals (store_id INT, lines BIGINT, units BIGINT, PRIMARY KEY (store_id) NOT ENFORCED) WITH ({});
CREATE TABLE raw (receipt_id STRING, sku STRING, qty INT) WITH ({});
CREATE TABLE minute_topic (window_start TIMESTAMP(3), store_id INT, lines BIGINT)
WITH ('connector' = 'kafka', 'topic' = '{prefix}minutes', 'properties.bootstrap.servers' = '{}',
  'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = '{prefix}tf');
EXECUTE STATEMENT SET BEGIN
INSERT INTO per_minute SELECT window_start, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
INSERT INTO totals SELECT store_id, COUNT(*), SUM(qty) FROM sales GROUP BY store_id;
INSERT INTO raw SELECT receipt_id, sku, qty FROM sales;
INSERT INTO minute_topic SELECT window_start, store_id, COUNT(*)
FROM TABLE(TUMBLE(TABLE sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
END;",
            b.addr(),
            pg.jdbc(&format!("{prefix}per_minute"), ", 'sink.create-table' = 'true'"),
            pg.jdbc(&format!("{prefix}totals"), ", 'sink.create-table' = 'true'"),
            pg.jdbc(&format!("{prefix}raw"), ", 'sink.create-table' = 'true'"),
            b.addr(),
        )
    };
    b.create_topic("eo_minutes", 1);
    b.create_topic("ref_minutes", 1);
    // the first quarter is there before the job starts, the rest arrives while it runs
    let first: Vec<usize> = parts.iter().map(|p| p.len() / 4).collect();
    for (i, p) in parts.iter().enumerate() {
        b.produce("sales", i as i32, &p[..first[i]]);
    }
    let path = d.join("job.sql");
    std::fs::write(&path, script("eo_", "eo", "", true)).expect("script");
    let kills: u32 = std::env::var("TILLFLOW_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = 11u64;
    let mut next = || common::splitmix(&mut rng);
    for k in 0..kills {
        // a slice of every partition arrives, then the job runs a random while and is killed
        for (i, p) in parts.iter().enumerate() {
            let rest = p.len() - first[i];
            let from = first[i] + rest * k as usize / kills as usize;
            let to = first[i] + rest * (k as usize + 1) / kills as usize;
            b.produce("sales", i as i32, &p[from..to]);
        }
        // every other run reads through two reader threads: a checkpoint taken by one kind of
        // reading restores into the other (the readers are not part of the plan)
        let readers = if k % 2 == 0 {
            ", 'scan.parallelism' = '2'"
        } else {
            ""
        };
        std::fs::write(&path, script("eo_", "eo", readers, true)).expect("script");
        // on 2, 3, 1, 4, … workers (the keyed part, and the sink's writers): every restart
        // hands the keyed state and the prepared rows to another number of workers
        let workers = ["2", "3", "1", "4"][k as usize % 4];
        let mut job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--parallelism", workers])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run");
        std::thread::sleep(Duration::from_millis(600 + next() % 1500));
        if k == 3 {
            // PostgreSQL restarts under the running job (which reconnects and retries)
            pg.ctl(&["restart"]);
            std::thread::sleep(Duration::from_millis(800));
        }
        if k == 6 {
            // the broker stops answering for two seconds (tansu keeps its data only in memory,
            // so a frozen process stands in for a restart that keeps the log)
            let pid = b.child.id().to_string();
            let _ = Command::new("kill").args(["-STOP", &pid]).status();
            std::thread::sleep(Duration::from_millis(2000));
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
            std::thread::sleep(Duration::from_millis(800));
        }
        assert!(
            job.try_wait().expect("wait").is_none(),
            "the job ended by itself (run {k}): a restart of PostgreSQL or a stalled broker must not stop it"
        );
        job.kill().expect("SIGKILL");
        let _ = job.wait();
    }
    // drain: the same plan reading to the end of each partition resumes from the last checkpoint
    std::fs::write(
        &path,
        script(
            "eo_",
            "eo",
            ", 'scan.bounded.mode' = 'latest-offset', 'scan.parallelism' = '3'",
            true,
        ),
    )
    .expect("script");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--parallelism", "3"])
        .arg(&path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // the reference: one run without faults over the same messages
    let (ok, err) = tillflow(
        &script(
            "ref_",
            "ref",
            ", 'scan.bounded.mode' = 'latest-offset'",
            false,
        ),
        d,
    );
    assert!(ok, "{err}");
    let mut c = pg.client();
    for (table, cols) in [
        ("per_minute", "window_start::text, store_id, lines, revenue"),
        ("totals", "store_id, lines, units"),
        ("raw", "receipt_id, sku, qty"),
    ] {
        let rows = |c: &mut postgres::Client, prefix: &str| -> Vec<String> {
            let mut v: Vec<String> = c
                .query(&format!("SELECT ({cols})::text FROM {prefix}{table}"), &[])
                .expect("select")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            v.sort();
            v
        };
        let (got, want) = (rows(&mut c, "eo_"), rows(&mut c, "ref_"));
        assert!(!want.is_empty(), "{table}: empty reference");
        if table == "raw" {
            assert_eq!(want.len(), 24000, "the reference read every message");
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{table}: {} rows after {kills} kills, {} without faults",
            got.len(),
            want.len()
        );
        assert!(got == want, "{table}: same count, different rows");
    }
    let markers: i64 = c
        .query_one("SELECT MAX(checkpoint) FROM tillflow_checkpoints", &[])
        .expect("markers")
        .get(0);
    // the runs got far enough to complete checkpoints (each restart numbers on from the last)
    assert!(
        markers >= 3,
        "checkpoints were committed as it went: {markers}"
    );
    // the Kafka sink (transactions): every window once. The broker shows records of aborted
    // transactions to read-committed readers (../shared/kafka), so a kill inside a commit could
    // show a copy that real Kafka hides: copies are counted and reported, losses fail
    let read = |topic: &str| -> Vec<String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", b.addr())
            .set("group.id", "checker")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_millis(1500) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                last = Instant::now();
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        out.sort();
        out
    };
    let (got, want) = (read("eo_minutes"), read("ref_minutes"));
    assert!(!want.is_empty(), "no windows in the reference topic");
    let mut dedup = got.clone();
    dedup.dedup();
    assert!(
        dedup == want,
        "the exactly-once topic's windows ({} distinct) differ from the reference ({})",
        dedup.len(),
        want.len()
    );
    if got.len() != want.len() {
        eprintln!(
            "note: {} copies in the exactly-once topic (records of aborted transactions, which this broker shows)",
            got.len() - want.len()
        );
    }
}

/// ROW and ARRAY columns are written as jsonb into a table the sink creates, and as JSON into an
/// existing json column; PostgreSQL's own JSON operators read them back.
#[test]
fn nested_columns_are_jsonb_in_postgres() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut c = pg.client();
    c.batch_execute("CREATE TABLE lines_json (order_id bigint, items json)")
        .expect("create");
    let input = root().join("tests/golden/nested_json/input.ndjson");
    let script = format!(
        "CREATE TABLE orders (
  order_id BIGINT,
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>
) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE created (order_id BIGINT, customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>, items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>)
WITH ({});
CREATE TABLE existing (order_id BIGINT, items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>) WITH ({});
INSERT INTO created SELECT order_id, customer, items FROM orders;
INSERT INTO existing SELECT order_id, items FROM orders;",
        input.display(),
        pg.jdbc("created", ", 'sink.create-table' = 'true'"),
        pg.jdbc("lines_json", "")
    );
    let (ok, err) = tillflow(&script, d);
    assert!(ok, "{err}");
    let ty: String = c
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'created' AND column_name = 'items'",
            &[],
        )
        .expect("column")
        .get(0);
    assert_eq!(ty, "jsonb");
    type Line = (i64, Option<String>, Option<String>, Option<i32>);
    let rows: Vec<Line> = c
        .query(
            "SELECT order_id, customer->>'tier', customer->'address'->>'city', jsonb_array_length(items) FROM created ORDER BY 1",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, Some("gold".into()), Some("Lyon".into()), Some(2)),
            (2, Some("silver".into()), None, Some(0)),
            (3, None, None, Some(2)),
            (
                4,
                Some("gold".into()),
                Some("Paris \"centre\"".into()),
                Some(1)
            ),
        ]
    );
    let first: Option<String> = c
        .query_one(
            "SELECT items->0->>'sku' FROM lines_json WHERE order_id = 1",
            &[],
        )
        .expect("row")
        .get(0);
    assert_eq!(first.as_deref(), Some("A-1"));
}

/// Processes started at once against one server each create the sink table and tillflow's own
/// tables if missing: none fails on PostgreSQL's catalog (two concurrent `CREATE TABLE IF NOT
/// EXISTS` of one name can), and every process's rows arrive.
#[test]
fn processes_starting_at_once_create_their_tables_without_failing() {
    let pg = Server::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = events(dir.path(), 200, false);
    let processes = 6;
    let runs: Vec<_> = (0..processes)
        .map(|i| {
            let d = dir.path().join(format!("p{i}"));
            std::fs::create_dir_all(&d).expect("dir");
            let script = format!(
                "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE lines (process INT, store_id INT, qty INT) WITH ({});
INSERT INTO lines SELECT {i}, store_id, qty FROM events;",
                input.display(),
                pg.jdbc("lines", ", 'sink.create-table' = 'true'")
            );
            std::thread::spawn(move || tillflow(&script, &d))
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let (ok, err) = r.join().expect("thread");
        assert!(ok, "process {i}: {err}");
    }
    let mut c = pg.client();
    let counts: Vec<(i32, i64)> = c
        .query(
            "SELECT process, COUNT(*) FROM lines GROUP BY process ORDER BY process",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<(i32, i64)> = (0..processes).map(|i| (i, 200)).collect();
    assert_eq!(counts, want);
}
