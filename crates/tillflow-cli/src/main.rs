//! The `tillflow` command: run, explain or validate a Flink SQL script.

mod demo;
mod http;
mod sql;
mod stop;

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tillflow_runtime::job::JobReport;
use tillflow_sql::session::{JobPlan, Session};

#[derive(Parser)]
#[command(
    name = "tillflow",
    version,
    about = "Real-time retail stream processing with Flink SQL, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SQL script: its DDL, then every INSERT and SELECT as one job.
    Run(RunArgs),
    /// Print the streaming plan of a script without running it.
    Explain(ScriptArgs),
    /// Check a script (parse, names, types, connector options) without running it.
    Validate(ScriptArgs),
    /// Generate a retail day and run the retail pipelines on it, into an embedded SQLite file.
    Demo(demo::DemoArgs),
    /// Write generated retail events (pos_sales, clickstream, inventory, promotions) as NDJSON or
    /// CSV, or Nexmark events (`nexmark`: the `'connector' = 'nexmark'` source's rows as NDJSON).
    Gen(GenArgs),
    /// The interactive SQL client, as Flink's sql-client.sh: statements typed (or from -i/-f)
    /// run against one session; a SELECT shows its live result, an INSERT runs in the background.
    Sql(sql::SqlArgs),
    /// Stop a running job through its HTTP API: with a savepoint when it is checkpointed (as
    /// SIGTERM does), so that the next `run` resumes from it.
    Stop(stop::StopArgs),
}

#[derive(clap::Args)]
struct GenArgs {
    /// The stream: pos_sales, clickstream, inventory, promotions, or nexmark.
    stream: String,
    /// Output format.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Send each event as a message to Kafka at these brokers instead (HOST:PORT[,...]).
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// The topic for --kafka (default: the stream's name).
    #[arg(long)]
    topic: Option<String>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Number of events of the stream to write.
    #[arg(long)]
    rows: Option<u64>,
    /// Simulated time to cover (e.g. 1h, 2d).
    #[arg(long)]
    duration: Option<String>,
    /// Any model parameter of docs/generator.md (for nexmark: any option of the `nexmark`
    /// connector), as KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// Writes the `nexmark` connector's rows (Nexmark's full schema) as NDJSON, as Flink's json
/// format writes them: the dump the Nexmark conformance cases read.
fn generate_nexmark(a: &GenArgs) -> Result<(), String> {
    use std::io::Write;
    use tillflow_runtime::operator::{Poll, Source};
    if a.format != "ndjson" || a.kafka.is_some() || a.duration.is_some() {
        return Err("gen nexmark writes NDJSON only (--rows, --seed, --set, --output)".into());
    }
    let mut options = std::collections::BTreeMap::new();
    options.insert("connector".to_owned(), "nexmark".to_owned());
    options.insert("format".to_owned(), "json".to_owned());
    options.insert(
        "events.num".to_owned(),
        a.rows.unwrap_or(100_000).to_string(),
    );
    if let Some(s) = a.seed {
        options.insert("seed".to_owned(), s.to_string());
    }
    for kv in &a.sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
        options.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let table = tillflow_connectors::TableSpec {
        name: "nexmark".into(),
        schema: tillflow_connectors::nexmark::schema(),
        options,
        primary_key: vec![],
        metadata: vec![],
        partition_keys: vec![],
    };
    let mut source =
        tillflow_connectors::nexmark::NexmarkSource::new(&table).map_err(|e| e.to_string())?;
    let mut encoder = tillflow_connectors::format::json::JsonEncoder::new(&table, "json")
        .map_err(|e| e.to_string())?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p).map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let mut row = tillflow_types::Row::default();
    let mut line = String::with_capacity(1024);
    loop {
        row.clear();
        match source.poll(&mut row).map_err(|e| e.to_string())? {
            Poll::Record => {}
            Poll::End => break,
            Poll::Idle => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
        line.clear();
        encoder.write_object(&row, &mut line);
        line.push('\n');
        if let Err(err) = out.write_all(line.as_bytes()) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(err.to_string());
        }
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e.to_string())
        }
    })
}

