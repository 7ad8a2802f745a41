//! The operator, source and sink contracts and the push-based pipeline that connects them.
//!
//! A job is a graph: each source feeds a [`Pipeline`], a chain of [`Operator`]s that ends in a
//! [`Sink`], fans out to several pipelines (one per INSERT of a statement set reading the same
//! table), or enters one side of a [`TwoInputNode`] (a join), whose own pipeline continues from
//! there. Records, watermarks, processing-time ticks and end-of-input travel down the chain by
//! direct calls, one record at a time; an operator that emits passes a borrowed [`Row`] it owns and
//! reuses, so nothing is allocated or cloned per record on the way.

use crate::error::{Result, RuntimeError};
use std::sync::{Arc, Mutex, MutexGuard};
use tillflow_types::{Row, Schema};

/// Receives what an operator emits.
pub trait Emit {
    /// Passes one record downstream.
    fn emit(&mut self, row: &Row) -> Result<()>;
    /// Passes an event-time watermark (microseconds) downstream.
    fn watermark(&mut self, wm: i64) -> Result<()>;
}

/// How a model that learns on the stream (`ML_PREDICT` with `'provider' = 'online'`) has done
/// so far, prequentially: each labelled row's error is that of the prediction made before the
/// model learned from it. Sums, so the workers of a stage add up; "recent" sums fade by
/// [`ModelMetrics::FADING`] per row (the last few thousand rows count).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetrics {
    /// Rows learned from (labelled rows).
    pub learned: u64,
    /// Σ |y − ŷ| (a classifier: of P(true) against 0 or 1).
    pub abs_error: f64,
    /// Σ (y − ŷ)².
    pub squared_error: f64,
    /// Faded Σ |y − ŷ| and its faded row count.
    pub recent_abs_error: f64,
    /// The faded row count.
    pub recent_rows: f64,
    /// A classifier: rows whose predicted class was right.
    pub correct: u64,
    /// A classifier: Σ log loss (P clamped to [1e-15, 1 − 1e-15]).
    pub log_loss: f64,
    /// Whether the model classifies.
    pub classifier: bool,
}

impl ModelMetrics {
    /// How much each earlier row's error counts less per row, in the recent error.
    pub const FADING: f64 = 0.999;

    /// Counts a labelled row: label `y`, prediction `p` (for a classifier P(true)).
    pub fn record(&mut self, y: f64, p: f64) {
        let e = (y - p).abs();
        self.learned += 1;
        self.abs_error += e;
        self.squared_error += e * e;
        self.recent_abs_error = e + Self::FADING * self.recent_abs_error;
        self.recent_rows = 1.0 + Self::FADING * self.recent_rows;
        if self.classifier {
            let truth = y != 0.0;
            self.correct += u64::from((p > 0.5) == truth);
            let q = p.clamp(1e-15, 1.0 - 1e-15);
            self.log_loss -= if truth { q.ln() } else { (1.0 - q).ln() };
        }
    }

    /// Adds another worker's counts.
    pub fn add(&mut self, o: &ModelMetrics) {
        self.learned += o.learned;
        self.abs_error += o.abs_error;
        self.squared_error += o.squared_error;
        self.recent_abs_error += o.recent_abs_error;
        self.recent_rows += o.recent_rows;
        self.correct += o.correct;
        self.log_loss += o.log_loss;
        self.classifier |= o.classifier;
    }
}

/// Counters an operator exposes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperatorMetrics {
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records dropped as late (from every window they belonged to).
    pub late_dropped: u64,
    /// Keys or windows currently held in state.
    pub state_entries: u64,
    /// Bytes of the keyed state as a checkpoint writes it, estimated from a sample of entries
    /// ([`crate::state::KeyedState::bytes_estimate`]).
    pub state_bytes: u64,
    /// State entries (keys, or a join's rows) expired by the state TTL so far.
    pub state_expired: u64,
    /// The event-time watermark the operator has reached (microseconds), for operators that
    /// track one (watermark assignment, windows).
    pub watermark: Option<i64>,
    /// The newest event time the operator has seen (microseconds): the stream's own clock, for
    /// watermark assignment.
    pub max_event_time: Option<i64>,
    /// A model that learns on the stream: its errors so far.
    pub model: Option<ModelMetrics>,
}

/// A streaming operator.
pub trait Operator: Send {
    /// A one-line description for `explain` and error messages.
    fn describe(&self) -> String;

    /// Handles one record.
    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()>;

