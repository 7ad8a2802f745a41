//! `tillflow-bench`: end-to-end, single-threaded throughput of the engine on generated retail events.
//!
//! It writes N retail POS events as NDJSON (the layout of the Flink conformance input, with 5 %
//! out-of-order events) to a file once, then runs each benchmark query from that file into a
//! `blackhole` sink and reports events/s and the process's peak resident memory.
//!
//! - `window`: `TUMBLE(1 min) GROUP BY store_id, sku` with `COUNT(*)`, `SUM(qty * unit_price)`.
//! - `store`: `TUMBLE(1 min) GROUP BY store_id` (20 keys, a few per worker) with `COUNT(*)`,
//!   `SUM(qty)`, `MAX(unit_price)`: on several workers it runs in two phases (AUTO).
//! - `filter`: the q6 filter/projection (`channel = 'web' AND qty > 1`, computed columns).
//! - `gen-blackhole`: the retail generator's `pos_sales` stream through SQL into a blackhole.
//! - `gen-ndjson`: the generator's `pos_sales` stream rendered as NDJSON lines (what `tillflow gen` writes).
//! - `checkpoint`: a running aggregate over 1 M keys with checkpoints off, every 10 s and every
//!   1 s (throughput, checkpoint duration and size), and the time to recover from a savepoint.
//! - `forecast`: the forecasting aggregates' per-row cost in keyed state over 1 M keys (ns/row and
//!   bytes/key), against a SUM-only baseline.

use clap::Parser;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Single-threaded throughput of tillflow queries on generated retail events")]
struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 5_000_000)]
    events: u64,
    /// Queries to run (window, store, filter, gen-blackhole, gen-ndjson, forecast, checkpoint).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "window,filter,gen-blackhole,gen-ndjson"
    )]
    queries: Vec<String>,
    /// Where to keep the generated input.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Repetitions per query (the best is reported).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Workers (`parallelism.default`); 1 runs the whole job on the job loop's thread.
    #[arg(long, short = 'p', default_value_t = 1)]
    parallelism: usize,
    /// `KEY=VALUE`: a Flink `SET` before each query (repeatable), e.g.
    /// `--set table.optimizer.agg-phase-strategy=TWO_PHASE`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

const SOURCE: &str = "CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
";

fn query(name: &str) -> Option<String> {
    let body = match name {
        "window" => {
            "CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, sku STRING, cnt BIGINT, revenue DOUBLE)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT window_start, window_end, store_id, sku, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id, sku;"
        }
        "store" => {
            "CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, cnt BIGINT, units INT, top_price DOUBLE)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT window_start, window_end, store_id, COUNT(*), SUM(qty), MAX(unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;"
        }
        "filter" => {
            "CREATE TABLE sink (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE, line_total DOUBLE, customer STRING)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT event_time, store_id, sku, qty, unit_price, qty * unit_price, COALESCE(customer_id, 'anonymous')
FROM events WHERE channel = 'web' AND qty > 1;"
        }
        _ => return None,
    };
    Some(format!("{SOURCE}\n{body}"))
}

