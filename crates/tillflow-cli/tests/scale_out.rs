//! A job scaled out over Kafka: several `tillflow run --instance-id` processes of one job share a
//! topic's partitions through a consumer group on a real Kafka-protocol broker (tansu), and
//! what they write together is every record exactly once — through a process joining, one
//! killed and restarted (static membership), and one killed for good (dynamic membership: the
//! others take its partitions over). Each process writes part files of its own into the same
//! directory (the filesystem sink's exactly-once commit, per process).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::Broker;

const PARTITIONS: i32 = 4;

/// The stateless job every process runs: a filter and a projection, from `topic` into `out`.
fn job(b: &Broker, d: &Path, topic: &str, out: &Path) -> PathBuf {
    let path = d.join("job.sql");
    let script = format!(
        "SET 'execution.checkpointing.interval' = '300 ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE sales (id BIGINT, qty INT, part INT METADATA FROM 'partition' VIRTUAL)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{}', 'format' = 'json',
      'scan.startup.mode' = 'earliest-offset',
      'properties.session.timeout.ms' = '3000', 'properties.heartbeat.interval.ms' = '500',
      'properties.fetch.wait.max.ms' = '20');
CREATE TABLE kept (id BIGINT, qty INT, part INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO kept SELECT id, qty * 2, part FROM sales WHERE qty > 0;",
        d.join("checkpoints").display(),
        b.addr(),
        out.display()
    );
    std::fs::write(&path, script).expect("script");
    path
}

/// A process of the job, killed if a failing test leaves it running.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts process `id` of job `name`; its standard error goes to `d/<id>.log`.
fn member(script: &Path, d: &Path, name: &str, id: &str, membership: &str) -> Member {
    let log = std::fs::File::create(d.join(format!("{id}.log"))).expect("log");
    Member(
        Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http", "--job-name", name])
            .args(["--instance-id", id, "--membership", membership])
            .arg(script)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run"),
    )
}

fn log(d: &Path, id: &str) -> String {
    std::fs::read_to_string(d.join(format!("{id}.log"))).unwrap_or_default()
}