    /// Handles a watermark; the default forwards it.
    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        out.watermark(wm)
    }

    /// Handles a processing-time tick (wall clock, microseconds); the default does nothing.
    fn on_processing_time(&mut self, _now: i64, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Called once at the end of a bounded input, after the final watermark; the operator emits
    /// whatever it still holds (processing-time windows, buffers).
    fn on_end(&mut self, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Current counters.
    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// Emits what the operator holds only to save work downstream (a local aggregate's
    /// partials), without changing what the rows mean: called at the end of every decoded
    /// chunk and before every checkpoint barrier. The default holds nothing.
    fn flush(&mut self, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Whether the operator's state is part of checkpoints (false for one that is empty at
    /// every checkpoint, having flushed before the barrier; it is then left out of a
    /// checkpoint's plan, so checkpoints do not depend on whether it runs).
    fn checkpointed(&self) -> bool {
        true
    }

    /// Appends this operator's state to `out` (nothing for stateless operators).
    fn snapshot_state(&self, _out: &mut Vec<u8>) {}

    /// The version of what [`Operator::snapshot_state`] writes: raised whenever its layout
    /// changes, so a checkpoint of an older layout is refused naming the operator instead of
    /// being misread.
    fn state_version(&self) -> u32 {
        1
    }

    /// Restores state written by [`Operator::snapshot_state`].
    fn restore_state(&mut self, _input: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Restores this instance's share of the state the operator's instances wrote in a run at
    /// another parallelism: `parts` holds each old instance's snapshot, `rescale` says which
    /// keys are this instance's now. Keyed operators merge the parts' keys it owns; the default
    /// takes a stateless operator's empty parts, or one part kept whole, and refuses the rest.
    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        restore_parts_default(parts, rescale, |input| self.restore_state(input))
    }
}

/// What [`Operator::restore_parts`] does for an operator that keeps no keyed state.
fn restore_parts_default(
    parts: &[&[u8]],
    rescale: &crate::state::Rescale,
    restore: impl FnOnce(&[u8]) -> Result<()>,
) -> Result<()> {
    match parts {
        [one] if rescale.keeps_all() => restore(one),
        _ if parts.iter().all(|p| p.is_empty()) => Ok(()),
        _ => Err(RuntimeError::State(format!(
            "this operator's state cannot move from {} to {} workers",
            rescale.old_workers, rescale.workers
        ))),
    }
}

/// The least of the parts' values read by `read` (watermarks and times, which every instance
/// of a stage has alike at a checkpoint, since every sender's watermarks reach every instance).
pub fn least_of<T: Ord>(
    parts: &[&[u8]],
    mut read: impl FnMut(&[u8]) -> Result<T>,
) -> Result<Option<T>> {
    let mut least = None;
    for p in parts {
        let v = read(p)?;
        least = Some(match least {
            Some(l) if l <= v => l,
            _ => v,
        });
    }
    Ok(least)
}

/// An operator with two inputs (a join): records arrive tagged with the side they came from.
pub trait TwoInputOperator: Send {
    /// A one-line description for `explain` and error messages.
    fn describe(&self) -> String;

    /// Handles one record of input `side` (0 = left, 1 = right).
    fn process(&mut self, side: usize, row: &Row, out: &mut dyn Emit) -> Result<()>;

    /// Handles the combined watermark (the minimum of both inputs'); the default forwards it.
    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        out.watermark(wm)
    }

    /// Handles a processing-time tick (wall clock, microseconds); the default does nothing.
    fn on_processing_time(&mut self, _now: i64) {}

    /// Called once when both inputs have ended.
    fn on_end(&mut self, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Current counters.
    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// Appends this operator's state to `out`.
    fn snapshot_state(&self, _out: &mut Vec<u8>) {}

    /// The version of what [`TwoInputOperator::snapshot_state`] writes (see
    /// [`Operator::state_version`]).
    fn state_version(&self) -> u32 {
        1
    }

    /// Restores state written by [`TwoInputOperator::snapshot_state`].
    fn restore_state(&mut self, _input: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Restores this instance's share of the old instances' state, as
    /// [`Operator::restore_parts`].
    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        restore_parts_default(parts, rescale, |input| self.restore_state(input))
    }
}

/// How a plan node is known outside the plan: its label on the dashboard and in metrics
/// (`WindowAggregate[4]`: Flink's node name and the plan's id), and what its state means (the
/// planner's signature of windows, keys and aggregates), which checkpoints record beside the
/// label so that state is never restored into an operator that would read it differently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `Name[id]`.
    pub label: String,
    /// What the node's state depends on (empty for stateless nodes).
    pub signature: String,
}

/// Where two pipelines meet: a [`TwoInputOperator`] and the pipeline after it. Each input
/// pipeline ends in [`Output::Input`] naming this node and its side; the node forwards the
/// minimum of the two inputs' watermarks and ends its own pipeline once both inputs have ended.
pub struct TwoInputNode {
    id: NodeIdentity,
    op: Box<dyn TwoInputOperator>,
    downstream: Pipeline,
    watermarks: [i64; 2],
    ended: [bool; 2],
    forwarded: i64,
}

/// A shared handle to a [`TwoInputNode`] (the job runs on one thread; the lock is never contended).
pub type SharedNode = Arc<Mutex<TwoInputNode>>;

impl TwoInputNode {
    /// A node running `op` (known as `id` in checkpoints and metrics) and feeding
    /// `downstream`.
    pub fn shared(
        id: NodeIdentity,
        op: Box<dyn TwoInputOperator>,
        downstream: Pipeline,
    ) -> SharedNode {
        Arc::new(Mutex::new(TwoInputNode {
            id,
            op,
            downstream,
            watermarks: [i64::MIN; 2],
            ended: [false; 2],
            forwarded: i64::MIN,
        }))
    }

    /// How the node is known in checkpoints and metrics.
    pub fn identity(&self) -> &NodeIdentity {
        &self.id
    }

    /// The operator.
    pub fn operator(&self) -> &dyn TwoInputOperator {
        self.op.as_ref()
    }

    /// The operator, mutably (for restoring state).
    pub fn operator_mut(&mut self) -> &mut dyn TwoInputOperator {
        self.op.as_mut()
    }

    /// The pipeline after the operator.
    pub fn downstream(&self) -> &Pipeline {
        &self.downstream
    }

    /// Appends the node's state: its inputs' watermarks and ends, then the operator's state.
    pub fn snapshot_state(&self, out: &mut Vec<u8>) {
        for w in self.watermarks {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.forwarded.to_le_bytes());
        out.push(self.ended[0] as u8 | (self.ended[1] as u8) << 1);
        self.op.snapshot_state(out);
    }

    /// Restores what [`TwoInputNode::snapshot_state`] wrote.
    pub fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        let mut at = 0;
        for w in &mut self.watermarks {
            *w = crate::state::read_u64(input, &mut at)? as i64;
        }
        self.forwarded = crate::state::read_u64(input, &mut at)? as i64;
        let ended = *input
            .get(at)
            .ok_or_else(|| RuntimeError::State("truncated join node state".into()))?;
        self.ended = [ended & 1 != 0, ended & 2 != 0];
        self.op.restore_state(&input[at + 1..])
    }

    /// Restores this instance's share of what the node's old instances wrote (see
    /// [`Operator::restore_parts`]): the least of their watermarks, inputs ended where all had,
    /// and the operator's parts.
    pub fn restore_parts(
        &mut self,
        parts: &[&[u8]],
        rescale: &crate::state::Rescale,
    ) -> Result<()> {
        if let [one] = parts {
            if rescale.keeps_all() {
                return self.restore_state(one);
            }
        }
        const HEADER: usize = 8 * 3 + 1;
        let mut rest = Vec::with_capacity(parts.len());
        let (mut wm, mut forwarded, mut ended) = ([i64::MAX; 2], i64::MAX, 3u8);
        for p in parts {
            let at = &mut 0;
            for w in &mut wm {
                *w = (*w).min(crate::state::read_u64(p, at)? as i64);
            }
            forwarded = forwarded.min(crate::state::read_u64(p, at)? as i64);
            ended &= *p
                .get(*at)
                .ok_or_else(|| RuntimeError::State("truncated join node state".into()))?;
            rest.push(&p[HEADER..]);
        }
        if !parts.is_empty() {
            self.watermarks = wm;
            self.forwarded = forwarded;
            self.ended = [ended & 1 != 0, ended & 2 != 0];
        }
        self.op.restore_parts(&rest, rescale)
    }

    fn push(&mut self, side: usize, row: &Row) -> Result<()> {
        let Pipeline { ops, output, .. } = &mut self.downstream;
        self.op.process(side, row, &mut Next { ops, output })
    }

    fn watermark(&mut self, side: usize, wm: i64) -> Result<()> {
        self.watermarks[side] = self.watermarks[side].max(wm);
        let combined = self.watermarks[0].min(self.watermarks[1]);
        if combined > self.forwarded {
            self.forwarded = combined;
            let Pipeline { ops, output, .. } = &mut self.downstream;
            self.op.on_watermark(combined, &mut Next { ops, output })?;
        }
        Ok(())
    }

    fn processing_time(&mut self, now: i64) -> Result<()> {
        self.op.on_processing_time(now);
        self.downstream.processing_time(now)
    }

    fn end_input(&mut self, side: usize) -> Result<()> {
        self.ended[side] = true;
        if self.ended[0] && self.ended[1] {
            self.watermark(side, i64::MAX)?;
            let Pipeline { ops, output, .. } = &mut self.downstream;
            self.op.on_end(&mut Next { ops, output })?;
            self.downstream.end_inner()?;
        }
        Ok(())
    }
}

