//! tillflow's HTTP server: the JSON API over the jobs of this process and their operator graph,
//! and Prometheus metrics, served from a thread of its own.
//!
//! The job loop stays single-threaded and never waits for the server: about five times a second
//! it publishes a [`JobStatus`] into a shared [`Status`] board, which the handlers read. The one
//! way back is a job's [`JobControl`]: `POST /api/jobs/{id}/stop` sets the job's stop flag, which
//! the loop reads between two polls. Binding a non-loopback address requires a bearer token,
//! checked on every request. Without a token, only requests whose `Host` is a loopback name or
//! address (or one of `allowed_hosts`) are answered: a web page whose name an attacker rebinds to
//! 127.0.0.1 (DNS rebinding) is the same origin to the browser, but its `Host` is its own name.

pub mod views;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use thiserror::Error;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// A non-loopback address without a token.
    #[error("refusing to serve on {0} without --auth-token: only loopback addresses may go unauthenticated")]
    NeedsToken(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// One operator (or source, or sink) of a job's graph.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeStatus {
    /// `source`, `operator` or `sink`.
    pub kind: &'static str,
    /// Description.
    pub name: String,
    /// Its index in the job's `nodes`.
    pub id: usize,
    /// The nodes feeding it (indices in the job's `nodes`); empty for sources.
    pub inputs: Vec<usize>,
    /// Depth in the graph: 0 for sources, else one more than its deepest input.
    pub depth: usize,
    /// Rows in (for sources: records read).
    pub rows_in: u64,
    /// Rows out (for sinks: rows written).
    pub rows_out: u64,
    /// Rows per second out, over the last interval.
    pub rows_per_sec: f64,
    /// Records dropped as late.
    pub late_dropped: u64,
    /// Malformed records skipped or dead-lettered (sources).
    pub bad_records: u64,
    /// Keys or windows in state.
    pub state_entries: u64,
    /// Bytes of keyed state as a checkpoint holds it (estimated).
    pub state_bytes: u64,
    /// State entries expired by the state TTL (`table.exec.state.ttl`).
    pub state_expired: u64,
    /// Records behind the end of the input (Kafka consumer lag).
    pub lag: u64,
    /// Consumer lag per partition (Kafka sources).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionLag>,
    /// The event-time watermark the node has reached, as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), for
    /// nodes that track one.
    pub watermark: Option<String>,
    /// Milliseconds between the wall clock and that watermark.
    pub watermark_lag_ms: Option<i64>,
    /// Milliseconds between the stream's own clock (the newest event time the job's sources
    /// have brought, [`JobStatus::stream_time`]) and that watermark: how far behind the data the
    /// node is, also when the data is history replayed days after it happened.
    pub stream_lag_ms: Option<i64>,
    /// How many workers run it (1 for the job loop's own thread).
    pub parallelism: usize,
    /// Each worker's share, for a node run by several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerStatus>,
    /// A model that learns on the stream (`ML_PREDICT`): its prequential errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelStatus>,
}

/// How a model that learns on the stream has done: each labelled row scored by the prediction
/// made before the model learned from it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelStatus {
    /// Rows learned from.
    pub learned: u64,
    /// Mean absolute error over every row learned (a classifier: of P(true)).
    pub mae: Option<f64>,
    /// Root mean squared error over every row learned.
    pub rmse: Option<f64>,
    /// Mean absolute error of the last few thousand rows (each earlier row counting 0.1 % less).
    pub recent_mae: Option<f64>,
    /// A classifier: the share of rows whose class was right.
    pub accuracy: Option<f64>,
    /// A classifier: mean log loss.
    pub log_loss: Option<f64>,
}

/// One worker of a node run by several.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    /// Rows the worker's instance of the node received.
    pub rows_in: u64,
    /// Rows per second in, over the last interval.
    pub rows_per_sec: f64,
    /// Milliseconds the worker spent working (back-pressure included).
    pub busy_ms: u64,
    /// Milliseconds the worker waited for a full channel downstream (back-pressure).
    pub backpressured_ms: u64,
    /// Share of the last interval the worker was busy (0 to 1).
    pub busy: f64,
    /// Share of the last interval the worker was back-pressured (0 to 1).
    pub backpressured: f64,
}