fn generate(a: &GenArgs) -> Result<(), String> {
    use std::io::Write;
    if a.stream == "nexmark" {
        return generate_nexmark(a);
    }
    use tillflow_retail::streams::{fill_row, write_csv, write_json};
    let stream = tillflow_retail::Stream::by_name(&a.stream).ok_or_else(|| {
        format!(
            "unknown stream '{}' (pos_sales, clickstream, inventory, promotions)",
            a.stream
        )
    })?;
    let mut cfg = tillflow_retail::Config::default();
    let mut sets: Vec<(String, String)> = Vec::new();
    if let Some(s) = a.seed {
        sets.push(("seed".into(), s.to_string()));
    }
    if let Some(d) = &a.duration {
        sets.push(("duration".into(), d.clone()));
    }
    for kv in &a.sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
        sets.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    for (k, v) in &sets {
        cfg.set(k, v).map_err(|e| e.0)?;
    }
    let rows = a.rows.or(cfg.rows);
    if rows.is_none() && cfg.duration.is_none() {
        cfg.duration = Some(86_400_000_000); // one simulated day unless told otherwise
    }
    let mut kafka = match &a.kafka {
        Some(brokers) => Some(tillflow_connectors::kafka::LineProducer::new(
            brokers,
            a.topic.as_deref().unwrap_or(&a.stream),
        )?),
        None => None,
    };
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p).map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let schema = stream.schema();
    let mut generator = tillflow_retail::Generator::new(cfg).only(&[stream]);
    let mut row = tillflow_types::Row::default();
    let mut line = String::with_capacity(256);
    let mut n = 0u64;
    if a.format == "csv" {
        let header: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        writeln!(out, "{}", header.join(",")).map_err(|e| e.to_string())?;
    }
    while rows.is_none_or(|r| n < r) {
        let Some(e) = generator.next() else { break };
        if !stream.contains(&e) {
            continue;
        }
        fill_row(&e, &generator.catalog, &mut row);
        line.clear();
        if a.format == "csv" {
            write_csv(&row, e.malformed, &mut line);
        } else {
            write_json(&row, &schema, e.malformed, &mut line);
        }
        if let Some(k) = kafka.as_mut() {
            k.send(line.as_bytes())?;
            n += 1;
            continue;
        }
        if let Err(err) = out.write_all(line.as_bytes()) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(err.to_string());
        }
        n += 1;
    }
    if let Some(k) = kafka.as_mut() {
        let sent = k.flush()?;
        eprintln!("sent {sent} {} events", a.stream);
        return Ok(());
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e.to_string())
        }
    })
}

#[derive(clap::Args)]
struct ScriptArgs {
    /// The SQL script.
    file: PathBuf,
    /// Replace ${NAME} in the script (repeatable); the environment is used for names not given.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Set a configuration key before the script runs, as Flink's `-D` (repeatable; the
    /// script's own SET overrides it): `--set state.backend.type=disk`.
    #[arg(long = "set", short = 'D', value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print no job summary.
    #[arg(long, short)]
    quiet: bool,
    /// The SQLite file for tables declared without a WITH clause (the embedded default store).
    #[arg(long, value_name = "FILE", default_value = tillflow_sql::session::DEFAULT_STORE)]
    store: String,
    #[command(flatten)]
    http: http::HttpArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// The job's name: its checkpoints live under state.checkpoints.dir/NAME (default: the
    /// script's 'pipeline.name', else its file name without extension).
    #[arg(long)]
    job_name: Option<String>,
    /// Start afresh instead of resuming from the job's latest checkpoint.
    #[arg(long, conflicts_with = "from_checkpoint")]
    fresh: bool,
    /// Resume from this checkpoint directory (.../chk-NNNNNN) instead of the latest.
    #[arg(long, value_name = "DIR")]
    from_checkpoint: Option<PathBuf>,
    /// Workers for the keyed part of the job (over the script's 'parallelism.default'; by
    /// default the cores the process may run on).
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: Option<u16>,
    /// Run as one process of a job scaled out over Kafka: the processes started with the same
    /// script and job name and their own instance ids share the Kafka topics' partitions
    /// through consumer groups (static members with this id), each checkpointing under
    /// NAME.ID (docs/scale-out.md).
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// How a scaled-out process is a member of its consumer groups: `static` (Kafka's static
    /// membership: a process back within the session timeout gets its partitions back without
    /// a rebalance) or `dynamic` (a process that stops hands its partitions on at once).
    #[arg(long, value_enum, default_value = "static", requires = "instance_id")]
    membership: Membership,
}

