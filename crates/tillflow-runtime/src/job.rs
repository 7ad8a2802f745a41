//! The job loop: polls every source, pushes its records through its pipeline, delivers
//! processing-time ticks, ends each pipeline when its bounded source is exhausted, and takes
//! checkpoints (between two polls, where every record read has reached the sinks).

use crate::checkpoint::{CheckpointError, CheckpointStore, EpochSink, Fit, Snapshot, SourceState};
use crate::error::{Result, RuntimeError};
use crate::exchange::{Coordination, Stage};
use crate::operator::{
    wrap_innermost, Node, NodeIdentity, NodeMut, OperatorMetrics, Pipeline, Poll, Source,
    SourceMetrics,
};
use crate::state::disk::DiskStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tillflow_types::Row;

/// One source and the pipeline it feeds.
pub struct SourceTask {
    /// The source.
    pub source: Box<dyn Source>,
    /// Its pipeline.
    pub pipeline: Pipeline,
    done: bool,
    /// The source's decoding threads run the pipeline's operators ([`Source::fuse`]): the job
    /// loop takes their chunks' batches for the pipeline's exchange.
    fused: Option<Fused>,
}

/// A fused task's watermark so far and its operators' counters.
struct Fused {
    watermark: i64,
    metrics: Vec<OperatorMetrics>,
}

impl SourceTask {
    /// Connects a source to a pipeline.
    pub fn new(source: Box<dyn Source>, pipeline: Pipeline) -> Self {
        SourceTask {
            source,
            pipeline,
            done: false,
            fused: None,
        }
    }

    /// The source runs the pipeline's operators on its decoding threads (it accepted
    /// [`Source::fuse`]); the pipeline must end in an exchange or a sink.
    pub fn set_fused(&mut self) {
        self.fused = Some(Fused {
            watermark: i64::MIN,
            metrics: vec![OperatorMetrics::default(); self.pipeline.ops.len()],
        });
    }

    /// Sends on a fused chunk's batches; returns the rows it held.
    fn deliver(&mut self, out: crate::operator::ChunkOutput) -> Result<u64> {
        let Some(f) = self.fused.as_mut() else {
            return Ok(0);
        };
        let chunk = out
            .downcast::<crate::exchange::FusedChunk>()
            .map_err(|_| RuntimeError::State("internal: a fused chunk of another kind".into()))?;
        let last = chunk.last_watermark();
        let rows = chunk.metrics.first().map_or(0, |m| m.records_in);
        for (sum, m) in f.metrics.iter_mut().zip(&chunk.metrics) {
            sum.records_in += m.records_in;
            sum.records_out += m.records_out;
            sum.watermark = sum.watermark.max(m.watermark);
            sum.max_event_time = sum.max_event_time.max(m.max_event_time);
        }
        match &mut self.pipeline.output {
            crate::operator::Output::Exchange(e) => e.adopt(chunk.batches, f.watermark)?,
            crate::operator::Output::Sink(s) => {
                for b in &chunk.batches {
                    b.write_to(s.as_mut(), f.watermark)?;
                }
                chunk.recycle();
            }
            _ => {
                return Err(RuntimeError::State(
                    "internal: a fused pipeline ends in an exchange or a sink".into(),
                ))
            }
        }
        f.watermark = f.watermark.max(last.unwrap_or(i64::MIN));
        Ok(rows)
    }
}

/// What a finished (or stopped) job did.
#[derive(Clone, Debug, Default)]
pub struct JobReport {
    /// Per source: description and counters.
    pub sources: Vec<(String, SourceMetrics)>,
    /// Per source (aligned with `sources`): consumer lag per partition (`topic/partition`,
    /// records behind its end); empty for sources without partitions.
    pub partition_lag: Vec<Vec<(String, u64)>>,
    /// Per operator: description and counters (summed over its workers).
    pub operators: Vec<(String, OperatorMetrics)>,
    /// Per operator (aligned with `operators`): each worker's counters (its rows in, and how
    /// busy and back-pressured the worker running it is); empty for an operator of the job
    /// loop's thread.
    pub workers: Vec<Vec<crate::exchange::WorkerMetrics>>,
    /// Per sink: description and rows written.
    pub sinks: Vec<(String, u64)>,
    /// The graph's edges, from the node feeding to the node fed.
    pub edges: Vec<(NodeRef, NodeRef)>,
    /// Per result table that keeps them: its latest rows as JSON lines (filled for `on_report`).
    pub tables: Vec<(String, Vec<String>)>,
    /// Checkpointing's counters, when it is on.
    pub checkpoints: Option<CheckpointStats>,
    /// The on-disk state backend's counters, when the job uses it.
    pub state_store: Option<StateStoreStats>,
    /// Wall time.
    pub elapsed: Duration,
}

/// What the on-disk state backend holds and has done (see [`crate::state::disk`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateStoreStats {
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

/// A node of a [`JobReport`]: an index into its sources, operators or sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// `JobReport::sources[i]`.
    Source(usize),
    /// `JobReport::operators[i]`.
    Operator(usize),
    /// `JobReport::sinks[i]`.
    Sink(usize),
}

impl JobReport {
    /// Records dropped as late by all operators.
    pub fn late_dropped(&self) -> u64 {
        self.operators.iter().map(|(_, m)| m.late_dropped).sum()
    }
}

/// How far a running job has got, for progress displays.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobProgress {
    /// Records read from all sources so far.
    pub records: u64,
    /// Wall time since the start.
    pub elapsed: Duration,
    /// How much of the input has been read (the least-advanced source), when every source still
    /// running can tell.
    pub fraction: Option<f64>,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&JobProgress)>;

/// A callback receiving every counter of the job (for the HTTP API and metrics).
pub type ReportFn = Box<dyn FnMut(&JobReport)>;

/// A runnable job: a set of source tasks, and the stages of a parallel job.
pub struct Job {
    tasks: Vec<SourceTask>,
    stages: Vec<Stage>,
    /// While a parallel job runs: where its stages report, and their acks of drain rounds.
    coordination: Option<(Coordination, std::sync::mpsc::Receiver<()>)>,
    stop: Arc<AtomicBool>,
    progress: Option<ProgressFn>,
    reports: Option<ReportFn>,
    checkpoints: Option<Checkpoints>,
    /// The on-disk store of the job's keyed state (the on-disk backend only).
    state_store: Option<Arc<DiskStore>>,
    /// Keyed states track their changes, and checkpoints write only those (see
    /// [`crate::state::incremental`]).
    incremental: bool,
    /// The job's hold on its checkpoint location, while it runs.
    lease: Option<crate::checkpoint::JobLease>,
}