/// One partition's consumer lag.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PartitionLag {
    /// `topic/partition`.
    pub partition: String,
    /// Records between the read position and the partition's end.
    pub lag: u64,
}

/// What checkpointing has done in a job.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckpointStatus {
    /// Checkpoints completed.
    pub completed: u64,
    /// The last one's number.
    pub last_id: u64,
    /// The last one's state size, bytes (with incremental checkpoints, what changed since the
    /// previous one).
    pub last_bytes: u64,
    /// The bytes a restore of the last one reads (it and the checkpoints it builds on).
    pub last_full_bytes: u64,
    /// The last one's duration (snapshot, write, commit), milliseconds.
    pub last_duration_ms: f64,
    /// How long the last one stopped the job (the snapshot), milliseconds.
    pub last_pause_ms: f64,
}

/// What the on-disk state backend holds and has done in a job.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StateStoreStatus {
    /// Bytes of its files on local disk.
    pub disk_bytes: u64,
    /// Estimated bytes of the entries held in memory.
    pub memory_bytes: u64,
    /// The memory budget for entries held in memory.
    pub memory_budget: u64,
    /// Entries moved to disk so far.
    pub entries_spilled: u64,
    /// Entries read back from disk so far.
    pub entries_loaded: u64,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobStatus {
    /// Identifier (URL-safe).
    pub id: String,
    /// The script or demo it runs.
    pub name: String,
    /// `running`, `finished` or `failed`.
    pub state: String,
    /// Seconds since it started.
    pub elapsed_secs: f64,
    /// Records read by all sources.
    pub records: u64,
    /// Records read per second over the last interval.
    pub records_per_sec: f64,
    /// Sources, operators and sinks, in graph order.
    pub nodes: Vec<NodeStatus>,
    /// Checkpointing, when it is on.
    pub checkpoints: Option<CheckpointStatus>,
    /// The on-disk state backend, when the job uses it.
    pub state_store: Option<StateStoreStatus>,
    /// Per result table: the rows it wrote since the previous publish (oldest first), as JSON
    /// values; [`publish`] folds them into the job's table views.
    #[serde(skip)]
    pub tables: Vec<(String, Vec<serde_json::Value>)>,
    /// The primary key of each result table that has one (its view holds a row per key).
    #[serde(skip)]
    pub table_keys: Vec<(String, Vec<String>)>,
    /// The newest event time the job's sources have brought (`YYYY-MM-DD HH:MM:SS.mmm`): the
    /// stream's own clock, which replayed history runs behind the wall clock by days.
    pub stream_time: Option<String>,
}

/// How the API can stop a job of this process.
#[derive(Clone, Debug)]
pub struct JobControl {
    /// The job's stop flag (the one SIGTERM sets).
    pub stop: Arc<AtomicBool>,
    /// Whether stopping takes a savepoint (the job is checkpointed); otherwise the job drains:
    /// open windows fire and sinks commit, as at the end of a bounded input.
    pub savepoint: bool,
    /// Set when the API has asked the job to stop (the job then waits, briefly, for
    /// `answered` before its process exits).
    pub requested: Arc<AtomicBool>,
    /// Set once the stop request has been answered with the job's final state.
    pub answered: Arc<AtomicBool>,
}

/// The header a stop request must carry. Browsers cannot send it to another site without asking
/// first (and this server never says yes), so a web page cannot stop a local job.
pub const STOP_HEADER: &str = "x-tillflow-stop";

