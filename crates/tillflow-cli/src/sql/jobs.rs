//! The jobs the SQL client starts: each on a thread of its own in this process (a `SELECT` in
//! the foreground, an `INSERT` in the background), built there from its plan (a job stays on
//! the thread that built it), stopped through its stop flag. An `INSERT`'s job checkpoints as
//! `tillflow run` would (its checkpoints under `state.checkpoints.dir/<job id>`, starting from
//! `execution.state-recovery.path` when set), so `STOP JOB … WITH SAVEPOINT` leaves a savepoint
//! a later `INSERT` resumes from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tillflow_sql::session::JobPlan;

/// What a job is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `SELECT` whose result the client shows.
    Query,
    /// An `INSERT` (or statement set).
    Insert,
}

/// Where a job is.
#[derive(Clone, Debug)]
enum State {
    Running,
    /// Ended: its summary, and the savepoint it left when it was stopped with one.
    Finished {
        summary: String,
        savepoint: Option<String>,
    },
    /// Stopped by `STOP JOB` (or Ctrl-C, or the client leaving).
    Stopped {
        summary: String,
        savepoint: Option<String>,
    },
    Failed(String),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Running => "RUNNING",
            State::Finished { .. } => "FINISHED",
            State::Stopped { .. } => "STOPPED",
            State::Failed(_) => "FAILED",
        }
    }
}

/// A job the client started.
pub struct ClientJob {
    id: String,
    name: String,
    started: SystemTime,
    stop: Arc<AtomicBool>,
    /// True when the job checkpoints (a stop then takes a savepoint).
    checkpointing: bool,
    notes: Vec<String>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

/// The job's thread's stack: building a job recurses over its plan.
const JOB_STACK: usize = 256 << 20;

/// Starts `plan` as a job named `name` on a thread of its own; returns once it is built (an
/// error building it is returned here). An `INSERT`'s job checkpoints as its `config` says.
pub fn start(
    plan: JobPlan,
    kind: Kind,
    name: &str,
    config: Option<&BTreeMap<String, String>>,
) -> Result<ClientJob, String> {
    let id = job_id();
    let state = Arc::new(Mutex::new(State::Running));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let config = config.cloned();
    let (thread_id, thread_name, thread_state) = (id.clone(), name.to_owned(), state.clone());
    let thread = std::thread::Builder::new()
        .name(format!("job {id}"))
        .stack_size(JOB_STACK)
        .spawn(move || {
            let mut job = match plan.instantiate() {
                Ok(job) => job,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut notes = Vec::new();
            let mut checkpoints = None;
            if let (Kind::Insert, Some(config)) = (kind, &config) {
                let args = crate::CheckpointArgs {
                    label: thread_name.clone(),
                    name: thread_id.clone(),
                    named: true,
                    fresh: false,
                    from: None,
                    instance: None,
                };
                match crate::setup_checkpoints(&mut job, config, &args) {
                    Ok(n) => notes = n,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                if job.checkpoint_stats().is_some() {
                    checkpoints = Some(config.clone());
                }
            }
            let stop = job.stop_handle();
            if ready_tx
                .send(Ok((stop.clone(), checkpoints.is_some(), notes)))
                .is_err()
            {
                return;
            }
            let result = job.run();
            let savepoint = checkpoints
                .filter(|_| stop.load(Ordering::Relaxed))
                .and_then(|config| latest_checkpoint(&config, &thread_id));
            let next = match result {
                Ok(report) => {
                    let summary = crate::summary(&report);
                    if stop.load(Ordering::Relaxed) {
                        State::Stopped { summary, savepoint }
                    } else {
                        State::Finished { summary, savepoint }
                    }
                }
                Err(e) => State::Failed(e.to_string()),
            };
            *thread_state.lock().unwrap_or_else(PoisonError::into_inner) = next;
        })
        .map_err(|e| format!("cannot start a job thread: {e}"))?;
    let (stop, checkpointing, notes) = match ready_rx.recv() {
        Ok(Ok(ready)) => ready,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(format!("Could not execute SQL statement. Reason:\n{e}"));
        }
        Err(_) => {
            let _ = thread.join();
            return Err("the job's thread ended before the job was built".into());
        }
    };
    Ok(ClientJob {
        id,
        name: name.to_owned(),
        started: SystemTime::now(),
        stop,
        checkpointing,
        notes,
        state,
        thread: Some(thread),
    })
}

/// The location of the latest checkpoint of the job `id` (its savepoint, after a stop).
fn latest_checkpoint(config: &BTreeMap<String, String>, id: &str) -> Option<String> {
    let cfg = tillflow_runtime::checkpoint::CheckpointConfig::from_options(config).ok()?;
    let store = crate::checkpoint_store(&cfg, id, config).ok()?;
    let latest = store.latest().ok()??;
    Some(store.location_of(latest))
}

/// A job id as Flink writes one: 32 hex digits.
fn job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

impl ClientJob {
    /// The job's id (32 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What setting the job up said (checkpointing, a resumed checkpoint).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// True while the job runs.
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the job to stop (a checkpointing job takes a savepoint first).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the job to end: its summary, or why it failed.
    pub fn wait(&mut self) -> Result<String, String> {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                *self.state.lock().unwrap_or_else(PoisonError::into_inner) =
                    State::Failed("the job's thread panicked".into());
            }
        }
        match self.state() {
            State::Finished { summary, savepoint } | State::Stopped { summary, savepoint } => {
                Ok(match savepoint {
                    Some(s) => format!("{summary}\nSavepoint: {s}"),
                    None => summary,
                })
            }
            State::Failed(e) => Err(e),
            State::Running => Err("the job's thread ended without a result".into()),
        }
    }