fn lock(node: &SharedNode) -> Result<MutexGuard<'_, TwoInputNode>> {
    node.lock().map_err(|_| {
        RuntimeError::State("a join's state was poisoned by an earlier failure".into())
    })
}

/// Where a pipeline's records end.
pub trait Sink: Send {
    /// A one-line description (connector and target) for `explain` and messages.
    fn describe(&self) -> String;
    /// Writes one record (an insert or, for changelog sinks, any row kind).
    fn write(&mut self, row: &Row) -> Result<()>;
    /// Observes a watermark (most sinks ignore it).
    fn watermark(&mut self, _wm: i64) -> Result<()> {
        Ok(())
    }
    /// A checkpoint's barrier has passed: the rows and watermarks before it belong to that
    /// checkpoint (a sink that commits by checkpoint notes where its watermark stood).
    fn on_barrier(&mut self) {}
    /// Flushes and commits everything written (end of a bounded job).
    fn finish(&mut self) -> Result<()>;
    /// Makes everything written so far durable (buffers written, transactions committed), so
    /// the source may commit the positions of the rows behind it. The default does nothing.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Rows written so far.
    fn rows_written(&self) -> u64;
    /// The latest rows written, as JSON lines, and the table's name, for sinks that keep them.
    fn recent_rows(&mut self, _out: &mut Vec<String>) -> Option<String> {
        None
    }
    /// The sink's transactional side, for exactly-once delivery with checkpoints (`None`: the
    /// sink is at-least-once: it is flushed at each checkpoint, and rows after the last one may be
    /// written again after a restart).
    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        None
    }
    /// At a checkpoint: makes what was written so far durable, or (exactly-once sinks) appends
    /// to `out` the rows the checkpoint must keep until they are committed. The default flushes.
    fn prepare_checkpoint(&mut self, _out: &mut Vec<u8>) -> Result<()> {
        self.flush()
    }
    /// The checkpoint `id` of run `run` is durable: commit what was prepared for it.
    fn commit_checkpoint(&mut self, _run: u64, _id: u64) -> Result<()> {
        Ok(())
    }
    /// After restoring checkpoint `id`: `input` is what [`Sink::prepare_checkpoint`] wrote for
    /// it; commit it unless the sink already has.
    fn restore_checkpoint(&mut self, _run: u64, _id: u64, _input: &[u8]) -> Result<()> {
        Ok(())
    }
    /// As [`Sink::restore_checkpoint`], for what another writer of the same table prepared
    /// (`writer`, its name in the commit markers): when a job resumes at another parallelism,
    /// each old writer's rows are committed under its own marker. The default treats them as
    /// this sink's own.
    fn restore_checkpoint_from(
        &mut self,
        _writer: &str,
        run: u64,
        id: u64,
        input: &[u8],
    ) -> Result<()> {
        self.restore_checkpoint(run, id, input)
    }
    /// The job has taken its final checkpoint (a sink that deferred [`Sink::finish`] finishes).
    fn end_of_job(&mut self) -> Result<()> {
        Ok(())
    }
    /// Why the sink cannot take part in checkpoints, if it cannot (checkpointing is then
    /// refused with the reason).
    fn checkpoint_obstacle(&self) -> Option<String> {
        None
    }
    /// For a sink that wraps another (and passes every call on): the wrapped sink, so that
    /// checkpointing can put its exactly-once layer right around the sink that commits.
    fn wrapped_mut(&mut self) -> Option<&mut Box<dyn Sink>> {
        None
    }
}