/// How long a stop request waits for the job to finish stopping before it answers 202.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// The board the job loop writes and the handlers read; every publish also wakes the live
/// update streams.
pub struct Board {
    jobs: RwLock<Vec<JobStatus>>,
    /// Per job id: its result tables as `GET /api/jobs/{id}/tables` serves them (apart from
    /// the jobs, so that answering `/api/jobs` copies no rows).
    views: RwLock<HashMap<String, views::Views>>,
    controls: RwLock<Vec<(String, JobControl)>>,
    version: tokio::sync::watch::Sender<u64>,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            jobs: RwLock::new(Vec::new()),
            views: RwLock::new(HashMap::new()),
            controls: RwLock::new(Vec::new()),
            version: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Board {
    fn read(&self) -> std::sync::LockResult<std::sync::RwLockReadGuard<'_, Vec<JobStatus>>> {
        self.jobs.read()
    }
}

/// A shared [`Board`].
pub type Status = Arc<Board>;

/// Publishes `job` (replacing the job with the same id), its tables' new rows folded into the
/// views of the job's tables.
pub fn publish(status: &Status, mut job: JobStatus) {
    let keys = std::mem::take(&mut job.table_keys);
    let tables = std::mem::take(&mut job.tables);
    if !keys.is_empty() || !tables.is_empty() {
        if let Ok(mut all) = status.views.write() {
            let views = all.entry(job.id.clone()).or_default();
            for (table, key) in keys {
                views.set_key(&table, key);
            }
            for (table, rows) in tables {
                views.apply(&table, rows);
            }
        }
    }
    if let Ok(mut jobs) = status.jobs.write() {
        match jobs.iter_mut().find(|j| j.id == job.id) {
            Some(j) => *j = job,
            None => jobs.push(job),
        }
    }
    status.version.send_modify(|v| *v += 1);
}

/// Lets `POST /api/jobs/{id}/stop` stop the job `id` (replacing an earlier control of that id).
pub fn register_control(status: &Status, id: &str, control: JobControl) {
    if let Ok(mut controls) = status.controls.write() {
        controls.retain(|(i, _)| i != id);
        controls.push((id.to_owned(), control));
    }
}

#[derive(Clone)]
struct AppState {
    status: Status,
    token: Option<Arc<str>>,
    /// Host names answered besides loopback ones (lower case, without a port).
    allowed_hosts: Arc<[String]>,
}

/// The host of a `Host` header value, without its port, lower case (`[::1]:8080` → `::1`).
fn host_name(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        v.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(v, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a request with these headers may be answered without a token: its `Host` names
/// this machine's loopback (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`) or an allowed host.
fn host_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = host_name(host);
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || state.allowed_hosts.contains(&host)
}

/// Refuses, before any handler, a request without a token whose `Host` is not allowed.
async fn check_host(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if s.token.is_none() && !host_allowed(&s, request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "this server answers requests for its loopback address only (the Host header names another host); add the name with --http-allowed-hosts, or set --auth-token\n",
        )
            .into_response();
    }
    next.run(request).await
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    match &state.token {
        None => true,
        Some(t) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == &**t),
    }
}

/// A page or asset request: the header, or `?token=` (a browser opening the page has no header).
fn page_authorized(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    authorized(state, headers)
        || state.token.as_deref().is_some_and(|t| {
            query.is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv.strip_prefix("token=").is_some_and(|v| v == t))
            })
        })
}

