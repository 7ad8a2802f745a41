//! Exchanges and stages: how a job runs on every core.
//!
//! A parallel job is cut, wherever rows must change worker, into **stages**: the job loop's
//! thread runs the sources and what precedes the first keyed operator of each path; every later
//! stage runs as `P` **instances**, each on a thread of its own with its own operators (built
//! from the plan once per instance). An [`Exchange`] ends a pipeline where the next stage
//! begins: it routes each row to the instance that owns the row's key group — Flink's
//! `KeyGroupRangeAssignment`: key group = hash of the encoded key scaled to the max parallelism,
//! instance = key group × P / max parallelism — or every row to instance 0 for a `single`
//! distribution (a global aggregate, a sink). Rows travel in recycled batches (laid flat) through
//! bounded channels (a full channel blocks the sender: backpressure), and a watermark travels
//! inside the batches at its place among the rows, to every instance, so each instance sees its
//! rows and watermarks in the order of the sender. An instance's watermark on an input is the
//! minimum of its senders'.
//!
//! A **drain round** (a barrier through every exchange) is how the job loop sees the graph
//! quiet: the loop stops reading, sends the barrier, and waits until every instance has
//! received it from all of its senders (and so processed everything before it) and passed it
//! on. Processing-time ticks come only from the job loop, so nothing moves until it reads again:
//! a checkpoint taken then is a consistent cut, as aligned barriers give, and flushing sinks
//! then covers every row read so far.

use crate::error::{Result, RuntimeError};
use crate::keys::{encode_key, hash_key, instance_of};
use crate::operator::{NodeMut, Pipeline};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tillflow_types::{Row, RowKind, Value};

/// Rows per batch sent through an exchange.
pub const BATCH_ROWS: usize = 256;

/// Batches a channel into one instance holds before its senders wait.
const INBOX_BATCHES: usize = 16;

/// Rows in arrival order, with the watermarks that came between them. The rows lie flat —
/// every value in one vector, every string byte in another — so a batch is a few contiguous
/// blocks the receiving core reads in order, not a row's scattered buffers.
#[derive(Default)]
pub struct Batch {
    values: Vec<Value>,
    heap: Vec<u8>,
    /// Per row: where its values and heap end, its kind and split.
    rows: Vec<(usize, usize, RowKind, u32)>,
    len: usize,
    /// `(position, watermark)`: the watermark came before row `position` (or after the last
    /// row when `position == len`).
    marks: Vec<(usize, i64)>,
}

impl Batch {
    fn push(&mut self, row: &Row) {
        // value by value: the row was just written a value at a time, and one wide block
        // read of it would wait for those stores to reach the cache
        for v in &row.values {
            self.values.push(*v);
        }
        self.heap.extend_from_slice(&row.heap);
        self.rows
            .push((self.values.len(), self.heap.len(), row.kind, row.split));
        self.len += 1;
    }

    /// Row `i` into `out` (its strings refer to its own heap, so they stay valid).
    fn get(&self, i: usize, out: &mut Row) {
        let (v0, h0) = match i.checked_sub(1).and_then(|p| self.rows.get(p)) {
            Some(&(v, h, _, _)) => (v, h),
            None => (0, 0),
        };
        let Some(&(v1, h1, kind, split)) = self.rows.get(i) else {
            return;
        };
        out.values.clear();
        out.values
            .extend_from_slice(self.values.get(v0..v1).unwrap_or_default());
        out.heap.clear();
        out.heap
            .extend_from_slice(self.heap.get(h0..h1).unwrap_or_default());
        out.kind = kind;
        out.split = split;
    }

    /// Writes the batch's rows and watermarks into `sink` in order; a watermark is raised to
    /// `floor`, and one that does not rise above it is left out (as [`Exchange::adopt`]).
    pub fn write_to(&self, sink: &mut dyn crate::operator::Sink, floor: i64) -> Result<()> {
        let (mut row, mut ahead) = (Row::with_capacity(16), Row::with_capacity(16));
        let mut marks = self.marks.iter().filter(|(_, w)| *w > floor).peekable();
        self.get(0, &mut row);
        for i in 0..self.len {
            while let Some(&(_, wm)) = marks.next_if(|(at, _)| *at <= i) {
                sink.watermark(wm)?;
            }
            // one row ahead, as a worker reads a batch (StageInstance::handle)
            self.get(i + 1, &mut ahead);
            sink.write(&row)?;
            std::mem::swap(&mut row, &mut ahead);
        }
        for &(_, wm) in marks {
            sink.watermark(wm)?;
        }
        Ok(())
    }