impl Drop for Job {
    fn drop(&mut self) {
        // the operators' states go next, and the on-disk store with them
        if let Some(s) = &self.state_store {
            s.retire();
        }
    }
}

/// A job's checkpointing: where, how often, and the numbering.
struct Checkpoints {
    store: CheckpointStore,
    interval: Duration,
    next_id: u64,
    run: u64,
    last: Instant,
    stats: CheckpointStats,
    /// The checkpoint being written, if any.
    inflight: Option<Inflight>,
    /// Test hook (`TILLFLOW_CRASH_AFTER_CHECKPOINT=N`): abort the process right after writing
    /// checkpoint N, before any sink commits it: the window two-phase commit must cover.
    crash_after: Option<u64>,
}

/// A checkpoint whose files are being written.
struct Inflight {
    id: u64,
    started: Instant,
    /// How long the job loop stood still for the snapshot (the synchronous phase, and any
    /// wait for keyed states' sections to finish).
    pause: Duration,
    /// Each source's position in the checkpoint (committed to Kafka once it is complete).
    positions: Vec<Vec<u8>>,
    phase: Phase,
}

/// The writer thread of a checkpoint, and what it returns.
type Writer =
    std::thread::JoinHandle<std::result::Result<crate::checkpoint::Written, CheckpointError>>;

/// Where a checkpoint after its synchronous phase is.
enum Phase {
    /// Keyed states are writing their sections while the job goes on (a slice at each turn of
    /// the job loop); the snapshot goes to its writer once they are all complete.
    Sections {
        snap: Box<Snapshot>,
        collector: Arc<crate::state::incremental::Collector>,
    },
    /// Its files are being written on a thread of its own.
    Writing(Writer),
}

/// What checkpointing has done in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// The last one's number.
    pub last_id: u64,
    /// The last one's size: bytes of its file (with incremental checkpoints, the changes since
    /// the previous one).
    pub last_bytes: u64,
    /// The bytes a restore of the last one reads: its file and those of the earlier checkpoints
    /// it builds on (Flink's "full checkpoint data size").
    pub last_full_bytes: u64,
    /// The last one's duration (snapshot, write, commit), microseconds.
    pub last_micros: u64,
    /// How long the last one stopped the job (the snapshot; the write is asynchronous).
    pub last_pause_micros: u64,
    /// Sum of all durations, microseconds.
    pub total_micros: u64,
    /// Sum of all pauses, microseconds.
    pub total_pause_micros: u64,
    /// The largest checkpoint's size (as `last_bytes`).
    pub max_bytes: u64,
    /// The largest size a restore read (as `last_full_bytes`).
    pub max_full_bytes: u64,
    /// The longest duration, microseconds.
    pub max_micros: u64,
    /// The longest pause, microseconds.
    pub max_pause_micros: u64,
}

/// A fresh run's identity: clock and process id, so two runs of a job never share one.
fn new_run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ ((std::process::id() as u64) << 40)
}

/// How often sinks are flushed and sources told to commit what is behind them.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How often (in records) processing-time ticks are delivered while sources are busy.
const TICK_EVERY: u32 = 4096;