/// The dashboard's files, compiled into the binary (no CDN: the machines may be offline).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        "text/javascript",
        include_str!("../assets/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css",
        include_str!("../assets/dashboard.css"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript",
        include_str!("../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css",
        include_str!("../assets/vendor/uplot/uPlot.min.css"),
    ),
    (
        "vendor/uplot/LICENSE",
        "text/plain",
        include_str!("../assets/vendor/uplot/LICENSE"),
    ),
];

async fn index(State(s): State<AppState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if !page_authorized(&s, &headers, uri.query()) {
        return unauthorized();
    }
    let html = include_str!("../assets/index.html");
    // the page's own files carry the token the page was opened with
    let html = match (&s.token, uri.query()) {
        (Some(_), Some(q)) => html
            .replace(".js\"", &format!(".js?{q}\""))
            .replace(".css\"", &format!(".css?{q}\"")),
        _ => html.to_owned(),
    };
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn asset(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(path): Path<String>,
) -> Response {
    if !page_authorized(&s, &headers, uri.query()) {
        return unauthorized();
    }
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, ty, body)) => ([(header::CONTENT_TYPE, *ty)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

async fn jobs(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let jobs: Vec<JobStatus> = s.status.read().map(|j| j.clone()).unwrap_or_default();
    Json(jobs).into_response()
}

async fn job(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let found = s
        .status
        .read()
        .ok()
        .and_then(|j| j.iter().find(|j| j.id == id).cloned());
    match found {
        Some(j) => Json(j).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no job `{id}`\n")).into_response(),
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

/// A node metric: name, Prometheus type, help text and how to read it.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&NodeStatus) -> u64,
);

/// A worker metric: name, Prometheus type, help text and how to read it.
type WorkerMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&WorkerStatus) -> f64,
);

/// A metric of a part of a job's status: name, type, help, and its value.
type JobMetric<T> = (&'static str, &'static str, &'static str, fn(&T) -> f64);

/// Writes each of `metrics` (its HELP and TYPE lines, then a sample per job that has the part
/// `part` picks out).
fn job_metrics<T>(
    out: &mut String,
    jobs: &[JobStatus],
    metrics: &[JobMetric<T>],
    part: impl Fn(&JobStatus) -> Option<&T>,
) {
    use std::fmt::Write as _;
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in jobs {
            if let Some(p) = part(j) {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", label(&j.id), get(p));
            }
        }
    }
}

/// The board in Prometheus' text format.
pub fn prometheus(jobs: &[JobStatus]) -> String {
    let mut out = String::new();
    let metrics: [Metric; 8] = [
        (
            "tillflow_operator_rows_in_total",
            "counter",
            "Rows received by the operator (records read, for sources).",
            |n| n.rows_in,
        ),
        (
            "tillflow_operator_rows_out_total",
            "counter",
            "Rows emitted by the operator (rows written, for sinks).",
            |n| n.rows_out,
        ),
        (
            "tillflow_operator_late_dropped_total",
            "counter",
            "Records dropped as late.",
            |n| n.late_dropped,
        ),
        (
            "tillflow_operator_bad_records_total",
            "counter",
            "Malformed records skipped or dead-lettered.",
            |n| n.bad_records,
        ),
        (
            "tillflow_operator_state_entries",
            "gauge",
            "Keys or windows held in state.",
            |n| n.state_entries,
        ),
        (
            "tillflow_operator_state_bytes",
            "gauge",
            "Bytes of keyed state as a checkpoint holds it (estimated from a sample of entries).",
            |n| n.state_bytes,
        ),
        (
            "tillflow_operator_state_expired_total",
            "counter",
            "State entries (keys, or a join's rows) expired by the state TTL.",
            |n| n.state_expired,
        ),
        (
            "tillflow_source_lag_records",
            "gauge",
            "Records between the read position and the end of the input.",
            |n| n.lag,
        ),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in jobs {
            for (i, n) in j.nodes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{job=\"{}\",operator=\"{}\",kind=\"{}\",index=\"{i}\"}} {}",
                    label(&j.id),
                    label(&n.name),
                    n.kind,
                    get(n)
                );
            }
        }
    }
    // models that learn on the stream (ML_PREDICT): only their nodes
    type ModelMetric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ModelStatus) -> Option<f64>,
    );
    let models: [ModelMetric; 5] = [
        (
            "tillflow_model_rows_learned_total",
            "counter",
            "Rows a model that learns on the stream has learned from.",
            |m| Some(m.learned as f64),
        ),
        (
            "tillflow_model_mae",
            "gauge",
            "Mean absolute error of the model's predictions, each made before it learned the row.",
            |m| m.mae,
        ),
        (
            "tillflow_model_recent_mae",
            "gauge",
            "The same over the last few thousand rows (each earlier row counting 0.1 % less).",
            |m| m.recent_mae,
        ),
        (
            "tillflow_model_rmse",
            "gauge",
            "Root mean squared error of the model's predictions.",
            |m| m.rmse,
        ),
        (
            "tillflow_model_accuracy",
            "gauge",
            "A classifier: the share of rows whose class was right.",
            |m| m.accuracy,
        ),
    ];
    for (name, kind, help, get) in models {
        let values: Vec<String> = jobs
            .iter()
            .flat_map(|j| {
                j.nodes.iter().enumerate().filter_map(move |(i, n)| {
                    let v = get(n.model.as_ref()?)?;
                    Some(format!(
                        "{name}{{job=\"{}\",operator=\"{}\",kind=\"{}\",index=\"{i}\"}} {v}",
                        label(&j.id),
                        label(&n.name),
                        n.kind
                    ))
                })
            })
            .collect();
        if !values.is_empty() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for v in values {
                let _ = writeln!(out, "{v}");
            }
        }
    }
    let _ = writeln!(out, "# HELP tillflow_operator_parallelism Workers running the operator.\n# TYPE tillflow_operator_parallelism gauge");
    for j in jobs {
        for (i, n) in j.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "tillflow_operator_parallelism{{job=\"{}\",operator=\"{}\",kind=\"{}\",index=\"{i}\"}} {}",
                label(&j.id),
                label(&n.name),
                n.kind,
                n.parallelism.max(1)
            );
        }
    }
    let worker_metrics: [WorkerMetric; 3] = [
        (
            "tillflow_worker_rows_in_total",
            "counter",
            "Rows a worker's instance of the operator received.",
            |w| w.rows_in as f64,
        ),
        (
            "tillflow_worker_busy_seconds_total",
            "counter",
            "Time the worker running the operator spent working.",
            |w| w.busy_ms as f64 / 1e3,
        ),
        (
            "tillflow_worker_backpressured_seconds_total",
            "counter",
            "Time the worker running the operator waited for a full channel downstream.",
            |w| w.backpressured_ms as f64 / 1e3,
        ),
    ];
    for (name, kind, help, get) in worker_metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in jobs {
            for (i, n) in j.nodes.iter().enumerate() {
                for (k, w) in n.workers.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}{{job=\"{}\",operator=\"{}\",index=\"{i}\",worker=\"{k}\"}} {}",
                        label(&j.id),
                        label(&n.name),
                        get(w)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "# HELP tillflow_source_partition_lag_records Records between a partition's read position and its end (Kafka consumer lag).\n# TYPE tillflow_source_partition_lag_records gauge");
    for j in jobs {
        for (i, n) in j.nodes.iter().enumerate() {
            for p in &n.partitions {
                let (topic, partition) = p.partition.rsplit_once('/').unwrap_or((&p.partition, ""));
                let _ = writeln!(
                    out,
                    "tillflow_source_partition_lag_records{{job=\"{}\",operator=\"{}\",index=\"{i}\",topic=\"{}\",partition=\"{}\"}} {}",
                    label(&j.id),
                    label(&n.name),
                    label(topic),
                    label(partition),
                    p.lag
                );
            }
        }
    }
    let _ = writeln!(out, "# HELP tillflow_operator_watermark_lag_milliseconds Wall clock minus the operator's watermark.\n# TYPE tillflow_operator_watermark_lag_milliseconds gauge");
    for j in jobs {
        for (i, n) in j.nodes.iter().enumerate() {
            if let Some(lag) = n.watermark_lag_ms {
                let _ = writeln!(
                    out,
                    "tillflow_operator_watermark_lag_milliseconds{{job=\"{}\",operator=\"{}\",kind=\"{}\",index=\"{i}\"}} {lag}",
                    label(&j.id),
                    label(&n.name),
                    n.kind
                );
            }
        }
    }
    let checkpoint_metrics: [JobMetric<CheckpointStatus>; 5] = [
        (
            "tillflow_checkpoints_completed_total",
            "counter",
            "Checkpoints completed.",
            |c| c.completed as f64,
        ),
        (
            "tillflow_checkpoint_last_bytes",
            "gauge",
            "State size of the last checkpoint.",
            |c| c.last_bytes as f64,
        ),
        (
            "tillflow_checkpoint_last_full_bytes",
            "gauge",
            "State a restore of the last checkpoint reads: it and the checkpoints it builds on.",
            |c| c.last_full_bytes as f64,
        ),
        (
            "tillflow_checkpoint_last_duration_seconds",
            "gauge",
            "Duration of the last checkpoint (snapshot, write, commit).",
            |c| c.last_duration_ms / 1e3,
        ),
        (
            "tillflow_checkpoint_last_pause_seconds",
            "gauge",
            "How long the last checkpoint stopped the job (the snapshot).",
            |c| c.last_pause_ms / 1e3,
        ),
    ];
    job_metrics(&mut out, jobs, &checkpoint_metrics, |j| {
        j.checkpoints.as_ref()
    });
    let store_metrics: [JobMetric<StateStoreStatus>; 5] = [
        (
            "tillflow_state_disk_bytes",
            "gauge",
            "Bytes of the on-disk state backend's files.",
            |s| s.disk_bytes as f64,
        ),
        (
            "tillflow_state_memory_bytes",
            "gauge",
            "Estimated bytes of keyed-state entries held in memory (on-disk backend).",
            |s| s.memory_bytes as f64,
        ),
        (
            "tillflow_state_memory_budget_bytes",
            "gauge",
            "The on-disk backend's memory budget for entries held in memory.",
            |s| s.memory_budget as f64,
        ),
        (
            "tillflow_state_entries_spilled_total",
            "counter",
            "Keyed-state entries moved from memory to disk.",
            |s| s.entries_spilled as f64,
        ),
        (
            "tillflow_state_entries_loaded_total",
            "counter",
            "Keyed-state entries read back from disk.",
            |s| s.entries_loaded as f64,
        ),
    ];
    job_metrics(&mut out, jobs, &store_metrics, |j| j.state_store.as_ref());
    let _ = writeln!(out, "# HELP tillflow_job_records_per_second Records read per second.\n# TYPE tillflow_job_records_per_second gauge");
    for j in jobs {
        let _ = writeln!(
            out,
            "tillflow_job_records_per_second{{job=\"{}\"}} {}",
            label(&j.id),
            j.records_per_sec
        );
    }
    out
}

/// One result table's latest rows.
/// The answer to a stop request.
#[derive(Serialize)]
struct Stopping<'a> {
    id: &'a str,
    /// `finished` or `failed` once it has stopped; `stopping` if it had not yet when the request
    /// stopped waiting.
    state: &'a str,
    savepoint: bool,
    /// The job's last completed checkpoint (the savepoint, when one was taken).
    last_checkpoint: Option<u64>,
}

