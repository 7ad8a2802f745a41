//! PostgreSQL change data capture against a real server with `wal_level = logical`: a
//! throw-away cluster per test (as the sink's tests start them), changed while the job runs and
//! while it is killed; the table downstream must end equal to the source table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Pg, PG_PASSWORD as PASSWORD, PG_USER as USER};

/// A server with logical WAL (`logical`) or not (`replica`).
fn server(wal_level: &str) -> Pg {
    Pg::start(&format!(
        "-c wal_level={wal_level} -c max_replication_slots=8 -c max_wal_senders=8"
    ))
}

impl Pg {
    fn cdc(&self, user: &str, password: &str, slot: &str) -> String {
        format!(
            "'connector' = 'postgres-cdc', 'hostname' = '127.0.0.1', 'port' = '{}', 'username' = '{user}', 'password' = '{password}', 'database-name' = 'postgres', 'schema-name' = 'public', 'table-name' = 'products', 'slot.name' = '{slot}', 'scan.poll.interval' = '50 ms'",
            self.port
        )
    }
}

/// The catalogue: `n` products.
fn catalogue(c: &mut postgres::Client, n: i32) {
    c.batch_execute(&format!(
        "CREATE TABLE products (sku text PRIMARY KEY, category text NOT NULL, price numeric(10,2), stock int, updated timestamptz, note text);
         INSERT INTO products
         SELECT 'SKU-' || lpad(g::text, 6, '0'), 'cat-' || (g % 7), round((g % 50) * 1.25 + 0.99, 2), g % 40,
                timestamptz '2024-03-01 08:00:00+00' + g * interval '1 minute', CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
         FROM generate_series(1, {n}) g;"
    ))
    .expect("catalogue");
}

/// A job mirroring the table into SQLite and keeping stock per category there, checkpointed
/// every `interval`.
fn job(srv: &Pg, d: &Path, slot: &str, interval: &str) -> PathBuf {
    let db = d.join("out.db");
    let set = format!(
        "SET 'execution.checkpointing.interval' = '{interval}';\nSET 'state.checkpoints.dir' = '{}';\n",
        d.join("checkpoints").display()
    );
    let path = d.join("cdc.sql");
    std::fs::write(
        &path,
        format!(
            "{set}CREATE TABLE products (sku STRING, category STRING, price DECIMAL(10, 2), stock INT, updated TIMESTAMP_LTZ(3), note STRING,
  tbl STRING METADATA FROM 'table_name' VIRTUAL, PRIMARY KEY (sku) NOT ENFORCED)
WITH ({});
CREATE TABLE mirror (sku STRING, category STRING, price DECIMAL(10, 2), stock INT, updated TIMESTAMP_LTZ(3), note STRING, tbl STRING,
  PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'mirror');
CREATE TABLE per_category (category STRING, skus BIGINT, stock BIGINT, PRIMARY KEY (category) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'per_category');
EXECUTE STATEMENT SET BEGIN
INSERT INTO mirror SELECT * FROM products;
INSERT INTO per_category SELECT category, COUNT(*), SUM(stock) FROM products GROUP BY category;
END;",
            srv.cdc(USER, PASSWORD, slot),
            db = db.display()
        ),
    )
    .expect("script");
    path
}

fn spawn(path: &Path, d: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(path)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tillflow")
}

/// The source table and the SQLite mirror and aggregate, as text.
type Tables = (Vec<String>, Vec<String>);

fn source_tables(c: &mut postgres::Client) -> Tables {
    let mirror = c
        .query(
            "SELECT sku, category, price::text, stock, to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), note FROM products ORDER BY sku",
            &[],
        )
        .expect("select")
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{:?}|{:?}|{:?}|{:?}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, Option<i32>>(3).map(i64::from),
                r.get::<_, Option<String>>(4),
                r.get::<_, Option<String>>(5)
            )
        })
        .collect();
    let agg = c
        .query(
            "SELECT category, COUNT(*), SUM(stock) FROM products GROUP BY category ORDER BY category",
            &[],
        )
        .expect("select")
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{:?}",
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, Option<i64>>(2)
            )
        })
        .collect();
    (mirror, agg)
}

fn sink_tables(db: &Path) -> Option<Tables> {
    let c = rusqlite::Connection::open(db).ok()?;
    let mut st = c
        .prepare("SELECT sku, category, price, stock, updated, note, tbl FROM mirror ORDER BY sku")
        .ok()?;
    let mirror = st
        .query_map([], |r| {
            // DECIMAL as its text, as Flink writes it
            let price: Option<String> = r.get(2)?;
            let updated: Option<String> = r.get(4)?;
            let tbl: String = r.get(6)?;
            assert_eq!(tbl, "products");
            Ok(format!(
                "{}|{}|{:?}|{:?}|{:?}|{:?}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                price,
                r.get::<_, Option<i64>>(3)?,
                updated.map(|u| u.chars().take(19).collect::<String>().replace('T', " ")),
                r.get::<_, Option<String>>(5)?
            ))
        })
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let mut st = c
        .prepare("SELECT category, skus, stock FROM per_category ORDER BY category")
        .ok()?;
    let agg = st
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{:?}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?
            ))
        })
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((mirror, agg))
}