    /// Waits for the job to end, stopping it when `interrupted` is set (Ctrl-C).
    pub fn wait_interruptible(&mut self, interrupted: &AtomicBool) -> Result<String, String> {
        while self.running() {
            // the flag stays set: a second Ctrl-C before the job has stopped ends the client
            if interrupted.load(Ordering::Relaxed) {
                self.request_stop();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait()
    }
}

/// The client's jobs.
#[derive(Default)]
pub struct Jobs {
    jobs: Vec<ClientJob>,
}

impl Jobs {
    /// Keeps a job (`SHOW JOBS` lists it).
    pub fn add(&mut self, job: ClientJob) {
        self.jobs.push(job);
    }

    /// `SHOW JOBS`, as Flink's client prints it.
    pub fn show(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.id.clone(),
                    j.name.clone(),
                    j.state().name().to_string(),
                    start_time(j.started),
                ]
            })
            .collect();
        tillflow_sql::statements::tableau(&["job id", "job name", "status", "start time"], &rows)
    }

    /// `STOP JOB 'id' [WITH SAVEPOINT]`: stops the job and waits for it; says how it ended.
    pub fn stop(&mut self, id: &str, savepoint: bool) -> Result<String, String> {
        let job = self.jobs.iter_mut().find(|j| j.id == id).ok_or_else(|| {
            format!(
                "Could not stop job {}: no job of this client has that id (SHOW JOBS lists them)",
                crate::sql::clip(id)
            )
        })?;
        if !job.running() {
            return Err(format!(
                "Could not stop job {id}: it is {} already",
                job.state().name()
            ));
        }
        if savepoint && !job.checkpointing {
            return Err(format!(
                "Could not stop job {id} with a savepoint: it does not checkpoint (SET 'execution.checkpointing.interval' before its INSERT)"
            ));
        }
        job.request_stop();
        let ended = job.wait()?;
        let savepoint = ended
            .lines()
            .find_map(|l| l.strip_prefix("Savepoint: "))
            .map(str::to_owned);
        Ok(match savepoint {
            Some(path) => format!("[INFO] Job {id} stopped.\nSavepoint path: {path}"),
            None => format!("[INFO] Job {id} stopped."),
        })
    }

    /// Stops every running job and waits for them (the client is leaving).
    pub fn stop_all(&mut self) {
        let running: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].running())
            .collect();
        if running.is_empty() {
            return;
        }
        println!("[INFO] Stopping {} running job(s)...", running.len());
        for &i in &running {
            self.jobs[i].request_stop();
        }
        for &i in &running {
            let id = self.jobs[i].id.clone();
            match self.jobs[i].wait() {
                Ok(s) => println!("[INFO] Job {id} stopped: {s}"),
                Err(e) => println!("[ERROR] Job {id} failed: {e}"),
            }
        }
    }
}

/// A start time as Flink's `SHOW JOBS` writes it (UTC).
fn start_time(t: SystemTime) -> String {
    let micros = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let mut s = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut s, micros - micros % 1000, 3);
    s
}
