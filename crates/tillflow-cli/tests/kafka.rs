//! The Kafka connector against a real Kafka-protocol broker (tansu, started per test on a free
//! port by [`Broker`]; `scripts/setup.sh` installs it and `scripts/test.sh` names it in
//! `TILLFLOW_TANSU`). Results read through Kafka are compared with the same query over the file.

use rdkafka::config::ClientConfig;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{events, lines, tillflow, window_query, Broker, COLUMNS};

/// The window query over the file itself, into `d/want`.
fn windows_over_the_file(input: &Path, d: &Path) -> PathBuf {
    let want = d.join("want");
    let file = format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
        input.display()
    );
    let (ok, err) = tillflow(&window_query(&file, &want), d);
    assert!(ok, "{err}");
    want
}

fn kafka_with(b: &Broker, topic: &str, extra: &str) -> String {
    format!(
        "'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}', 'format' = 'json'{extra}",
        b.addr()
    )
}

/// Writes `input` to `topic` with tillflow's Kafka sink.
fn produce_with_tillflow(b: &Broker, dir: &Path, input: &Path, topic: &str, partitioner: &str) {
    let script = format!(
        "CREATE TABLE src ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE k ({COLUMNS}) WITH ({}, 'sink.partitioner' = '{partitioner}', 'properties.linger.ms' = '0', 'properties.batch.num.messages' = '1');
INSERT INTO k SELECT * FROM src;",
        input.display(),
        kafka_with(b, topic, "")
    );
    let (ok, err) = tillflow(&script, dir);
    assert!(ok, "{err}");
}

#[test]
fn windows_over_kafka_equal_windows_over_the_file_and_group_offsets_resume() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("sales1", 1);
    let input = events(d, 1500, false);
    produce_with_tillflow(&b, d, &input, "sales1", "default");

    let want = windows_over_the_file(&input, d);
    let got = d.join("got");
    let group = ", 'properties.group.id' = 'g1', 'scan.startup.mode' = 'group-offsets', 'scan.bounded.mode' = 'latest-offset'";
    // read by a reader thread (the offsets it commits are those of rows the job took)
    let (ok, err) = tillflow(
        &window_query(
            &kafka_with(&b, "sales1", &format!("{group}, 'scan.parallelism' = '2'")),
            &got,
        ),
        d,
    );
    assert!(ok, "{err}");
    let want_rows = lines(&want);
    assert!(want_rows.len() > 20, "too few windows: {}", want_rows.len());
    assert_eq!(
        lines(&got),
        want_rows,
        "one partition: the same rows as the file"
    );

    // the group committed its offsets: a second run reads nothing new
    let again = d.join("again");
    let (ok, err) = tillflow(&window_query(&kafka_with(&b, "sales1", group), &again), d);
    assert!(ok, "{err}");
    assert!(lines(&again).is_empty(), "re-read {:?}", lines(&again));
}

#[test]
fn per_partition_watermarks_drop_nothing_across_interleaved_partitions() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("sales3", 3);
    // in event-time order, so reading the file drops nothing as late
    let input = events(d, 1500, true);
    produce_with_tillflow(&b, d, &input, "sales3", "round-robin");
    let want = windows_over_the_file(&input, d);
    // read in the job loop, and by two and three reader threads (partitions dealt to them)
    for (n, readers) in [
        "",
        ", 'scan.parallelism' = '2'",
        ", 'scan.parallelism' = '3'",
    ]
    .into_iter()
    .enumerate()
    {
        let got = d.join(format!("got{n}"));
        let (ok, err) = tillflow(
            &window_query(
                &kafka_with(
                    &b,
                    "sales3",
                    &format!(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'{readers}"),
                ),
                &got,
            ),
            d,
        );
        assert!(ok, "{err}");
        same_windows(&got, &want, readers);
    }
}