/// Waits until the sink tables equal the source table.
fn converge(c: &mut postgres::Client, db: &Path, job: &mut Child) {
    let want = source_tables(c);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = sink_tables(db);
        if got.as_ref() == Some(&want) {
            return;
        }
        if let Ok(Some(status)) = job.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = job.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the job ended ({status}): {err}");
        }
        if Instant::now() > deadline {
            let got = got.unwrap_or_default();
            let missing: Vec<_> = want
                .0
                .iter()
                .filter(|r| !got.0.contains(r))
                .take(3)
                .collect();
            let extra: Vec<_> = got
                .0
                .iter()
                .filter(|r| !want.0.contains(r))
                .take(3)
                .collect();
            panic!(
                "the sink did not catch up: {} rows vs {}; missing {missing:?}, extra {extra:?}; per category {:?} vs {:?}",
                got.0.len(),
                want.0.len(),
                got.1,
                want.1
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Inserts, updates (also of the key), deletes and a rolled-back transaction; `round` varies them.
fn mutate(c: &mut postgres::Client, round: i32) {
    let mut t = c.transaction().expect("begin");
    t.batch_execute(&format!(
        "INSERT INTO products VALUES ('NEW-{round}-a', 'cat-new', 9.99, 5, now(), 'fresh'), ('NEW-{round}-b', 'cat-1', NULL, NULL, NULL, NULL);
         UPDATE products SET stock = stock + 1, price = price + 0.5 WHERE sku LIKE 'SKU-%{}';
         DELETE FROM products WHERE sku LIKE 'SKU-%{}7';
         UPDATE products SET sku = 'MOVED-' || sku WHERE sku LIKE 'SKU-%{}3';
         UPDATE products SET note = repeat('x', 20) WHERE sku = 'SKU-000011';",
        round % 10,
        (round + 3) % 10,
        (round + 5) % 10
    ))
    .expect("changes");
    t.commit().expect("commit");
    let mut t = c.transaction().expect("begin");
    t.batch_execute("DELETE FROM products; INSERT INTO products VALUES ('GHOST', 'cat-ghost', 1, 1, now(), NULL);")
        .expect("doomed");
    t.rollback().expect("rollback");
}

#[test]
fn inserts_updates_deletes_and_rollbacks_while_running_end_equal_to_the_source_table() {
    let srv = server("logical");
    let mut c = srv.client();
    // an initial read of 100 k rows, then changes
    catalogue(&mut c, 100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = job(&srv, d, "mirror_slot", "1 s");
    let mut child = spawn(&path, d);
    converge(&mut c, &d.join("out.db"), &mut child);
    for round in 0..4 {
        mutate(&mut c, round);
    }
    converge(&mut c, &d.join("out.db"), &mut child);
    // the slot moves as the sinks take the rows: it does not hold the WAL back
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lag: i64 = c
            .query_one(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'mirror_slot'",
                &[],
            )
            .expect("slot")
            .get(0);
        // a little WAL is always written after the last change (the slot's own records)
        if lag < 64 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot stays {lag} bytes behind"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Small transactions, one every ~10 ms until `stop`: stock counts, new and deleted rows, keys
/// moved.
fn writer(
    srv: &Pg,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    let mut c = srv.client();
    std::thread::spawn(move || {
        let mut i = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let sku = format!("SKU-{:06}", (i * 7) % 2000 + 1);
            let mut sql = format!(
                "UPDATE products SET stock = stock + 1, price = price + 0.01 WHERE sku = '{sku}';
                 INSERT INTO products VALUES ('W-{i}', 'cat-w', 1.00, {}, now(), NULL);",
                i % 9
            );
            if i % 3 == 2 {
                sql.push_str(&format!("DELETE FROM products WHERE sku = 'W-{}';", i - 2));
            }
            if i % 11 == 5 {
                sql.push_str(&format!(
                    "UPDATE products SET sku = 'M-{i}' WHERE sku = 'SKU-{:06}';",
                    (i * 13) % 2000 + 1
                ));
            }
            let mut t = c.transaction().expect("begin");
            t.batch_execute(&sql).expect("change");
            t.commit().expect("commit");
            i += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        i
    })
}

#[test]
fn killed_while_the_table_changes_it_ends_equal_to_the_source_table() {
    let srv = server("logical");
    let mut c = srv.client();
    catalogue(&mut c, 2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = job(&srv, d, "killed_slot", "300 ms");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = writer(&srv, stop.clone());
    let mut rng = 5u64;
    for round in 0..6 {
        let mut child = spawn(&path, d);
        std::thread::sleep(Duration::from_millis(
            300 + common::splitmix(&mut rng) % 1200,
        ));
        if round % 2 == 0 {
            mutate(&mut c, round);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("run {round} ended ({status}): {err}");
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let transactions = w.join().expect("writer");
    assert!(transactions > 100, "{transactions} transactions");
    let mut child = spawn(&path, d);
    converge(&mut c, &d.join("out.db"), &mut child);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn missing_logical_wal_and_privileges_are_named() {
    let srv = server("replica");
    let mut c = srv.client();
    catalogue(&mut c, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |with: &str| {
        let path = d.join("p.sql");
        std::fs::write(
            &path,
            format!(
                "CREATE TABLE products (sku STRING, category STRING, PRIMARY KEY (sku) NOT ENFORCED) WITH ({with});
CREATE TABLE o (sku STRING, category STRING) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT * FROM products;"
            ),
        )
        .expect("write");
        let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http"])
            .arg(&path)
            .current_dir(d)
            .output()
            .expect("run");
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // a bad value is caught by validate, which connects to nothing
    let path = d.join("v.sql");
    std::fs::write(
        &path,
        format!(
            "CREATE TABLE products (sku STRING, PRIMARY KEY (sku) NOT ENFORCED) WITH ({}, 'scan.startup.mode' = 'earliest');
SELECT * FROM products;",
            srv.cdc(USER, PASSWORD, "s0")
        ),
    )
    .expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("'scan.startup.mode' = 'earliest'"),
        "{err}"
    );
    let err = run(&srv.cdc(USER, PASSWORD, "s1"));
    assert!(
        err.contains("wal_level is 'replica'") && err.contains("wal_level = logical"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    // on a server that has logical WAL: a user without REPLICATION is told what it lacks
    let srv = server("logical");
    let mut c = srv.client();
    catalogue(&mut c, 10);
    c.batch_execute(
        "CREATE ROLE reader LOGIN PASSWORD 'reader-pw-9'; GRANT SELECT ON products TO reader;
         CREATE PUBLICATION dbz_publication FOR TABLE products;",
    )
    .expect("role");
    let err = run(&srv.cdc("reader", "reader-pw-9", "s2"));
    assert!(err.contains("REPLICATION"), "{err}");
    assert!(!err.contains("reader-pw-9"), "{err}");
    let err = run(&srv.cdc(USER, "not-the-password", "s3"));
    assert!(
        err.contains("cannot connect") && !err.contains("not-the-password"),
        "{err}"
    );
}

#[test]
fn an_event_time_temporal_join_gives_each_sale_the_price_valid_at_its_time() {
    let srv = server("logical");
    let mut c = srv.client();
    c.batch_execute(
        "CREATE TABLE prices (sku text PRIMARY KEY, price numeric(10,2), valid_from timestamp NOT NULL);
         INSERT INTO prices SELECT 'SKU-' || lpad(g::text, 4, '0'), g, timestamp '2024-03-01 00:00:00'
         FROM generate_series(1, 60) g;",
    )
    .expect("prices");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = common::events(d, 1500, true);
    let out = d.join("out");
    let path = d.join("tj.sql");
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '300 ms';
SET 'state.checkpoints.dir' = '{ck}';
CREATE TABLE sales ({cols}, WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE prices (sku STRING, price DECIMAL(10, 2), valid_from TIMESTAMP(3),
  PRIMARY KEY (sku) NOT ENFORCED, WATERMARK FOR valid_from AS valid_from)
WITH ('connector' = 'postgres-cdc', 'hostname' = '127.0.0.1', 'port' = '{port}', 'username' = '{USER}',
      'password' = '{PASSWORD}', 'database-name' = 'postgres', 'table-name' = 'prices', 'slot.name' = 'tj_slot',
      'scan.poll.interval' = '50 ms');
CREATE TABLE o (event_time TIMESTAMP(3), sku STRING, price DECIMAL(10, 2))
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO o SELECT s.event_time, s.sku, p.price
FROM sales AS s JOIN prices FOR SYSTEM_TIME AS OF s.event_time AS p ON s.sku = p.sku;",
            ck = d.join("checkpoints").display(),
            cols = common::COLUMNS,
            input = input.display(),
            port = srv.port,
            out = out.display()
        ),
    )
    .expect("script");
    let mut child = spawn(&path, d);
    std::thread::sleep(Duration::from_millis(1500));
    // half the SKUs change price from 20:15, then a far-future row lets the watermark pass
    c.batch_execute(
        "UPDATE prices SET price = price + 1000, valid_from = timestamp '2024-03-01 20:15:00'
         WHERE sku <= 'SKU-0030';",
    )
    .expect("update");
    std::thread::sleep(Duration::from_millis(300));
    c.batch_execute("INSERT INTO prices VALUES ('SENTINEL', 0, timestamp '2030-01-01 00:00:00')")
        .expect("sentinel");
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = common::lines(&out);
        if got.len() >= 1500 {
            break got;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the job ended ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "{} of 1500 sales joined",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.len(), 1500);
    let mut changed = 0;
    for l in &got {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let sku = v["sku"].as_str().unwrap_or_default();
        let n: f64 = sku.trim_start_matches("SKU-").parse().unwrap_or(-1.0);
        let at = v["event_time"].as_str().unwrap_or_default();
        let new = n <= 30.0 && at >= "2024-03-01 20:15:00";
        changed += usize::from(new);
        let want = if new { n + 1000.0 } else { n };
        assert_eq!(v["price"].as_f64(), Some(want), "{l}");
    }
    assert!(
        changed > 100 && changed < 1000,
        "{changed} sales at the new prices"
    );
}

#[test]
fn latest_offset_skips_the_table_and_reads_only_the_changes_after_the_start() {
    let srv = server("logical");
    let mut c = srv.client();
    catalogue(&mut c, 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = job(&srv, d, "latest_slot", "300 ms");
    let script = std::fs::read_to_string(&path).expect("read");
    let script = script.replace(
        "'slot.name' = 'latest_slot'",
        "'slot.name' = 'latest_slot', 'scan.startup.mode' = 'latest-offset'",
    );
    assert!(script.contains("latest-offset"));
    std::fs::write(&path, script).expect("write");
    let mut child = spawn(&path, d);
    // the job's slot marks where its changes begin
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'latest_slot'",
            &[],
        )
        .expect("slots")
        .is_none()
    {
        assert!(Instant::now() < deadline, "no slot");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.batch_execute(
        "UPDATE products SET stock = 999 WHERE sku IN ('SKU-000001', 'SKU-000002', 'SKU-000003');
         INSERT INTO products VALUES ('LATE-1', 'cat-9', 2.50, 4, now(), 'new');
         DELETE FROM products WHERE sku = 'SKU-000100';",
    )
    .expect("changes");
    let want: Vec<String> = c
        .query(
            "SELECT sku || '|' || stock FROM products WHERE sku IN ('SKU-000001', 'SKU-000002', 'SKU-000003', 'LATE-1') ORDER BY sku",
            &[],
        )
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let db = d.join("out.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<String> = rusqlite::Connection::open(&db)
            .and_then(|s| {
                let mut st = s.prepare("SELECT sku || '|' || stock FROM mirror ORDER BY sku")?;
                let rows = st
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .unwrap_or_default();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror holds {got:?}, not only the changed rows {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_large_value_an_update_did_not_send_is_taken_from_the_old_row_or_refused_with_the_fix() {
    let srv = server("logical");
    let mut c = srv.client();
    catalogue(&mut c, 20);
    // a note too large to stay in the row (TOASTed, and incompressible)
    c.batch_execute(
        "UPDATE products SET note = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)
         WHERE sku = 'SKU-000001';",
    )
    .expect("large note");
    let big: String = c
        .query_one("SELECT note FROM products WHERE sku = 'SKU-000001'", &[])
        .expect("note")
        .get(0);
    assert!(big.len() > 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // REPLICA IDENTITY DEFAULT: the update does not carry the note, and the job says what to do
    let path = job(&srv, d, "toast_slot", "300 ms");
    let mut child = spawn(&path, d);
    converge(&mut c, &d.join("out.db"), &mut child);
    c.batch_execute("UPDATE products SET stock = 77 WHERE sku = 'SKU-000001'")
        .expect("update");
    let out = child.wait_with_output().expect("job");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("column `note`") && err.contains("REPLICA IDENTITY FULL"),
        "{err}"
    );
    // with REPLICA IDENTITY FULL the old row carries it: the update lands whole
    c.batch_execute(
        "ALTER TABLE products REPLICA IDENTITY FULL;
         UPDATE products SET stock = 78 WHERE sku = 'SKU-000001';",
    )
    .expect("full");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = job(&srv, d, "toast_full_slot", "300 ms");
    let mut child = spawn(&path, d);
    converge(&mut c, &d.join("out.db"), &mut child);
    c.batch_execute("UPDATE products SET stock = 79 WHERE sku = 'SKU-000001'")
        .expect("update");
    converge(&mut c, &d.join("out.db"), &mut child);
    let _ = child.kill();
    let _ = child.wait();
}