/// `POST /api/jobs/{id}/stop[?savepoint=true]`: asks a running job to stop — with a savepoint
/// when it is checkpointed (as SIGTERM does), else draining — and answers with its final state
/// once it has stopped. `savepoint=true` insists on a savepoint and is refused (409) for a job
/// that does not checkpoint, so nothing fires that the caller wanted kept. The request must
/// carry [`STOP_HEADER`].
async fn stop_job(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    if !headers.contains_key(STOP_HEADER) {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "a stop request must carry the header {STOP_HEADER} (tillflow stop sends it)\n"
            ),
        )
            .into_response();
    }
    let want_savepoint = query
        .get("savepoint")
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1");
    let state_of = |s: &AppState| {
        s.status.read().ok().and_then(|j| {
            j.iter()
                .find(|j| j.id == id)
                .map(|j| (j.state.clone(), j.checkpoints.as_ref().map(|c| c.last_id)))
        })
    };
    let control = s
        .status
        .controls
        .read()
        .ok()
        .and_then(|c| c.iter().find(|(i, _)| *i == id).map(|(_, c)| c.clone()));
    let Some(control) = control else {
        return (StatusCode::NOT_FOUND, format!("no job `{id}`\n")).into_response();
    };
    if let Some((st, _)) = state_of(&s).filter(|(st, _)| st != "running") {
        return (
            StatusCode::CONFLICT,
            format!("job `{id}` is not running (it has {st})\n"),
        )
            .into_response();
    }
    if want_savepoint && !control.savepoint {
        return (
            StatusCode::CONFLICT,
            format!(
                "job `{id}` is not checkpointed, so it cannot stop with a savepoint: set \
                 'execution.checkpointing.interval' in its script, or stop it without a \
                 savepoint (open windows then fire and the sinks commit, as at the end of a \
                 bounded input)\n"
            ),
        )
            .into_response();
    }
    let mut changes = s.status.version.subscribe();
    control.requested.store(true, Ordering::Relaxed);
    control.stop.store(true, Ordering::Relaxed);
    // wait for the job's final state: the job publishes it, then waits for this answer
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    let (state, last) = loop {
        if let Some((st, last)) = state_of(&s).filter(|(st, _)| st != "running") {
            break (st, last);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => break ("stopping".to_owned(), None),
        }
    };
    let code = if state == "stopping" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = Json(Stopping {
        id: &id,
        state: &state,
        savepoint: control.savepoint,
        last_checkpoint: last,
    })
    .into_response();
    control.answered.store(true, Ordering::Relaxed);
    (code, body).into_response()
}