/// Kafka consumer group membership of a scaled-out process.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Membership {
    /// `group.instance.id` = the instance id.
    Static,
    /// No `group.instance.id`.
    Dynamic,
}

/// Where a job's checkpoints come from and go: what `tillflow run`'s options (or the SQL
/// client, for a job it submits) say.
pub struct CheckpointArgs {
    /// What errors name (the script's file).
    pub label: String,
    /// The job's name: its checkpoints live under `state.checkpoints.dir/NAME`.
    pub name: String,
    /// Whether `name` was given (`--job-name`, or the SQL client's job id) rather than taken
    /// from the script's file: a script's `pipeline.name` is the name unless one was given.
    pub named: bool,
    /// Start afresh, removing the job's earlier checkpoints.
    pub fresh: bool,
    /// Resume from this checkpoint directory instead of the latest.
    pub from: Option<PathBuf>,
    /// One process of a scaled-out job: its instance id (its checkpoints are its own).
    pub instance: Option<String>,
}

impl CheckpointArgs {
    fn of_run(a: &RunArgs) -> CheckpointArgs {
        CheckpointArgs {
            label: a.script.file.display().to_string(),
            name: a.job_name.clone().unwrap_or_else(|| {
                a.script
                    .file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "job".into())
            }),
            named: a.job_name.is_some(),
            fresh: a.fresh,
            from: a.from_checkpoint.clone(),
            instance: a.instance_id.clone(),
        }
    }
}

/// The job's name: Flink's 'pipeline.name', unless the command line named the job.
fn job_name(config: &BTreeMap<String, String>, a: &CheckpointArgs) -> String {
    match config.get("pipeline.name").map(|n| n.trim()) {
        Some(n) if !n.is_empty() && !a.named => n.to_owned(),
        _ => a.name.clone(),
    }
}

/// The name a job's process checkpoints under: the job's, or for one process of a scaled-out
/// job, the job's and its instance id's (each process holds its own checkpoints and writes
/// its own sink markers).
fn checkpoint_name(config: &BTreeMap<String, String>, a: &CheckpointArgs) -> String {
    let job = job_name(config, a);
    match &a.instance {
        Some(i) => format!("{job}.{i}"),
        None => job,
    }
}

