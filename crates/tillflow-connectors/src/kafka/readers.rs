//! Parallel source readers (`'scan.parallelism' = 'N'`): a Kafka table's partitions are dealt
//! round-robin to N threads, each with its own librdkafka consumer and decoder, which fetch and
//! decode messages into batches of rows; the job loop takes the rows from the batches.
//!
//! What moves between threads is whole batches, recycled through a pool of a few per reader,
//! so nothing is allocated per record once the pool has warmed up and a fast reader cannot run
//! ahead by more than its pool. Each entry of a batch says which partition it came from and
//! where that partition stands after it; the source advances a partition's position only as
//! the job takes the entry, so checkpoints and committed offsets cover exactly the rows the
//! pipeline has seen, never the ones still in a batch. Malformed messages travel as entries
//! too: the dead-letter file and the error stay with the job loop.

use super::{fatal, position_reached, Codec, EndOffsets, Outcome, PartitionState};
use crate::format::DecodeError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::Row;

/// Messages a reader takes into one batch at most.
const BATCH: usize = 512;
/// Batches per reader: how far a reader can run ahead of the job.
const POOL: usize = 4;
/// How long a reader waits for a message or a free batch before looking at the stop flag.
const WAIT: Duration = Duration::from_millis(50);

/// What an entry of a batch is.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// A decoded row: `Batch::rows[i]`.
    Row(u32),
    /// Nothing to hand out (a tombstone, a message past the bounded end); the position moves.
    Skip,
    /// A malformed message: `Batch::bad[i]`.
    Bad(u32),
}

/// One message of a batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    /// The partition's index in the source's partition list.
    pub part: u32,
    /// The message's offset.
    pub offset: i64,
    /// The partition's position once this entry has been taken.
    pub next: i64,
    /// What it is.
    pub kind: Kind,
}

/// Messages one reader decoded, in the order of their partitions.
pub(super) struct Batch {
    reader: usize,
    /// The messages.
    pub entries: Vec<Entry>,
    /// Decoded rows (buffers reused from batch to batch).
    pub rows: Vec<Row>,
    /// Malformed messages: the error and the raw bytes.
    pub bad: Vec<(DecodeError, Vec<u8>)>,
    /// Payload bytes read.
    pub bytes: u64,
    /// Records whose unconvertible fields the decoder set to NULL.
    pub nulled: u64,
    /// The next entry the job takes.
    pub pos: usize,
}