/// Puts `f` around the innermost sink of `sink` (through sinks that wrap another).
pub fn wrap_innermost(
    mut sink: Box<dyn Sink>,
    f: &mut dyn FnMut(Box<dyn Sink>) -> Box<dyn Sink>,
) -> Box<dyn Sink> {
    if let Some(inner) = sink.wrapped_mut() {
        let taken = std::mem::replace(inner, Box::new(Detached));
        *inner = wrap_innermost(taken, f);
        return sink;
    }
    f(sink)
}

/// A sink that can write a checkpoint's rows together with a marker naming the checkpoint in one
/// transaction, so that a checkpoint's rows are written exactly once even when the job stops
/// between completing the checkpoint and committing them (the rows are kept in the checkpoint and
/// the marker tells whether they were committed).
pub trait TransactionalSink {
    /// The `(run, checkpoint)` last committed by `writer` (the job and sink), if any.
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>>;
    /// Writes every row of `rows` and records `(run, checkpoint)` for `writer`, all in one
    /// transaction.
    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &crate::checkpoint::RowLog,
    ) -> Result<()>;
}

/// What a source returned from [`Source::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// A record was decoded into the row.
    Record,
    /// Nothing right now; poll again later.
    Idle,
    /// The bounded input is exhausted.
    End,
}