/// Turns checkpointing on as the script's options say (on by default for unbounded jobs) and
/// resumes from the job's latest checkpoint unless told otherwise; returns what to tell the user.
pub fn setup_checkpoints(
    job: &mut tillflow_runtime::job::Job,
    config: &BTreeMap<String, String>,
    a: &CheckpointArgs,
) -> Result<Vec<String>, String> {
    use tillflow_runtime::checkpoint::{CheckpointConfig, CheckpointStore};
    let file = &a.label;
    let cfg = CheckpointConfig::from_options(config).map_err(|e| format!("{file}: {e}"))?;
    let mut notes = Vec::new();
    let interval = match cfg.interval {
        Some(i) => i,
        None if job.bounded()
            && a.from.is_none()
            && !config.contains_key("execution.state-recovery.path") =>
        {
            return Ok(notes);
        }
        None => {
            let obstacles = job
                .checkpoint_obstacles()
                .map_err(|e| format!("{file}: {e}"))?;
            if !obstacles.is_empty() {
                if let Some(path) = a
                    .from
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .or_else(|| config.get("execution.state-recovery.path").cloned())
                {
                    return Err(format!(
                        "{file}: cannot start from the checkpoint {path}: the job cannot checkpoint ({})",
                        obstacles.join("; ")
                    ));
                }
                notes.push(format!("not checkpointing: {}", obstacles.join("; ")));
                return Ok(notes);
            }
            CheckpointConfig::DEFAULT_UNBOUNDED_INTERVAL
        }
    };
    let name = checkpoint_name(config, a);
    let store = checkpoint_store(&cfg, &name, config).map_err(|e| format!("{file}: {e}"))?;
    // one process runs a job: a second would resume from and overwrite the first's checkpoints
    job.keep_lease(store.hold().map_err(|e| format!("{file}: {e}"))?);
    // a job that checkpointed under its file's name before 'pipeline.name' named it is not
    // silently started afresh under the new name
    if name != a.name && a.instance.is_none() && a.from.is_none() && !a.fresh {
        let old = checkpoint_store(&cfg, &a.name, config).map_err(|e| format!("{file}: {e}"))?;
        if store.latest().ok().flatten().is_none() && old.latest().ok().flatten().is_some() {
            return Err(format!(
                "{file}: 'pipeline.name' = '{name}' names this job, which has no checkpoint at {}, but the script's earlier runs checkpointed at {} (under its file's name): move those checkpoints there, run with --job-name {} to resume them, or --fresh to start afresh",
                store.location(),
                old.location(),
                a.name
            ));
        }
    }
    job.enable_checkpoints(store.clone(), interval)
        .map_err(|e| format!("{file}: {e}"))?;
    notes.push(format!(
        "checkpointing every {:?} to {}",
        interval,
        store.location()
    ));
    // Flink's 'execution.state-recovery.path' (or 'execution.savepoint.path'), unless the
    // command line names one
    let from = a.from.clone().or_else(|| {
        config
            .get("execution.state-recovery.path")
            .map(PathBuf::from)
    });
    if a.fresh && a.from.is_none() && from.is_some() {
        return Err(format!(
            "{file}: --fresh starts afresh, but 'execution.state-recovery.path' names a checkpoint to start from: drop one of them"
        ));
    }
    let snap = match (&from, a.fresh) {
        (Some(p), _) => {
            let text = p.display().to_string();
            let snap = if text.contains("://") {
                let (parent, id) = tillflow_runtime::checkpoint::split_checkpoint_location(&text)
                    .ok_or_else(|| {
                    format!("--from-checkpoint {text}: expected …/JOB/chk-NNNNNN")
                })?;
                let backend = tillflow_connectors::objectstore::backend(parent, config)
                    .map_err(|e| format!("{file}: {e}"))?;
                CheckpointStore::with_backend(backend, &name, cfg.retained).load_id(id)
            } else {
                CheckpointStore::load(p)
            };
            Some((snap.map_err(|e| format!("{file}: {e}"))?, text))
        }
        (None, true) => {
            // a fresh start: the old run's checkpoints must not be resumed by a later restart
            if store
                .latest()
                .map_err(|e| format!("{file}: {e}"))?
                .is_some()
            {
                store.remove_all().map_err(|e| format!("{file}: {e}"))?;
                notes.push(format!(
                    "--fresh: removed the job's earlier checkpoints in {}",
                    store.location()
                ));
            }
            None
        }
        (None, false) => match store.latest().map_err(|e| format!("{file}: {e}"))? {
            Some(id) => Some((
                store.load_id(id).map_err(|e| format!("{file}: {e}"))?,
                store.location_of(id),
            )),
            None => None,
        },
    };
    if let Some((snap, from)) = snap {
        job.restore(&snap, &from)
            .map_err(|e| format!("{file}: {e}"))?;
        let (was, is) = (snap.parallelism(), job.parallelism());
        let moved = if was == is {
            String::new()
        } else {
            format!("; it was taken on {was} worker(s), and its keyed state now spreads over {is}")
        };
        notes.push(format!(
            "resumed from checkpoint {} ({from}){moved}",
            snap.id
        ));
    }
    Ok(notes)
}

/// The job's checkpoint store: a local directory, or an object store for `s3://` URIs.
pub fn checkpoint_store(
    cfg: &tillflow_runtime::checkpoint::CheckpointConfig,
    job: &str,
    options: &BTreeMap<String, String>,
) -> Result<tillflow_runtime::checkpoint::CheckpointStore, String> {
    use tillflow_runtime::checkpoint::{safe_job_name, CheckpointStore};
    match &cfg.uri {
        Some(uri) => {
            let location = format!("{}/{}", uri.trim_end_matches('/'), safe_job_name(job));
            let backend = tillflow_connectors::objectstore::backend(&location, options)?;
            Ok(CheckpointStore::with_backend(backend, job, cfg.retained))
        }
        None => Ok(CheckpointStore::new(&cfg.dir, job, cfg.retained)),
    }
}

fn load(args: &ScriptArgs) -> Result<JobPlan, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let mut vars = BTreeMap::new();
    for v in &args.vars {
        let Some((k, val)) = v.split_once('=') else {
            return Err(format!("--var expects NAME=VALUE, got '{v}'"));
        };
        vars.insert(k.to_owned(), val.to_owned());
    }
    let mut session = Session::new();
    session.default_store = Some(args.store.clone());
    let mut notices = Vec::new();
    for kv in &args.sets {
        let Some((k, val)) = kv.split_once('=') else {
            return Err(format!("--set expects KEY=VALUE, got '{kv}'"));
        };
        if let Some(n) = session
            .set(k.trim(), val.trim())
            .map_err(|e| e.to_string())?
        {
            notices.push(format!("--set {}: {n}", k.trim()));
        }
    }
    let mut plan = session
        .execute_script(&text, &vars)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    notices.append(&mut plan.notices);
    plan.notices = notices;
    Ok(plan)
}