impl Batch {
    fn new(reader: usize) -> Batch {
        Batch {
            reader,
            entries: Vec::with_capacity(BATCH),
            rows: Vec::new(),
            bad: Vec::new(),
            bytes: 0,
            nulled: 0,
            pos: 0,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bad.clear();
        self.bytes = 0;
        self.nulled = 0;
        self.pos = 0;
    }
}

enum Msg {
    Batch(Batch),
    Failed(String),
}

/// What [`Readers::next`] found.
pub(super) enum Next {
    /// A batch.
    Batch(Batch),
    /// Nothing yet.
    Nothing,
    /// Every reader has ended (each read its partitions to their bounded ends, or failed).
    Ended,
}

/// What the readers need before they start.
struct Pending {
    cfg: ClientConfig,
    ends: EndOffsets,
    codecs: Vec<Codec>,
}

/// The running readers.
struct Running {
    rx: Receiver<Msg>,
    free: Vec<Sender<Batch>>,
    handles: Vec<JoinHandle<()>>,
}

/// A Kafka table's reader threads.
pub(super) struct Readers {
    pending: Option<Pending>,
    running: Option<Running>,
    count: usize,
    stop: Arc<AtomicBool>,
}

impl Readers {
    /// Readers, one per codec, that start at the first [`Readers::start`] (after any restore
    /// has set the positions); their consumers are made from `cfg` and report end offsets into
    /// `ends`.
    pub fn pending(cfg: ClientConfig, ends: EndOffsets, codecs: Vec<Codec>) -> Readers {
        Readers {
            count: codecs.len(),
            pending: Some(Pending { cfg, ends, codecs }),
            running: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Number of reader threads.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the threads have started.
    pub fn started(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the threads (once): the partitions still to read are dealt round-robin, each
    /// reader's consumer assigned its share at the partitions' positions.
    pub fn start(
        &mut self,
        parts: &[PartitionState],
        table: &str,
        upsert: bool,
        metadata: &[usize],
    ) -> Result<()> {
        let Some(Pending { cfg, ends, codecs }) = self.pending.take() else {
            return Ok(());
        };
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            RuntimeError::Source(format!("table `{table}`: {what}: {e}"))
        };
        let open: Vec<usize> = (0..parts.len())
            .filter(|&i| parts[i].stop.is_none_or(|s| parts[i].next < s))
            .collect();
        let n = codecs.len().max(1);
        let (tx, rx) = channel();
        let mut free = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for (r, codec) in codecs.into_iter().enumerate() {
            let (free_tx, free_rx) = channel();
            free.push(free_tx);
            let mine: Vec<Assigned> = open
                .iter()
                .skip(r)
                .step_by(n)
                .map(|&i| Assigned {
                    topic: parts[i].topic.clone(),
                    partition: parts[i].partition,
                    index: i as u32,
                    next: parts[i].next,
                    stop: parts[i].stop,
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let consumer: BaseConsumer<EndOffsets> = cfg
                .create_with_context(ends.shared())
                .map_err(|e| fail("Kafka client", &super::properties::safe_error(&e)))?;
            let mut tpl = TopicPartitionList::new();
            for a in &mine {
                tpl.add_partition_offset(&a.topic, a.partition, Offset::Offset(a.next))
                    .map_err(|e| fail("assign", &e))?;
            }
            consumer
                .assign(&tpl)
                .map_err(|e| fail("assigning partitions", &e))?;
            let reader = Reader {
                id: r,
                table: table.to_owned(),
                consumer,
                codec,
                mine,
                upsert,
                metadata: metadata.to_vec(),
                tx: tx.clone(),
                free: free_rx,
                stop: self.stop.clone(),
                last_nulled: 0,
            };
            let failed = tx.clone();
            let name = table.to_owned();
            let handle = std::thread::Builder::new()
                .name(format!("kafka-reader-{r}"))
                .stack_size(tillflow_runtime::WORKER_STACK)
                .spawn(move || {
                    // a reader that panics fails the job instead of leaving its partitions unread
                    let run = std::panic::AssertUnwindSafe(move || reader.run());
                    if std::panic::catch_unwind(run).is_err() {
                        let _ = failed.send(Msg::Failed(format!(
                            "table `{name}`: Kafka reader thread {r} failed (panicked)"
                        )));
                    }
                })
                .map_err(|e| fail("starting a reader thread", &e))?;
            handles.push(handle);
        }
        self.running = Some(Running { rx, free, handles });
        Ok(())
    }

    /// The next batch, waiting up to `wait`.
    pub fn next(&self, wait: Duration) -> Result<Next> {
        let Some(run) = &self.running else {
            return Ok(Next::Nothing);
        };
        match run.rx.recv_timeout(wait) {
            Ok(Msg::Batch(b)) => Ok(Next::Batch(b)),
            Ok(Msg::Failed(e)) => Err(RuntimeError::Source(e)),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Nothing),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::Ended),
        }
    }

    /// Gives a batch the job has taken every entry of back to its reader.
    pub fn recycle(&self, b: Batch) {
        if let Some(run) = &self.running {
            if let Some(f) = run.free.get(b.reader) {
                let _ = f.send(b);
            }
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(run) = self.running.take() {
            drop(run.rx);
            drop(run.free);
            for h in run.handles {
                let _ = h.join();
            }
        }
    }
}

/// A partition a reader reads.
struct Assigned {
    topic: String,
    partition: i32,
    /// Its index in the source's partition list.
    index: u32,
    next: i64,
    stop: Option<i64>,
}

/// One reader thread.
struct Reader {
    id: usize,
    table: String,
    consumer: BaseConsumer<EndOffsets>,
    codec: Codec,
    mine: Vec<Assigned>,
    upsert: bool,
    metadata: Vec<usize>,
    tx: Sender<Msg>,
    free: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    last_nulled: u64,
}

impl Reader {
    fn run(mut self) {
        let mut spare: Vec<Batch> = (0..POOL).map(|_| Batch::new(self.id)).collect();
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(b) = self.free.try_recv() {
                spare.push(b);
            }
            let Some(mut b) = spare.pop() else {
                match self.free.recv_timeout(WAIT) {
                    Ok(b) => spare.push(b),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            };
            b.clear();
            if let Err(e) = self.fill(&mut b) {
                let _ = self.tx.send(Msg::Failed(e));
                return;
            }
            if b.entries.is_empty() {
                self.settle(&mut b);
            }
            if b.entries.is_empty() {
                spare.push(b);
            } else if self.tx.send(Msg::Batch(b)).is_err() {
                return; // the source is gone
            }
            if self
                .mine
                .iter()
                .all(|a| a.stop.is_some_and(|s| a.next >= s))
            {
                return; // every partition read to its bounded end
            }
        }
    }

    /// With nothing to read: a bounded partition whose consumer position has reached its end
    /// (past a transaction marker no message comes with) is done; an entry moves the job's
    /// position there too.
    fn settle(&mut self, b: &mut Batch) {
        if self.mine.iter().all(|a| a.stop.is_none_or(|s| a.next >= s)) {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for a in &mut self.mine {
            let Some(stop) = a.stop.filter(|s| a.next < *s) else {
                continue;
            };
            if position_reached(&positions, &a.topic, a.partition, stop) {
                a.next = stop;
                b.entries.push(Entry {
                    part: a.index,
                    offset: stop - 1,
                    next: stop,
                    kind: Kind::Skip,
                });
            }
        }
    }

    /// Fills `b` with the messages at hand: waits for the first, then takes what is queued.
    fn fill(&mut self, b: &mut Batch) -> std::result::Result<(), String> {
        let mut rows = 0usize;
        while b.entries.len() < BATCH {
            let wait = if b.entries.is_empty() {
                WAIT
            } else {
                Duration::ZERO
            };
            let msg = match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) if fatal(&e) => return Err(format!("table `{}`: {e}", self.table)),
                Some(Err(_)) => break, // librdkafka reconnects by itself
                Some(Ok(m)) => m,
            };
            let (offset, partition) = (msg.offset(), msg.partition());
            let Some(a) = self
                .mine
                .iter_mut()
                .find(|a| a.partition == partition && a.topic == msg.topic())
            else {
                continue;
            };
            let part = a.index;
            if let Some(s) = a.stop.filter(|s| offset >= *s) {
                a.next = a.next.max(s);
                b.entries.push(Entry {
                    part,
                    offset,
                    next: s,
                    kind: Kind::Skip,
                });
                continue;
            }
            a.next = offset + 1;
            b.bytes += msg.payload().map_or(0, <[u8]>::len) as u64;
            if b.rows.len() <= rows {
                b.rows.push(Row::with_capacity(16)); // only while the pool warms up
            }
            let row = &mut b.rows[rows];
            row.clear();
            let kind = match self
                .codec
                .message(&msg, offset, self.upsert, &self.metadata, row)
            {
                Outcome::Row => {
                    rows += 1;
                    Kind::Row((rows - 1) as u32)
                }
                Outcome::Skip => Kind::Skip,
                Outcome::Bad(e) => {
                    let raw = msg.payload().or(msg.key()).unwrap_or_default();
                    b.bad.push((e, raw.to_vec()));
                    Kind::Bad((b.bad.len() - 1) as u32)
                }
            };
            b.entries.push(Entry {
                part,
                offset,
                next: offset + 1,
                kind,
            });
        }
        let nulled = self.codec.decoder.nulled_records();
        b.nulled = nulled.saturating_sub(self.last_nulled);
        self.last_nulled = nulled;
        Ok(())
    }
}