/// The window rows in `got` and `want` are the same (sums to 1e-9: they are added in another
/// order).
fn same_windows(got: &Path, want: &Path, what: &str) {
    // three partitions read in batches: with one watermark for the topic, a partition read
    // behind the others would be late; with one per partition nothing is
    let parse = |dir: &Path| -> Vec<(String, i64, i64, f64)> {
        let mut v: Vec<_> = lines(dir)
            .iter()
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).expect("json");
                (
                    j["window_start"].as_str().unwrap_or_default().to_owned(),
                    j["store_id"].as_i64().unwrap_or(-1),
                    j["cnt"].as_i64().unwrap_or(-1),
                    j["revenue"].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    };
    let (g, w) = (parse(got), parse(want));
    assert!(w.len() > 20, "too few windows: {}", w.len());
    assert_eq!(g.len(), w.len(), "windows ({what})");
    for (a, b) in g.iter().zip(&w) {
        assert_eq!((&a.0, a.1, a.2), (&b.0, b.1, b.2));
        assert!(
            (a.3 - b.3).abs() <= 1e-9 * b.3.abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn malformed_messages_name_their_place_or_go_to_the_dead_letter_file() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("raw", 1);
    b.produce(
        "raw",
        0,
        &[
            br#"{"id": 1, "name": "a"}"#,
            br#"{"id": "x", "name": "b"}"#,
            br#"{"id": 3, "name": "c"}"#,
        ],
    );
    let script = |extra: &str, out: &Path| {
        format!(
            "CREATE TABLE t (id INT, name STRING, part INT METADATA FROM 'partition', off BIGINT METADATA FROM 'offset' VIRTUAL)
WITH ({});
CREATE TABLE o (id INT, name STRING, part INT, off BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT id, name, part, off FROM t;",
            kafka_with(&b, "raw", &format!(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'{extra}")),
            out.display()
        )
    };
    // in the job loop, then through a reader thread: the same errors and dead letters
    for (n, readers) in ["", ", 'scan.parallelism' = '1'"].into_iter().enumerate() {
        let (ok, err) = tillflow(&script(readers, &d.join(format!("o1-{n}"))), d);
        assert!(!ok, "a malformed message must fail the job by default");
        assert!(
            err.contains("topic raw partition 0 offset 1") && err.contains("`id`"),
            "{err}"
        );
        let dlq = d.join(format!("dlq{n}.ndjson"));
        let out = d.join(format!("o2-{n}"));
        let (ok, err) = tillflow(
            &script(
                &format!(", 'dead-letter.path' = '{}'{readers}", dlq.display()),
                &out,
            ),
            d,
        );
        assert!(ok, "{err}");
        assert_eq!(
            lines(&out),
            [
                r#"{"id":1,"name":"a","part":0,"off":0}"#,
                r#"{"id":3,"name":"c","part":0,"off":2}"#
            ]
        );
        let dead = std::fs::read_to_string(&dlq).expect("dead letters");
        let v: serde_json::Value = serde_json::from_str(dead.trim()).expect("json");
        assert_eq!(v["position"], "topic raw partition 0 offset 1");
        assert_eq!(v["raw"], r#"{"id": "x", "name": "b"}"#);
    }
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let script = format!(
        "CREATE TABLE t (id INT) WITH ('connector' = 'kafka', 'topic' = 'x', 'properties.bootstrap.servers' = '127.0.0.1:{port}', 'format' = 'json', 'properties.sasl.password' = 'hunter2');
CREATE TABLE o (id INT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT * FROM t;"
    );
    let started = Instant::now();
    let (ok, err) = tillflow(&script, dir.path());
    assert!(!ok);
    assert!(
        err.contains(&format!("Kafka at 127.0.0.1:{port}")) && err.contains("gave up after"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "a secret was printed: {err}");
    assert!(started.elapsed() < Duration::from_secs(40));
}

/// All messages of a topic, as (key, value) strings (`None` for a tombstone's value).
fn read_all(b: &Broker, topic: &str, partitions: i32) -> Vec<(String, Option<String>)> {
    common::read_topic(b, topic, partitions)
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                v.map(|v| String::from_utf8_lossy(&v).into_owned()),
            )
        })
        .collect()
}

#[test]
fn upsert_kafka_writes_keys_and_tombstones_and_reads_back_the_table() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("top_stores", 2);
    let input = events(d, 1500, false);
    let upsert = |extra: &str| {
        format!(
            "'connector' = 'upsert-kafka', 'topic' = 'top_stores', 'properties.bootstrap.servers' = '{}', 'key.format' = 'json', 'value.format' = 'json'{extra}",
            b.addr()
        )
    };
    // line counts per store, kept only while not a multiple of 7: a store leaves the table
    // (a -U whose +U is filtered out: a tombstone) and comes back
    let top =
        "SELECT store_id, cnt FROM (SELECT store_id, COUNT(*) AS cnt FROM events GROUP BY store_id)
WHERE MOD(cnt, 7) <> 0";
    // written by three workers, a producer each, every store's changes through one of them
    let (ok, err) = tillflow(
        &format!(
            "SET 'parallelism.default' = '3';
CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE top_stores (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ({});
INSERT INTO top_stores {top};",
            input.display(),
            upsert(", 'properties.linger.ms' = '0', 'properties.batch.num.messages' = '1'")
        ),
        d,
    );
    assert!(ok, "{err}");
    let msgs = read_all(&b, "top_stores", 2);
    assert!(msgs.len() > 10, "{msgs:?}");
    for (k, _) in &msgs {
        let key: serde_json::Value = serde_json::from_str(k).expect("key is JSON");
        assert_eq!(key.as_object().map(|o| o.len()), Some(1), "{k}");
        assert!(key["store_id"].is_i64(), "{k}");
    }
    assert!(
        msgs.iter().any(|(_, v)| v.is_none()),
        "a store leaving the table is a tombstone"
    );

    // the same Top-N over the file, replayed, is what reading the topic back gives
    let want = d.join("want");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'o');
INSERT INTO o {top};",
            input.display(),
            want.with_extension("db").display()
        ),
        d,
    );
    assert!(ok, "{err}");
    let got = d.join("got.db");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE top_stores (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ({});
CREATE TABLE o (n BIGINT, total BIGINT, PRIMARY KEY (n) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'o');
INSERT INTO o SELECT COUNT(*), SUM(cnt) FROM top_stores;",
            upsert(", 'scan.bounded.mode' = 'latest-offset'"),
            got.display()
        ),
        d,
    );
    assert!(ok, "{err}");
    let q = |db: &Path, sql: &str| -> (i64, i64) {
        let c = rusqlite::Connection::open(db).expect("db");
        c.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
    };
    let want_rows = q(
        &want.with_extension("db"),
        "SELECT COUNT(*), SUM(cnt) FROM o",
    );
    assert!(want_rows.0 > 1, "{want_rows:?}");
    // and the file run's table is exactly the batch answer: counts not divisible by 7
    let mut per_store = std::collections::BTreeMap::<i64, i64>::new();
    for l in std::fs::read_to_string(&input).expect("input").lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        *per_store
            .entry(v["store_id"].as_i64().unwrap_or(-1))
            .or_default() += 1;
    }
    let kept: Vec<i64> = per_store.values().copied().filter(|c| c % 7 != 0).collect();
    assert_eq!(want_rows, (kept.len() as i64, kept.iter().sum()));
    // aggregating the read-back table: the normalized changelog retracts replaced values, so the
    // sum is over the final two rows only
    assert_eq!(q(&got, "SELECT MAX(n), MAX(total) FROM o"), want_rows);
}