/// Ctrl-C (SIGINT) or SIGTERM ends the job cleanly: sources stop, open windows fire, sinks commit
/// what they hold. A second signal ends the process at once. Returns the flag the signals set
/// (a stop through the API sets only the job's own).
pub fn stop_on_ctrl_c(
    job: &tillflow_runtime::job::Job,
) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = job.stop_handle();
    let signalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // the order matters: the conditional exit sees the flag before this signal sets it
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, signalled.clone());
        let _ = signal_hook::flag::register(sig, signalled.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    signalled
}

/// Shows how far the job has got: a spinner with records and rate on a terminal, otherwise a
/// one-line status every ten seconds (for logs of long runs).
fn progress(job: &mut tillflow_runtime::job::Job) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let shown = bar.clone();
    let mut last_line = std::time::Instant::now();
    job.on_progress(Box::new(move |p| {
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        let mut msg = format!("{} records ({:.0}/s)", p.records, p.records as f64 / secs);
        if let Some(f) = p.fraction.filter(|f| *f > 0.0) {
            let eta = secs * (1.0 - f) / f;
            msg.push_str(&format!(", {:.0} % read, ETA {eta:.0} s", f * 100.0));
        }
        if terminal {
            shown.set_message(msg);
        } else if last_line.elapsed() >= std::time::Duration::from_secs(10) {
            last_line = std::time::Instant::now();
            eprintln!("tillflow: {:.0} s, {msg}", p.elapsed.as_secs_f64());
        }
    }));
    bar
}

/// The one-line summary of a finished job (what it read, wrote, dropped, kept).
pub fn summary(r: &JobReport) -> String {
    let mut s = String::new();
    let records: u64 = r.sources.iter().map(|(_, m)| m.records).sum();
    let bad: u64 = r.sources.iter().map(|(_, m)| m.bad_records).sum();
    let rows: u64 = r.sinks.iter().map(|(_, n)| n).sum();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    s.push_str(&format!(
        "tillflow: read {records} records in {:.3} s ({:.0} records/s), wrote {rows} rows",
        secs,
        records as f64 / secs
    ));
    let lag: u64 = r.sources.iter().map(|(_, m)| m.lag).sum();
    if lag > 0 {
        s.push_str(&format!(", {lag} records left unread (consumer lag)"));
    }
    if bad > 0 {
        s.push_str(&format!(", skipped {bad} malformed records"));
    }
    let nulled: u64 = r.sources.iter().map(|(_, m)| m.nulled_records).sum();
    if nulled > 0 {
        s.push_str(&format!(
            ", set unparsable fields to NULL in {nulled} records"
        ));
    }
    let late = r.late_dropped();
    if late > 0 {
        s.push_str(&format!(", dropped {late} late records"));
    }
    if let Some(st) = &r.state_store {
        s.push_str(&format!(
            "; state on disk: {} entries moved out, {} read back ({:.1} MiB of files)",
            st.entries_spilled,
            st.entries_loaded,
            st.disk_bytes as f64 / (1 << 20) as f64
        ));
    }
    let (entries, bytes) = r.operators.iter().fold((0, 0), |(n, b), (_, m)| {
        (n + m.state_entries, b + m.state_bytes)
    });
    if let Some(per_entry) = bytes.checked_div(entries) {
        s.push_str(&format!(
            "; keyed state at the end: {entries} entries, {:.1} MiB as checkpointed ({per_entry} bytes per entry)",
            bytes as f64 / (1 << 20) as f64,
        ));
    }
    s
}