/// Counters a source exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMetrics {
    /// Records decoded.
    pub records: u64,
    /// Malformed records skipped (ignore-parse-errors) or sent to the dead-letter output.
    pub bad_records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records kept with fields set to NULL because they did not convert (Flink's
    /// `ignore-parse-errors` for JSON).
    pub nulled_records: u64,
    /// Records between the read position and the end of the input, where the source knows it
    /// (Kafka's consumer lag, summed over partitions).
    pub lag: u64,
}

/// A source of records.
pub trait Source: Send {
    /// A one-line description (connector and location).
    fn describe(&self) -> String;
    /// The schema of the rows it produces (the table's physical columns).
    fn schema(&self) -> &Schema;
    /// Decodes the next record into `row` (which the caller has cleared).
    fn poll(&mut self, row: &mut Row) -> Result<Poll>;
    /// Current counters.
    fn metrics(&self) -> SourceMetrics;

    /// Consumer lag per partition (`topic/partition`, records behind its end), for sources that
    /// have partitions.
    fn partition_lag(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// How much of a bounded input has been read (0 to 1), when the source can tell.
    fn progress(&self) -> Option<f64> {
        None
    }

    /// The job runs on `workers` workers: a source that can decode on several threads without
    /// changing the order of its records may do so. The default does nothing.
    fn parallelize(&mut self, _workers: usize) {}

    /// Asks the source to run `work` on its decoding threads over each chunk of records it
    /// decodes, in place of the job loop (which then takes [`Source::poll_fused`]'s results in
    /// input order). Returns whether it will; the default does not.
    fn fuse(&mut self, _work: ChunkWorkFactory) -> bool {
        false
    }

    /// With [`Source::fuse`]: the next chunk's result, in input order (None at the end). Its
    /// malformed records went through the source's policy first.
    fn poll_fused(&mut self) -> Result<Option<ChunkOutput>> {
        Ok(None)
    }

    /// Number of splits (Kafka partitions) whose records carry their index in `Row::split`, each
    /// with its own watermark.
    fn splits(&self) -> usize {
        1
    }

    /// What identifies the source in a checkpoint's plan (by default its description): it must
    /// not change while the job runs or between runs of the same job.
    fn checkpoint_identity(&self) -> String {
        self.describe()
    }

    /// Whether the input ends (a file, a bounded Kafka read, a generator with a size); an
    /// unbounded job is checkpointed by default.
    fn bounded(&self) -> bool {
        true
    }

    /// Whether the source can resume from a position ([`Source::snapshot_position`] and
    /// [`Source::restore_position`]), which checkpointing needs.
    fn resumable(&self) -> bool {
        false
    }

    /// Appends the source's read position (the part of a checkpoint that says where to resume),
    /// after making what it wrote beside its records (a dead-letter file) durable up to it.
    fn snapshot_position(&mut self, _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }

    /// Called after every sink of the job has flushed what this source's rows produced so far:
    /// the source may record its read position as consumed (Kafka commits the group offsets).
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }

    /// A checkpoint holding `position` (from [`Source::snapshot_position`]) is complete: record
    /// it as consumed. The default commits the current position ([`Source::commit`]).
    fn commit_checkpoint(&mut self, _position: &[u8]) -> Result<()> {
        self.commit()
    }