    fn mark(&mut self, wm: i64) {
        match self.marks.last_mut() {
            Some((at, w)) if *at == self.len => *w = (*w).max(wm),
            _ => self.marks.push((self.len, wm)),
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.marks.is_empty()
    }

    fn reset(&mut self) {
        self.values.clear();
        self.heap.clear();
        self.rows.clear();
        self.len = 0;
        self.marks.clear();
    }
}

/// Batches returned by their receivers for reuse by the sender.
pub type Pool = Arc<Mutex<Vec<Batch>>>;

/// Empties `batches` and puts them back into `pool`.
fn give_back(pool: &Pool, batches: impl IntoIterator<Item = Batch>) {
    if let Ok(mut p) = pool.lock() {
        for mut b in batches {
            b.reset();
            p.push(b);
        }
    }
}

/// How an exchange routes rows — on which key columns, among how many instances, by how many
/// key groups — and the pool its emptied batches return to.
#[derive(Clone, Default)]
pub struct Routing {
    /// The key columns (none: every row to instance 0).
    pub keys: Vec<usize>,
    /// The instances rows are routed among.
    pub width: usize,
    /// The key groups (`pipeline.max-parallelism`).
    pub max_parallelism: u64,
    /// Where emptied batches go back to.
    pub pool: Pool,
}

/// What travels into an instance.
pub enum Msg {
    /// Rows and watermarks from sender `from` on input `port`; `home` takes the batch back.
    Batch {
        /// The stage's input.
        port: usize,
        /// The sender's index among that input's senders.
        from: usize,
        /// The rows.
        batch: Batch,
        /// Where the emptied batch goes back to.
        home: Pool,
    },
    /// A processing-time tick (wall clock, microseconds) from sender `from` of input `port`.
    Tick {
        /// The stage's input.
        port: usize,
        /// The sender.
        from: usize,
        /// The wall clock.
        now: i64,
    },
    /// A drain round's barrier from sender `from` of input `port`.
    Barrier {
        /// The stage's input.
        port: usize,
        /// The sender.
        from: usize,
    },
    /// Sender `from` of input `port` has ended.
    End {
        /// The stage's input.
        port: usize,
        /// The sender.
        from: usize,
    },
    /// The job is over: the instance's thread ends.
    Shutdown,
}

/// Where a job's stages report back to the job loop: an instance that has passed a drain
/// round's barrier on, and the first failure of any instance.
#[derive(Clone)]
pub struct Coordination {
    acks: Sender<()>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Coordination {
    /// The job loop's end: the sender instances report to, and the receiver of their acks.
    pub fn new() -> (Coordination, Receiver<()>) {
        let (acks, rx) = std::sync::mpsc::channel();
        (
            Coordination {
                acks,
                failure: Arc::new(Mutex::new(None)),
            },
            rx,
        )
    }

    /// Records an instance's failure (the first one is kept).
    pub fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }

    /// The first failure, if any instance has failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// The end of a pipeline where rows change worker: routes each row to the instance of the next
/// stage that owns its key.
pub struct Exchange {
    keys: Vec<usize>,
    /// The instances rows are routed among.
    width: usize,
    port: usize,
    from: usize,
    targets: Vec<SyncSender<Msg>>,
    batches: Vec<Batch>,
    pool: Pool,
    key: Vec<u8>,
    max_parallelism: u64,
    label: String,
    stage: usize,
    failure: Option<Arc<Mutex<Option<String>>>>,
    /// Time spent waiting for a full channel to take a batch (back-pressure).
    backpressured: Duration,
}

impl Exchange {
    /// The stage it feeds (its index in the job) and which of the stage's inputs.
    pub fn target_stage(&self) -> (usize, usize) {
        (self.stage, self.port)
    }

    /// A description for explain-like listings: `Exchange(hash[..]) → Stage`.
    pub fn describe(&self) -> &str {
        &self.label
    }

    /// The instance of the next stage that owns `row`'s key.
    #[inline]
    fn target(&mut self, row: &Row) -> usize {
        let n = self.width;
        if n == 1 || self.keys.is_empty() {
            return 0;
        }
        encode_key(&mut self.key, row, &self.keys);
        instance_of(hash_key(&self.key), self.max_parallelism, n)
    }

    fn stopped(&self) -> RuntimeError {
        let why = self
            .failure
            .as_ref()
            .and_then(|f| f.lock().ok().and_then(|f| f.clone()));
        RuntimeError::Worker(match why {
            Some(w) => w,
            None => format!("{}: the receiving worker stopped", self.label),
        })
    }

    fn send(&mut self, i: usize) -> Result<()> {
        if self.batches[i].is_empty() {
            return Ok(());
        }
        let fresh = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let batch = std::mem::replace(&mut self.batches[i], fresh);
        let msg = Msg::Batch {
            port: self.port,
            from: self.from,
            batch,
            home: self.pool.clone(),
        };
        match self.targets[i].try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(msg)) => {
                let t = Instant::now();
                let r = self.targets[i].send(msg).map_err(|_| self.stopped());
                self.backpressured += t.elapsed();
                r
            }
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    /// Learns where the job records its workers' failures (to name the cause when the
    /// receiving worker has stopped).
    pub fn attach(&mut self, coordination: &Coordination) {
        self.failure = Some(coordination.failure.clone());
    }

    /// Sends every partly filled batch.
    pub fn flush(&mut self) -> Result<()> {
        for i in 0..self.targets.len() {
            self.send(i)?;
        }
        Ok(())
    }