#[test]
fn key_fields_and_except_key_split_a_row_between_key_and_value() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("keyed", 1);
    let input = events(d, 50, false);
    let with = format!(
        "'connector' = 'kafka', 'topic' = 'keyed', 'properties.bootstrap.servers' = '{}', 'key.format' = 'json', 'key.fields' = 'store_id;sku', 'value.format' = 'json', 'value.fields-include' = 'EXCEPT_KEY'",
        b.addr()
    );
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE src ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE k ({COLUMNS}) WITH ({with}, 'properties.linger.ms' = '0', 'properties.batch.num.messages' = '1');
INSERT INTO k SELECT * FROM src;",
            input.display()
        ),
        d,
    );
    assert!(ok, "{err}");
    let msgs = read_all(&b, "keyed", 1);
    assert_eq!(msgs.len(), 50);
    let (k, v) = &msgs[0];
    let key: serde_json::Value = serde_json::from_str(k).expect("key");
    let value: serde_json::Value = serde_json::from_str(v.as_deref().unwrap_or("")).expect("value");
    assert!(key.get("store_id").is_some() && key.get("sku").is_some() && key.get("qty").is_none());
    assert!(value.get("store_id").is_none() && value.get("qty").is_some());
    // reading it back puts the key fields where they belong
    let out = d.join("out");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE k ({COLUMNS}) WITH ({with}, 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE o ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT * FROM k;",
            out.display()
        ),
        d,
    );
    assert!(ok, "{err}");
    // the same rows written straight to a file (so timestamps are formatted alike)
    let direct = d.join("direct");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE src ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT * FROM src;",
            input.display(),
            direct.display()
        ),
        d,
    );
    assert!(ok, "{err}");
    let mut want: Vec<serde_json::Value> = lines(&direct)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(want.len(), 50);
    let mut got: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let key = |v: &serde_json::Value| v.to_string();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
}

#[test]
fn a_broker_that_stalls_mid_run_loses_and_duplicates_nothing() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("paused", 1);
    // about three seconds of generated sales, produced while the broker freezes for three
    let script = d.join("gen.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE s (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '3', 'rows' = '3000', 'pacing' = '1440x');
CREATE TABLE k (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT)
WITH ({});
INSERT INTO k SELECT * FROM s;",
            kafka_with(&b, "paused", "")
        ),
    )
    .expect("script");
    let job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&script)
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tillflow");
    std::thread::sleep(Duration::from_millis(800));
    let pid = b.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    let out = job.wait_with_output().expect("job");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = read_all(&b, "paused", 1);
    assert_eq!(msgs.len(), 3000, "every row once");
    let distinct: std::collections::HashSet<&Option<String>> =
        msgs.iter().map(|(_, v)| v).collect();
    assert!(distinct.len() > 2900, "{} distinct", distinct.len());
}

#[test]
fn topic_pattern_reads_every_matching_topic_and_names_it() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for t in ["orders_eu", "orders_us", "orders_eu_archive"] {
        b.create_topic(t, 1);
        let payload = format!(r#"{{"id": 1, "name": "{t}"}}"#);
        b.produce(t, 0, &[payload.as_bytes(), payload.as_bytes()]);
    }
    let out = d.join("out");
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE t (id INT, name STRING, src STRING METADATA FROM 'topic' VIRTUAL)
WITH ('connector' = 'kafka', 'topic-pattern' = 'orders_(eu|us)', 'properties.bootstrap.servers' = '{}', 'format' = 'json',
      'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE o (name STRING, src STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT name, src FROM t;",
            b.addr(),
            out.display()
        ),
        d,
    );
    assert!(ok, "{err}");
    assert_eq!(
        lines(&out),
        [
            r#"{"name":"orders_eu","src":"orders_eu"}"#,
            r#"{"name":"orders_eu","src":"orders_eu"}"#,
            r#"{"name":"orders_us","src":"orders_us"}"#,
            r#"{"name":"orders_us","src":"orders_us"}"#
        ],
        "the whole name must match: orders_eu_archive is not read"
    );
}