    /// Resumes from a position written by [`Source::snapshot_position`].
    fn restore_position(&mut self, _input: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Whether the source cannot go on until a checkpoint has committed what it handed out
    /// (a member of a Kafka consumer group giving partitions up at a rebalance: their offsets
    /// are committed first, so their next owner starts after them). The job loop then takes a
    /// checkpoint at once and calls [`Source::checkpointed`].
    fn wants_checkpoint(&mut self) -> bool {
        false
    }

    /// Whether its positions are committed before the sinks commit a checkpoint's rows (a
    /// Kafka group member: the partitions' next owner must start after them), rather than
    /// after (a source that resumes from its checkpoint's positions, whose committed
    /// offsets then never run ahead of the sinks).
    fn commits_before_sinks(&self) -> bool {
        false
    }

    /// The checkpoint [`Source::wants_checkpoint`] asked for is complete (its positions are
    /// committed).
    fn checkpointed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a [`ChunkWork`] made of one chunk of records.
pub type ChunkOutput = Box<dyn std::any::Any + Send>;

/// Work a source's decoding threads do on each chunk of decoded records (the stateless start
/// of its pipeline, see `crate::exchange::PrefixWork`).
pub trait ChunkWork: Send {
    /// Runs over one chunk's records, in order.
    fn run(&mut self, rows: &[Row]) -> Result<ChunkOutput>;
}

/// Makes a [`ChunkWork`] for each decoding thread.
pub type ChunkWorkFactory = Arc<dyn Fn() -> Result<Box<dyn ChunkWork>> + Send + Sync>;

/// A chain of operators and where it ends.
pub struct Pipeline {
    /// Operators, first to last.
    pub ops: Vec<Box<dyn Operator>>,
    /// How each operator is known in checkpoints and metrics, one per operator.
    pub ids: Vec<NodeIdentity>,
    /// The end of the chain.
    pub output: Output,
}

/// The end of a pipeline.
pub enum Output {
    /// A sink.
    Sink(Box<dyn Sink>),
    /// Several pipelines receiving the same records.
    Fanout(Vec<Pipeline>),
    /// One input (0 = left, 1 = right) of a two-input node.
    Input(SharedNode, usize),
    /// The next stage of a parallel job: rows go to the worker owning their key.
    Exchange(crate::exchange::Exchange),
}

struct Next<'a> {
    ops: &'a mut [Box<dyn Operator>],
    output: &'a mut Output,
}

impl Emit for Next<'_> {
    #[inline]
    fn emit(&mut self, row: &Row) -> Result<()> {
        match self.ops.split_first_mut() {
            Some((op, rest)) => op.process(
                row,
                &mut Next {
                    ops: rest,
                    output: self.output,
                },
            ),
            None => self.output.push(row),
        }
    }

    #[inline]
    fn watermark(&mut self, wm: i64) -> Result<()> {
        match self.ops.split_first_mut() {
            Some((op, rest)) => op.on_watermark(
                wm,
                &mut Next {
                    ops: rest,
                    output: self.output,
                },
            ),
            None => self.output.watermark(wm),
        }
    }
}

impl Output {
    fn push(&mut self, row: &Row) -> Result<()> {
        match self {
            Output::Sink(s) => s.write(row),
            Output::Fanout(ps) => {
                for p in ps {
                    p.push(row)?;
                }
                Ok(())
            }
            Output::Input(node, side) => lock(node)?.push(*side, row),
            Output::Exchange(e) => e.push(row),
        }
    }

    fn watermark(&mut self, wm: i64) -> Result<()> {
        match self {
            Output::Sink(s) => s.watermark(wm),
            Output::Fanout(ps) => {
                for p in ps {
                    p.watermark(wm)?;
                }
                Ok(())
            }
            Output::Input(node, side) => lock(node)?.watermark(*side, wm),
            Output::Exchange(e) => e.watermark(wm),
        }
    }
}

impl Pipeline {
    /// A pipeline of `ops` ending in `sink`.
    /// Each operator is labelled by its description and position.
    pub fn new(ops: Vec<Box<dyn Operator>>, sink: Box<dyn Sink>) -> Self {
        Pipeline {
            ids: ops
                .iter()
                .enumerate()
                .map(|(i, op)| NodeIdentity {
                    label: format!("{}[{i}]", op.describe()),
                    signature: String::new(),
                })
                .collect(),
            ops,
            output: Output::Sink(sink),
        }
    }

    /// The label of operator `i`.
    fn label(&self, i: usize) -> &str {
        self.ids.get(i).map_or("operator", |id| id.label.as_str())
    }