    fn broadcast(&mut self, msg: impl Fn(usize, usize) -> Msg) -> Result<()> {
        self.flush()?;
        for i in 0..self.targets.len() {
            self.targets[i]
                .send(msg(self.port, self.from))
                .map_err(|_| self.stopped())?;
        }
        Ok(())
    }

    /// Routes one row.
    #[inline]
    pub fn push(&mut self, row: &Row) -> Result<()> {
        let i = self.target(row);
        self.batches[i].push(row);
        if self.batches[i].len >= BATCH_ROWS && !self.targets.is_empty() {
            self.send(i)?;
        }
        Ok(())
    }

    /// An exchange that routes as `routing` does, into batches it keeps (for a decoding
    /// thread: [`PrefixWork`]), taken from the routing's pool of emptied batches so a chunk's
    /// rows land in memory already grown to a chunk's size.
    pub fn capture(routing: &Routing) -> Exchange {
        let (width, pool) = (routing.width.max(1), routing.pool.clone());
        let mut batches = match pool.lock() {
            Ok(mut p) => {
                let keep = p.len().saturating_sub(width);
                p.split_off(keep)
            }
            Err(_) => Vec::new(),
        };
        batches.resize_with(width, Batch::default);
        Exchange {
            keys: routing.keys.clone(),
            width,
            port: 0,
            from: 0,
            targets: Vec::new(),
            batches,
            pool,
            key: Vec::new(),
            max_parallelism: routing.max_parallelism.max(1),
            label: "capture".into(),
            stage: 0,
            failure: None,
            backpressured: Duration::ZERO,
        }
    }

    /// How this exchange routes rows, and where its emptied batches go back to.
    pub fn routing(&self) -> Routing {
        Routing {
            keys: self.keys.clone(),
            width: self.width,
            max_parallelism: self.max_parallelism,
            pool: self.pool.clone(),
        }
    }

    /// Sends batches a capturing exchange of the same routing filled (one per instance), after
    /// what this one holds. Their watermarks are the chunk's own (its running maximum from the
    /// chunk's first row): each is raised to `floor`, the watermark before the chunk, and one
    /// that does not rise above it is left out.
    pub fn adopt(&mut self, batches: Vec<Batch>, floor: i64) -> Result<()> {
        for (i, mut b) in batches.into_iter().enumerate().take(self.width) {
            b.marks.retain(|(_, w)| *w > floor);
            self.send(i)?;
            if b.is_empty() {
                self.recycle(b);
                continue;
            }
            let mine = std::mem::replace(&mut self.batches[i], b);
            self.recycle(mine);
            self.send(i)?;
        }
        Ok(())
    }

    /// Puts a batch back into the pool, emptied.
    fn recycle(&self, b: Batch) {
        give_back(&self.pool, [b]);
    }

    /// Passes a watermark to every instance, at its place among the rows.
    pub fn watermark(&mut self, wm: i64) -> Result<()> {
        for b in &mut self.batches {
            b.mark(wm);
        }
        Ok(())
    }

    /// Passes a processing-time tick to every instance (after the rows before it).
    pub fn tick(&mut self, now: i64) -> Result<()> {
        self.broadcast(|port, from| Msg::Tick { port, from, now })
    }

    /// Passes a drain round's barrier to every instance.
    pub fn barrier(&mut self) -> Result<()> {
        self.broadcast(|port, from| Msg::Barrier { port, from })
    }

    /// Tells every instance this sender has ended.
    pub fn end(&mut self) -> Result<()> {
        self.broadcast(|port, from| Msg::End { port, from })
    }
}

/// What [`PrefixWork`] made of a chunk: a batch per instance of the next stage, the counters
/// of its operators, and the rows it took.
pub struct FusedChunk {
    /// Per instance of the next stage.
    pub batches: Vec<Batch>,
    /// Per operator of the prefix, over the chunk.
    pub metrics: Vec<crate::operator::OperatorMetrics>,
    /// Where the batches go back to once their rows are delivered.
    pub home: Pool,
}

impl FusedChunk {
    /// Gives the batches back to their pool (after their rows are delivered).
    pub fn recycle(self) {
        give_back(&self.home, self.batches);
    }