/// SplitMix64, so the input is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_ts(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let tod = ms.rem_euclid(86_400_000);
    // 2024-03-01 is day 19783
    let (y, m, d) = civil(days);
    out.push_str(&format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        tod / 3_600_000,
        (tod / 60_000) % 60,
        (tod / 1000) % 60,
        tod % 1000
    ));
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn generate(path: &Path, n: u64) -> std::io::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut rng = Rng(42);
    let start_ms: i64 = 19_783 * 86_400_000 + 20 * 3_600_000; // 2024-03-01 20:00
    let mut t = start_ms;
    let prices = [0.99, 1.19, 1.49, 2.49, 3.99, 4.99, 9.99, 24.5, 39.99, 99.0];
    let channels = ["store", "store", "store", "web", "app"];
    let mut line = String::with_capacity(256);
    for _ in 0..n {
        t += rng.below(3) as i64; // ~1 event per ms: 60k events a minute
        let mut ts = t;
        if rng.below(100) < 5 {
            ts -= 100 + rng.below(10_000) as i64; // out of order by 0.1-10 s
        }
        line.clear();
        line.push_str("{\"event_time\":\"");
        write_ts(&mut line, ts);
        let sku = 1 + (rng.below(600) * rng.below(600)) / 1200; // skewed popularity, 300 SKUs
        let customer = rng.below(100);
        line.push_str(&format!(
            "\",\"store_id\":{},\"sku\":\"SKU-{:04}\",\"qty\":{},\"unit_price\":{},\"customer_id\":{},\"channel\":\"{}\"}}\n",
            1 + rng.below(20),
            sku,
            1 + rng.below(5),
            prices[rng.below(prices.len() as u64) as usize],
            if customer < 15 { "null".to_string() } else { format!("\"C{:05}\"", rng.below(50_000)) },
            channels[rng.below(channels.len() as u64) as usize]
        ));
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

/// Times the generator alone, rendering `pos_sales` as NDJSON into a reused buffer.
fn gen_ndjson(events: u64) {
    use tillflow_retail::streams::{fill_row, write_json};
    let stream = tillflow_retail::Stream::PosSales;
    let schema = stream.schema();
    let mut generator =
        tillflow_retail::Generator::new(tillflow_retail::Config::default()).only(&[stream]);
    let mut row = tillflow_types::Row::default();
    let mut line = String::with_capacity(256);
    let mut bytes = 0usize;
    let t = Instant::now();
    let mut n = 0u64;
    while n < events {
        let Some(e) = generator.next() else { break };
        if !stream.contains(&e) {
            continue;
        }
        fill_row(&e, &generator.catalog, &mut row);
        line.clear();
        write_json(&row, &schema, e.malformed, &mut line);
        bytes += line.len();
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "gen-ndjson: {:>6.2} M rows/s ({:.2} s, {n} rows, {:.0} MiB of NDJSON), peak RSS {:.0} MiB",
        n as f64 / secs / 1e6,
        secs,
        bytes as f64 / (1 << 20) as f64,
        peak_rss_mib()
    );
}

/// The forecasting aggregates in keyed state: `keys` keys are created (timed apart), then `rows`
/// updates in random key order; state bytes per key are counted from the structures.
fn forecast_bench(rows: u64, keys: u64) {
    use tillflow_runtime::agg::{new_accs, update_all, Acc, AggCall, AggKind};
    use tillflow_runtime::forecast::ModelSpec;
    use tillflow_runtime::state::KeyedState;
    use tillflow_types::{DataType, Row, Value};
    let call = |kind: AggKind, params: &[f64]| AggCall {
        kind,
        arg: Some(0),
        distinct: false,
        arg_type: DataType::Double,
        result_type: kind.result_type(DataType::Double),
        filter: None,
        model: (kind != AggKind::Sum)
            .then(|| ModelSpec::from_call(kind, params).expect("parameters")),
        separator: None,
        retracts: false,
        lag: None,
        python: None,
    };
    let sets: [(&str, Vec<AggCall>); 5] = [
        ("SUM (baseline)", vec![call(AggKind::Sum, &[])]),
        ("EWMA", vec![call(AggKind::Ewma, &[0.2])]),
        ("ANOMALY_SCORE", vec![call(AggKind::AnomalyScore, &[])]),
        (
            "HOLT_WINTERS m=24",
            vec![call(AggKind::HoltWinters, &[0.3, 0.1, 0.2, 24.0])],
        ),
        (
            "all four",
            vec![
                call(AggKind::Ewma, &[0.2]),
                call(AggKind::EwmVar, &[0.2]),
                call(AggKind::AnomalyScore, &[]),
                call(AggKind::HoltWinters, &[0.3, 0.1, 0.2, 24.0]),
            ],
        ),
    ];
    for (name, calls) in &sets {
        let mut state: KeyedState<Vec<Acc>> = KeyedState::default();
        let mut rng = Rng(7);
        let mut row = Row::with_capacity(1);
        row.values.push(Value::Float(0.0));
        let mut key = Vec::with_capacity(8);
        let mut scratch = Vec::new();
        let mut step = |k: u64, i: u64, state: &mut KeyedState<Vec<Acc>>| -> bool {
            key.clear();
            key.extend_from_slice(&k.to_le_bytes());
            row.values[0] = Value::Float(100.0 + (i % 97) as f64);
            let accs = state.get_or_insert_with(&key, || new_accs(calls));
            update_all(accs, calls, &row, false, &mut scratch).is_ok()
        };
        let started = Instant::now();
        for k in 0..keys {
            if !step(k, k, &mut state) {
                eprintln!("forecast: update failed");
                return;
            }
        }
        let insert = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for i in 0..rows {
            if !step(rng.below(keys), i, &mut state) {
                eprintln!("forecast: update failed");
                return;
            }
        }
        let update = started.elapsed().as_secs_f64();
        // per key: the hash table's entry (hash, boxed key, the Vec) + the key + the accumulators
        // + what a model holds on the heap (Holt-Winters' seasonal terms)
        let model_heap: usize = state
            .get_mut(&0u64.to_le_bytes())
            .map(|accs| {
                accs.iter()
                    .map(|a| match a {
                        Acc::Model(m) => m.bytes().saturating_sub(std::mem::size_of_val(m)),
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0);
        let per_key = 8 + 16 + 24 + 8 + calls.len() * std::mem::size_of::<Acc>() + model_heap;
        println!(
            "forecast {name:>18}: {:>5.0} ns/update ({rows} updates over {keys} keys, {update:.2} s; creating the keys {:.0} ns/key), state ~{per_key} bytes/key",
            update * 1e9 / rows as f64,
            insert * 1e9 / keys as f64,
        );
    }
}

/// Checkpoint cost: a running aggregate over `keys` keys fed `events` events from NDJSON into a
/// blackhole, without checkpoints and with them every 10 s and every 1 s (throughput, checkpoint
/// duration and size), then a savepoint near the end and the time to load and restore it into a
/// fresh job.
fn checkpoint_bench(dir: &Path, events: u64, keys: u64) {
    use tillflow_runtime::checkpoint::CheckpointStore;
    let input = dir.join(format!("tillflow-bench-keys-{events}-{keys}.ndjson"));
    if !input.exists() {
        let write = || -> std::io::Result<()> {
            let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&input)?);
            let mut rng = Rng(9);
            for i in 0..events {
                // every key appears (a permutation of i mod keys), then at random
                let k = if i < keys {
                    (i * 2_654_435_761) % keys
                } else {
                    rng.below(keys)
                };
                writeln!(w, r#"{{"k":"K{k:07}","x":{}}}"#, i % 100)?;
            }
            w.flush()
        };
        if let Err(e) = write() {
            eprintln!("error: cannot write {}: {e}", input.display());
            return;
        }
    }
    let sql = format!(
        "CREATE TABLE ev (k STRING, x INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE out (k STRING, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT k, COUNT(*), SUM(x) FROM ev GROUP BY k;",
        input.display()
    );
    let job = || {
        tillflow_sql::session::Session::new()
            .execute_script(&sql, &BTreeMap::new())
            .map_err(|e| e.to_string())
            .and_then(|p| p.instantiate().map_err(|e| e.to_string()))
    };
    let root = dir.join(format!("tillflow-bench-checkpoints-{}", std::process::id()));
    let mut base = 0.0;
    for interval in [None, Some(10u64), Some(1)] {
        let mut j = match job() {
            Ok(j) => j,
            Err(e) => return eprintln!("error: {e}"),
        };
        let store = CheckpointStore::new(&root, "bench", 1);
        if let Some(s) = interval {
            if let Err(e) = j.enable_checkpoints(store, std::time::Duration::from_secs(s)) {
                return eprintln!("error: {e}");
            }
        }
        let t = Instant::now();
        if let Err(e) = j.run() {
            return eprintln!("error: {e}");
        }
        let secs = t.elapsed().as_secs_f64();
        let rate = events as f64 / secs / 1e6;
        match (interval, j.checkpoint_stats()) {
            (Some(s), Some(c)) => println!(
                "checkpoint every {s:>2} s: {rate:.2} M events/s ({:+.0} % time), {} checkpoints, mean {:.0} ms (the job paused {:.0} ms of it), the last ({} keys) {:.1} MiB in {:.0} ms",
                (secs / base - 1.0) * 100.0,
                c.completed,
                c.total_micros as f64 / c.completed.max(1) as f64 / 1e3,
                c.total_pause_micros as f64 / c.completed.max(1) as f64 / 1e3,
                keys,
                c.last_bytes as f64 / (1 << 20) as f64,
                c.last_micros as f64 / 1e3
            ),
            _ => {
                base = secs;
                println!("no checkpoints:       {rate:.2} M events/s ({secs:.2} s, {keys} keys)");
            }
        }
    }
    // a savepoint near the end (stop flag), then recovery into a fresh job
    let mut j = match job() {
        Ok(j) => j,
        Err(e) => return eprintln!("error: {e}"),
    };
    let store = CheckpointStore::new(&root, "bench", 1);
    if let Err(e) = j.enable_checkpoints(store.clone(), std::time::Duration::from_secs(3600)) {
        return eprintln!("error: {e}");
    }
    let stop = j.stop_handle();
    let near_end = events * 9 / 10;
    j.on_progress(Box::new(move |p| {
        if p.records >= near_end {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }));
    if let Err(e) = j.run() {
        return eprintln!("error: {e}");
    }
    let Ok(Some(latest)) = store.latest() else {
        return eprintln!("error: no savepoint was written");
    };
    let from = store.location_of(latest);
    let mut fresh = match job() {
        Ok(j) => j,
        Err(e) => return eprintln!("error: {e}"),
    };
    if let Err(e) = fresh.enable_checkpoints(store.clone(), std::time::Duration::from_secs(3600)) {
        return eprintln!("error: {e}");
    }
    let t = Instant::now();
    let restored = store
        .load_id(latest)
        .map_err(|e| e.to_string())
        .and_then(|snap| {
            let load = t.elapsed().as_secs_f64();
            fresh
                .restore(&snap, &from)
                .map(|_| load)
                .map_err(|e| e.to_string())
        });
    match restored {
        Ok(load) => println!(
            "recovery: load and verify {:.0} ms, restore into a fresh job {:.0} ms (savepoint at {} of {events} events)",
            load * 1e3,
            (t.elapsed().as_secs_f64() - load) * 1e3,
            near_end
        ),
        Err(e) => eprintln!("error: {e}"),
    }
    let _ = store.remove_all();
    let _ = std::fs::remove_dir_all(&root);
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// CPU time (user + system) of the whole process so far, seconds (`/proc/self/stat`, in clock
/// ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // the fields after the command name (which is in parentheses)
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let input = dir.join(format!("tillflow-bench-events-{}.ndjson", args.events));
    if !input.exists() {
        eprintln!(
            "generating {} events into {} ...",
            args.events,
            input.display()
        );
        let t = Instant::now();
        if let Err(e) = generate(&input, args.events) {
            eprintln!("error: cannot write {}: {e}", input.display());
            return std::process::ExitCode::FAILURE;
        }
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!(
        "input: {} events, {:.0} MiB NDJSON ({})",
        args.events,
        size as f64 / (1 << 20) as f64,
        input.display()
    );
    let mut vars = BTreeMap::new();
    vars.insert("INPUT".to_string(), input.display().to_string());
    for q in &args.queries {
        if q == "forecast" {
            forecast_bench(args.events.max(1_000_000) * 5, 1_000_000);
            continue;
        }
        if q == "gen-ndjson" {
            gen_ndjson(args.events);
            continue;
        }
        if q == "checkpoint" {
            checkpoint_bench(&dir, args.events, 1_000_000);
            continue;
        }
        let sql = if q == "gen-blackhole" {
            Some(format!(
                "CREATE TABLE sales (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'rows' = '{}');
CREATE TABLE sink (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT, unit_price DOUBLE, customer_id STRING, channel STRING)
WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT * FROM sales;",
                args.events
            ))
        } else {
            query(q)
        };
        let Some(mut sql) = sql else {
            eprintln!("error: unknown query '{q}' (window, store, filter)");
            return std::process::ExitCode::FAILURE;
        };
        for kv in args.sets.iter().rev() {
            let Some((k, v)) = kv.split_once('=') else {
                eprintln!("error: --set wants KEY=VALUE, got '{kv}'");
                return std::process::ExitCode::FAILURE;
            };
            sql = format!("SET '{}' = '{}';\n{sql}", k.trim(), v.trim());
        }
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        let mut rows = 0;
        for _ in 0..args.runs {
            let mut plan = match tillflow_sql::session::Session::new().execute_script(&sql, &vars) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            plan.parallelism = Some(args.parallelism);
            let run = plan
                .instantiate()
                .map_err(|e| e.to_string())
                .and_then(|mut job| {
                    let (t, cpu) = (Instant::now(), cpu_seconds());
                    let r = job.run().map_err(|e| e.to_string())?;
                    Ok((t.elapsed().as_secs_f64(), cpu_seconds() - cpu, r))
                });
            match run {
                Ok((secs, cpu, report)) => {
                    best = best.min(secs);
                    best_cpu = best_cpu.min(cpu);
                    rows = report.sinks.iter().map(|(_, n)| n).sum::<u64>();
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        println!(
            "{q:>7}: {:>6.2} M events/s ({:.2} s, {:.2} CPU-s per M events, {} output rows, parallelism {}), peak RSS {:.0} MiB",
            args.events as f64 / best / 1e6,
            best,
            best_cpu / (args.events as f64 / 1e6),
            rows,
            args.parallelism,
            peak_rss_mib()
        );
    }
    std::process::ExitCode::SUCCESS
}