    /// Pushes one record through the chain.
    #[inline]
    pub fn push(&mut self, row: &Row) -> Result<()> {
        Next {
            ops: &mut self.ops,
            output: &mut self.output,
        }
        .emit(row)
    }

    /// Pushes a watermark through the chain.
    pub fn watermark(&mut self, wm: i64) -> Result<()> {
        Next {
            ops: &mut self.ops,
            output: &mut self.output,
        }
        .watermark(wm)
    }

    /// Delivers a processing-time tick to every operator, in order.
    pub fn processing_time(&mut self, now: i64) -> Result<()> {
        for i in 0..self.ops.len() {
            let (head, rest) = self.ops.split_at_mut(i + 1);
            let op = &mut head[i];
            op.on_processing_time(
                now,
                &mut Next {
                    ops: rest,
                    output: &mut self.output,
                },
            )?;
        }
        match &mut self.output {
            Output::Fanout(ps) => {
                for p in ps {
                    p.processing_time(now)?;
                }
            }
            // the node hears ticks from its left input only, so each tick arrives once
            Output::Input(node, 0) => lock(node)?.processing_time(now)?,
            Output::Exchange(e) => e.tick(now)?,
            _ => {}
        }
        Ok(())
    }

    /// Ends the input: the final watermark (+∞), then every operator's `on_end` in order, then the
    /// sinks' `finish`.
    pub fn end(&mut self) -> Result<()> {
        self.watermark(i64::MAX)?;
        self.end_inner()
    }

    /// Everything of [`Pipeline::end`] after the final watermark (which fan-out branches and
    /// two-input nodes have already seen).
    fn end_inner(&mut self) -> Result<()> {
        for i in 0..self.ops.len() {
            let (head, rest) = self.ops.split_at_mut(i + 1);
            head[i].on_end(&mut Next {
                ops: rest,
                output: &mut self.output,
            })?;
        }
        match &mut self.output {
            Output::Sink(s) => s.finish(),
            Output::Fanout(ps) => {
                for p in ps {
                    p.end_inner()?;
                }
                Ok(())
            }
            Output::Input(node, side) => lock(node)?.end_input(*side),
            Output::Exchange(e) => e.end(),
        }
    }

    /// Calls every operator's [`Operator::flush`] in order (its output going through the rest of
    /// the chain), in fan-out branches and after joins too.
    pub fn flush_operators(&mut self) -> Result<()> {
        for i in 0..self.ops.len() {
            let (head, rest) = self.ops.split_at_mut(i + 1);
            head[i].flush(&mut Next {
                ops: rest,
                output: &mut self.output,
            })?;
        }
        match &mut self.output {
            Output::Fanout(ps) => {
                for p in ps {
                    p.flush_operators()?;
                }
            }
            Output::Input(node, _) => lock(node)?.downstream.flush_operators()?,
            _ => {}
        }
        Ok(())
    }

    /// Flushes every sink this pipeline reaches.
    pub fn flush_sinks(&mut self) -> Result<()> {
        match &mut self.output {
            Output::Sink(s) => s.flush(),
            Output::Fanout(ps) => {
                for p in ps {
                    p.flush_sinks()?;
                }
                Ok(())
            }
            Output::Input(node, _) => lock(node)?.downstream.flush_sinks(),
            // the sinks behind an exchange are flushed by the job loop after a drain round
            Output::Exchange(e) => e.flush(),
        }
    }

    /// Collects the latest rows of every sink this pipeline reaches: `(table, JSON lines)`.
    pub fn recent_rows(&mut self, out: &mut Vec<(String, Vec<String>)>) {
        match &mut self.output {
            Output::Sink(s) => {
                let mut rows = Vec::new();
                if let Some(t) = s.recent_rows(&mut rows) {
                    out.push((t, rows));
                }
            }
            Output::Fanout(ps) => {
                for p in ps {
                    p.recent_rows(out);
                }
            }
            Output::Input(node, 0) => {
                if let Ok(mut n) = node.lock() {
                    n.downstream.recent_rows(out);
                }
            }
            Output::Input(..) | Output::Exchange(_) => {}
        }
    }