/// Reads `path` from the API on `port`: the body, once it answers 200.
fn api_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// A bounded read of three partitions between specific offsets: the rows read are exactly those
/// offsets', and the consumer lag left is reported in the summary, per partition on the API and
/// as a Prometheus gauge per topic and partition.
#[test]
fn specific_offsets_bound_the_read_and_the_lag_left_is_reported() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("lagging", 3);
    // partition p holds ids p*100 .. p*100 + count
    for (p, count) in [(0, 50), (1, 20), (2, 30)] {
        let msgs: Vec<String> = (0..count)
            .map(|i| format!(r#"{{"id": {}}}"#, p * 100 + i))
            .collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
        b.produce("lagging", p, &refs);
    }
    let out = d.join("out");
    let script = d.join("lag.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE t (id INT) WITH ({});
CREATE TABLE o (id INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT id FROM t;",
            kafka_with(
                &b,
                "lagging",
                ", 'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0,offset:5;partition:1,offset:0;partition:2,offset:0', 'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:15;partition:1,offset:4;partition:2,offset:30'"
            ),
            out.display()
        ),
    )
    .expect("script");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args([
            "run",
            "--keep-serving",
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .arg(&script)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // the finished job's final counters stay on the API (--keep-serving)
    let started = Instant::now();
    let job: serde_json::Value = loop {
        if let Some(j) = api_get(port, "/api/jobs/lag_sql")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .filter(|j| j["state"] != "running")
        {
            break j;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let metrics = api_get(port, "/metrics").expect("metrics");
    // SIGTERM ends --keep-serving
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(job["state"], "finished", "{err}");
    let ids: Vec<String> = lines(&out);
    assert_eq!(
        ids.len(),
        10 + 4 + 30,
        "offsets 5..15, 0..4, 0..30: {ids:?}"
    );
    assert!(ids.contains(&r#"{"id":5}"#.to_owned()) && ids.contains(&r#"{"id":14}"#.to_owned()));
    assert!(
        !ids.contains(&r#"{"id":15}"#.to_owned()) && !ids.contains(&r#"{"id":104}"#.to_owned())
    );
    assert!(
        err.contains("51 records left unread (consumer lag)"),
        "{err}"
    );
    let mut lag: Vec<(String, u64)> = job["nodes"][0]["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["partition"].as_str().unwrap_or_default().to_owned(),
                        p["lag"].as_u64().unwrap_or(u64::MAX),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    lag.sort();
    assert_eq!(
        lag,
        [
            ("lagging/0".to_owned(), 35),
            ("lagging/1".to_owned(), 16),
            ("lagging/2".to_owned(), 0)
        ],
        "{job}"
    );
    for (p, l) in [(0, 35), (1, 16), (2, 0)] {
        let line = metrics
            .lines()
            .find(|m| {
                m.starts_with("tillflow_source_partition_lag_records{")
                    && m.contains(r#"topic="lagging""#)
                    && m.contains(&format!(r#"partition="{p}""#))
            })
            .unwrap_or_else(|| panic!("no lag gauge for partition {p}: {metrics}"));
        assert!(line.ends_with(&format!(" {l}")), "{line}");
    }
}

/// Exactly-once into Kafka: checkpoint 3 is written, then the process dies before any sink commits
/// it (the window two-phase commit must cover; `TILLFLOW_CRASH_AFTER_CHECKPOINT` is the test
/// hook). The restarted job commits checkpoint 3's rows from the checkpoint, in a transaction with
/// its marker, and goes on: the topic ends with exactly the rows of a run without the crash. (No
/// transaction is open when the process dies, so the broker's known defect — aborted records
/// shown to read-committed consumers — cannot hide a duplicate here.)
#[test]
fn kafka_exactly_once_sink_commits_a_checkpoint_interrupted_before_its_commit() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("eo_out", 1);
    b.create_topic("ref_out", 1);
    let script = |topic: &str, eo: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '300 ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE sales (event_time TIMESTAMP(3), receipt_id STRING, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '5', 'start' = '2024-03-01 09:00:00', 'duration' = '6h', 'pacing' = '7200x');
CREATE TABLE k (receipt_id STRING, sku STRING, qty INT) WITH ({});
INSERT INTO k SELECT receipt_id, sku, qty FROM sales;",
            d.join("checkpoints").display(),
            kafka_with(&b, topic, eo)
        )
    };
    let eo =
        ", 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'tf-test'";
    let path = d.join("eo.sql");
    std::fs::write(&path, script("eo_out", eo)).expect("script");
    let crashed = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", "3")
        .output()
        .expect("run");
    assert!(
        !crashed.status.success(),
        "the hook should have aborted the run"
    );
    let before = read_all(&b, "eo_out", 1).len();
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, err) = tillflow(&script("ref_out", ""), d);
    assert!(ok, "{err}");
    let mut got: Vec<String> = read_all(&b, "eo_out", 1)
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect();
    let mut want: Vec<String> = read_all(&b, "ref_out", 1)
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect();
    got.sort();
    want.sort();
    assert!(want.len() > 1000, "reference: {} rows", want.len());
    assert!(
        before > 0 && before < want.len(),
        "the crash came mid-run: {before}"
    );
    assert_eq!(got.len(), want.len(), "rows after the crash vs without it");
    assert!(got == want, "same count, different rows");
    // the markers: one per committed checkpoint of the sink
    let markers = read_all(&b, "tf-test-checkpoints", 1);
    assert!(
        markers
            .iter()
            .any(|(k, v)| k.ends_with("#1") && v.as_deref().is_some_and(|v| v.ends_with(",3"))),
        "checkpoint 3 committed after the restart: {markers:?}"
    );
}

/// A second run of a running job with an exactly-once Kafka sink is refused by the job's
/// checkpoint lease, and leaves the running job alone: the refused run builds its sinks before
/// it meets the lease, but registers the sink's transactional id only at its first transaction,
/// which it never reaches. (Registering it fences every other producer of the id: the running
/// job's next commit would fail.) The running job goes on committing checkpoints afterwards.
#[test]
fn a_refused_second_run_does_not_fence_the_running_exactly_once_sink() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("lease_out", 1);
    b.create_topic("tf-lease-checkpoints", 1);
    let path = d.join("leased.sql");
    let script = format!(
        "SET 'execution.checkpointing.interval' = '200 ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE sales (event_time TIMESTAMP(3), receipt_id STRING, sku STRING, qty INT)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '5', 'start' = '2024-03-01 09:00:00', 'duration' = '7d', 'pacing' = '1000x');
CREATE TABLE k (receipt_id STRING, sku STRING, qty INT) WITH ({});
INSERT INTO k SELECT receipt_id, sku, qty FROM sales;",
        d.join("checkpoints").display(),
        kafka_with(
            &b,
            "lease_out",
            ", 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'tf-lease'"
        )
    );
    std::fs::write(&path, script).expect("script");
    let mut first = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // the number of the job's latest checkpoint
    let latest = || {
        std::fs::read_dir(d.join("checkpoints").join("leased"))
            .map(|entries| {
                entries
                    .filter_map(|e| {
                        let name = e.ok()?.file_name().into_string().ok()?;
                        name.strip_prefix("chk-")?.parse::<u64>().ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while latest() < 2 {
        assert!(
            first.try_wait().ok().flatten().is_none(),
            "the first run ended before its second checkpoint"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint committed in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("is already running"),
        "{err}"
    );
    let refused = latest();
    // two more checkpoints, the job running all along (a fenced producer fails the next commit)
    let waited = Instant::now();
    let mut alive = true;
    while latest() < refused + 2 && waited.elapsed() < Duration::from_secs(30) {
        alive = first.try_wait().ok().flatten().is_none();
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let later = latest();
    let _ = first.kill();
    let out = first.wait_with_output().expect("wait");
    assert!(
        alive,
        "the running job ended after the refused run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        later >= refused + 2,
        "no checkpoint after the refused run (checkpoint {refused} then, {later} 30 s later)"
    );
    // a checkpoint after the refusal was committed: its marker went out in the sink's transaction
    // (a directory chk-N appears before its commit; the marker only with it)
    let markers = read_all(&b, "tf-lease-checkpoints", 1);
    assert!(
        markers.iter().any(|(_, v)| v
            .as_deref()
            .and_then(|v| v.split_once(','))
            .and_then(|(_, c)| c.parse::<u64>().ok())
            .is_some_and(|c| c > refused)),
        "no marker of a checkpoint after {refused}: {markers:?}"
    );
}

/// A checkpoint's Kafka offsets are checked against the topic it resumes on: a topic deleted
/// and created again (here: on another broker, under the same name) with fewer messages, or with
/// fewer partitions, is refused naming the partition, the offsets and the ways out, instead of
/// resuming somewhere else.
#[test]
fn a_checkpoint_past_a_recreated_topic_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = d.join("moved.sql");
    let run = |b: &Broker, crash: bool| {
        let script = format!(
            "SET 'execution.checkpointing.interval' = '200 ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE src (n BIGINT) WITH ({});
CREATE TABLE out (n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT n FROM src;",
            d.join("checkpoints").display(),
            kafka_with(b, "moved", ", 'scan.startup.mode' = 'earliest-offset'")
        );
        std::fs::write(&path, script).expect("script");
        let mut c = Command::new(env!("CARGO_BIN_EXE_tillflow"));
        c.args(["run", "--quiet"]).arg(&path);
        if crash {
            c.env("TILLFLOW_CRASH_AFTER_CHECKPOINT", "3");
        }
        let o = c.output().expect("run");
        assert!(!o.status.success(), "the run should have stopped");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let numbers = |k: std::ops::Range<i32>| -> Vec<Vec<u8>> {
        k.map(|n| format!("{{\"n\": {n}}}").into_bytes()).collect()
    };
    let produce = |b: &Broker, partition: i32, k: std::ops::Range<i32>| {
        let msgs = numbers(k);
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        b.produce("moved", partition, &refs);
    };
    {
        let first = Broker::start();
        first.create_topic("moved", 2);
        produce(&first, 0, 0..50);
        produce(&first, 1, 50..100);
        run(&first, true);
    }
    let fewer_messages = Broker::start();
    fewer_messages.create_topic("moved", 2);
    produce(&fewer_messages, 0, 0..10);
    produce(&fewer_messages, 1, 10..20);
    let err = run(&fewer_messages, false);
    for want in [
        "offset 50 of partition",
        "of topic 'moved', is past the partition's end (offset 10)",
        "deleted and created again",
        "--fresh",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
    drop(fewer_messages);
    let fewer_partitions = Broker::start();
    fewer_partitions.create_topic("moved", 1);
    produce(&fewer_partitions, 0, 0..100);
    let err = run(&fewer_partitions, false);
    for want in [
        "partition 1 of topic 'moved', which now has 1 partition(s)",
        "--fresh",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
}

/// The `headers` metadata column as Flink declares it, `MAP<STRING, BYTES>`: a header's value by
/// key (`h['trace-id']`, BYTES, cast to STRING as UTF-8), and the whole map written as JSON (BYTES
/// in base64, as Flink's JSON format writes them); a message without headers has an empty map.
#[test]
fn headers_metadata_is_a_map_of_bytes() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("with_headers", 1);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.addr())
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace-id",
            value: Some("abc-123"),
        })
        .insert(Header {
            key: "source",
            value: Some(&[0u8, 255, 7][..]),
        })
        .insert(Header::<&[u8]> {
            key: "empty",
            value: None,
        });
    p.send(
        BaseRecord::<(), str>::to("with_headers")
            .payload(r#"{"id": 1}"#)
            .headers(headers),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    p.send(BaseRecord::<(), str>::to("with_headers").payload(r#"{"id": 2}"#))
        .map_err(|(e, _)| e)
        .expect("send");
    p.flush(Duration::from_secs(30)).expect("flush");
    let out = d.join("out");
    let script = format!(
        "CREATE TABLE k (id INT, h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL) WITH ({});
CREATE TABLE o (id INT, trace STRING, src BYTES, h MAP<STRING, BYTES>)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT id, CAST(h['trace-id'] AS STRING), h['source'], h FROM k;",
        kafka_with(
            &b,
            "with_headers",
            ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
        ),
        out.display()
    );
    let (ok, err) = tillflow(&script, d);
    assert!(ok, "{err}");
    assert_eq!(
        lines(&out),
        vec![
            r#"{"id":1,"trace":"abc-123","src":"AP8H","h":{"trace-id":"YWJjLTEyMw==","source":"AP8H","empty":null}}"#,
            r#"{"id":2,"trace":null,"src":null,"h":{}}"#,
        ]
    );
}

/// The specification's Kafka pipelines with its DDL verbatim (examples/kafka/spec_kafka_tumble.sql:
/// no brokers named — `TILLFLOW_KAFKA_BOOTSTRAP` points at the test's broker — and the spelling
/// `'startup-mode'`), plus `'scan.bounded.mode'` so that a run ends. Over one partition and over
/// three, the windowed counts per id equal the file's, and the CTAS projection holds exactly the
/// file's rows.
#[test]
fn the_specification_pipelines_read_kafka_as_written() {
    let root = common::root();
    let input =
        std::fs::read_to_string(root.join("examples/data/spec_source.ndjson")).expect("input");
    let records: Vec<&[u8]> = input.lines().map(str::as_bytes).collect();
    let parsed: Vec<(i64, i64)> = input
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["id"].as_i64().unwrap_or(-1),
                v["value"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut want_counts: std::collections::BTreeMap<i64, i64> = Default::default();
    for (id, _) in &parsed {
        *want_counts.entry(*id).or_default() += 1;
    }
    let mut want_rows: Vec<(i64, i64)> = parsed.clone();
    want_rows.sort_unstable();
    let spec = std::fs::read_to_string(root.join("examples/kafka/spec_kafka_tumble.sql"))
        .expect("example");
    let bounded = spec.replacen(
        "'format' = 'json'",
        "'format' = 'json',\n  'scan.bounded.mode' = 'latest-offset'",
        1,
    );
    assert_ne!(bounded, spec, "the example's WITH clause changed");
    let source_ddl = &bounded[..bounded.find("CREATE TABLE counts").expect("counts table")];
    for partitions in [1, 3] {
        let b = Broker::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        b.create_topic("test", partitions);
        for p in 0..partitions as usize {
            let mine: Vec<&[u8]> = records
                .iter()
                .skip(p)
                .step_by(partitions as usize)
                .copied()
                .collect();
            b.produce("test", p as i32, &mine);
        }
        let run = |script: &str, name: &str| {
            let path = d.join(name);
            std::fs::write(&path, script).expect("script");
            Command::new(env!("CARGO_BIN_EXE_tillflow"))
                .args(["run", "--quiet", "--no-http", "--store"])
                .arg(d.join("store.db"))
                .arg(&path)
                .env("TILLFLOW_KAFKA_BOOTSTRAP", b.addr())
                .current_dir(d)
                .output()
                .expect("run")
        };
        // the first pipeline: counts per id in 60 s processing-time windows, printed
        let o = run(&bounded, "spec_kafka_tumble.sql");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("startup-mode") && err.contains(&b.addr()),
            "the alias and the default brokers are named: {err}"
        );
        let mut counts: std::collections::BTreeMap<i64, i64> = Default::default();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let fields: Vec<&str> = line
                .trim_start_matches("+I[")
                .trim_end_matches(']')
                .split(", ")
                .collect();
            assert_eq!(fields.len(), 4, "{line}");
            *counts.entry(fields[2].parse().expect("id")).or_default() +=
                fields[3].parse::<i64>().expect("cnt");
        }
        assert_eq!(counts, want_counts, "{partitions} partition(s)");
        // the second pipeline: CREATE TABLE AS into the embedded store
        let o = run(
            &format!(
                "{source_ddl}CREATE TABLE result_table AS SELECT id, `value` FROM source_table;"
            ),
            "ctas.sql",
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let conn = rusqlite::Connection::open(d.join("store.db")).expect("store");
        let mut st = conn
            .prepare("SELECT id, value FROM result_table")
            .expect("select");
        let mut got: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, want_rows, "{partitions} partition(s)");
    }
}

/// Runs `script` unbounded with checkpoints every 200 ms, waits `wait`, stops it with SIGTERM
/// (a savepoint: no open window fires) and returns the rows its SQLite table `w` received while
/// it ran.
fn windows_while_running(d: &Path, name: &str, script: &str, wait: Duration) -> i64 {
    let path = d.join(format!("{name}.sql"));
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '200 ms';
SET 'state.checkpoints.dir' = '{}';
{script}",
            d.join("checkpoints").display()
        ),
    )
    .expect("script");
    let child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(&path)
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(wait);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conn = rusqlite::Connection::open(d.join(format!("{name}.db"))).expect("db");
    conn.query_row("SELECT COUNT(*) FROM w", [], |r| r.get(0))
        .unwrap_or(0)
}

/// A partition that receives nothing holds the table's watermark back — no window fires while
/// the job runs — until `scan.watermark.idle-timeout` lets the others' watermark through.
#[test]
fn an_idle_partition_does_not_stall_windows_with_an_idle_timeout() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("quiet", 3);
    let input = std::fs::read_to_string(events(d, 1500, true)).expect("events");
    let lines: Vec<&[u8]> = input.lines().map(str::as_bytes).collect();
    // partitions 0 and 1 take the events in turn; partition 2 stays empty
    let even: Vec<&[u8]> = lines.iter().step_by(2).copied().collect();
    let odd: Vec<&[u8]> = lines.iter().skip(1).step_by(2).copied().collect();
    b.produce("quiet", 0, &even);
    b.produce("quiet", 1, &odd);
    let script = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}, WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ({});
CREATE TABLE w (window_start TIMESTAMP(3), store_id INT, cnt BIGINT)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'w');
INSERT INTO w SELECT window_start, store_id, COUNT(*)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;",
            kafka_with(
                &b,
                "quiet",
                &format!(", 'scan.startup.mode' = 'earliest-offset'{extra}")
            ),
            d.join(format!("{name}.db")).display()
        )
    };
    let stalled =
        windows_while_running(d, "stalled", &script("stalled", ""), Duration::from_secs(4));
    assert_eq!(
        stalled, 0,
        "without an idle timeout the empty partition holds every window"
    );
    let flowing = windows_while_running(
        d,
        "flowing",
        &script(
            "flowing",
            ", 'scan.watermark.idle-timeout' = '500 ms', 'scan.parallelism' = '2'",
        ),
        Duration::from_secs(4),
    );
    assert!(
        flowing > 20,
        "with the idle timeout the windows fire while the job runs: {flowing}"
    );
}

/// `scan.startup.mode` = `timestamp` starts at the first message at or after the time given;
/// `latest-offset` reads only what arrives after the job started.
#[test]
fn timestamp_and_latest_offset_startup_modes() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("modes", 1);
    let burst = |from: i64, n: i64| {
        let msgs: Vec<String> = (from..from + n)
            .map(|i| format!(r#"{{"id": {i}}}"#))
            .collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
        b.produce("modes", 0, &refs);
    };
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_millis() as i64)
            .unwrap_or(0)
    };
    burst(0, 10);
    std::thread::sleep(Duration::from_millis(100));
    let since = now_ms();
    std::thread::sleep(Duration::from_millis(100));
    burst(10, 5);
    let script = |extra: &str, db: &str| {
        format!(
            "CREATE TABLE t (id INT) WITH ({});
CREATE TABLE o (id INT) WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'o');
INSERT INTO o SELECT id FROM t;",
            kafka_with(&b, "modes", extra),
            d.join(db).display()
        )
    };
    let ids = |db: &str| -> Vec<i64> {
        let conn = rusqlite::Connection::open(d.join(db)).expect("db");
        let mut st = conn
            .prepare("SELECT id FROM o ORDER BY id")
            .expect("select");
        let v = st
            .query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        v
    };
    let (ok, err) = tillflow(
        &script(
            &format!(", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{since}', 'scan.bounded.mode' = 'latest-offset'"),
            "ts.db",
        ),
        d,
    );
    assert!(ok, "{err}");
    assert_eq!(ids("ts.db"), (10..15).collect::<Vec<_>>());

    // latest-offset, unbounded and without checkpoints: only the messages produced after the
    // start arrive; SIGTERM then ends the job with what it has
    let path = d.join("latest.sql");
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '0';\n{}",
            script(", 'scan.startup.mode' = 'latest-offset'", "latest.db")
        ),
    )
    .expect("script");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--http", &format!("127.0.0.1:{port}")])
        .arg(&path)
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // the job has resolved its start offsets once it serves its API
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    burst(100, 7);
    let started = Instant::now();
    while ids("latest.db").len() < 7 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ids("latest.db"), (100..107).collect::<Vec<_>>());
}

/// A bounded read of a topic written in transactions ends: the last offset before the end is the
/// transaction's commit marker, which no consumer ever receives, so the read must take the
/// consumer's position (which moves past markers) as reaching the end — in the job loop and
/// through reader threads.
#[test]
fn a_bounded_read_of_a_transactional_topic_ends() {
    use rdkafka::producer::{BaseRecord, Producer};
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("txn", 1);
    let p: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.addr())
        .set("transactional.id", "test-txn")
        .create()
        .expect("producer");
    p.init_transactions(Duration::from_secs(30)).expect("init");
    p.begin_transaction().expect("begin");
    for i in 0..5 {
        let m = format!(r#"{{"id": {i}}}"#);
        p.send(BaseRecord::<(), str>::to("txn").payload(&m).partition(0))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");
    for (n, readers) in ["", ", 'scan.parallelism' = '1'"].into_iter().enumerate() {
        let out = d.join(format!("out{n}"));
        let path = d.join(format!("txn{n}.sql"));
        std::fs::write(
            &path,
            format!(
                "CREATE TABLE t (id INT) WITH ({});
CREATE TABLE o (id INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT id FROM t;",
                kafka_with(
                    &b,
                    "txn",
                    &format!(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'properties.isolation.level' = 'read_committed'{readers}")
                ),
                out.display()
            ),
        )
        .expect("script");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http"])
            .arg(&path)
            .current_dir(d)
            .spawn()
            .expect("run");
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the bounded read never ended ({readers:?})");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success());
        assert_eq!(lines(&out).len(), 5, "{readers:?}");
    }
}

/// A bounded read to specific offsets beyond a partition's current end waits for those offsets,
/// as Flink's does (it used to stop at once at the current end).
#[test]
fn a_bounded_read_waits_for_specific_offsets_beyond_the_end() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("growing", 1);
    let first: Vec<String> = (0..5).map(|i| format!(r#"{{"id": {i}}}"#)).collect();
    let refs: Vec<&[u8]> = first.iter().map(|m| m.as_bytes()).collect();
    b.produce("growing", 0, &refs);
    let out = d.join("out");
    let script = d.join("grow.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE t (id INT) WITH ({});
CREATE TABLE o (id INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO o SELECT id FROM t;",
            kafka_with(
                &b,
                "growing",
                ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:12'"
            ),
            out.display()
        ),
    )
    .expect("script");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--http", "127.0.0.1:0"])
        .arg(&script)
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // the job has read the five records there are and must still be waiting for offset 12
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the job ended before reaching offset 12"
    );
    let more: Vec<String> = (5..20).map(|i| format!(r#"{{"id": {i}}}"#)).collect();
    let refs: Vec<&[u8]> = more.iter().map(|m| m.as_bytes()).collect();
    b.produce("growing", 0, &refs);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never reached offset 12"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let o = child.wait_with_output().expect("wait");
    assert!(status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids = lines(&out);
    assert_eq!(ids.len(), 12, "offsets 0..12: {ids:?}");
    assert!(ids.contains(&r#"{"id":11}"#.to_owned()));
    assert!(!ids.contains(&r#"{"id":12}"#.to_owned()));
}