/// The stack of the thread that plans and runs the job: planning recurses over the script's
/// syntax tree, and the nesting limits (`tillflow_sql::limits`) are set for this much, so deep
/// SQL ends in an error naming the limit, never in a stack overflow. Only the pages used are
/// ever committed.
const MAIN_STACK: usize = 512 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let worker = std::thread::Builder::new()
        .name("tillflow".into())
        .stack_size(MAIN_STACK)
        .spawn(move || run_cli(cli));
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE, // the panic message is already printed
        Err(e) => {
            eprintln!("error: cannot start tillflow's main thread: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::Validate(a) => load(a).map(|plan| {
            for n in &plan.notices {
                eprintln!("note: {n}");
            }
            println!(
                "{}: OK ({} source(s), {} sink(s))",
                a.file.display(),
                plan.tasks.len(),
                plan.tasks.iter().map(|t| t.branches.len()).sum::<usize>()
            );
        }),
        Command::Explain(a) => load(a).map(|plan| print!("{}", plan.explain())),
        Command::Gen(a) => generate(a),
        Command::Stop(a) => stop::run(a),
        Command::Sql(a) => sql::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Run(r) => {
            let a = &r.script;
            load(a).and_then(|mut plan| {
                for n in &plan.notices {
                    eprintln!("note: {n}");
                }
                // SHOW, DESCRIBE and EXPLAIN output, as Flink's SQL client prints it
                let printed = std::mem::take(&mut plan.printed);
                for text in &printed {
                    println!("{text}");
                }
                if plan.is_empty() {
                    if printed.is_empty() {
                        eprintln!("note: the script has no INSERT or SELECT; nothing to run");
                    }
                    return Ok(());
                }
                let status = http::start(&a.http, a.quiet)?;
                plan.keep_recent_rows = status.is_some();
                plan.parallelism = r.parallelism.map(usize::from);
                let config = plan.config.clone();
                let ckpt = CheckpointArgs::of_run(r);
                if let Some(id) = &r.instance_id {
                    let fixed = r.membership == Membership::Static;
                    plan.join_group(&job_name(&config, &ckpt), id, fixed)
                        .map_err(|e| format!("{}: {e}", a.file.display()))?;
                }
                let keys = http::table_keys(&plan);
                let mut job = plan
                    .instantiate()
                    .map_err(|e| format!("{}: {e}", a.file.display()))?;
                for n in setup_checkpoints(&mut job, &config, &ckpt)? {
                    if !a.quiet {
                        eprintln!("note: {n}");
                    }
                }
                if r.instance_id.is_some() && job.checkpoint_stats().is_none() {
                    return Err(format!(
                        "{}: a scaled-out job (--instance-id) needs checkpoints: a process commits its partitions' offsets with each checkpoint, and hands a partition on to another process only after one. Let it checkpoint (this job cannot: see the note above)",
                        a.file.display()
                    ));
                }
                let stop = stop_on_ctrl_c(&job);
                let serving = status.is_some();
                let publisher = status.map(|s| {
                    http::Publisher::new(s, &a.file.display().to_string()).with_table_keys(keys)
                });
                if let Some(p) = &publisher {
                    p.attach(&mut job);
                }
                let bar = (!a.quiet).then(|| progress(&mut job));
                let result = job.run();
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                if let Some(p) = &publisher {
                    p.finish(result.as_ref().ok());
                }
                let report =
                    result.map_err(|e| format!("{}: job failed: {e}", a.file.display()))?;
                if !a.quiet {
                    eprintln!("{}", summary(&report));
                    if let Some(c) = job.checkpoint_stats().filter(|c| c.completed > 0) {
                        let full = if c.last_full_bytes > c.last_bytes {
                            format!(" (incremental: {} bytes in all)", c.last_full_bytes)
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "tillflow: {} checkpoint(s), the last ({}) {} bytes{full} in {:.1} ms, \
                             the job paused {:.1} ms for it ({:.1} ms in all)",
                            c.completed,
                            c.last_id,
                            c.last_bytes,
                            c.last_micros as f64 / 1e3,
                            c.last_pause_micros as f64 / 1e3,
                            c.total_pause_micros as f64 / 1e3,
                        );
                        if c.completed > 1 {
                            eprintln!(
                                "tillflow: of all {} checkpoints: the largest {} bytes \
                                 (a restore reading {} bytes at most), the longest {:.1} ms \
                                 (mean {:.1} ms), the longest pause {:.1} ms",
                                c.completed,
                                c.max_bytes,
                                c.max_full_bytes,
                                c.max_micros as f64 / 1e3,
                                c.total_micros as f64 / 1e3 / c.completed as f64,
                                c.max_pause_micros as f64 / 1e3,
                            );
                        }
                    }
                }
                http::keep_serving(&a.http, serving, &stop, a.quiet);
                Ok(())
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