    /// The chunk's last watermark (its running maximum), if it raised one.
    pub fn last_watermark(&self) -> Option<i64> {
        self.batches
            .iter()
            .filter_map(|b| b.marks.last().map(|m| m.1))
            .max()
    }
}

/// Builds the operators of a source's pipeline before its first exchange.
pub type PrefixOps = Arc<dyn Fn() -> Result<Vec<Box<dyn crate::operator::Operator>>> + Send + Sync>;

/// The start of a source's pipeline — computed columns, the watermark assigner, projections and
/// filters, up to the first exchange — run by a decoding thread over each chunk, with operators
/// made afresh for the chunk: its watermarks are the chunk's own running maximum, which the job
/// loop raises to the watermark before the chunk as it sends the chunk's batches on in input
/// order ([`Exchange::adopt`]). So the job loop's thread only deals chunks and sends batches,
/// and every row and watermark reaches its worker as on one thread.
pub struct PrefixWork {
    /// The operators.
    pub ops: PrefixOps,
    /// The exchange's routing.
    pub routing: Routing,
}

impl crate::operator::ChunkWork for PrefixWork {
    fn run(&mut self, rows: &[Row]) -> Result<crate::operator::ChunkOutput> {
        let mut p = Pipeline {
            ops: (self.ops)()?,
            ids: Vec::new(),
            output: crate::operator::Output::Exchange(Exchange::capture(&self.routing)),
        };
        for r in rows {
            p.push(r)?;
        }
        // a local aggregate's partials leave with the chunk
        p.flush_operators()?;
        let metrics = p.ops.iter().map(|o| o.metrics()).collect();
        let batches = match &mut p.output {
            crate::operator::Output::Exchange(e) => std::mem::take(&mut e.batches),
            _ => Vec::new(),
        };
        Ok(Box::new(FusedChunk {
            batches,
            metrics,
            home: self.routing.pool.clone(),
        }))
    }
}

/// One instance of a stage: the pipelines its inputs feed, and what it knows of its senders.
pub struct StageInstance {
    /// Per input: the pipeline it feeds.
    pub inputs: Vec<Pipeline>,
    /// The row being handed on (reused).
    row: Row,
    /// The batch's next row, copied out while `row` is handed on.
    ahead: Row,
    /// Per input, per sender: its watermark.
    watermarks: Vec<Vec<i64>>,
    /// Per input: the watermark forwarded.
    forwarded: Vec<i64>,
    /// Per input, per sender: whether it has ended.
    ended: Vec<Vec<bool>>,
    /// Per input, per sender: whether its barrier of the current drain round has come.
    barriers: Vec<Vec<bool>>,
    /// Per input, per sender: its latest processing-time tick.
    ticks: Vec<Vec<i64>>,
    /// The processing time delivered (the least of the senders' ticks).
    ticked: i64,
    /// Rows received.
    rows_in: u64,
    /// Time spent handling what arrived (back-pressure included).
    busy: Duration,
}

/// What one worker of a stage has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Rows received.
    pub rows_in: u64,
    /// Microseconds spent working (waiting on a full downstream channel included).
    pub busy_micros: u64,
    /// Microseconds spent waiting for a full downstream channel (back-pressure).
    pub backpressured_micros: u64,
}

impl StageInstance {
    /// The worker's counters.
    pub fn metrics(&mut self) -> WorkerMetrics {
        let mut back = Duration::ZERO;
        let _ = self.each_exchange(&mut |e| {
            back += e.backpressured;
            Ok(())
        });
        WorkerMetrics {
            rows_in: self.rows_in,
            busy_micros: self.busy.as_micros() as u64,
            backpressured_micros: back.as_micros() as u64,
        }
    }

    fn watermark(&mut self, port: usize, from: usize, wm: i64) -> Result<()> {
        let w = &mut self.watermarks[port][from];
        *w = (*w).max(wm);
        let min = self.watermarks[port].iter().copied().min().unwrap_or(wm);
        if min > self.forwarded[port] {
            self.forwarded[port] = min;
            self.inputs[port].watermark(min)?;
        }
        Ok(())
    }

    /// Handles one message; returns false at shutdown. `acks` hears of a finished drain round.
    fn handle(&mut self, msg: Msg, coordination: &Coordination) -> Result<bool> {
        match msg {
            Msg::Batch {
                port,
                from,
                batch,
                home,
            } => {
                if port >= self.inputs.len() || from >= self.watermarks[port].len() {
                    return Err(RuntimeError::State(format!(
                        "internal: a batch for input {port} from sender {from}"
                    )));
                }
                self.rows_in += batch.len as u64;
                let mut marks = batch.marks.iter().peekable();
                batch.get(0, &mut self.row);
                for i in 0..batch.len {
                    while let Some(&(_, wm)) = marks.next_if(|(at, _)| *at <= i) {
                        self.watermark(port, from, wm)?;
                    }
                    // row i was copied out a row ago: its stores have reached the cache, so
                    // the operators' reads of it do not wait for them
                    batch.get(i + 1, &mut self.ahead);
                    self.inputs[port].push(&self.row)?;
                    std::mem::swap(&mut self.row, &mut self.ahead);
                }
                for &(_, wm) in marks {
                    self.watermark(port, from, wm)?;
                }
                give_back(&home, [batch]);
            }
            Msg::Tick { port, from, now } => {
                // like a watermark: the least of the senders' (an upstream worker passes a tick
                // on after what it fired on it), ended senders aside
                if let Some(t) = self.ticks.get_mut(port).and_then(|t| t.get_mut(from)) {
                    *t = (*t).max(now);
                }
                let least = self
                    .ticks
                    .iter()
                    .zip(&self.ended)
                    .flat_map(|(t, e)| t.iter().zip(e).filter(|(_, e)| !**e).map(|(t, _)| *t))
                    .min();
                if let Some(least) = least.filter(|l| *l > self.ticked) {
                    self.ticked = least;
                    for p in &mut self.inputs {
                        p.processing_time(least)?;
                    }
                }
            }
            Msg::Barrier { port, from } => {
                let Some(b) = self.barriers.get_mut(port).and_then(|b| b.get_mut(from)) else {
                    return Err(RuntimeError::State(format!(
                        "internal: a barrier from sender {from} of input {port}"
                    )));
                };
                *b = true;
                if self.barriers.iter().flatten().all(|b| *b) {
                    for b in self.barriers.iter_mut().flatten() {
                        *b = false;
                    }
                    // what operators hold (a Python bundle) goes before the barrier
                    for p in &mut self.inputs {
                        p.flush_operators()?;
                    }
                    self.each_exchange(&mut |e| e.barrier())?;
                    // the job loop waits for every instance: a lost ack is a failed job
                    let _ = coordination.acks.send(());
                }
            }
            Msg::End { port, from } => {
                let Some(e) = self.ended.get_mut(port).and_then(|e| e.get_mut(from)) else {
                    return Err(RuntimeError::State(format!(
                        "internal: an end from sender {from} of input {port}"
                    )));
                };
                *e = true;
                if self.ended[port].iter().all(|e| *e) {
                    self.inputs[port].end()?;
                }
            }
            Msg::Shutdown => return Ok(false),
        }
        Ok(true)
    }