    /// Visits every operator and sink, depth first (for the job's graph and metrics). `f` gets the
    /// id of the node feeding this one (`parent`, as `f` returned it) and the node, and returns the
    /// node's own id; a two-input node is reported from both of its inputs with the same identity.
    pub fn visit(&self, parent: usize, f: &mut dyn FnMut(usize, Node<'_>) -> usize) {
        let mut p = parent;
        for (i, op) in self.ops.iter().enumerate() {
            p = f(p, Node::Operator(self.label(i), op.as_ref()));
        }
        match &self.output {
            Output::Sink(s) => {
                f(p, Node::Sink(s.as_ref()));
            }
            Output::Fanout(ps) => {
                for sub in ps {
                    sub.visit(p, f);
                }
            }
            Output::Input(node, side) => {
                if let Ok(n) = node.lock() {
                    let id = f(
                        p,
                        Node::TwoInput(
                            &n.id.label,
                            n.op.as_ref(),
                            Arc::as_ptr(node) as *const () as usize,
                        ),
                    );
                    // the node's downstream is visited from its left input only, so once
                    if *side == 0 {
                        n.downstream.visit(id, f);
                    }
                }
            }
            Output::Exchange(e) => {
                let (stage, port) = e.target_stage();
                f(p, Node::Exchange(stage, port));
            }
        }
    }
}

/// A node of a pipeline, mutably, as [`Pipeline::for_each_mut`] reaches it.
pub enum NodeMut<'a> {
    /// An operator and how it is known.
    Operator(&'a NodeIdentity, &'a mut dyn Operator),
    /// A two-input node (the operator and the node's own watermark bookkeeping).
    TwoInput(&'a mut TwoInputNode),
    /// A sink (its box, so a visitor can also replace it).
    Sink(&'a mut Box<dyn Sink>),
    /// An exchange into the next stage.
    Exchange(&'a mut crate::exchange::Exchange),
}

impl Pipeline {
    /// Calls `f` on every operator, two-input node and sink this pipeline reaches, depth first,
    /// each once: a two-input node (and what follows it) is visited where it is first reached;
    /// `seen` holds the identities of the nodes already visited (shared across the job's
    /// pipelines). The order depends only on the plan, so checkpoints use it to match state to
    /// operators.
    pub fn for_each_mut(
        &mut self,
        seen: &mut Vec<usize>,
        f: &mut dyn FnMut(NodeMut<'_>) -> Result<()>,
    ) -> Result<()> {
        let unnamed = NodeIdentity::default();
        for (i, op) in self.ops.iter_mut().enumerate() {
            let id = self.ids.get(i).unwrap_or(&unnamed);
            f(NodeMut::Operator(id, op.as_mut()))?;
        }
        match &mut self.output {
            Output::Sink(s) => f(NodeMut::Sink(s)),
            Output::Fanout(ps) => {
                for p in ps {
                    p.for_each_mut(seen, f)?;
                }
                Ok(())
            }
            Output::Input(node, _) => {
                let id = Arc::as_ptr(node) as *const () as usize;
                if seen.contains(&id) {
                    return Ok(());
                }
                seen.push(id);
                let mut n = lock(node)?;
                f(NodeMut::TwoInput(&mut n))?;
                n.downstream.for_each_mut(seen, f)
            }
            Output::Exchange(e) => f(NodeMut::Exchange(e)),
        }
    }
}

/// Stands in for a sink while [`Pipeline::map_sinks`] replaces it.
pub(crate) struct Detached;

impl Sink for Detached {
    fn describe(&self) -> String {
        "detached".into()
    }
    fn write(&mut self, _row: &Row) -> Result<()> {
        Err(RuntimeError::Sink(
            "a sink was detached from its pipeline".into(),
        ))
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn rows_written(&self) -> u64 {
        0
    }
}

impl Pipeline {
    /// Replaces every sink this pipeline reaches by `f(sink)` (each once; `seen` as in
    /// [`Pipeline::for_each_mut`]), e.g. to wrap it.
    pub fn map_sinks(
        &mut self,
        seen: &mut Vec<usize>,
        f: &mut dyn FnMut(Box<dyn Sink>) -> Box<dyn Sink>,
    ) -> Result<()> {
        self.for_each_mut(seen, &mut |n| {
            if let NodeMut::Sink(s) = n {
                let old = std::mem::replace(s, Box::new(Detached));
                *s = f(old);
            }
            Ok(())
        })
    }
}

/// A node of a pipeline, as seen by [`Pipeline::visit`].
pub enum Node<'a> {
    /// An operator and its label.
    Operator(&'a str, &'a dyn Operator),
    /// A sink.
    Sink(&'a dyn Sink),
    /// A two-input operator (a join) with its label, and an identity that is the same from both
    /// inputs.
    TwoInput(&'a str, &'a dyn TwoInputOperator, usize),
    /// An exchange into input `.1` of stage `.0` of the job (whose nodes the job reports).
    Exchange(usize, usize),
}