/// Records `from..to` (qty 0 every tenth: filtered out), dealt round the partitions, through
/// the broker at `addr`.
fn produce(addr: &str, topic: &str, from: u64, to: u64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for id in from..to {
        let qty = if id % 10 == 0 { 0 } else { 1 + id % 3 };
        let payload = format!("{{\"id\":{id},\"qty\":{qty}}}");
        p.send(
            BaseRecord::<[u8], [u8]>::to(topic)
                .payload(payload.as_bytes())
                .partition((id % PARTITIONS as u64) as i32),
        )
        .map_err(|(e, _)| e)
        .expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// The committed rows in `out` (part files; in-progress ones are hidden): id → times seen, and
/// which processes wrote them.
fn committed(out: &Path) -> (BTreeMap<u64, u32>, Vec<String>) {
    let mut seen = BTreeMap::new();
    let mut writers = Vec::new();
    for e in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("part-") {
            continue;
        }
        if let Some(w) = name.split('-').nth(1) {
            writers.push(w.to_owned());
        }
        for line in std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
            let id = v["id"].as_u64().expect("id");
            assert_eq!(
                v["qty"].as_u64(),
                Some(2 * (1 + id % 3)),
                "row {line} is not the projection of record {id}"
            );
            assert_eq!(
                v["part"].as_u64(),
                Some(id % PARTITIONS as u64),
                "row {line}: the record came from another partition"
            );
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    writers.sort();
    writers.dedup();
    (seen, writers)
}

/// The ids the job keeps of records `0..n`.
fn kept(n: u64) -> Vec<u64> {
    (0..n).filter(|id| id % 10 != 0).collect()
}

/// Waits until the committed rows are those of records `0..n`, each once (failing on a
/// duplicate at once, on a timeout with what is missing).
fn wait_for_all(out: &Path, n: u64, d: &Path, ids: &[&str]) -> Vec<String> {
    let want = kept(n);
    let started = Instant::now();
    loop {
        let (seen, writers) = committed(out);
        let doubled: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
        assert!(doubled.is_empty(), "rows written twice: {doubled:?}");
        let got: Vec<u64> = seen.keys().copied().collect();
        if got == want {
            return writers;
        }
        let unexpected: Vec<_> = got.iter().filter(|id| *id % 10 == 0 || **id >= n).collect();
        assert!(unexpected.is_empty(), "rows of no record: {unexpected:?}");
        if started.elapsed() > Duration::from_secs(90) {
            let logs: Vec<String> = ids.iter().map(|i| format!("{i}: {}", log(d, i))).collect();
            panic!(
                "after 90 s {} of {} rows are committed\n{}",
                got.len(),
                want.len(),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until process `id`'s log says the group has assigned it partitions `count` times.
fn wait_for_rebalances(d: &Path, id: &str, count: usize) {
    let started = Instant::now();
    while log(d, id).matches("rebalanced").count() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} was not assigned partitions {count} time(s) in 60 s: {}",
            log(d, id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut m: Member) {
    // SIGINT: the job stops with a final checkpoint, which commits its last rows
    let _ = Command::new("kill")
        .args(["-INT", &m.0.id().to_string()])
        .status();
    let started = Instant::now();
    while m.0.try_wait().ok().flatten().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a process did not stop within 30 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL.
fn kill(mut m: Member) {
    m.0.kill().expect("SIGKILL");
    let _ = m.0.wait();
}

/// Produces records `0..n` in the background, 40 every 50 ms, so that rows are on their way
/// through the job whenever a process comes or goes.
fn produce_steadily(b: &Broker, topic: &str, n: u64) -> std::thread::JoinHandle<()> {
    let (addr, topic) = (b.addr(), topic.to_owned());
    std::thread::spawn(move || {
        let mut from = 0;
        while from < n {
            let to = (from + 40).min(n);
            produce(&addr, &topic, from, to);
            from = to;
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

#[test]
fn processes_of_one_job_share_a_topic_exactly_once_through_a_kill_and_a_restart() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("shared_sales", PARTITIONS as u32);
    let out = d.join("kept");
    let script = job(&b, d, "shared_sales", &out);
    let n = 8000;
    let a = member(&script, d, "shared", "a", "static");
    wait_for_rebalances(d, "a", 1);
    let producing = produce_steadily(&b, "shared_sales", n);
    std::thread::sleep(Duration::from_millis(1500));
    // b's arrival deals the partitions again while rows flow: a gives half of them up only
    // after a checkpoint has committed what it read of them
    let b1 = member(&script, d, "shared", "b", "static");
    wait_for_rebalances(d, "b", 1);
    wait_for_rebalances(d, "a", 2);
    // b dies with rows read but not yet checkpointed
    std::thread::sleep(Duration::from_millis(1000));
    kill(b1);
    // back with the same instance id: a static member gets its partitions back, from the
    // offsets its last checkpoint committed
    std::thread::sleep(Duration::from_millis(500));
    let b2 = member(&script, d, "shared", "b", "static");
    producing.join().expect("producer");
    let writers = wait_for_all(&out, n, d, &["a", "b"]);
    stop(a);
    stop(b2);
    assert_eq!(
        writers,
        ["shared.a_1", "shared.b_1"],
        "each process writes its own part files"
    );
    // and nothing more came after the stop's final checkpoints
    let (seen, _) = committed(&out);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), kept(n));
    assert!(seen.values().all(|c| *c == 1));
    // a's partitions were dealt again when b came: a gave two up after a checkpoint, and reads
    // two of the four
    let a_log = log(d, "a");
    assert!(
        a_log.contains("checkpointed, then gave back shared_sales/"),
        "a held its revoked partitions until a checkpoint: {a_log}"
    );
    let last = a_log
        .lines()
        .rfind(|l| l.contains("rebalanced"))
        .unwrap_or("");
    assert_eq!(
        last.matches("shared_sales/").count(),
        2,
        "a reads half the partitions at the end: {a_log}"
    );
}

#[test]
fn a_process_that_dies_hands_its_partitions_to_the_others() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("failover_sales", PARTITIONS as u32);
    let out = d.join("kept");
    let script = job(&b, d, "failover_sales", &out);
    let a = member(&script, d, "failover", "a", "dynamic");
    let b1 = member(&script, d, "failover", "b", "dynamic");
    wait_for_rebalances(d, "a", 1);
    wait_for_rebalances(d, "b", 1);
    let n = 6000;
    let producing = produce_steadily(&b, "failover_sales", n);
    // both read while records arrive ...
    let started = Instant::now();
    while committed(&out).1.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "both processes did not commit rows within 60 s: {} / {}",
            log(d, "a"),
            log(d, "b")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = log(d, "a").matches("rebalanced").count();
    // ... and b dies mid-stream, for good
    kill(b1);
    // once b's session times out, a is dealt every partition, from b's committed offsets
    wait_for_rebalances(d, "a", before + 1);
    let a_log = log(d, "a");
    let last = a_log
        .lines()
        .rfind(|l| l.contains("rebalanced"))
        .unwrap_or("");
    assert_eq!(
        last.matches("failover_sales/").count(),
        4,
        "a reads every partition: {a_log}"
    );
    producing.join().expect("producer");
    let writers = wait_for_all(&out, n, d, &["a"]);
    assert_eq!(
        writers,
        ["failover.a_1", "failover.b_1"],
        "both processes wrote"
    );
    stop(a);
}

#[test]
fn a_process_stopped_between_its_checkpoint_and_its_offset_commit_resumes_at_the_checkpoint() {
    let b = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("gap_sales", PARTITIONS as u32);
    let out = d.join("kept");
    let script = job(&b, d, "gap_sales", &out);
    let n = 16000;
    let producing = produce_steadily(&b, "gap_sales", n);
    // the process aborts right after writing its 40th checkpoint (about 12 s in, after its
    // group's first assignment, while records arrive for 20 s), before committing its offsets
    // or its rows
    let log_file = std::fs::File::create(d.join("a.log")).expect("log");
    let status = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http", "--job-name", "gap"])
        .args(["--instance-id", "a"])
        .arg(&script)
        .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", "40")
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .expect("run");
    assert!(
        !status.success(),
        "the crash did not happen: {}",
        log(d, "a")
    );
    assert!(
        log(d, "a").contains("rebalanced"),
        "it read partitions before the crash: {}",
        log(d, "a")
    );
    // started again, its checkpoint's rows reach the sink; its partitions must start after
    // them, not at the older offsets the group still holds
    let a = member(&script, d, "gap", "a", "static");
    producing.join().expect("producer");
    wait_for_all(&out, n, d, &["a"]);
    stop(a);
}

#[test]
fn a_keyed_query_or_a_file_source_is_refused_scaled_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |script: &str| {
        let path = d.join("refused.sql");
        std::fs::write(&path, script).expect("script");
        let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
            .args(["run", "--quiet", "--no-http", "--instance-id", "a"])
            .arg(&path)
            .output()
            .expect("run");
        assert!(!o.status.success(), "a refused job ran");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let kafka = "'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = '127.0.0.1:1', 'format' = 'json'";
    let err = run(&format!(
        "CREATE TABLE s (store_id INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ({kafka});
CREATE TABLE o (store_id INT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT store_id, COUNT(*) FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, store_id;"
    ));
    assert!(
        err.contains("WindowAggregate") && err.contains("line 3") && err.contains("one process"),
        "{err}"
    );
    let err = run(&format!(
        "CREATE TABLE s (store_id INT) WITH ({kafka});
CREATE TABLE o (store_id INT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT store_id, COUNT(*) FROM s GROUP BY store_id;"
    ));
    assert!(err.contains("GroupAggregate"), "{err}");
    let input = d.join("in.json");
    std::fs::write(&input, "{\"store_id\": 1}\n").expect("input");
    let err = run(&format!(
        "CREATE TABLE s (store_id INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (store_id INT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT store_id FROM s;",
        input.display()
    ));
    assert!(
        err.contains("table `s`") && err.contains("'filesystem'"),
        "{err}"
    );
    let err = run(&format!(
        "CREATE TABLE s (store_id INT) WITH ({kafka});
CREATE TABLE t (store_id INT, name STRING) WITH ({kafka});
CREATE TABLE o (store_id INT, name STRING) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT s.store_id, t.name FROM s JOIN t ON s.store_id = t.store_id;"
    ));
    assert!(err.contains("Join") && err.contains("line 4"), "{err}");
    let err = run("CREATE TABLE o (n INT) WITH ('connector' = 'blackhole');
INSERT INTO o VALUES (1);");
    assert!(err.contains("VALUES"), "{err}");
    let err = run(&format!(
        "CREATE TABLE s (store_id INT) WITH ({kafka}, 'properties.partition.assignment.strategy' = 'cooperative-sticky');
CREATE TABLE o (store_id INT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT store_id FROM s;"
    ));
    assert!(
        err.contains("cooperative-sticky") && err.contains("eager"),
        "{err}"
    );
    // a UNION ALL is row at a time: it passes the plan step (and here fails only at the
    // unreachable broker)
    let err = run(&format!(
        "CREATE TABLE s (store_id INT) WITH ({kafka});
CREATE TABLE t (store_id INT) WITH ({kafka});
CREATE TABLE o (store_id INT) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT store_id FROM s UNION ALL SELECT store_id FROM t;"
    ));
    assert!(!err.contains("scaled-out job"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
}