    /// Calls `f` on every exchange the instance's pipelines end in.
    fn each_exchange(&mut self, f: &mut dyn FnMut(&mut Exchange) -> Result<()>) -> Result<()> {
        let mut seen = Vec::new();
        for p in &mut self.inputs {
            p.for_each_mut(&mut seen, &mut |n| match n {
                NodeMut::Exchange(e) => f(e),
                _ => Ok(()),
            })?;
        }
        Ok(())
    }
}

/// A stage's instances, shared between their threads and the job loop (which locks them only
/// while the graph is quiet, or briefly to read counters).
pub type SharedInstance = Arc<Mutex<StageInstance>>;

/// Locks an instance.
pub fn lock(i: &SharedInstance) -> Result<MutexGuard<'_, StageInstance>> {
    i.lock()
        .map_err(|_| RuntimeError::State("a worker failed while holding its state".into()))
}

/// A stage of a parallel job: its instances and the channels into them.
pub struct Stage {
    /// Instances, by index.
    pub instances: Vec<SharedInstance>,
    /// The channel into each instance (the job loop's own handle, for shutdown).
    inboxes: Vec<SyncSender<Msg>>,
    /// Each instance's receiving end until its thread starts.
    receivers: Vec<Option<Receiver<Msg>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// `Stage N` (for thread names and messages).
    pub name: String,
    /// The key groups rows are routed by (`pipeline.max-parallelism`).
    pub max_parallelism: u64,
}

/// A stage being built: its channels exist, so exchanges into it can be made before its own
/// pipelines.
pub struct StageBuilder {
    parallelism: usize,
    senders: Vec<usize>,
    inboxes: Vec<SyncSender<Msg>>,
    receivers: Vec<Receiver<Msg>>,
    pools: Vec<Pool>,
    name: String,
    index: usize,
    max_parallelism: u64,
}

impl StageBuilder {
    /// Stage `index` of a job, of `parallelism` instances whose input `i` has `senders[i]`
    /// senders.
    pub fn new(
        index: usize,
        name: String,
        parallelism: usize,
        senders: Vec<usize>,
        max_parallelism: u32,
    ) -> Self {
        let (mut inboxes, mut receivers) = (Vec::new(), Vec::new());
        for _ in 0..parallelism.max(1) {
            let (tx, rx) = sync_channel(INBOX_BATCHES);
            inboxes.push(tx);
            receivers.push(rx);
        }
        StageBuilder {
            parallelism: parallelism.max(1),
            pools: senders.iter().map(|_| Pool::default()).collect(),
            senders,
            inboxes,
            receivers,
            name,
            index,
            max_parallelism: max_parallelism.max(1) as u64,
        }
    }

    /// The stage's parallelism.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The exchange by which sender `from` of input `port` reaches this stage, routing by the
    /// hash of `keys` (every row to instance 0 when `keys` is empty).
    pub fn exchange(&self, port: usize, from: usize, keys: Vec<usize>, label: String) -> Exchange {
        let n = self.inboxes.len();
        Exchange {
            keys,
            width: n,
            port,
            from,
            targets: self.inboxes.clone(),
            batches: (0..n).map(|_| Batch::default()).collect(),
            pool: self.pools.get(port).cloned().unwrap_or_default(),
            key: Vec::new(),
            max_parallelism: self.max_parallelism,
            label,
            stage: self.index,
            failure: None,
            backpressured: Duration::ZERO,
        }
    }

