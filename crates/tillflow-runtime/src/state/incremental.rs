//! Incremental snapshots of keyed state (`execution.checkpointing.incremental`): what a
//! checkpoint writes of a [`super::KeyedState`] is what changed since the previous one.
//!
//! Each tracking state has a lineage (a random 64-bit id it keeps across restores) and stamps
//! every entry it hands out for writing with its current epoch; keys removed and entries moved to
//! disk while changed are listed. At a checkpoint the state writes, instead of its entries, a
//! reference (lineage, checkpoint) into the operator's bytes, and gives the checkpoint a
//! [`StateSection`] of its own: a full one (every entry), or a delta (the keys removed, then the
//! entries changed) on top of the section it wrote into the previous checkpoint. A state writes a
//! full section again once its chain (the last full section and the deltas since) is more than
//! twice what its entries would take in a full one now, so a restore reads at most about twice
//! the state however long the job runs (a growing state, whose deltas are mostly new entries,
//! goes on with deltas), or after [`MAX_CHAIN`] deltas. This is Flink's changelog ("generalized
//! incremental") checkpointing, on both state backends.
//!
//! A checkpoint's manifest lists the earlier checkpoints its sections build on
//! ([`Collected::references`]); they are kept while a retained checkpoint needs them. On
//! restore the job puts every section of the checkpoint and of those it references in a
//! [`Chain`] ([`restoring`]); a state reading a reference follows the deltas back to their full
//! section and applies them oldest first.

use crate::error::{Result, RuntimeError};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

/// A state writes a full section after this many deltas in a row, whatever their size.
pub const MAX_CHAIN: usize = 64;

/// Bytes a section's part holds at most (beyond one entry): a state is written, and read
/// back, a part at a time.
pub const PART_BYTES: usize = 32 << 20;

/// One keyed state's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateSection {
    /// The state's lineage.
    pub lineage: u64,
    /// The checkpoint holding this section.
    pub checkpoint: u64,
    /// The checkpoint holding the section this delta applies to; 0 for a full section.
    pub previous: u64,
    /// The section's parts, applied in order: each the keys removed (the byte length of the
    /// list, then length and bytes of each; only the first part of a delta has any), then
    /// entries as [`super::KeyedState::snapshot`] writes them.
    pub parts: Vec<Part>,
}

impl StateSection {
    /// Bytes of its parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }
}

/// A part of a section: its bytes, or where they are in the checkpoint's `sections.bin`.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// The bytes, held here (written into `state.bin`).
    Bytes(Vec<u8>),
    /// Spooled to the checkpoint's sections file as the snapshot was taken.
    Spooled {
        /// Where it starts in the file.
        offset: u64,
        /// Its length.
        len: u64,
        /// Its XXH3 checksum.
        digest: u64,
    },
}

impl Part {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Spooled { len, .. } => *len,
        }
    }

    /// True when it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a snapshot spools its sections' parts: a file written, on a thread of its own, as the
/// states are snapshotted (the job's thread only serializes; at most [`SPOOL_QUEUE`] parts
/// wait for the disk), so a checkpoint's sections are never all in memory at once. The file's
/// SHA-256 is made on the way.
pub struct Spool {
    path: std::path::PathBuf,
    queue: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<String>>>,
    len: u64,
}

/// Parts waiting for the spool's writer at most.
pub const SPOOL_QUEUE: usize = 4;

/// A spool's file once complete: where it is, its length and SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its length.
    pub len: u64,
    /// Its SHA-256, in hex.
    pub sha256: String,
}