async fn tables(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let since = match uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("since="))
            .map(str::parse::<u64>)
    }) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                "since: expected the sequence number of a change (a whole number)\n",
            )
                .into_response()
        }
    };
    let known = s
        .status
        .read()
        .map(|jobs| jobs.iter().any(|j| j.id == id))
        .unwrap_or(false);
    if !known {
        return (StatusCode::NOT_FOUND, format!("no job `{id}`\n")).into_response();
    }
    let Ok(all) = s.status.views.read() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match all.get(&id) {
        Some(v) => Json(v.rows(since)).into_response(),
        None => Json(views::Views::default().rows(since)).into_response(),
    }
}

/// Server-sent events: the jobs (as `/api/jobs` gives them) each time the board changes.
async fn events(State(s): State<AppState>, headers: HeaderMap) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let rx = s.status.version.subscribe();
    let board = s.status.clone();
    let stream = futures_util::stream::unfold((rx, board), |(mut rx, board)| async move {
        rx.changed().await.ok()?;
        let data = board
            .read()
            .ok()
            .and_then(|j| serde_json::to_string(&*j).ok())
            .unwrap_or_else(|| "[]".into());
        Some((
            Ok::<Event, std::convert::Infallible>(Event::default().event("jobs").data(data)),
            (rx, board),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let text = s.status.read().map(|j| prometheus(&j)).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Starts serving `status` on `addr` from a background thread. A non-loopback address needs a
/// `token`; the bind happens before this returns, so a busy port is reported at once.
pub fn serve(
    addr: SocketAddr,
    token: Option<String>,
    allowed_hosts: Vec<String>,
    status: Status,
) -> Result<SocketAddr, ServerError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServerError::NeedsToken(addr));
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind { addr, source })?;
    let state = AppState {
        status,
        token: token.map(Arc::from),
        allowed_hosts: allowed_hosts
            .iter()
            .map(|h| host_name(h))
            .collect::<Vec<_>>()
            .into(),
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/tables", get(tables))
        .route("/api/jobs/{id}/stop", post(stop_job))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .with_state(state);
    std::thread::Builder::new()
        .name("tillflow-http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("warning: HTTP server: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            eprintln!("warning: HTTP server stopped: {e}");
                        }
                    }
                    Err(e) => eprintln!("warning: HTTP server: {e}"),
                }
            });
        })
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok(local)
}