    /// The stage, with each instance's pipelines (one per input).
    pub fn finish(self, instances: Vec<Vec<Pipeline>>) -> Result<Stage> {
        if instances.len() != self.parallelism
            || instances.iter().any(|i| i.len() != self.senders.len())
        {
            return Err(RuntimeError::State(format!(
                "internal: {} expects {} instance(s) of {} input(s)",
                self.name,
                self.parallelism,
                self.senders.len()
            )));
        }
        let instances = instances
            .into_iter()
            .map(|inputs| {
                Arc::new(Mutex::new(StageInstance {
                    watermarks: self.senders.iter().map(|&n| vec![i64::MIN; n]).collect(),
                    forwarded: vec![i64::MIN; inputs.len()],
                    ended: self.senders.iter().map(|&n| vec![false; n]).collect(),
                    barriers: self.senders.iter().map(|&n| vec![false; n]).collect(),
                    ticks: self.senders.iter().map(|&n| vec![i64::MIN; n]).collect(),
                    ticked: i64::MIN,
                    row: Row::with_capacity(16),
                    ahead: Row::with_capacity(16),
                    rows_in: 0,
                    busy: Duration::ZERO,
                    inputs,
                }))
            })
            .collect();
        Ok(Stage {
            instances,
            inboxes: self.inboxes,
            receivers: self.receivers.into_iter().map(Some).collect(),
            threads: Vec::new(),
            name: self.name,
            max_parallelism: self.max_parallelism,
        })
    }
}

impl Stage {
    /// The number of instances.
    pub fn parallelism(&self) -> usize {
        self.instances.len()
    }

    /// Starts a thread per instance. Every exchange into the stage learns where failures are
    /// recorded through `coordination`. Keyed states the instances make track their changes
    /// when `incremental`, and states record removals only when the job checkpoints
    /// (`recording`, see [`crate::state::incremental::scoped_recording`]).
    pub fn start(
        &mut self,
        coordination: &Coordination,
        state_store: Option<Arc<crate::state::disk::DiskStore>>,
        incremental: bool,
        recording: bool,
    ) -> Result<()> {
        for (i, inst) in self.instances.iter().enumerate() {
            let Some(rx) = self.receivers.get_mut(i).and_then(Option::take) else {
                continue;
            };
            let inst = inst.clone();
            let c = coordination.clone();
            let name = format!("{} #{i}", self.name);
            let store = state_store.clone();
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .stack_size(crate::WORKER_STACK)
                .spawn(move || {
                    // keyed state the instance makes as it runs uses the job's store
                    crate::state::disk::set_thread_store(store);
                    crate::state::incremental::set_thread_tracking(incremental);
                    crate::state::incremental::set_thread_recording(recording);
                    // a panic is a failure like any other: the job loop must hear of it
                    let run = std::panic::AssertUnwindSafe(|| run_instance(&inst, &rx, &c, &name));
                    if let Err(p) = std::panic::catch_unwind(run) {
                        let why = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown cause".into());
                        c.fail(format!("{name} panicked: {why}"));
                    }
                })
                .map_err(|e| RuntimeError::State(format!("starting a worker thread: {e}")))?;
            self.threads.push(thread);
        }
        Ok(())
    }

