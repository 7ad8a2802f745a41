//! The HTTP options of `run` and `demo`, and publishing a job's counters to the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tillflow_runtime::job::{Job, JobReport, NodeRef};
use tillflow_server::{JobStatus, NodeStatus, Status};

/// Where (and whether) to serve the API and metrics.
#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// Serve the HTTP API and Prometheus metrics on this address (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Do not serve HTTP.
    #[arg(long)]
    pub no_http: bool,
    /// Bearer token required on every request (needed to serve beyond loopback).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TILLFLOW_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
    /// Host names (comma-separated) the server answers besides loopback ones, when no token is
    /// set: requests naming any other host are refused (DNS rebinding).
    #[arg(long, value_name = "HOSTS", value_delimiter = ',')]
    pub http_allowed_hosts: Vec<String>,
    /// When the job ends, keep serving its final counters, graph and result rows (until Ctrl-C).
    #[arg(long)]
    pub keep_serving: bool,
}

/// Blocks until `stop` is set (Ctrl-C) when `--keep-serving` was given and the server runs.
pub fn keep_serving(args: &HttpArgs, serving: bool, stop: &AtomicBool, quiet: bool) {
    if !(args.keep_serving && serving) {
        return;
    }
    if !quiet {
        eprintln!("the job has ended; still serving its results (Ctrl-C to exit)");
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Publishes one job's counters.
pub struct Publisher {
    status: Status,
    id: String,
    name: String,
    /// The result tables' primary keys (see [`Publisher::with_table_keys`]).
    table_keys: Vec<(String, Vec<String>)>,
    started: Instant,
    /// Set when the API stopped the job; the final state is then answered before exiting.
    requested: std::sync::Arc<AtomicBool>,
    /// Set once the API has answered the stop request with the final state.
    answered: std::sync::Arc<AtomicBool>,
}

/// Starts the server as `args` say; `None` when HTTP is off or the default port is taken.
pub fn start(args: &HttpArgs, quiet: bool) -> Result<Option<Status>, String> {
    if args.no_http {
        return Ok(None);
    }
    let explicit = args.http.is_some();
    let addr = args
        .http
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let status = Status::default();
    match tillflow_server::serve(
        addr,
        args.auth_token.clone(),
        args.http_allowed_hosts.clone(),
        status.clone(),
    ) {
        Ok(bound) => {
            if !quiet {
                eprintln!("serving the API on http://{bound}/api/jobs and metrics on http://{bound}/metrics");
            }
            Ok(Some(status))
        }
        Err(e) if !explicit && matches!(e, tillflow_server::ServerError::Bind { .. }) => {
            if !quiet {
                eprintln!(
                    "note: {e}; running without HTTP (--http ADDR to choose another address)"
                );
            }
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The report's checkpoint counters as the API shows them.
fn state_store(r: &JobReport) -> Option<tillflow_server::StateStoreStatus> {
    r.state_store.map(|s| tillflow_server::StateStoreStatus {
        disk_bytes: s.disk_bytes,
        memory_bytes: s.memory_bytes,
        memory_budget: s.memory_budget,
        entries_spilled: s.entries_spilled,
        entries_loaded: s.entries_loaded,
    })
}

fn checkpoints(r: &JobReport) -> Option<tillflow_server::CheckpointStatus> {
    r.checkpoints.map(|c| tillflow_server::CheckpointStatus {
        completed: c.completed,
        last_id: c.last_id,
        last_bytes: c.last_bytes,
        last_full_bytes: c.last_full_bytes,
        last_duration_ms: c.last_micros as f64 / 1e3,
        last_pause_ms: c.last_pause_micros as f64 / 1e3,
    })
}

/// The newest event time any source of the job has brought (the watermark assigners see it).
fn stream_time(r: &JobReport) -> Option<i64> {
    r.operators
        .iter()
        .filter_map(|(_, m)| m.max_event_time)
        .max()
}

fn timestamp_text(t: i64) -> String {
    let mut s = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut s, t, 3);
    s
}

fn nodes(r: &JobReport, before: &[NodeStatus], secs: f64) -> Vec<NodeStatus> {
    let mut out = Vec::new();
    let newest = stream_time(r);
    for (i, (name, m)) in r.sources.iter().enumerate() {
        out.push(NodeStatus {
            kind: "source",
            parallelism: 1,
            name: name.clone(),
            rows_in: m.records,
            rows_out: m.records,
            bad_records: m.bad_records,
            lag: m.lag,
            partitions: r
                .partition_lag
                .get(i)
                .map(|ps| {
                    ps.iter()
                        .map(|(p, lag)| tillflow_server::PartitionLag {
                            partition: p.clone(),
                            lag: *lag,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ..NodeStatus::default()
        });
    }
    for (i, (name, m)) in r.operators.iter().enumerate() {
        let workers = r.workers.get(i).map_or(&[][..], Vec::as_slice);
        out.push(NodeStatus {
            kind: "operator",
            name: name.clone(),
            parallelism: workers.len().max(1),
            workers: workers
                .iter()
                .map(|w| tillflow_server::WorkerStatus {
                    rows_in: w.rows_in,
                    busy_ms: w.busy_micros / 1000,
                    backpressured_ms: w.backpressured_micros / 1000,
                    ..Default::default()
                })
                .collect(),
            rows_in: m.records_in,
            rows_out: m.records_out,
            late_dropped: m.late_dropped,
            state_entries: m.state_entries,
            state_bytes: m.state_bytes,
            state_expired: m.state_expired,
            watermark: m.watermark.map(timestamp_text),
            watermark_lag_ms: m.watermark.map(|w| (now_micros() - w) / 1000),
            stream_lag_ms: m.watermark.zip(newest).map(|(w, n)| (n - w).max(0) / 1000),
            model: m.model.as_ref().map(model_status),
            ..NodeStatus::default()
        });
    }
    for (name, rows) in &r.sinks {
        out.push(NodeStatus {
            kind: "sink",
            parallelism: 1,
            name: name.clone(),
            rows_in: *rows,
            rows_out: *rows,
            ..NodeStatus::default()
        });
    }
    let (ns, no) = (r.sources.len(), r.operators.len());
    let index = |n: NodeRef| match n {
        NodeRef::Source(i) => i,
        NodeRef::Operator(i) => ns + i,
        NodeRef::Sink(i) => ns + no + i,
    };
    for &(from, to) in &r.edges {
        let (from, to) = (index(from), index(to));
        if let Some(n) = out.get_mut(to) {
            n.inputs.push(from);
        }
    }
    // depth: the longest path from a source (edges only go downstream, so this settles)
    for _ in 0..out.len() {
        let mut changed = false;
        for i in 0..out.len() {
            let d = out[i]
                .inputs
                .iter()
                .filter_map(|&j| out.get(j))
                .map(|n| n.depth + 1)
                .max()
                .unwrap_or(0);
            if d != out[i].depth {
                out[i].depth = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (i, n) in out.iter_mut().enumerate() {
        n.id = i;
        let prev = before.get(i).map_or(0, |b| b.rows_out);
        n.rows_per_sec = if secs > 0.0 {
            n.rows_out.saturating_sub(prev) as f64 / secs
        } else {
            0.0
        };
        for (k, w) in n.workers.iter_mut().enumerate() {
            let was = before.get(i).and_then(|b| b.workers.get(k));
            if secs > 0.0 {
                let delta =
                    |now: u64, then: Option<u64>| now.saturating_sub(then.unwrap_or(0)) as f64;
                w.rows_per_sec = delta(w.rows_in, was.map(|x| x.rows_in)) / secs;
                w.busy = (delta(w.busy_ms, was.map(|x| x.busy_ms)) / 1e3 / secs).min(1.0);
                w.backpressured =
                    (delta(w.backpressured_ms, was.map(|x| x.backpressured_ms)) / 1e3 / secs)
                        .min(1.0);
            }
        }
    }
    out
}

/// The primary key of every result table of `plan` that has one, by its columns' names as the
/// rows carry them (`PRIMARY KEY (Store_Id)` on a column `store_id` is `store_id`).
pub fn table_keys(plan: &tillflow_sql::session::JobPlan) -> Vec<(String, Vec<String>)> {
    plan.sink_tables()
        .into_iter()
        .filter(|t| !t.primary_key.is_empty())
        .map(|t| {
            let key = t
                .primary_key
                .iter()
                .map(|k| {
                    t.schema
                        .fields
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case(k))
                        .map_or_else(|| k.clone(), |f| f.name.clone())
                })
                .collect();
            (t.name.clone(), key)
        })
        .collect()
}

/// The result tables' rows since the last report, parsed.
fn tables(t: &[(String, Vec<String>)]) -> Vec<(String, Vec<serde_json::Value>)> {
    t.iter()
        .map(|(t, rows)| {
            (
                t.clone(),
                rows.iter()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
            )
        })
        .collect()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Publisher {
    /// A publisher for the job named `name` (its id is `name` made URL-safe).
    pub fn new(status: Status, name: &str) -> Self {
        let id: String = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Publisher {
            status,
            id,
            name: name.to_owned(),
            table_keys: Vec::new(),
            started: Instant::now(),
            requested: Default::default(),
            answered: Default::default(),
        }
    }

    /// Declares the primary keys of the job's result tables: the API serves each such table as
    /// its current row per key (an upsert table as its database holds it).
    pub fn with_table_keys(mut self, keys: Vec<(String, Vec<String>)>) -> Self {
        self.table_keys = keys;
        self
    }

    /// Hooks the job so that its counters are published while it runs, and so that
    /// `POST /api/jobs/{id}/stop` (`tillflow stop`) can stop it.
    pub fn attach(&self, job: &mut Job) {
        tillflow_server::register_control(
            &self.status,
            &self.id,
            tillflow_server::JobControl {
                stop: job.stop_handle(),
                savepoint: job.checkpoint_stats().is_some(),
                requested: self.requested.clone(),
                answered: self.answered.clone(),
            },
        );
        // listed at once, before the first counters arrive
        tillflow_server::publish(
            &self.status,
            JobStatus {
                id: self.id.clone(),
                name: self.name.clone(),
                state: "running".into(),
                table_keys: self.table_keys.clone(),
                ..JobStatus::default()
            },
        );
        let status = self.status.clone();
        let (id, name) = (self.id.clone(), self.name.clone());
        let mut last: Option<(Instant, JobStatus)> = None;
        job.on_report(Box::new(move |r| {
            let now = Instant::now();
            let (secs, before) = match &last {
                Some((t, s)) => (now.duration_since(*t).as_secs_f64(), s.nodes.as_slice()),
                None => (r.elapsed.as_secs_f64(), &[][..]),
            };
            let records: u64 = r.sources.iter().map(|(_, m)| m.records).sum();
            let prev_records = last.as_ref().map_or(0, |(_, s)| s.records);
            let js = JobStatus {
                id: id.clone(),
                name: name.clone(),
                state: "running".into(),
                elapsed_secs: r.elapsed.as_secs_f64(),
                records,
                records_per_sec: if secs > 0.0 {
                    records.saturating_sub(prev_records) as f64 / secs
                } else {
                    0.0
                },
                nodes: nodes(r, before, secs),
                checkpoints: checkpoints(r),
                state_store: state_store(r),
                tables: tables(&r.tables),
                stream_time: stream_time(r).map(timestamp_text),
                ..JobStatus::default()
            };
            // only the counters are compared with the next report: the rows are not kept
            let mut js = js;
            let tables = std::mem::take(&mut js.tables);
            let kept = js.clone();
            js.tables = tables;
            tillflow_server::publish(&status, js);
            last = Some((now, kept));
        }));
    }

    /// Publishes the final counters (or the failure).
    pub fn finish(&self, report: Option<&JobReport>) {
        let js = JobStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            state: if report.is_some() {
                "finished"
            } else {
                "failed"
            }
            .into(),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            records: report.map_or(0, |r| r.sources.iter().map(|(_, m)| m.records).sum()),
            records_per_sec: 0.0,
            nodes: report.map(|r| nodes(r, &[], 0.0)).unwrap_or_default(),
            checkpoints: report.and_then(checkpoints),
            state_store: report.and_then(state_store),
            tables: report.map(|r| tables(&r.tables)).unwrap_or_default(),
            stream_time: report.and_then(stream_time).map(timestamp_text),
            ..JobStatus::default()
        };
        tillflow_server::publish(&self.status, js);
        if self.requested.load(Ordering::Relaxed) {
            // a stop through the API waits for this final state: let it be answered before
            // the process exits
            let until = Instant::now() + std::time::Duration::from_secs(2);
            while !self.answered.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A model's prequential errors for the API.
fn model_status(m: &tillflow_runtime::operator::ModelMetrics) -> tillflow_server::ModelStatus {
    let n = m.learned as f64;
    let mean = |sum: f64| (m.learned > 0).then(|| sum / n);
    tillflow_server::ModelStatus {
        learned: m.learned,
        mae: mean(m.abs_error),
        rmse: mean(m.squared_error).map(f64::sqrt),
        recent_mae: (m.recent_rows > 0.0).then(|| m.recent_abs_error / m.recent_rows),
        accuracy: if m.classifier {
            mean(m.correct as f64)
        } else {
            None
        },
        log_loss: if m.classifier { mean(m.log_loss) } else { None },
    }
}