impl Spool {
    /// A new spool file at `path`, and its writer thread.
    pub fn create(path: std::path::PathBuf) -> std::io::Result<Spool> {
        let mut file = SpoolFile::create(&path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(SPOOL_QUEUE);
        let writer = std::thread::Builder::new()
            .name("checkpoint-spool".into())
            .spawn(move || {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                let mut failed = None;
                // every part is received (and dropped) even after an error: the sender never
                // blocks on a writer that gave up
                for part in rx {
                    hasher.update(&part);
                    if failed.is_none() {
                        if let Err(e) = file.write(&part) {
                            failed = Some(e);
                        }
                    }
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                file.finish()?;
                Ok(crate::checkpoint::hex(&hasher.finalize()))
            })?;
        Ok(Spool {
            path,
            queue: Some(tx),
            writer: Some(writer),
            len: 0,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `bytes` (taken), returning where they go.
    fn append(&mut self, bytes: Vec<u8>) -> Part {
        let offset = self.len;
        let len = bytes.len() as u64;
        let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
        self.len += len;
        if let Some(q) = &self.queue {
            // a writer that ended early reports why in `finish`
            let _ = q.send(bytes);
        }
        Part::Spooled {
            offset,
            len,
            digest,
        }
    }

    /// Waits for the writer to flush and sync the file (an error met while writing is returned
    /// here).
    pub fn finish(mut self) -> std::io::Result<Spooled> {
        self.queue = None;
        let sha256 = match self.writer.take().map(|w| w.join()) {
            Some(Ok(result)) => result?,
            _ => {
                return Err(std::io::Error::other(
                    "the checkpoint spool's writer failed",
                ))
            }
        };
        Ok(Spooled {
            path: self.path.clone(),
            len: self.len,
            sha256,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Bytes a spool file is written in at a time, with direct I/O: a multiple of [`DIRECT_ALIGN`].
const SPOOL_CHUNK: usize = 4 << 20;
/// The alignment direct I/O needs of a buffer's address, a file offset and a length.
const DIRECT_ALIGN: usize = 4096;

/// A spool's file. Where the file system allows it, it is written with direct I/O
/// (`O_DIRECT`), in aligned chunks staged in one reused buffer: a checkpoint's gigabytes then
/// go from that buffer to the device, not through the page cache. Copying them into the cache
/// cost about 2 CPU-seconds per GB on the benchmark's VM (`dd`: 4.5 s of system time for
/// 2 GB buffered, 0.13 s direct), and filled memory with pages a restore rarely reads. Elsewhere
/// (tmpfs before Linux 6.6, other systems) it is an ordinary buffered file.
struct SpoolFile {
    file: std::fs::File,
    /// The staging buffer, with room to align its start (direct I/O only).
    stage: Vec<u8>,
    /// Where the aligned part of `stage` begins, and how much of it is filled.
    start: usize,
    filled: usize,
    /// Bytes handed to [`SpoolFile::write`].
    len: u64,
    direct: bool,
}

impl SpoolFile {
    fn create(path: &std::path::Path) -> std::io::Result<SpoolFile> {
        Self::create_with(path, true)
    }

    /// [`SpoolFile::create`], with direct I/O only if `try_direct`.
    fn create_with(path: &std::path::Path, try_direct: bool) -> std::io::Result<SpoolFile> {
        let (file, direct) = if try_direct {
            Self::open(path)?
        } else {
            (std::fs::File::create(path)?, false)
        };
        let (stage, start) = if direct {
            let stage = vec![0u8; SPOOL_CHUNK + DIRECT_ALIGN];
            let start = (DIRECT_ALIGN - stage.as_ptr() as usize % DIRECT_ALIGN) % DIRECT_ALIGN;
            (stage, start)
        } else {
            (Vec::new(), 0)
        };
        Ok(SpoolFile {
            file,
            stage,
            start,
            filled: 0,
            len: 0,
            direct,
        })
    }

    /// The file, opened for direct I/O where the file system supports it.
    #[cfg(target_os = "linux")]
    fn open(path: &std::path::Path) -> std::io::Result<(std::fs::File, bool)> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        match direct {
            Ok(f) => Ok((f, true)),
            // a file system without direct I/O
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                Ok((std::fs::File::create(path)?, false))
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(path: &std::path::Path) -> std::io::Result<(std::fs::File, bool)> {
        Ok((std::fs::File::create(path)?, false))
    }

    fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.len += bytes.len() as u64;
        if !self.direct {
            return self.file.write_all(bytes);
        }
        while !bytes.is_empty() {
            let n = (SPOOL_CHUNK - self.filled).min(bytes.len());
            let at = self.start + self.filled;
            self.stage[at..at + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == SPOOL_CHUNK {
                self.file
                    .write_all(&self.stage[self.start..self.start + SPOOL_CHUNK])?;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes what is staged (the last block padded, the file then cut to its length) and
    /// syncs the file.
    fn finish(mut self) -> std::io::Result<()> {
        use std::io::Write;
        if self.direct && self.filled > 0 {
            let padded = self.filled.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
            let (from, to) = (self.start + self.filled, self.start + padded);
            self.stage[from..to].fill(0);
            self.file.write_all(&self.stage[self.start..to])?;
            self.file.set_len(self.len)?;
        }
        self.file.sync_all()
    }
}

/// Reads the parts a checkpoint spooled, by place.
pub trait PartSource {
    /// The `len` bytes at `offset`.
    fn read_at(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>>;
}

impl PartSource for std::fs::File {
    fn read_at(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len as usize];
        FileExt::read_exact_at(self, &mut buf, offset)?;
        Ok(buf)
    }
}

/// What the states of one checkpoint gave it: their sections, and the earlier checkpoints
/// those build on.
#[derive(Debug, Default)]
pub struct Collected {
    /// The sections, in the order the states were snapshotted.
    pub sections: Vec<StateSection>,
    /// Earlier checkpoints holding sections that these build on.
    pub references: BTreeSet<u64>,
}

/// Where the sections of one checkpoint's keyed states gather, from whichever thread writes
/// them: the job's during the checkpoint's synchronous phase, and, for sections written after
/// it ([`collecting_deferred`]), the thread that owns the state or the job's advancing it.
#[derive(Default)]
pub struct Collector {
    inner: std::sync::Mutex<Gathered>,
}

#[derive(Default)]
struct Gathered {
    collected: Collected,
    spool: Option<Spool>,
    /// Sections begun and not yet complete.
    outstanding: usize,
}

impl Collector {
    fn new(spool: Option<Spool>) -> Arc<Collector> {
        Arc::new(Collector {
            inner: std::sync::Mutex::new(Gathered {
                spool,
                ..Gathered::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        // a panic elsewhere does not leave what was gathered unreadable
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `bytes` (taken) a part of a section: spooled when the checkpoint has a spool,
    /// else held.
    pub(super) fn store_part(&self, bytes: &mut Vec<u8>) -> Part {
        match self.lock().spool.as_mut() {
            Some(spool) => spool.append(std::mem::take(bytes)),
            None => Part::Bytes(std::mem::take(bytes)),
        }
    }

    /// A section is begun: the checkpoint is complete only once it is.
    pub(super) fn begin(&self) {
        self.lock().outstanding += 1;
    }

    /// Adds a complete section (and the checkpoints it builds on).
    pub(super) fn complete(&self, section: StateSection, builds_on: &[u64]) {
        let mut g = self.lock();
        g.collected.references.extend(
            builds_on
                .iter()
                .copied()
                .filter(|id| *id != section.checkpoint),
        );
        g.collected.sections.push(section);
        g.outstanding = g.outstanding.saturating_sub(1);
    }

    /// Sections begun and not yet complete.
    pub fn outstanding(&self) -> usize {
        self.lock().outstanding
    }

    /// What was gathered, and the spool (once every section is complete).
    pub fn take(&self) -> (Collected, Option<Spool>) {
        let mut g = self.lock();
        (std::mem::take(&mut g.collected), g.spool.take())
    }
}

/// A snapshot being collected on this thread: its checkpoint, where its sections go, and
/// whether states may finish theirs after the synchronous phase.
type Collecting = (u64, Arc<Collector>, bool);

/// How a snapshot taken again while a checkpoint's sections are being written acts
/// ([`advancing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Each state with a section in progress writes a slice of it.
    Slice,
    /// Each state with a section in progress writes all of what is left.
    Finish,
}

thread_local! {
    static PART_LIMIT: Cell<usize> = const { Cell::new(PART_BYTES) };
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static COLLECTING: RefCell<Option<Collecting>> = const { RefCell::new(None) };
    static ADVANCING: Cell<Option<Advance>> = const { Cell::new(None) };
    static CHAIN: RefCell<Option<Rc<Chain>>> = const { RefCell::new(None) };
}

/// Runs `f` with new keyed states on this thread tracking their changes (or not), then puts the
/// previous setting back.
pub fn scoped_tracking<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let previous = TRACKING.with(|t| t.replace(on));
    let out = f();
    TRACKING.with(|t| t.set(previous));
    out
}

thread_local! {
    /// False while this thread runs a job that takes no checkpoints (see [`scoped_recording`]).
    static RECORDING: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with the tracking states it touches on this thread recording the keys they remove
/// and move to disk changed (`on`), or not: a job that takes no checkpoints has no delta to
/// write them into, and would hold them for ever. A state that missed a record writes a full
/// section at its next checkpoint.
pub fn scoped_recording<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let previous = RECORDING.with(|t| t.replace(on));
    let out = f();
    RECORDING.with(|t| t.set(previous));
    out
}

/// Makes tracking states record on this thread (or not) for the rest of its life (a worker
/// thread of a job; see [`scoped_recording`]).
pub fn set_thread_recording(on: bool) {
    RECORDING.with(|t| t.set(on));
}

/// Makes new keyed states on this thread track their changes (or not) for the rest of its
/// life (a worker thread of a job).
pub fn set_thread_tracking(on: bool) {
    TRACKING.with(|t| t.set(on));
}

/// True when new keyed states on this thread track their changes.
pub(super) fn tracking() -> bool {
    TRACKING.with(Cell::get)
}

/// Runs `f` (which snapshots a job's operators for checkpoint `checkpoint`) with tracking
/// states writing references and their sections collected (their parts spooled to `spool`
/// when given, else held), and returns them with `f`'s result and the spool. Without a
/// checkpoint (a savepoint, or whole checkpoints) every state writes its entries itself, and
/// the next checkpoint starts its chain afresh.
pub fn collecting<R>(
    checkpoint: Option<u64>,
    spool: Option<Spool>,
    f: impl FnOnce() -> R,
) -> (R, Collected, Option<Spool>) {
    let collector = Collector::new(spool);
    let out = with_collector(checkpoint.map(|id| (id, collector.clone(), false)), f);
    let (collected, spool) = collector.take();
    (out, collected, spool)
}

/// As [`collecting`] for checkpoint `checkpoint`, but the states only begin their sections in
/// `f`: each hands out what it must (removed keys, entries read back from disk) and goes on
/// writing its changed entries after `f`, a slice at a time ([`advancing`]) and, before
/// changing, removing or moving out an entry the section still needs, that entry first. The
/// checkpoint is complete once [`Collector::outstanding`] is 0; [`Advance::Finish`] makes it so.
/// This is how the job never stands still for a snapshot: the synchronous phase costs a few
/// bytes per state, whatever its size.
pub fn collecting_deferred<R>(
    checkpoint: u64,
    spool: Option<Spool>,
    f: impl FnOnce() -> R,
) -> (R, Arc<Collector>) {
    let collector = Collector::new(spool);
    let out = with_collector(Some((checkpoint, collector.clone(), true)), f);
    (out, collector)
}

fn with_collector<R>(collecting: Option<Collecting>, f: impl FnOnce() -> R) -> R {
    let previous = COLLECTING.with(|c| c.replace(collecting));
    let out = f();
    COLLECTING.with(|c| *c.borrow_mut() = previous);
    out
}

/// Runs `f` (which snapshots a job's operators again while a checkpoint begun with
/// [`collecting_deferred`] is incomplete) with every keyed state that has a section in
/// progress writing a slice of it, or the rest of it (`how`), and nothing else: what
/// operators write around their states is to be dropped.
pub fn advancing<R>(how: Advance, f: impl FnOnce() -> R) -> R {
    let previous = ADVANCING.with(|a| a.replace(Some(how)));
    let out = f();
    ADVANCING.with(|a| a.set(previous));
    out
}

/// How snapshots act on this thread now ([`advancing`]).
pub(super) fn advancing_now() -> Option<Advance> {
    ADVANCING.with(Cell::get)
}

/// Bytes a part holds at most on this thread ([`PART_BYTES`]; less in tests).
pub(super) fn part_limit() -> usize {
    PART_LIMIT.with(Cell::get)
}

/// The checkpoint being collected on this thread, if any: its id, its collector, and whether
/// sections may be finished after the synchronous phase.
pub(super) fn collecting_checkpoint() -> Option<(u64, Arc<Collector>, bool)> {
    COLLECTING.with(|c| c.borrow().clone())
}

/// Every state section a restore may need: the checkpoint's own and those of the earlier
/// checkpoints it references, and the files their spooled parts are in.
#[derive(Default)]
pub struct Chain {
    sections: HashMap<(u64, u64), StateSection>,
    files: HashMap<u64, Box<dyn PartSource>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({} sections)", self.sections.len())
    }
}

impl Chain {
    /// The sections of `sections` (of any checkpoints), by checkpoint and lineage.
    pub fn new(sections: impl IntoIterator<Item = StateSection>) -> Chain {
        Chain {
            sections: sections
                .into_iter()
                .map(|s| ((s.checkpoint, s.lineage), s))
                .collect(),
            files: HashMap::new(),
        }
    }

    /// Where checkpoint `checkpoint`'s spooled parts are read from.
    pub fn with_file(mut self, checkpoint: u64, file: Box<dyn PartSource>) -> Chain {
        self.files.insert(checkpoint, file);
        self
    }

    /// The bytes of `part` of a section of `checkpoint` (read from its file when spooled, and
    /// checked against its checksum).
    pub fn part_bytes<'a>(
        &self,
        checkpoint: u64,
        part: &'a Part,
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        match part {
            Part::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Part::Spooled {
                offset,
                len,
                digest,
            } => {
                let file = self.files.get(&checkpoint).ok_or_else(|| {
                    RuntimeError::State(format!(
                        "checkpoint {checkpoint}'s sections file was not loaded"
                    ))
                })?;
                let bytes = file.read_at(*offset, *len).map_err(|e| {
                    RuntimeError::State(format!(
                        "reading {len} bytes at {offset} of checkpoint {checkpoint}'s \
                         sections.bin: {e}"
                    ))
                })?;
                if xxhash_rust::xxh3::xxh3_64(&bytes) != *digest {
                    return Err(RuntimeError::State(format!(
                        "the {len} bytes at {offset} of checkpoint {checkpoint}'s sections.bin \
                         do not match their checksum"
                    )));
                }
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }

    /// The sections to apply, oldest (the full one) first, for the state of `lineage` whose
    /// newest section is in `checkpoint`.
    pub fn resolve(&self, checkpoint: u64, lineage: u64) -> Result<Vec<&StateSection>> {
        let mut out = Vec::new();
        let mut at = checkpoint;
        loop {
            let s = self.sections.get(&(at, lineage)).ok_or_else(|| {
                RuntimeError::State(format!(
                    "keyed state {lineage:016x} needs its section in checkpoint {at}, which is \
                     not there (a checkpoint this one builds on is missing or damaged)"
                ))
            })?;
            out.push(s);
            if s.previous == 0 {
                break;
            }
            if s.previous >= at || out.len() > 1 << 16 {
                return Err(RuntimeError::State(format!(
                    "keyed state {lineage:016x}: section of checkpoint {at} builds on checkpoint \
                     {}, not an earlier one",
                    s.previous
                )));
            }
            at = s.previous;
        }
        out.reverse();
        Ok(out)
    }
}

/// Runs `f` (which restores a job's operators) with `chain` available to states reading
/// references.
pub fn restoring<R>(chain: Chain, f: impl FnOnce() -> R) -> R {
    let previous = CHAIN.with(|c| c.replace(Some(Rc::new(chain))));
    let out = f();
    CHAIN.with(|c| *c.borrow_mut() = previous);
    out
}

/// The chain of the restore running on this thread.
pub(super) fn chain() -> Result<Rc<Chain>> {
    CHAIN.with(|c| c.borrow().clone()).ok_or_else(|| {
        RuntimeError::State(
            "the state refers to an incremental checkpoint's sections, which were not loaded"
                .into(),
        )
    })
}

/// A new random lineage.
pub(super) fn new_lineage() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // a clock and a counter are unique enough within one job's checkpoints
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return nanos ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 40;
    }
    u64::from_le_bytes(b).max(1)
}

/// A tracking state's bookkeeping.
#[derive(Debug)]
pub(super) struct Tracker {
    pub lineage: Cell<u64>,
    /// Entries stamped with this were written since the last snapshot.
    pub epoch: Cell<u32>,
    /// The checkpoints of this lineage's sections from its last full one on, oldest first;
    /// empty: the next section is full.
    pub chain: RefCell<Vec<u64>>,
    /// Bytes and entries of the chain: the last full section and the deltas since.
    pub chain_bytes: Cell<u64>,
    pub chain_entries: Cell<u64>,
    /// Keys removed since the last snapshot: length (4 bytes) and bytes of each.
    pub removed: RefCell<Vec<u8>>,
    /// Keys of changed entries moved to disk since the last snapshot: key group (4 bytes),
    /// length (4 bytes) and bytes of each.
    pub evicted: RefCell<Vec<u8>>,
    /// Entries stamped since the last snapshot (what its delta will hold, about).
    pub changed: Cell<u64>,
    /// The section of the last checkpoint, while it is still being written.
    pub pending: RefCell<Option<Box<super::Pending>>>,
    /// True while `pending` holds a section (read on every write).
    pub has_pending: Cell<bool>,
    /// The table's entries when the section in progress began.
    pub len_at_section: Cell<usize>,
    /// About how many entries the table gains while a section is in progress (the last
    /// sections' growth, fading by a quarter a section): the room kept free between sections,
    /// so the table need not grow, and move its entries, while one is written.
    pub section_growth: Cell<usize>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker {
            lineage: Cell::new(new_lineage()),
            epoch: Cell::new(1),
            chain: RefCell::new(Vec::new()),
            chain_bytes: Cell::new(0),
            chain_entries: Cell::new(0),
            removed: RefCell::new(Vec::new()),
            evicted: RefCell::new(Vec::new()),
            changed: Cell::new(0),
            pending: RefCell::new(None),
            has_pending: Cell::new(false),
            len_at_section: Cell::new(0),
            section_growth: Cell::new(0),
        }
    }

    /// False when this thread does not record (see [`scoped_recording`]): the state's next
    /// section is then a full one.
    fn recording(&self) -> bool {
        let on = RECORDING.with(Cell::get);
        if !on {
            self.chain.borrow_mut().clear();
        }
        on
    }

    /// Records that `key` was removed.
    pub fn removed(&self, key: &[u8]) {
        if !self.recording() {
            return;
        }
        let mut r = self.removed.borrow_mut();
        r.extend_from_slice(&(key.len() as u32).to_le_bytes());
        r.extend_from_slice(key);
    }

    /// Records that the changed entry of `key` moved to disk.
    pub fn evicted(&self, group: u32, key: &[u8]) {
        if !self.recording() {
            return;
        }
        let mut r = self.evicted.borrow_mut();
        r.extend_from_slice(&group.to_le_bytes());
        r.extend_from_slice(&(key.len() as u32).to_le_bytes());
        r.extend_from_slice(key);
    }

    /// The stamp of an entry that has not changed since the last snapshot: neither the
    /// epoch's nor the one before it, whose section may still be in progress.
    pub fn clean(&self) -> u32 {
        self.epoch.get().wrapping_sub(2)
    }

    /// True when a chain of `bytes` in `entries` entries is too long for a state of `live`
    /// entries: more than twice (and 64 KiB more than) what they would take in a full section.
    pub fn outgrown(bytes: u64, entries: u64, live: u64) -> bool {
        let full_estimate = live.saturating_mul(bytes) / entries.max(1);
        bytes > full_estimate.saturating_mul(2) + (64 << 10)
    }

    /// Forgets the chain: the next section is full (after the state was emptied, or was
    /// restored from more than one chain).
    pub fn restart(&self) {
        self.chain.borrow_mut().clear();
        self.removed.borrow_mut().clear();
        self.evicted.borrow_mut().clear();
    }
}

/// Iterates a list written by [`Tracker::evicted`]: (key group, key).
pub(super) fn evicted_keys(list: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let g = u32::from_le_bytes(list.get(at..at + 4)?.try_into().ok()?);
        let n = u32::from_le_bytes(list.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        let k = list.get(at + 8..at + 8 + n)?;
        at += 8 + n;
        Some((g, k))
    })
}

#[cfg(test)]
mod tests {
    use super::super::disk::{self, DiskStore};
    use super::super::testing::{tiny_store, Lcg};
    use super::super::KeyedState;
    use super::*;
    use crate::keys::MAX_KEY_GROUPS;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn new_state(store: Option<&Arc<DiskStore>>, tracking: bool) -> KeyedState<i64> {
        scoped_tracking(tracking, || disk::scoped(store, KeyedState::default))
    }

    fn contents(state: &KeyedState<i64>) -> BTreeMap<Vec<u8>, i64> {
        state.iter().map(|(k, v)| (k.to_vec(), *v)).collect()
    }

    /// Random writes, removals, sweeps and emptying between checkpoints.
    fn mutate(rng: &mut Lcg, state: &mut KeyedState<i64>, model: &mut BTreeMap<Vec<u8>, i64>) {
        for _ in 0..rng.next(120) {
            let key = format!("k{}", rng.next(500)).into_bytes();
            match rng.next(1000) {
                0..=449 => {
                    let add = rng.next(10) as i64 + 1;
                    *state.get_or_insert_with(&key, || 0) += add;
                    *model.entry(key).or_insert(0) += add;
                }
                450..=599 => {
                    if let Some(v) = state.get_mut(&key) {
                        *v *= 2;
                    }
                    if let Some(v) = model.get_mut(&key) {
                        *v *= 2;
                    }
                }
                600..=699 => {
                    assert_eq!(state.peek_mut(&key).map(|v| *v), model.get(&key).copied());
                }
                700..=989 => assert_eq!(state.remove(&key), model.remove(&key)),
                990..=997 => {
                    state.retain(|v| *v % 7 != 0);
                    model.retain(|_, v| *v % 7 != 0);
                }
                _ => {
                    let drained: BTreeMap<Vec<u8>, i64> =
                        state.drain().map(|(k, v)| (k.to_vec(), v)).collect();
                    assert_eq!(&drained, model);
                    model.clear();
                }
            }
        }
    }

    /// Snapshots `state` as checkpoint `id`: the bytes an operator would hold, and the
    /// sections (kept in `sections`).
    fn checkpoint(
        state: &KeyedState<i64>,
        id: u64,
        sections: &mut Vec<StateSection>,
    ) -> (Vec<u8>, BTreeSet<u64>) {
        let mut bytes = Vec::new();
        let ((), collected, _) = collecting(Some(id), None, || {
            state.snapshot(0..MAX_KEY_GROUPS, &mut bytes)
        });
        assert!(
            bytes.len() <= 24,
            "a tracking state writes a reference only"
        );
        assert_eq!(collected.sections.len(), 1);
        assert!(collected.references.iter().all(|r| *r < id));
        sections.extend(collected.sections);
        (bytes, collected.references)
    }

    fn restore(
        bytes: &[u8],
        sections: &[StateSection],
        store: Option<&Arc<DiskStore>>,
        tracking: bool,
    ) -> KeyedState<i64> {
        let mut s = new_state(store, tracking);
        restoring(Chain::new(sections.iter().cloned()), || {
            s.restore(bytes, &mut 0)
        })
        .unwrap();
        s
    }

    #[test]
    fn every_checkpoint_of_a_chain_restores_the_map_it_was_taken_of_on_either_backend() {
        let disk = tiny_store();
        for (seed, backend) in [(1u64, None), (2, Some(&disk)), (3, Some(&disk)), (4, None)] {
            let mut rng = Lcg(seed);
            let mut state = new_state(backend, true);
            let mut model = BTreeMap::new();
            let mut sections = Vec::new();
            let mut taken = Vec::new();
            let mut deltas = 0;
            for id in 1..=40 {
                mutate(&mut rng, &mut state, &mut model);
                let (bytes, refs) = checkpoint(&state, id, &mut sections);
                deltas += usize::from(sections.last().unwrap().previous != 0);
                // the chain a checkpoint needs is listed in full
                let mut at = id;
                while let Some(s) = sections
                    .iter()
                    .find(|s| s.checkpoint == at)
                    .filter(|s| s.previous != 0)
                {
                    assert!(refs.contains(&s.previous), "seed {seed} checkpoint {id}");
                    at = s.previous;
                }
                taken.push((id, bytes, model.clone()));
            }
            assert!(
                deltas > 10,
                "seed {seed}: most checkpoints are deltas ({deltas})"
            );
            for (id, bytes, expected) in &taken {
                for (into, tracking) in [(None, false), (Some(&disk), true), (None, true)] {
                    let back = restore(bytes, &sections, into, tracking);
                    assert_eq!(&contents(&back), expected, "seed {seed} checkpoint {id}");
                    assert_eq!(back.len(), expected.len());
                }
            }
            // a restored state goes on from its chain: its next checkpoint is a delta on it
            let (id, bytes, expected) = &taken[25];
            let mut state = restore(bytes, &sections, backend, true);
            let mut model = expected.clone();
            for next in 100..110 {
                mutate(&mut rng, &mut state, &mut model);
                let (bytes, refs) = checkpoint(&state, next, &mut sections);
                if next == 100 {
                    let s = sections.last().unwrap();
                    assert!(
                        s.previous == *id || s.previous == 0,
                        "seed {seed}: builds on the checkpoint it was restored from"
                    );
                    assert!(s.previous == 0 || refs.contains(id));
                }
                let back = restore(&bytes, &sections, None, false);
                assert_eq!(contents(&back), model, "seed {seed} checkpoint {next}");
            }
        }
    }

    /// Checkpoints whose sections are written after their synchronous phase, a slice at a
    /// time, while the state goes on changing (writes, removals, emptying, entries moved to
    /// disk and back, the table growing): each restores to the map of its own moment.
    #[test]
    fn a_section_written_while_the_state_changes_holds_the_state_of_its_checkpoint() {
        let disk = tiny_store();
        for (seed, backend) in [
            (11u64, None),
            (12, Some(&disk)),
            (13, None),
            (14, Some(&disk)),
        ] {
            let mut rng = Lcg(seed);
            let mut state = new_state(backend, true);
            let mut model = BTreeMap::new();
            let mut sections = Vec::new();
            let mut taken = Vec::new();
            let (mut sliced, mut deltas, mut fulls) = (0, 0, 0);
            for id in 1..=30 {
                mutate(&mut rng, &mut state, &mut model);
                let mut bytes = Vec::new();
                let ((), collector) =
                    collecting_deferred(id, None, || state.snapshot(0..MAX_KEY_GROUPS, &mut bytes));
                taken.push((id, bytes, model.clone()));
                let mut slices = 0;
                while collector.outstanding() > 0 {
                    mutate(&mut rng, &mut state, &mut model);
                    advancing(Advance::Slice, || {
                        state.snapshot(0..MAX_KEY_GROUPS, &mut Vec::new())
                    });
                    slices += 1;
                    assert!(
                        slices < 10_000,
                        "seed {seed}: checkpoint {id} never completes"
                    );
                }
                sliced += usize::from(slices > 1);
                let (collected, _) = collector.take();
                assert_eq!(collected.sections.len(), 1);
                deltas += usize::from(collected.sections[0].previous != 0);
                fulls += usize::from(collected.sections[0].previous == 0 && slices > 1);
                sections.extend(collected.sections);
            }
            assert!(
                sliced > 10,
                "seed {seed}: sections written in slices ({sliced})"
            );
            assert!(deltas > 10, "seed {seed}: deltas ({deltas})");
            for (id, bytes, expected) in &taken {
                let back = restore(bytes, &sections, None, false);
                assert_eq!(&contents(&back), expected, "seed {seed} checkpoint {id}");
                assert_eq!(
                    back.len(),
                    expected.len(),
                    "seed {seed} checkpoint {id}: once each"
                );
            }
            assert!(fulls > 1, "seed {seed}: full sections ({fulls})");
            // a state dropped (a window that fired) while its section is in progress
            // finishes it
            let mut bytes = Vec::new();
            let ((), collector) =
                collecting_deferred(99, None, || state.snapshot(0..MAX_KEY_GROUPS, &mut bytes));
            assert_eq!(collector.outstanding(), 1);
            drop(state);
            assert_eq!(collector.outstanding(), 0);
            sections.extend(collector.take().0.sections);
            let back = restore(&bytes, &sections, None, false);
            assert_eq!(contents(&back), model, "seed {seed}: dropped");
        }
    }

    /// A spool file holds exactly the bytes written to it, in pieces of any size (across the
    /// staging chunk, an unaligned tail), with direct I/O and without.
    #[test]
    fn a_spool_file_holds_the_bytes_written_to_it() {
        let dir = tempfile::tempdir().unwrap();
        for try_direct in [true, false] {
            let path = dir.path().join(format!("spool-{try_direct}"));
            let mut f = SpoolFile::create_with(&path, try_direct).unwrap();
            let mut rng = Lcg(5);
            let mut expected = Vec::new();
            for i in 0..40u32 {
                let n = match i % 4 {
                    0 => rng.next(5000) as usize,
                    1 => SPOOL_CHUNK - 7,
                    2 => 1,
                    _ => rng.next(3 << 20) as usize,
                };
                let piece: Vec<u8> = (0..n).map(|j| (j as u32 ^ i) as u8).collect();
                f.write(&piece).unwrap();
                expected.extend_from_slice(&piece);
            }
            f.finish().unwrap();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), expected.len(), "direct: {try_direct}");
            assert!(got == expected, "direct: {try_direct}");
        }
    }

    /// A table that gains entries at a steady pace keeps room between sections for what a
    /// section sees it gain: after the first sections, none is finished at once because the
    /// table had to grow (a pause of the job), and each still restores to its moment.
    #[test]
    fn a_growing_table_keeps_room_so_its_sections_are_not_finished_at_once() {
        let mut state = new_state(None, true);
        let mut model = BTreeMap::new();
        let mut sections = Vec::new();
        let mut taken = Vec::new();
        let mut k = 0i64;
        let mut insert = |state: &mut KeyedState<i64>, model: &mut BTreeMap<Vec<u8>, i64>| {
            for _ in 0..40 {
                k += 1;
                let key = format!("k{k}").into_bytes();
                *state.get_or_insert_with(&key, || 0) += k;
                model.insert(key, k);
            }
        };
        let mut finished_by_growth = Vec::new();
        for id in 1..=12u64 {
            insert(&mut state, &mut model);
            let mut bytes = Vec::new();
            let ((), collector) =
                collecting_deferred(id, None, || state.snapshot(0..MAX_KEY_GROUPS, &mut bytes));
            taken.push((id, bytes, model.clone()));
            let mut early = false;
            while collector.outstanding() > 0 {
                let capacity = state.table.capacity();
                insert(&mut state, &mut model);
                if collector.outstanding() == 0 {
                    assert!(state.table.capacity() > capacity);
                    early = true;
                    break;
                }
                advancing(Advance::Slice, || {
                    state.snapshot(0..MAX_KEY_GROUPS, &mut Vec::new())
                });
            }
            finished_by_growth.push(early);
            sections.extend(collector.take().0.sections);
        }
        assert!(
            finished_by_growth.iter().skip(4).all(|early| !early),
            "sections finished because the table grew: {finished_by_growth:?}"
        );
        assert!(state.len() > 10_000);
        for (id, bytes, expected) in &taken {
            let back = restore(bytes, &sections, None, false);
            assert_eq!(&contents(&back), expected, "checkpoint {id}");
        }
    }

    /// On disk, a full section in progress takes the entries on disk as they were at the
    /// checkpoint and those in memory from the table: entries moved out after the checkpoint
    /// (those already written, and those not yet) and entries read back are in it once each.
    #[test]
    fn a_full_section_in_progress_on_disk_holds_each_entry_once() {
        // a budget that keeps a few thousand entries in memory and the rest on disk
        let disk = DiskStore::open(&disk::DiskConfig {
            dir: None,
            memory: disk::MIN_MEMORY,
        })
        .unwrap();
        disk.set_budget(3 << 20);
        let mut state = new_state(Some(&disk), true);
        let mut model = BTreeMap::new();
        for k in 0..20_000i64 {
            *state.get_or_insert_with(format!("a{k}").as_bytes(), || 0) += k;
            model.insert(format!("a{k}").into_bytes(), k);
        }
        let mut bytes = Vec::new();
        let ((), collector) =
            collecting_deferred(1, None, || state.snapshot(0..MAX_KEY_GROUPS, &mut bytes));
        let at_checkpoint = model.clone();
        let mut slices = 0;
        let mut k = 0i64;
        while collector.outstanding() > 0 {
            // new keys push old ones out (those the section has written and those it has not);
            // old keys come back and change
            for _ in 0..8 {
                k += 1;
                *state.get_or_insert_with(format!("b{k}").as_bytes(), || 0) += 1;
                *state.get_or_insert_with(format!("a{}", k % 20_000).as_bytes(), || 0) += 1000;
            }
            advancing(Advance::Slice, || {
                state.snapshot(0..MAX_KEY_GROUPS, &mut Vec::new())
            });
            slices += 1;
            assert!(slices < 100_000);
        }
        assert!(slices > 3, "{slices} slices");
        assert!(state.on_disk() > 2_000 && state.len() - state.on_disk() > 2_000);
        let sections = collector.take().0.sections;
        assert_eq!(sections[0].previous, 0, "a full section");
        let back = restore(&bytes, &sections, None, false);
        assert_eq!(back.len(), at_checkpoint.len(), "each entry once");
        assert_eq!(contents(&back), at_checkpoint);
    }

    /// A job without checkpoints records nothing (its lists would grow for ever); a state
    /// that missed records writes a full section next, which restores to its map.
    #[test]
    fn a_state_that_does_not_record_holds_no_lists_and_writes_a_full_section_next() {
        let disk = tiny_store();
        for backend in [None, Some(&disk)] {
            let mut rng = Lcg(9);
            let mut state = new_state(backend, true);
            let mut model = BTreeMap::new();
            let mut sections = Vec::new();
            mutate(&mut rng, &mut state, &mut model);
            checkpoint(&state, 1, &mut sections);
            scoped_recording(false, || {
                for _ in 0..20 {
                    mutate(&mut rng, &mut state, &mut model);
                }
            });
            let tr = state.inc.as_deref().unwrap();
            assert!(tr.removed.borrow().is_empty() && tr.evicted.borrow().is_empty());
            let (bytes, _) = checkpoint(&state, 2, &mut sections);
            assert_eq!(sections.last().unwrap().previous, 0, "a full section");
            let back = restore(&bytes, &sections, None, false);
            assert_eq!(contents(&back), model);
        }
    }

    #[test]
    fn a_chain_of_rewrites_is_cut_by_a_full_section_at_twice_the_state() {
        let mut state = new_state(None, true);
        let mut sections = Vec::new();
        let mut fulls = Vec::new();
        for id in 1..=20u64 {
            for k in 0..5000 {
                *state.get_or_insert_with(format!("key-{k}").as_bytes(), || 0) += 1;
            }
            checkpoint(&state, id, &mut sections);
            if sections.last().unwrap().previous == 0 {
                fulls.push(id);
            }
        }
        // every entry changes every time: each delta is about the state's size, so a full
        // section comes every few checkpoints and no chain is much more than twice the state
        assert!(fulls.len() >= 5, "full sections at {fulls:?}");
        let full = sections[0].bytes();
        let mut chain = 0;
        for s in &sections {
            chain = if s.previous == 0 { 0 } else { chain } + s.bytes();
            assert!(chain <= 3 * full + (64 << 10), "chain of {chain} bytes");
        }
    }

    #[test]
    fn a_large_state_is_spooled_in_parts_and_read_back_a_part_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = new_state(None, true);
        let mut model = BTreeMap::new();
        let mut files = Vec::new();
        let mut sections = Vec::new();
        let mut last = Vec::new();
        for id in 1..=3u64 {
            // parts of 256 KiB: a full section of several, then deltas of several too
            PART_LIMIT.with(|l| l.set(256 << 10));
            for k in 0..(10_000 * id) {
                let key = format!("key-{k:09}-{}", "x".repeat(40));
                *state.get_or_insert_with(key.as_bytes(), || 0) += 1;
                *model.entry(key.into_bytes()).or_insert(0) += 1;
            }
            let path = dir.path().join(format!("sections-{id}"));
            let spool = Spool::create(path.clone()).unwrap();
            let mut bytes = Vec::new();
            let ((), collected, spool) = collecting(Some(id), Some(spool), || {
                state.snapshot(0..MAX_KEY_GROUPS, &mut bytes)
            });
            let spooled = spool.unwrap().finish().unwrap();
            assert_eq!(spooled.len, std::fs::metadata(&path).unwrap().len());
            let s = &collected.sections[0];
            assert!(
                s.parts.len() >= 2,
                "checkpoint {id}: {} parts",
                s.parts.len()
            );
            assert!(s.parts.iter().all(
                |p| matches!(p, Part::Spooled { len, .. } if *len as usize <= (256 << 10) + 4096)
            ));
            sections.extend(collected.sections);
            files.push((id, path));
            last = bytes;
        }
        let open = |files: &[(u64, std::path::PathBuf)]| {
            files
                .iter()
                .fold(Chain::new(sections.iter().cloned()), |c, (id, p)| {
                    c.with_file(*id, Box::new(std::fs::File::open(p).unwrap()))
                })
        };
        let mut back = new_state(None, false);
        restoring(open(&files), || back.restore(&last, &mut 0)).unwrap();
        assert_eq!(back.len(), model.len());
        assert_eq!(contents(&back), model);
        // a damaged part is refused, naming the checkpoint and the file
        let (id, path) = &files[1];
        let mut f = std::fs::read(path).unwrap();
        f[100] ^= 1;
        std::fs::write(path, f).unwrap();
        let mut back = new_state(None, false);
        let e = restoring(open(&files), || back.restore(&last, &mut 0)).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("checkpoint {id}'s sections.bin")),
            "{e}"
        );
    }

    #[test]
    fn a_missing_section_is_refused_naming_the_checkpoint() {
        let mut state = new_state(None, true);
        let mut sections = Vec::new();
        *state.get_or_insert_with(b"a", || 0) += 1;
        checkpoint(&state, 1, &mut sections);
        for k in 0..50 {
            *state.get_or_insert_with(format!("b{k}").as_bytes(), || 0) += 1;
        }
        *state.get_or_insert_with(b"a", || 0) += 1;
        let (bytes, _) = checkpoint(&state, 2, &mut sections);
        // a growing state goes on with deltas: they hold its new entries
        assert_eq!(sections[1].previous, 1);
        *state.get_or_insert_with(b"a", || 0) += 1;
        let (bytes3, refs) = checkpoint(&state, 3, &mut sections);
        assert_eq!(sections[2].previous, 2);
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec![1, 2]);
        assert!(sections[2].bytes() < sections[1].bytes() / 4);
        let only_last = [sections[2].clone()];
        let mut s = new_state(None, false);
        let e = restoring(Chain::new(only_last), || s.restore(&bytes3, &mut 0)).unwrap_err();
        assert!(e.to_string().contains("checkpoint 2"), "{e}");
        let back = restore(&bytes, &sections, None, false);
        assert_eq!(back.len(), 51);
    }
}