    /// Ends every instance's thread and waits for it.
    pub fn stop(&mut self) {
        for tx in &self.inboxes {
            let _ = tx.send(Msg::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// After a failure: asks every instance's thread to end, without waiting for it.
    pub fn abandon(&mut self) {
        for tx in &self.inboxes {
            let _ = tx.try_send(Msg::Shutdown);
        }
        self.threads.clear();
    }
}

/// An instance's thread: handles messages in arrival order, holding the instance's lock while
/// it works through what has arrived, and sends its partly filled batches on whenever its
/// channel is empty.
fn run_instance(inst: &SharedInstance, rx: &Receiver<Msg>, c: &Coordination, name: &str) {
    let fail = |e: RuntimeError| {
        c.fail(match e {
            // a failure further down is reported where it happened
            RuntimeError::Worker(w) => w,
            e => format!("{name}: {e}"),
        })
    };
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let Ok(mut guard) = lock(inst) else {
            return fail(RuntimeError::State("poisoned".into()));
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match guard.handle(msg, c) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return fail(e),
            }
            match rx.try_recv() {
                Ok(m) => next = Some(m),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if let Err(e) = guard.each_exchange(&mut |e| e.flush()) {
            return fail(e);
        }
        guard.busy += started.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Output, Sink};
    use tillflow_types::Value;

    /// Records what reaches it: `row K N`, `wm W`, `end`.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Sink for Recorder {
        fn describe(&self) -> String {
            "recorder".into()
        }
        fn write(&mut self, row: &Row) -> crate::Result<()> {
            let v = |i: usize| match row.values.get(i) {
                Some(Value::Int(n)) => *n,
                _ => -1,
            };
            self.0
                .lock()
                .unwrap()
                .push(format!("row {} {}", v(0), v(1)));
            Ok(())
        }
        fn watermark(&mut self, wm: i64) -> crate::Result<()> {
            self.0.lock().unwrap().push(format!("wm {wm}"));
            Ok(())
        }
        fn finish(&mut self) -> crate::Result<()> {
            self.0.lock().unwrap().push("end".into());
            Ok(())
        }
        fn rows_written(&self) -> u64 {
            0
        }
    }

    /// What a recorder saw.
    type Seen = Arc<Mutex<Vec<String>>>;

    /// `n` instances, each recording what reaches it.
    fn recorders(n: usize) -> (Vec<Seen>, Vec<Vec<Pipeline>>) {
        let seen: Vec<Seen> = (0..n).map(|_| Arc::default()).collect();
        let instances = seen
            .iter()
            .map(|s| {
                vec![Pipeline {
                    ops: Vec::new(),
                    ids: Vec::new(),
                    output: Output::Sink(Box::new(Recorder(s.clone()))),
                }]
            })
            .collect();
        (seen, instances)
    }

    fn row(key: i64, n: i64) -> Row {
        let mut r = Row::with_capacity(2);
        r.values.extend([Value::Int(key), Value::Int(n)]);
        r
    }

    /// Two senders into a stage of two instances: each key reaches one instance, in each
    /// sender's order; an instance's watermark is the least of its senders'; a drain round is
    /// acknowledged once per instance after every barrier; the end comes once both senders end.
    #[test]
    fn routes_by_key_keeps_order_and_combines_watermarks() {
        let b = StageBuilder::new(0, "test".into(), 2, vec![2], 128);
        let mut senders = [
            b.exchange(0, 0, vec![0], "x".into()),
            b.exchange(0, 1, vec![0], "x".into()),
        ];
        let (seen, instances) = recorders(2);
        let mut stage = b.finish(instances).unwrap();
        let (c, acks) = Coordination::new();
        for s in &mut senders {
            s.attach(&c);
        }
        stage.start(&c, None, false, false).unwrap();
        // 1000 rows per sender over 10 keys (more than a batch per instance)
        for n in 0..1000 {
            senders[0].push(&row(n % 10, n)).unwrap();
            senders[1].push(&row(n % 10, 10_000 + n)).unwrap();
            if n == 500 {
                senders[0].watermark(10).unwrap();
                senders[1].watermark(5).unwrap();
            }
        }
        senders[1].watermark(20).unwrap();
        for s in &mut senders {
            s.barrier().unwrap();
        }
        for _ in 0..2 {
            acks.recv_timeout(std::time::Duration::from_secs(10))
                .expect("an ack per instance");
        }
        assert!(acks.try_recv().is_err(), "one ack per instance");
        for s in &mut senders {
            s.end().unwrap();
        }
        senders[0].barrier().unwrap();
        senders[1].barrier().unwrap();
        for _ in 0..2 {
            acks.recv_timeout(std::time::Duration::from_secs(10))
                .expect("acks after the end");
        }
        stage.stop();
        assert!(c.failure().is_none());
        let mut owner = std::collections::HashMap::new();
        let mut total = 0;
        for (i, s) in seen.iter().enumerate() {
            let events = s.lock().unwrap().clone();
            let (mut last0, mut last1) = (-1, 9_999);
            let mut wms = Vec::new();
            for e in &events {
                let f: Vec<&str> = e.split(' ').collect();
                match f[0] {
                    "row" => {
                        total += 1;
                        let (k, n): (i64, i64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
                        assert_eq!(*owner.entry(k).or_insert(i), i, "key {k} on one instance");
                        let last = if n < 10_000 { &mut last0 } else { &mut last1 };
                        assert!(n > *last, "sender order kept: {n} after {last}");
                        *last = n;
                        // the watermark 5 is forwarded once both senders' marks have come:
                        // every row pushed before them has arrived by then
                        if !wms.is_empty() {
                            assert!(n > 10_500 || (501..10_000).contains(&n), "{n} after wm");
                        }
                    }
                    "wm" => wms.push(f[1].parse::<i64>().unwrap()),
                    _ => {}
                }
            }
            assert_eq!(
                wms,
                vec![5, 10, i64::MAX],
                "instance {i}: least of its senders'"
            );
            assert_eq!(events.last().map(String::as_str), Some("end"));
        }
        assert_eq!(total, 2000);
        assert_eq!(
            owner
                .values()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            2
        );
    }

    /// A worker that fails makes its senders fail with the worker's message, not hang.
    #[test]
    fn a_failing_worker_fails_its_senders_with_its_message() {
        struct Failing;
        impl Sink for Failing {
            fn describe(&self) -> String {
                "failing".into()
            }
            fn write(&mut self, _: &Row) -> crate::Result<()> {
                Err(RuntimeError::Sink("disk full".into()))
            }
            fn finish(&mut self) -> crate::Result<()> {
                Ok(())
            }
            fn rows_written(&self) -> u64 {
                0
            }
        }
        let b = StageBuilder::new(0, "Sink(t)".into(), 1, vec![1], 128);
        let mut e = b.exchange(0, 0, Vec::new(), "x".into());
        let mut stage = b
            .finish(vec![vec![Pipeline {
                ops: Vec::new(),
                ids: Vec::new(),
                output: Output::Sink(Box::new(Failing)),
            }]])
            .unwrap();
        let (c, _acks) = Coordination::new();
        e.attach(&c);
        stage.start(&c, None, false, false).unwrap();
        let mut err = None;
        for n in 0..100_000 {
            if let Err(x) = e.push(&row(1, n)) {
                err = Some(x);
                break;
            }
        }
        let err = err.expect("the sender fails once the worker has stopped");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(c.failure().is_some_and(|f| f.contains("Sink(t) #0")));
        stage.abandon();
    }

    /// Records the processing time it is told.
    struct Clock(Arc<Mutex<Vec<i64>>>);

    impl crate::operator::Operator for Clock {
        fn describe(&self) -> String {
            "clock".into()
        }
        fn process(&mut self, row: &Row, out: &mut dyn crate::operator::Emit) -> crate::Result<()> {
            out.emit(row)
        }
        fn on_processing_time(
            &mut self,
            now: i64,
            _out: &mut dyn crate::operator::Emit,
        ) -> crate::Result<()> {
            self.0.lock().unwrap().push(now);
            Ok(())
        }
    }

    /// A processing-time tick reaches an instance's operators once every sender has passed it
    /// on (what an upstream worker fired on it is then in), and a panicking worker is a failure
    /// the job loop hears of.
    #[test]
    fn ticks_wait_for_every_sender_and_a_panic_is_reported() {
        let b = StageBuilder::new(0, "ticks".into(), 1, vec![2], 128);
        let mut senders = [
            b.exchange(0, 0, Vec::new(), "x".into()),
            b.exchange(0, 1, Vec::new(), "x".into()),
        ];
        let told = Arc::new(Mutex::new(Vec::new()));
        struct Panicking;
        impl Sink for Panicking {
            fn describe(&self) -> String {
                "panicking".into()
            }
            fn write(&mut self, _: &Row) -> crate::Result<()> {
                panic!("a bug")
            }
            fn finish(&mut self) -> crate::Result<()> {
                Ok(())
            }
            fn rows_written(&self) -> u64 {
                0
            }
        }
        let mut stage = b
            .finish(vec![vec![Pipeline {
                ops: vec![Box::new(Clock(told.clone()))],
                ids: Vec::new(),
                output: Output::Sink(Box::new(Panicking)),
            }]])
            .unwrap();
        let (c, acks) = Coordination::new();
        stage.start(&c, None, false, false).unwrap();
        senders[0].tick(100).unwrap();
        senders[1].tick(50).unwrap();
        senders[1].tick(150).unwrap();
        for s in &mut senders {
            s.barrier().unwrap();
        }
        acks.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(*told.lock().unwrap(), vec![50, 100]);
        senders[0].push(&row(1, 1)).unwrap();
        senders[0].flush().unwrap();
        let t = std::time::Instant::now();
        while c.failure().is_none() && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let why = c.failure().unwrap_or_default();
        assert!(why.contains("ticks #0 panicked: a bug"), "{why}");
        stage.abandon();
    }

    /// A decoding thread's chunk, routed by a capturing exchange with the chunk's own
    /// watermarks, reaches its workers through the job loop's exchange with each watermark
    /// raised to the one before the chunk, those that do not rise above it left out.
    #[test]
    fn adopted_chunks_keep_their_rows_and_raise_their_watermarks() {
        let b = StageBuilder::new(0, "adopt".into(), 2, vec![1], 128);
        let mut e = b.exchange(0, 0, vec![0], "x".into());
        let (seen, instances) = recorders(2);
        let mut stage = b.finish(instances).unwrap();
        let (c, acks) = Coordination::new();
        e.attach(&c);
        stage.start(&c, None, false, false).unwrap();
        // the chunk's own running maximum: 3, 7, 12; the watermark before it: 7
        let mut cap = Exchange::capture(&e.routing());
        cap.push(&row(1, 1)).unwrap();
        cap.watermark(3).unwrap();
        cap.push(&row(2, 2)).unwrap();
        cap.watermark(7).unwrap();
        cap.push(&row(3, 3)).unwrap();
        cap.watermark(12).unwrap();
        let batches = std::mem::take(&mut cap.batches);
        e.adopt(batches, 7).unwrap();
        e.barrier().unwrap();
        for _ in 0..2 {
            acks.recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
        }
        stage.stop();
        let mut rows = 0;
        for s in &seen {
            let events = s.lock().unwrap().clone();
            rows += events.iter().filter(|e| e.starts_with("row")).count();
            let wms: Vec<&String> = events.iter().filter(|e| e.starts_with("wm")).collect();
            assert_eq!(wms, vec!["wm 12"], "{events:?}");
            assert_eq!(events.last().map(String::as_str), Some("wm 12"));
        }
        assert_eq!(rows, 3);
    }
}