fn wall_clock_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Job {
    /// A job over `tasks`.
    pub fn new(tasks: Vec<SourceTask>) -> Self {
        Self::parallel(tasks, Vec::new())
    }

    /// A job over `tasks` whose pipelines feed `stages` (through exchanges), each running on
    /// threads of its own.
    pub fn parallel(tasks: Vec<SourceTask>, stages: Vec<Stage>) -> Self {
        Job {
            tasks,
            stages,
            coordination: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
            reports: None,
            checkpoints: None,
            state_store: None,
            incremental: false,
            lease: None,
        }
    }

    /// Keeps the job's hold on its checkpoint location ([`CheckpointStore::hold`]) for as
    /// long as the job lives.
    pub fn keep_lease(&mut self, lease: crate::checkpoint::JobLease) {
        self.lease = Some(lease);
    }

    /// Makes the job's checkpoints incremental (`execution.checkpointing.incremental`): its
    /// keyed states were built tracking their changes, and states it makes later (on restore,
    /// in worker threads) do too.
    pub fn set_incremental_checkpoints(&mut self, on: bool) {
        self.incremental = on;
    }

    /// Keeps the on-disk store the job's keyed states were built with (see
    /// [`crate::state::disk`]): states the job makes later (on restore, in worker threads) use
    /// it too, and an error of the store fails the job.
    pub fn set_state_store(&mut self, store: Option<Arc<DiskStore>>) {
        self.state_store = store;
    }

    /// The on-disk store of the job's keyed state, if it has one.
    pub fn state_store(&self) -> Option<&Arc<DiskStore>> {
        self.state_store.as_ref()
    }

    /// Fails with the on-disk store's error, if it met one.
    fn check_state_store(&self) -> Result<()> {
        match &self.state_store {
            Some(s) => s.check(),
            None => Ok(()),
        }
    }

    /// Takes a checkpoint into `store` every `interval` (and a final one when the job ends or is
    /// stopped). Sinks that can commit transactionally become exactly-once: their rows are held
    /// until the checkpoint that covers them is durable. Every source must be able to resume
    /// from a position.
    pub fn enable_checkpoints(&mut self, store: CheckpointStore, interval: Duration) -> Result<()> {
        let obstacles = self.checkpoint_obstacles()?;
        if !obstacles.is_empty() {
            return Err(RuntimeError::Checkpoint(format!(
                "checkpointing is not possible: {}",
                obstacles.join("; ")
            )));
        }
        let mut index = 0usize;
        let job = store.job().to_owned();
        each_node(&mut self.tasks, &self.stages, &mut |n| {
            if let NodeMut::Sink(sink) = n {
                index += 1;
                let old = std::mem::replace(sink, Box::new(crate::operator::Detached));
                *sink = wrap_innermost(old, &mut |mut s| {
                    if s.transactional().is_some() {
                        Box::new(EpochSink::new(s, format!("{job}#{index}")))
                    } else {
                        s
                    }
                });
            }
            Ok(())
        })?;
        let next_id = store.next_id()?;
        self.checkpoints = Some(Checkpoints {
            store,
            interval,
            next_id,
            run: new_run_id(),
            last: Instant::now(),
            stats: CheckpointStats::default(),
            inflight: None,
            crash_after: std::env::var("TILLFLOW_CRASH_AFTER_CHECKPOINT")
                .ok()
                .and_then(|v| v.parse().ok()),
        });
        Ok(())
    }

    /// Whether every source's input ends.
    pub fn bounded(&self) -> bool {
        self.tasks.iter().all(|t| t.source.bounded())
    }

    /// What keeps the job from being checkpointed: sources that cannot resume from a position,
    /// sinks that cannot take part (each with the reason).
    pub fn checkpoint_obstacles(&mut self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| !t.source.resumable())
            .map(|t| format!("{} cannot resume from a position", t.source.describe()))
            .collect();
        each_node(&mut self.tasks, &self.stages, &mut |n| {
            if let NodeMut::Sink(s) = n {
                if let Some(why) = s.checkpoint_obstacle() {
                    out.push(format!("{}: {why}", s.describe()));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// What checkpointing has done so far (None when it is off).
    pub fn checkpoint_stats(&self) -> Option<CheckpointStats> {
        self.checkpoints.as_ref().map(|c| c.stats)
    }

    /// The plan's nodes in checkpoint order (sources, then each pipeline's operators and sinks).
    pub fn layout(&mut self) -> Result<Vec<String>> {
        let mut layout: Vec<String> = self
            .tasks
            .iter()
            .map(|t| format!("source: {}", t.source.checkpoint_identity()))
            .collect();
        layout.extend(self.parallelism_lines());
        each_node(&mut self.tasks, &self.stages, &mut |n| {
            layout.push(match n {
                NodeMut::Operator(_, op) if !op.checkpointed() => return Ok(()),
                NodeMut::Operator(id, op) => operator_identity(id, op.state_version()),
                NodeMut::TwoInput(node) => {
                    operator_identity(node.identity(), node.operator().state_version())
                }
                NodeMut::Sink(s) => format!("sink: {}", s.describe()),
                NodeMut::Exchange(_) => return Ok(()),
            });
            Ok(())
        })?;
        Ok(layout)
    }

    /// The job's parallelism and key groups as a checkpoint's layout records them (nothing for
    /// one worker, so checkpoints of a job run on one worker keep their layout): restored state
    /// must meet the keys routed to it.
    fn parallelism_lines(&self) -> Vec<String> {
        let Some(p) = self.stages.iter().map(Stage::parallelism).max() else {
            return Vec::new();
        };
        let max = self.stages.first().map_or(0, |s| s.max_parallelism);
        vec![
            format!("parallelism: {p}"),
            format!("max-parallelism: {max}"),
        ]
    }

    /// The job's stages: each one's name (its first node's label) and number of workers.
    pub fn stages(&self) -> Vec<(String, usize)> {
        self.stages
            .iter()
            .map(|s| (s.name.clone(), s.parallelism()))
            .collect()
    }

    /// The largest number of workers any stage of the job runs on (1 for a job on one thread).
    pub fn parallelism(&self) -> usize {
        self.stages
            .iter()
            .map(Stage::parallelism)
            .max()
            .unwrap_or(1)
    }

    /// Restores `snap` (loaded from `from`): source positions, operator state, and the sinks'
    /// prepared rows (committed now unless they already were). Checkpointing must be enabled.
    pub fn restore(&mut self, snap: &Snapshot, from: &str) -> Result<()> {
        let store = self.state_store.clone();
        let mut chain =
            crate::state::incremental::Chain::new(snap.states.iter().chain(&snap.shared).cloned());
        for (id, path) in &snap.section_files {
            let file = std::fs::File::open(path).map_err(|e| {
                RuntimeError::Checkpoint(format!("opening {}: {e}", path.display()))
            })?;
            chain = chain.with_file(*id, Box::new(file));
        }
        crate::state::incremental::scoped_tracking(self.incremental, || {
            crate::state::incremental::restoring(chain, || {
                crate::state::disk::scoped(store.as_ref(), || self.restore_from(snap, from))
            })
        })?;
        self.check_state_store()
    }

    fn restore_from(&mut self, snap: &Snapshot, from: &str) -> Result<()> {
        let layout = self.layout()?;
        let rescaled = match snap.fit(&layout) {
            Fit::Same => None,
            Fit::Rescaled {
                parallelism,
                max_parallelism,
            } => Some((parallelism, max_parallelism)),
            Fit::Incompatible(what) => {
                return Err(CheckpointError::Incompatible {
                    path: from.to_owned(),
                    what,
                }
                .into())
            }
        };
        let Some(c) = self.checkpoints.as_mut() else {
            return Err(RuntimeError::Checkpoint(
                "restoring a checkpoint needs checkpointing enabled".into(),
            ));
        };
        let wrong = |what: &str| {
            RuntimeError::from(CheckpointError::Corrupt {
                path: from.to_owned(),
                what: format!("it has no state for {what}"),
            })
        };
        for (i, t) in self.tasks.iter_mut().enumerate() {
            let st = snap.sources.get(i).ok_or_else(|| wrong("a source"))?;
            t.source.restore_position(&st.position).map_err(|e| {
                let why = match e {
                    RuntimeError::State(m) => m,
                    other => other.to_string(),
                };
                RuntimeError::from(CheckpointError::Corrupt {
                    path: from.to_owned(),
                    what: format!(
                        "the position of source {} does not apply: {why}",
                        t.source.describe()
                    ),
                })
            })?;
            t.done = st.done;
        }
        if let Some((_, max_parallelism)) = rescaled {
            let job = c.store.job().to_owned();
            rescale(
                &mut self.tasks,
                &self.stages,
                snap,
                from,
                &job,
                &layout,
                max_parallelism,
            )?;
            c.run = snap.run;
            c.next_id = c.next_id.max(snap.id + 1);
            return Ok(());
        }
        let (mut ops, mut sinks) = (snap.operators.iter(), snap.sinks.iter());
        let finished = snap.finished();
        each_node(&mut self.tasks, &self.stages, &mut |n| match n {
            NodeMut::Operator(_, op) if !op.checkpointed() => Ok(()),
            NodeMut::Operator(id, op) => {
                let b = ops.next().ok_or_else(|| wrong("an operator"))?;
                if finished {
                    return Ok(());
                }
                op.restore_state(b)
                    .map_err(|e| unreadable_state(from, &id.label, e))
            }
            NodeMut::TwoInput(node) => {
                let b = ops.next().ok_or_else(|| wrong("a join"))?;
                if finished {
                    return Ok(());
                }
                let label = node.identity().label.clone();
                node.restore_state(b)
                    .map_err(|e| unreadable_state(from, &label, e))
            }
            NodeMut::Sink(s) => {
                let b = sinks.next().ok_or_else(|| wrong("a sink"))?;
                s.restore_checkpoint(snap.run, snap.id, b)
            }
            NodeMut::Exchange(_) => Ok(()),
        })?;
        c.run = snap.run;
        c.next_id = c.next_id.max(snap.id + 1);
        Ok(())
    }

    /// Takes a checkpoint now and waits until it is written and committed (no-op when
    /// checkpointing is off).
    pub fn checkpoint(&mut self) -> Result<()> {
        self.start_checkpoint(false)?;
        self.finish_checkpoint(true)
    }

    /// Takes a savepoint now: a checkpoint that holds all of the job's state itself (as Flink's
    /// savepoints, never building on earlier checkpoints), and waits until it is committed.
    pub fn savepoint(&mut self) -> Result<()> {
        self.start_checkpoint(true)?;
        self.finish_checkpoint(true)
    }

    /// The synchronous phase: the snapshot is taken between two polls (source positions,
    /// operator state, the sinks' prepared rows); writing it (encoding, hashing, syncing,
    /// renaming) goes on on a thread of its own while the job carries on. A checkpoint still in
    /// flight is finished first.
    fn start_checkpoint(&mut self, whole: bool) -> Result<()> {
        self.finish_checkpoint(true)?;
        if self.checkpoints.is_none() {
            return Ok(());
        }
        self.drain()?;
        let parallelism = self.parallelism_lines();
        let Some(c) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let mut snap = Snapshot {
            id: c.next_id,
            run: c.run,
            ..Snapshot::default()
        };
        for t in &mut self.tasks {
            snap.layout
                .push(format!("source: {}", t.source.checkpoint_identity()));
            let mut position = Vec::new();
            t.source.snapshot_position(&mut position)?;
            snap.sources.push(SourceState {
                done: t.done,
                position,
            });
        }
        snap.layout.extend(parallelism);
        // the checkpoint a bounded job takes at its end, to commit its sinks' last rows (Flink's
        // final checkpoint): every operator has seen the end of its input, so none of their
        // state is needed again and none is written
        let finished = self.tasks.iter().all(|t| t.done);
        let (tasks, stages) = (&mut self.tasks, &self.stages);
        // a savepoint (or a job without incremental checkpoints) writes every state whole
        let id = (self.incremental && !whole && !finished).then_some(snap.id);
        let spool = match id {
            Some(id) => c.store.open_spool(id)?,
            None => None,
        };
        let mut snapshot = |snap: &mut Snapshot| {
            each_node(tasks, stages, &mut |n| {
                let mut b = Vec::new();
                match n {
                    NodeMut::Operator(_, op) if !op.checkpointed() => {}
                    NodeMut::Operator(id, op) => {
                        snap.layout.push(operator_identity(id, op.state_version()));
                        if !finished {
                            op.snapshot_state(&mut b);
                        }
                        snap.operators.push(b);
                    }
                    NodeMut::TwoInput(node) => {
                        snap.layout.push(operator_identity(
                            node.identity(),
                            node.operator().state_version(),
                        ));
                        if !finished {
                            node.snapshot_state(&mut b);
                        }
                        snap.operators.push(b);
                    }
                    NodeMut::Sink(s) => {
                        snap.layout.push(format!("sink: {}", s.describe()));
                        s.prepare_checkpoint(&mut b)?;
                        snap.sinks.push(b);
                    }
                    NodeMut::Exchange(_) => {}
                }
                Ok(())
            })
        };
        // with incremental checkpoints keyed states write their changes after this phase,
        // while the job goes on (see `Phase::Sections`)
        let (done, collector) = match id {
            Some(id) => {
                crate::state::incremental::collecting_deferred(id, spool, || snapshot(&mut snap))
            }
            None => {
                let (done, _, _) =
                    crate::state::incremental::collecting(None, None, || snapshot(&mut snap));
                (done, Arc::default())
            }
        };
        // a snapshot that failed, or met an error of the on-disk store, is not written
        let failed = done
            .err()
            .or_else(|| self.state_store.as_ref().and_then(|s| s.check().err()));
        if let Some(e) = failed {
            discard_spool(&collector);
            return Err(e);
        }
        let positions: Vec<Vec<u8>> = snap.sources.iter().map(|s| s.position.clone()).collect();
        c.inflight = Some(Inflight {
            id: c.next_id,
            started,
            pause: started.elapsed(),
            positions,
            phase: Phase::Sections {
                snap: Box::new(snap),
                collector,
            },
        });
        c.next_id += 1;
        c.last = Instant::now();
        self.advance_checkpoint(false)
    }

    /// Moves a checkpoint whose keyed states are writing their sections on: each writes a
    /// slice (or, with `finish`, the rest, the job waiting), and once none is left the
    /// snapshot goes to its writer thread.
    fn advance_checkpoint(&mut self, finish: bool) -> Result<()> {
        let Some(c) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let Some(f) = c.inflight.as_mut() else {
            return Ok(());
        };
        let Phase::Sections { collector, .. } = &f.phase else {
            return Ok(());
        };
        let began = Instant::now();
        if collector.outstanding() > 0 {
            use crate::state::incremental::{advancing, Advance};
            let how = if finish {
                Advance::Finish
            } else {
                Advance::Slice
            };
            let mut scratch = Vec::new();
            advancing(how, || {
                each_node(&mut self.tasks, &self.stages, &mut |n| {
                    match n {
                        NodeMut::Operator(_, op) if op.checkpointed() => {
                            op.snapshot_state(&mut scratch)
                        }
                        NodeMut::TwoInput(node) => node.snapshot_state(&mut scratch),
                        _ => {}
                    }
                    scratch.clear();
                    Ok(())
                })
            })?;
            if finish {
                f.pause += began.elapsed();
            }
        }
        if let Some(e) = self.state_store.as_ref().and_then(|s| s.check().err()) {
            if let Phase::Sections { collector, .. } = &f.phase {
                discard_spool(collector);
            }
            c.inflight = None;
            return Err(e);
        }
        let Phase::Sections { snap, collector } = &mut f.phase else {
            return Ok(());
        };
        if collector.outstanding() > 0 {
            return Ok(());
        }
        let (collected, spool) = collector.take();
        let mut snap = std::mem::take(snap.as_mut());
        snap.states = collected.sections;
        snap.references = collected.references.into_iter().collect();
        let store = c.store.clone();
        let handle = std::thread::Builder::new()
            .name(format!("checkpoint-{}", snap.id))
            .spawn(move || {
                // the spooled parts reach the disk here, off the job's thread
                if let Some(s) = spool {
                    let path = s.path().to_owned();
                    snap.spooled = Some(s.finish().map_err(|e| {
                        let _ = std::fs::remove_file(&path);
                        CheckpointError::Io {
                            path: path.display().to_string(),
                            source: e,
                        }
                    })?);
                }
                store.write(&snap)
            })
            .map_err(|e| {
                RuntimeError::Checkpoint(format!("starting the checkpoint writer: {e}"))
            })?;
        f.phase = Phase::Writing(handle);
        Ok(())
    }

    /// The second phase, once the checkpoint is on disk: sinks commit what they prepared for it
    /// and sources commit its positions (Kafka group offsets). Without `wait`, only when the
    /// writer has finished.
    fn finish_checkpoint(&mut self, wait: bool) -> Result<()> {
        self.advance_checkpoint(wait)?;
        let Some(c) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let written = |f: &Inflight| matches!(&f.phase, Phase::Writing(h) if h.is_finished());
        if !wait && c.inflight.as_ref().is_none_or(|f| !written(f)) {
            return Ok(());
        }
        let Some(f) = c.inflight.take() else {
            return Ok(());
        };
        let Phase::Writing(handle) = f.phase else {
            return Err(RuntimeError::Checkpoint(
                "internal: a checkpoint's keyed state sections did not finish".into(),
            ));
        };
        let written = handle
            .join()
            .map_err(|_| RuntimeError::Checkpoint("the checkpoint writer panicked".into()))?
            .map_err(|e| {
                RuntimeError::Checkpoint(format!(
                    "{e}. The last complete checkpoint is kept: once the checkpoint directory \
                     takes files again (space, permissions), run the job again and it resumes \
                     from there"
                ))
            })?;
        if c.crash_after == Some(f.id) {
            std::process::abort();
        }
        let (run, id) = (c.run, f.id);
        // a Kafka group member's offsets first: once committed, the partition's next owner
        // starts after them; the checkpoint's rows are in the checkpoint, and a sink that
        // stops before committing them commits them when the job resumes from it (its marker
        // tells). Other sources commit after the sinks.
        for (t, pos) in self.tasks.iter_mut().zip(&f.positions) {
            if t.source.commits_before_sinks() {
                t.source.commit_checkpoint(pos)?;
            }
        }
        each_node(&mut self.tasks, &self.stages, &mut |n| match n {
            NodeMut::Sink(s) => s.commit_checkpoint(run, id),
            _ => Ok(()),
        })?;
        for (t, pos) in self.tasks.iter_mut().zip(&f.positions) {
            if !t.source.commits_before_sinks() {
                t.source.commit_checkpoint(pos)?;
            }
        }
        let micros = f.started.elapsed().as_micros() as u64;
        c.stats.completed += 1;
        c.stats.last_id = id;
        c.stats.last_bytes = written.bytes;
        c.stats.last_full_bytes = written.full_bytes;
        c.stats.last_micros = micros;
        c.stats.last_pause_micros = f.pause.as_micros() as u64;
        c.stats.total_micros += micros;
        c.stats.total_pause_micros += f.pause.as_micros() as u64;
        c.stats.max_bytes = c.stats.max_bytes.max(written.bytes);
        c.stats.max_full_bytes = c.stats.max_full_bytes.max(written.full_bytes);
        c.stats.max_micros = c.stats.max_micros.max(micros);
        c.stats.max_pause_micros = c.stats.max_pause_micros.max(f.pause.as_micros() as u64);
        Ok(())
    }

    /// After the final checkpoint of a job that ran to its end: sinks finish, and the job's
    /// checkpoints are removed (the next run of the job starts afresh).
    fn complete(&mut self) -> Result<()> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        self.checkpoint()?;
        each_node(&mut self.tasks, &self.stages, &mut |n| match n {
            NodeMut::Sink(s) => s.end_of_job(),
            _ => Ok(()),
        })?;
        if let Some(c) = &self.checkpoints {
            c.store.remove_all()?;
        }
        Ok(())
    }

    /// Calls `f` about five times a second while the job runs.
    pub fn on_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    /// Calls `f` with every counter of the job about five times a second while it runs.
    pub fn on_report(&mut self, f: ReportFn) {
        self.reports = Some(f);
    }

    /// A flag that stops the job (unbounded sources) when set.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs until every source has ended (or the stop flag is set), then reports.
    pub fn run(&mut self) -> Result<JobReport> {
        // without checkpoints, states have no delta to record removals for
        let recording = self.checkpoints.is_some();
        if !self.stages.is_empty() {
            let (c, acks) = Coordination::new();
            each_node(&mut self.tasks, &self.stages, &mut |n| {
                if let NodeMut::Exchange(e) = n {
                    e.attach(&c);
                }
                Ok(())
            })?;
            for s in &mut self.stages {
                s.start(&c, self.state_store.clone(), self.incremental, recording)?;
            }
            self.coordination = Some((c, acks));
        }
        let store = self.state_store.clone();
        let incremental = self.incremental;
        let result = crate::state::incremental::scoped_tracking(incremental, || {
            crate::state::incremental::scoped_recording(recording, || {
                crate::state::disk::scoped(store.as_ref(), || self.run_loop())
            })
        });
        for s in &mut self.stages {
            if result.is_ok() {
                s.stop();
            } else {
                s.abandon();
            }
        }
        self.coordination = None;
        result
    }

    /// A drain round (parallel jobs): a barrier through every exchange, and a wait until every
    /// stage's every instance has passed it on, so everything read so far has reached the sinks
    /// and nothing moves until the job loop reads again.
    fn drain(&mut self) -> Result<()> {
        let Some((c, acks)) = &self.coordination else {
            // one thread: what operators hold (a Python bundle) goes out before the snapshot
            for t in &mut self.tasks {
                t.pipeline.flush_operators()?;
            }
            return Ok(());
        };
        let mut seen = Vec::new();
        for t in &mut self.tasks {
            // what a local aggregate holds goes before the barrier
            t.pipeline.flush_operators()?;
            t.pipeline.for_each_mut(&mut seen, &mut |n| match n {
                NodeMut::Exchange(e) => e.barrier(),
                _ => Ok(()),
            })?;
        }
        let expected: usize = self.stages.iter().map(Stage::parallelism).sum();
        let mut got = 0;
        while got < expected {
            match acks.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => got += 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(why) = c.failure() {
                        return Err(RuntimeError::Worker(why));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(RuntimeError::Worker(
                        c.failure()
                            .unwrap_or_else(|| "the job's workers stopped".into()),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The first failure of a worker of a parallel job, if one has failed.
    fn worker_failure(&self) -> Result<()> {
        match self.coordination.as_ref().and_then(|(c, _)| c.failure()) {
            Some(why) => Err(RuntimeError::Worker(why)),
            None => Ok(()),
        }
    }

    fn run_loop(&mut self) -> Result<JobReport> {
        let started = Instant::now();
        let mut row = Row::with_capacity(16);
        let mut since_tick = 0u32;
        let mut records = 0u64;
        let mut last_report = Instant::now();
        let mut last_commit = Instant::now();
        let checkpointing = self.checkpoints.is_some();
        let parallel = self.coordination.is_some();
        loop {
            let mut all_done = true;
            let mut any_record = false;
            for task in self.tasks.iter_mut().filter(|t| !t.done) {
                all_done = false;
                if task.fused.is_some() {
                    // a chunk decoded, and its rows routed, by the source's decoding threads
                    match task.source.poll_fused()? {
                        Some(out) => {
                            any_record = true;
                            records += task.deliver(out)?;
                            task.pipeline.processing_time(wall_clock_micros())?;
                        }
                        None => {
                            task.pipeline.end()?;
                            if !checkpointing && !parallel {
                                task.source.commit()?;
                            }
                            task.done = true;
                        }
                    }
                    continue;
                }
                // Drain a bounded burst from one source before moving to the next.
                for _ in 0..1024 {
                    row.clear();
                    match task.source.poll(&mut row)? {
                        Poll::Record => {
                            any_record = true;
                            records += 1;
                            task.pipeline.push(&row)?;
                            since_tick += 1;
                            if since_tick >= TICK_EVERY {
                                since_tick = 0;
                                task.pipeline.processing_time(wall_clock_micros())?;
                            }
                        }
                        Poll::Idle => break,
                        Poll::End => {
                            task.pipeline.end()?;
                            // on several workers the rows are still on their way to the sinks:
                            // the commit waits for the final drain round
                            if !checkpointing && !parallel {
                                task.source.commit()?;
                            }
                            task.done = true;
                            break;
                        }
                    }
                }
            }
            self.check_state_store()?;
            if self
                .tasks
                .iter_mut()
                .any(|t| !t.done && t.source.wants_checkpoint())
            {
                // a source gives partitions up at a rebalance: what it handed out is
                // committed first
                self.checkpoint()?;
                for task in &mut self.tasks {
                    task.source.checkpointed()?;
                }
            }
            if all_done {
                self.drain()?;
                if !checkpointing && parallel {
                    for task in &mut self.tasks {
                        task.source.commit()?;
                    }
                }
                self.complete()?;
                break;
            }
            self.worker_failure()?;
            if last_report.elapsed() >= Duration::from_millis(200) {
                last_report = Instant::now();
                if let Some(f) = self.progress.as_mut() {
                    let fraction = self
                        .tasks
                        .iter()
                        .filter(|t| !t.done)
                        .map(|t| t.source.progress())
                        .try_fold(1.0f64, |acc, p| p.map(|p| acc.min(p)));
                    f(&JobProgress {
                        records,
                        elapsed: started.elapsed(),
                        fraction,
                    });
                }
                if let Some(mut f) = self.reports.take() {
                    let mut r = self.report(started.elapsed());
                    self.recent_rows(&mut r.tables);
                    f(&r);
                    self.reports = Some(f);
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                if checkpointing {
                    // stop with a savepoint: open windows stay in the checkpoint, not fired
                    self.savepoint()?;
                    break;
                }
                for task in self.tasks.iter_mut().filter(|t| !t.done) {
                    task.pipeline.end()?;
                    task.done = true;
                }
                self.drain()?;
                for task in &mut self.tasks {
                    task.source.commit()?;
                }
                break;
            }
            if let Some(c) = &self.checkpoints {
                if c.last.elapsed() >= c.interval {
                    self.start_checkpoint(false)?;
                } else {
                    self.finish_checkpoint(false)?;
                }
            } else if last_commit.elapsed() >= COMMIT_EVERY {
                // at-least-once without checkpoints: a source's position is committed only after
                // the sinks have made durable what its rows produced (rows still held in open
                // windows are not covered until checkpoints exist)
                last_commit = Instant::now();
                // what operators hold (a Python bundle) goes out before positions are committed
                self.drain()?;
                if self.coordination.is_some() {
                    each_node(&mut self.tasks, &self.stages, &mut |n| match n {
                        NodeMut::Sink(s) => s.flush(),
                        _ => Ok(()),
                    })?;
                }
                for task in self.tasks.iter_mut().filter(|t| !t.done) {
                    task.pipeline.flush_sinks()?;
                    task.source.commit()?;
                }
            }
            if !any_record {
                let now = wall_clock_micros();
                for task in self.tasks.iter_mut().filter(|t| !t.done) {
                    task.pipeline.processing_time(now)?;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let mut r = self.report(started.elapsed());
        self.recent_rows(&mut r.tables);
        Ok(r)
    }

    /// The latest rows of every sink that keeps them (a table written by several workers once,
    /// with every worker's rows).
    fn recent_rows(&mut self, out: &mut Vec<(String, Vec<String>)>) {
        for t in &mut self.tasks {
            t.pipeline.recent_rows(out);
        }
        let mut more = Vec::new();
        for s in &self.stages {
            for i in &s.instances {
                if let Ok(mut g) = crate::exchange::lock(i) {
                    for p in &mut g.inputs {
                        p.recent_rows(&mut more);
                    }
                }
            }
        }
        for (table, rows) in more {
            match out.iter_mut().find(|(t, _)| *t == table) {
                Some((_, have)) => have.extend(rows),
                None => out.push((table, rows)),
            }
        }
    }

    /// Counters of every source, operator and sink.
    pub fn report(&self, elapsed: Duration) -> JobReport {
        let mut r = JobReport {
            elapsed,
            checkpoints: self.checkpoint_stats(),
            state_store: self.state_store.as_ref().map(|s| {
                let (entries_spilled, entries_loaded) = s.moves();
                StateStoreStats {
                    disk_bytes: s.disk_bytes(),
                    memory_bytes: s.cached_bytes().max(0) as u64,
                    memory_budget: s.budget().max(0) as u64,
                    entries_spilled,
                    entries_loaded,
                }
            }),
            ..JobReport::default()
        };
        let mut rep = Reporter {
            r: &mut r,
            refs: Vec::new(),
            joins: Vec::new(),
            stages: &self.stages,
            merged: self.stages.iter().map(merged_counters).collect(),
        };
        for t in &self.tasks {
            rep.r
                .sources
                .push((t.source.describe(), t.source.metrics()));
            rep.r.partition_lag.push(t.source.partition_lag());
            rep.refs.push(NodeRef::Source(rep.r.sources.len() - 1));
            let parent = rep.refs.len() - 1;
            let first = rep.r.operators.len();
            rep.visit(&t.pipeline, parent, None);
            // a fused task's operators ran on its source's decoding threads
            if let Some(f) = &t.fused {
                for (j, m) in f.metrics.iter().enumerate() {
                    if let Some(op) = rep.r.operators.get_mut(first + j) {
                        op.1 = m.clone();
                    }
                }
            }
        }
        r
    }
}

/// A counter of one node of a stage, summed over the stage's instances.
enum Counter {
    Operator(OperatorMetrics),
    Sink(u64),
}

/// A stage's counters: per input, its nodes' counters in visiting order, summed over the
/// instances, with each instance's rows in; and each instance's worker counters.
struct StageCounters {
    nodes: Vec<Vec<(Counter, Vec<u64>)>>,
    workers: Vec<crate::exchange::WorkerMetrics>,
}

fn merged_counters(stage: &Stage) -> StageCounters {
    let mut merged: Vec<Vec<(Counter, Vec<u64>)>> = Vec::new();
    let mut workers = Vec::new();
    for inst in &stage.instances {
        let Ok(mut g) = crate::exchange::lock(inst) else {
            continue;
        };
        workers.push(g.metrics());
        for (port, p) in g.inputs.iter().enumerate() {
            if merged.len() <= port {
                merged.push(Vec::new());
            }
            let mut k = 0;
            p.visit(0, &mut |_, n| {
                let c = match n {
                    Node::Operator(_, op) => Counter::Operator(op.metrics()),
                    Node::TwoInput(_, op, _) => Counter::Operator(op.metrics()),
                    Node::Sink(s) => Counter::Sink(s.rows_written()),
                    Node::Exchange(..) => return 0,
                };
                let rows = match &c {
                    Counter::Operator(m) => m.records_in,
                    Counter::Sink(n) => *n,
                };
                match merged[port].get_mut(k) {
                    Some((Counter::Operator(m), per)) => {
                        if let Counter::Operator(x) = c {
                            add_metrics(m, &x);
                        }
                        per.push(rows);
                    }
                    Some((Counter::Sink(sum), per)) => {
                        if let Counter::Sink(x) = c {
                            *sum += x;
                        }
                        per.push(rows);
                    }
                    None => merged[port].push((c, vec![rows])),
                }
                k += 1;
                0
            });
        }
    }
    StageCounters {
        nodes: merged,
        workers,
    }
}

/// Adds an instance's counters to the sum of its stage's instances (the watermark is the
/// least-advanced instance's).
fn add_metrics(sum: &mut OperatorMetrics, m: &OperatorMetrics) {
    sum.records_in += m.records_in;
    sum.records_out += m.records_out;
    sum.late_dropped += m.late_dropped;
    sum.state_entries += m.state_entries;
    sum.state_bytes += m.state_bytes;
    sum.state_expired += m.state_expired;
    sum.watermark = match (sum.watermark, m.watermark) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    sum.max_event_time = sum.max_event_time.max(m.max_event_time);
    if let Some(mm) = &m.model {
        sum.model.get_or_insert_with(Default::default).add(mm);
    }
}

/// Builds a [`JobReport`]'s nodes and edges: the job loop's pipelines, and through their
/// exchanges each stage once (its first instance's shape, every instance's counters summed).
struct Reporter<'a> {
    r: &'a mut JobReport,
    refs: Vec<NodeRef>,
    /// Two-input identity -> id in `refs`.
    joins: Vec<(usize, usize)>,
    stages: &'a [Stage],
    merged: Vec<StageCounters>,
}

impl Reporter<'_> {
    /// Visits `p` from the node `parent`; `stage` is `(stage, input, next counter)` inside a
    /// stage.
    fn visit(
        &mut self,
        p: &crate::operator::Pipeline,
        parent: usize,
        stage: Option<(usize, usize)>,
    ) {
        let mut k = 0usize;
        p.visit(parent, &mut |parent, n| {
            let entry = stage.and_then(|(s, port)| self.merged.get(s)?.nodes.get(port)?.get(k));
            let counter = entry.map(|(c, _)| c);
            // each worker's rows in, beside its stage's counters
            let workers: Vec<crate::exchange::WorkerMetrics> = match (stage, entry) {
                (Some((s, _)), Some((_, per))) => self.merged[s]
                    .workers
                    .iter()
                    .zip(per)
                    .map(|(w, rows)| crate::exchange::WorkerMetrics {
                        rows_in: *rows,
                        ..*w
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !matches!(n, Node::Exchange(..)) {
                k += 1;
            }
            // an operator's counters: its workers' sum inside a stage, its own elsewhere
            let summed = |own: OperatorMetrics| match counter {
                Some(Counter::Operator(m)) => m.clone(),
                _ => own,
            };
            let id = match n {
                Node::Operator(label, op) => self.operator(label, summed(op.metrics()), workers),
                Node::TwoInput(label, op, key) => {
                    match self.joins.iter().find(|(k, _)| *k == key) {
                        Some(&(_, id)) => id,
                        None => {
                            let id = self.operator(label, summed(op.metrics()), workers);
                            self.joins.push((key, id));
                            id
                        }
                    }
                }
                Node::Sink(s) => {
                    let rows = match counter {
                        Some(Counter::Sink(n)) => *n,
                        _ => s.rows_written(),
                    };
                    self.r.sinks.push((s.describe(), rows));
                    self.refs.push(NodeRef::Sink(self.r.sinks.len() - 1));
                    self.refs.len() - 1
                }
                Node::Exchange(s, port) => {
                    self.stage(s, port, parent);
                    return parent;
                }
            };
            self.r.edges.push((self.refs[parent], self.refs[id]));
            id
        });
    }

    /// Adds an operator node; returns its id.
    fn operator(
        &mut self,
        label: &str,
        m: OperatorMetrics,
        workers: Vec<crate::exchange::WorkerMetrics>,
    ) -> usize {
        self.r.operators.push((label.to_owned(), m));
        self.r.workers.push(workers);
        self.refs
            .push(NodeRef::Operator(self.r.operators.len() - 1));
        self.refs.len() - 1
    }

    /// Visits input `port` of stage `s` (its first instance) from the node `parent`.
    fn stage(&mut self, s: usize, port: usize, parent: usize) {
        let Some(first) = self.stages.get(s).and_then(|st| st.instances.first()) else {
            return;
        };
        let Ok(g) = crate::exchange::lock(first) else {
            return;
        };
        if let Some(p) = g.inputs.get(port) {
            self.visit(p, parent, Some((s, port)));
        }
    }
}

/// How an operator is named in a checkpoint's layout: its label (the plan's node name and id),
/// what its state means and the version of its state's layout — never its description, so
/// rewording `explain` or a description never invalidates a checkpoint.
fn operator_identity(id: &NodeIdentity, state_version: u32) -> String {
    if id.signature.is_empty() {
        format!("operator: {} (state v{state_version})", id.label)
    } else {
        format!(
            "operator: {} {} (state v{state_version})",
            id.label, id.signature
        )
    }
}

/// The error for operator state that does not read back: the checkpoint, the operator, why.
fn unreadable_state(from: &str, label: &str, e: RuntimeError) -> RuntimeError {
    let why = match e {
        RuntimeError::State(m) => m,
        other => other.to_string(),
    };
    CheckpointError::Corrupt {
        path: from.to_owned(),
        what: format!("the state of operator {label} does not read back ({why})"),
    }
    .into()
}

/// Calls `f` on every node of the job, each once, in an order that depends only on the plan:
/// the job loop's pipelines, then each stage's instances in order (locked; the job loop reaches
/// into them only while the graph is quiet, or to read counters).
fn each_node(
    tasks: &mut [SourceTask],
    stages: &[Stage],
    f: &mut dyn FnMut(NodeMut<'_>) -> Result<()>,
) -> Result<()> {
    each_placed_node(tasks, stages, &mut |_, n| f(n))
}

/// Removes the spool file of a checkpoint that will not be written.
fn discard_spool(collector: &crate::state::incremental::Collector) {
    if let (_, Some(s)) = collector.take() {
        let path = s.path().to_owned();
        drop(s);
        let _ = std::fs::remove_file(path);
    }
}

/// Where a node runs: the job loop's thread (`None`), or instance `index` of a stage of
/// `workers` routing by `max_parallelism` key groups.
#[derive(Clone, Copy)]
struct Place {
    workers: usize,
    index: usize,
    max_parallelism: u64,
}

/// [`each_node`], with the place of each node.
fn each_placed_node(
    tasks: &mut [SourceTask],
    stages: &[Stage],
    f: &mut dyn FnMut(Option<Place>, NodeMut<'_>) -> Result<()>,
) -> Result<()> {
    let mut seen = Vec::new();
    for t in tasks {
        t.pipeline.for_each_mut(&mut seen, &mut |n| f(None, n))?;
    }
    for s in stages {
        for (index, i) in s.instances.iter().enumerate() {
            let place = Place {
                workers: s.parallelism(),
                index,
                max_parallelism: s.max_parallelism,
            };
            let mut g = crate::exchange::lock(i)?;
            for p in &mut g.inputs {
                p.for_each_mut(&mut seen, &mut |n| f(Some(place), n))?;
            }
        }
    }
    Ok(())
}

/// Restores a checkpoint taken at another parallelism (`old_max_parallelism`: its key groups) into
/// the job's operators and sinks, whose plan is the checkpoint's (`layout` lists the job's
/// nodes). Each operator instance gets the snapshots of all of the node's old instances and
/// keeps the keys it now owns (see [`crate::state::Rescale`]); each old writer's prepared rows
/// are committed, under its own marker, by a writer of the same table.
fn rescale(
    tasks: &mut [SourceTask],
    stages: &[Stage],
    snap: &Snapshot,
    from: &str,
    job: &str,
    layout: &[String],
    old_max_parallelism: u64,
) -> Result<()> {
    use std::collections::HashMap;
    let short = || {
        RuntimeError::from(CheckpointError::Corrupt {
            path: from.to_owned(),
            what: "its state does not match its plan".into(),
        })
    };
    let mut op_parts: HashMap<&str, Vec<&[u8]>> = HashMap::new();
    let mut sink_parts: HashMap<&str, Vec<(usize, &[u8])>> = HashMap::new();
    let (mut ops, mut sinks) = (snap.operators.iter(), snap.sinks.iter());
    let mut writer = 0usize;
    for line in &snap.layout {
        if line.starts_with("operator: ") {
            let b = ops.next().ok_or_else(short)?;
            op_parts.entry(line).or_default().push(b);
        } else if line.starts_with("sink: ") {
            writer += 1;
            let b = sinks.next().ok_or_else(short)?;
            sink_parts.entry(line).or_default().push((writer, b));
        }
    }
    // how many writers of each table the job has now, and which of them is next
    let mut writers: HashMap<&str, (usize, usize)> = HashMap::new();
    for line in layout.iter().filter(|l| l.starts_with("sink: ")) {
        writers.entry(line).or_default().0 += 1;
    }
    let (run, id) = (snap.run, snap.id);
    let finished = snap.finished();
    each_placed_node(tasks, stages, &mut |place, n| {
        let rescale_for = |parts: usize| crate::state::Rescale {
            max_parallelism: place.map_or(1, |p| p.max_parallelism),
            old_max_parallelism,
            old_workers: parts,
            workers: place.map_or(1, |p| p.workers),
            index: place.map_or(0, |p| p.index),
        };
        match n {
            NodeMut::Operator(_, op) if !op.checkpointed() => Ok(()),
            NodeMut::Operator(..) | NodeMut::TwoInput(_) if finished => Ok(()),
            NodeMut::Operator(nid, op) => {
                let line = operator_identity(nid, op.state_version());
                let parts = op_parts.get(line.as_str()).ok_or_else(short)?;
                op.restore_parts(parts, &rescale_for(parts.len()))
                    .map_err(|e| unreadable_state(from, &nid.label, e))
            }
            NodeMut::TwoInput(node) => {
                let line = operator_identity(node.identity(), node.operator().state_version());
                let label = node.identity().label.clone();
                let parts = op_parts.get(line.as_str()).ok_or_else(short)?;
                node.restore_parts(parts, &rescale_for(parts.len()))
                    .map_err(|e| unreadable_state(from, &label, e))
            }
            NodeMut::Sink(s) => {
                let line = format!("sink: {}", s.describe());
                let (count, next) = writers.get_mut(line.as_str()).ok_or_else(short)?;
                let mine = *next;
                *next += 1;
                let parts = sink_parts.get(line.as_str()).ok_or_else(short)?;
                for (j, (old_writer, b)) in parts.iter().enumerate() {
                    if j % (*count).max(1) == mine {
                        s.restore_checkpoint_from(&format!("{job}#{old_writer}"), run, id, b)?;
                    }
                }
                Ok(())
            }
            NodeMut::Exchange(_) => Ok(()),
        }
    })
}
