//! The job loop: polls every source, pushes its records through its pipeline, delivers
//! processing-time ticks, and ends each pipeline when its bounded source is exhausted.

use crate::error::Result;
use crate::operator::{Node, OperatorMetrics, Pipeline, Poll, Source, SourceMetrics};
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
}

impl SourceTask {
    /// Connects a source to a pipeline.
    pub fn new(source: Box<dyn Source>, pipeline: Pipeline) -> Self {
        SourceTask {
            source,
            pipeline,
            done: false,
        }
    }
}

/// What a finished (or stopped) job did.
#[derive(Clone, Debug, Default)]
pub struct JobReport {
    /// Per source: description and counters.
    pub sources: Vec<(String, SourceMetrics)>,
    /// Per operator: description and counters.
    pub operators: Vec<(String, OperatorMetrics)>,
    /// Per sink: description and rows written.
    pub sinks: Vec<(String, u64)>,
    /// The graph's edges, from the node feeding to the node fed.
    pub edges: Vec<(NodeRef, NodeRef)>,
    /// Per result table that keeps them: its latest rows as JSON lines (filled for `on_report`).
    pub tables: Vec<(String, Vec<String>)>,
    /// Wall time.
    pub elapsed: Duration,
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

/// A runnable job: a set of source tasks.
pub struct Job {
    tasks: Vec<SourceTask>,
    stop: Arc<AtomicBool>,
    progress: Option<ProgressFn>,
    reports: Option<ReportFn>,
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
        Job {
            tasks,
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
            reports: None,
        }
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
        let started = Instant::now();
        let mut row = Row::with_capacity(16);
        let mut since_tick = 0u32;
        let mut records = 0u64;
        let mut last_report = Instant::now();
        let mut last_commit = Instant::now();
        loop {
            let mut all_done = true;
            let mut any_record = false;
            for task in self.tasks.iter_mut().filter(|t| !t.done) {
                all_done = false;
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
                            task.source.commit()?;
                            task.done = true;
                            break;
                        }
                    }
                }
            }
            if all_done {
                break;
            }
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
                    for t in &mut self.tasks {
                        t.pipeline.recent_rows(&mut r.tables);
                    }
                    f(&r);
                    self.reports = Some(f);
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                for task in self.tasks.iter_mut().filter(|t| !t.done) {
                    task.pipeline.end()?;
                    task.source.commit()?;
                    task.done = true;
                }
                break;
            }
            if last_commit.elapsed() >= COMMIT_EVERY {
                // at-least-once without checkpoints: a source's position is committed only after
                // the sinks have made durable what its rows produced (rows still held in open
                // windows are not covered until checkpoints exist)
                last_commit = Instant::now();
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
        for t in &mut self.tasks {
            t.pipeline.recent_rows(&mut r.tables);
        }
        Ok(r)
    }

    /// Counters of every source, operator and sink.
    pub fn report(&self, elapsed: Duration) -> JobReport {
        let mut r = JobReport {
            elapsed,
            ..JobReport::default()
        };
        let mut refs: Vec<NodeRef> = Vec::new();
        let mut joins: Vec<(usize, usize)> = Vec::new(); // two-input identity -> id in `refs`
        for t in &self.tasks {
            r.sources.push((t.source.describe(), t.source.metrics()));
            refs.push(NodeRef::Source(r.sources.len() - 1));
            t.pipeline.visit(refs.len() - 1, &mut |parent, n| {
                let id = match n {
                    Node::Operator(op) => {
                        r.operators.push((op.describe(), op.metrics()));
                        refs.push(NodeRef::Operator(r.operators.len() - 1));
                        refs.len() - 1
                    }
                    Node::TwoInput(op, key) => match joins.iter().find(|(k, _)| *k == key) {
                        Some(&(_, id)) => id,
                        None => {
                            r.operators.push((op.describe(), op.metrics()));
                            refs.push(NodeRef::Operator(r.operators.len() - 1));
                            joins.push((key, refs.len() - 1));
                            refs.len() - 1
                        }
                    },
                    Node::Sink(s) => {
                        r.sinks.push((s.describe(), s.rows_written()));
                        refs.push(NodeRef::Sink(r.sinks.len() - 1));
                        refs.len() - 1
                    }
                };
                r.edges.push((refs[parent], refs[id]));
                id
            });
        }
        r
    }
}
