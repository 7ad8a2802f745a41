//! The on-disk state backend: keyed state larger than memory.
//!
//! With `state.backend.type` = `'disk'` (Flink's `'rocksdb'` selects the same backend), every
//! [`super::KeyedState`] of a job keeps its hot entries in its in-memory table, exactly as the
//! heap backend does, and moves the coldest ones to an embedded LSM tree on local disk ([fjall])
//! once the job's memory budget for state is spent. An entry lives in one place at a time: in
//! memory, or on disk. A key read from disk moves back into memory; an entry chosen for eviction
//! (second chance: an entry touched since the last eviction round is skipped once) is written to
//! disk and leaves memory.
//!
//! On disk a key is the state's id (4 bytes, big endian), the key group (2 bytes, big endian) and
//! the encoded key, so one key-group range of one state is one contiguous scan, as Flink lays out
//! RocksDB keys. A value is the entry's time of last write (8 bytes, little endian, with a TTL
//! only) and then the value as [`super::StateValue::write`] writes it: the layout of a checkpoint
//! entry, so a snapshot copies disk entries without decoding them, and a checkpoint taken on one
//! backend restores on the other.
//!
//! The store is scratch space, as Flink's RocksDB local directory is: created empty in a
//! temporary directory (under `state.backend.rocksdb.localdir` when set) when the job starts,
//! deleted when it ends; what survives a crash is the checkpoint. An I/O error of the store
//! (a full disk) is recorded here and fails the job at its next step ([`DiskStore::failure`]),
//! since the keyed-state calls that meet it cannot return one.
//!
//! Which store the states of a job use is set per thread ([`scoped`], [`set_thread_store`]):
//! the job sets it while it builds and restores its operators and in each worker thread, so
//! operators reach the backend only through the keyed-state API.
//!
//! [fjall]: https://docs.rs/fjall

use super::filter::KeyFilter;
use crate::error::{Result, RuntimeError};
use crate::keys::key_group;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How a job keeps its keyed state (`state.backend.type`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// In memory, on the heap (`'hashmap'`, the default).
    #[default]
    Heap,
    /// Hot entries in memory, the rest on local disk (`'disk'`, or Flink's `'rocksdb'`).
    Disk(DiskConfig),
}

/// Settings of the on-disk backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// Where the store's temporary directory is made (`state.backend.rocksdb.localdir`; the
    /// system's temporary directory when unset).
    pub dir: Option<PathBuf>,
    /// Bytes of memory for the whole job's state: entries kept in memory, the store's block
    /// cache and its write buffers.
    pub memory: u64,
}

/// The default memory budget for state per worker (Flink's
/// `state.backend.rocksdb.memory.fixed-per-slot` has no default; its managed memory per slot on
/// a small task manager is of this order).
pub const DEFAULT_MEMORY_PER_WORKER: u64 = 256 << 20;

/// The smallest budget accepted. The store's own buffers take 2 MiB whatever the budget: at
/// this size nearly every entry lives on disk (what the tests use to exercise the disk path).
pub const MIN_MEMORY: u64 = 1 << 20;

/// A job's on-disk store, shared by all its keyed states (each under a prefix of its own).
pub struct DiskStore {
    // fields drop in this order: the keyspace and the database stop before the directory goes
    keyspace: fjall::Keyspace,
    db: fjall::Database,
    next_id: AtomicU32,
    /// Estimated bytes of the entries held in memory by all states of the job.
    cached: AtomicI64,
    /// Bytes written since the store's write buffer was last sealed.
    unflushed: AtomicU64,
    /// The size at which a write buffer is sealed.
    memtable: u64,
    /// What `cached` may reach before states evict.
    budget: AtomicI64,
    /// Entries moved to disk and read back, over the job's life.
    spilled: AtomicU64,
    loaded: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Set when the job that owns the store is going away: states dropped then leave their
    /// entries on disk, which goes with the store.
    retired: AtomicBool,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.dir.path())
            .field("budget", &self.budget())
            .finish()
    }
}

impl DiskStore {
    /// Opens an empty store in a new temporary directory.
    pub fn open(config: &DiskConfig) -> Result<Arc<DiskStore>> {
        let memory = config.memory;
        let parent = config.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent).map_err(|e| {
            RuntimeError::State(format!(
                "creating the state directory {}: {e} (set 'state.backend.rocksdb.localdir' to a writable directory)",
                parent.display()
            ))
        })?;
        let dir = tempfile::Builder::new()
            .prefix("tillflow-state-")
            .tempdir_in(&parent)
            .map_err(|e| {
                RuntimeError::State(format!(
                    "creating a state directory in {}: {e} (set 'state.backend.rocksdb.localdir' to a writable directory)",
                    parent.display()
                ))
            })?;
        let fail = |e: fjall::Error| {
            RuntimeError::State(format!(
                "opening the on-disk state store in {}: {e}",
                dir.path().display()
            ))
        };
        // a quarter of the budget caches disk blocks; write buffers of a sixteenth each (at
        // least 1 MiB, at most 64 MiB), of which five may be in memory at once (one filling,
        // up to four waiting to be flushed: then writes wait); the rest holds hot entries
        let cache = (memory / 4).max(1 << 20);
        let db = fjall::Database::builder(dir.path())
            .cache_size(cache)
            // the journal only serves a recovery this scratch store never makes: keep it small
            .max_journaling_size(64 << 20)
            .journal_compression(fjall::CompressionType::None)
            .manual_journal_persist(true)
            .open()
            .map_err(fail)?;
        let memtable = (memory / 16).clamp(1 << 20, 64 << 20);
        let keyspace = db
            .keyspace("state", || {
                fjall::KeyspaceCreateOptions::default()
                    .manual_journal_persist(true)
                    .max_memtable_size(memtable)
                    // keys spread over the whole key space (a state's key groups), so every
                    // level-0 run overlaps all of level 1: merging 16 at a time instead of 4
                    // cut q20's CPU by a fifth (20 M events). Kept below 20, where the store
                    // starts slowing writes down, and 30, where it stops them.
                    .compaction_strategy(std::sync::Arc::new(
                        fjall::compaction::Leveled::default().with_l0_threshold(16),
                    ))
                    .with_kv_separation(Some(
                        fjall::KvSeparationOptions::default()
                            .compression(fjall::CompressionType::None)
                            // nearly every value to a blob file, which compaction does not
                            // rewrite (1 KiB by default: −7 % CPU on q20)
                            .separation_threshold(128),
                    ))
            })
            .map_err(fail)?;
        let budget = memory.saturating_sub(cache + 5 * memtable) as i64;
        Ok(Arc::new(DiskStore {
            keyspace,
            db,
            next_id: AtomicU32::new(0),
            cached: AtomicI64::new(0),
            unflushed: AtomicU64::new(0),
            memtable,
            budget: AtomicI64::new(budget),
            spilled: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            retired: AtomicBool::new(false),
            dir,
        }))
    }

    /// The first I/O error the store met, if any: the job must stop with it.
    pub fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Relaxed) {
            return None;
        }
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// The job's error for a failed store, if it failed.
    pub fn check(&self) -> Result<()> {
        match self.failure() {
            None => Ok(()),
            Some(why) => Err(RuntimeError::State(format!(
                "the on-disk state store in {} failed: {why}",
                self.dir.path().display()
            ))),
        }
    }

    /// Records an error (the first one is kept).
    pub(super) fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            if f.is_none() {
                *f = Some(why);
            }
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Counts `bytes` written; seals the write buffer when it is full. The store seals it
    /// here, at once, rather than leave it to a request its background workers take in turn:
    /// behind a long compaction the buffer would grow without bound. A sealed buffer waits for
    /// its flush in memory, and at four waiting the store makes writes wait: memory stays
    /// within the budget however far the disk falls behind.
    fn wrote(&self, bytes: usize) {
        let n = self.unflushed.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if n >= self.memtable {
            self.unflushed.store(0, Ordering::Relaxed);
            if let Err(e) = self.keyspace.rotate_memtable() {
                self.fail(format!("sealing a write buffer: {e}"));
            }
        }
    }

    /// Says the job is going away: its states need not clear their entries off the disk one
    /// by one as they are dropped, since the whole store is deleted with them.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Bytes of the store's files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.keyspace.disk_space()
    }

    /// Entries moved to disk so far, and entries read back from it.
    pub fn moves(&self) -> (u64, u64) {
        (
            self.spilled.load(Ordering::Relaxed),
            self.loaded.load(Ordering::Relaxed),
        )
    }

    /// The memory budget for entries held in memory (bytes).
    pub fn budget(&self) -> i64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Sets the memory budget for entries held in memory, below what the store's own buffers
    /// need if asked (tests that want entries on disk at once).
    pub fn set_budget(&self, bytes: i64) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Estimated bytes of the entries all states hold in memory now.
    pub fn cached_bytes(&self) -> i64 {
        self.cached.load(Ordering::Relaxed)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<DiskStore>>> = const { RefCell::new(None) };
}

/// Runs `f` with `store` as this thread's store for new keyed states, then puts the previous
/// one back.
pub fn scoped<R>(store: Option<&Arc<DiskStore>>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(store.cloned()));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    out
}

/// Makes `store` this thread's store for new keyed states for the rest of its life (a worker
/// thread of a job).
pub fn set_thread_store(store: Option<Arc<DiskStore>>) {
    CURRENT.with(|c| *c.borrow_mut() = store);
}

/// This thread's store, if its job keeps state on disk.
pub(super) fn current() -> Option<Arc<DiskStore>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Bytes of bookkeeping per entry held in memory besides its key and value (the table's slot,
/// the key's allocation).
const ENTRY_OVERHEAD: usize = 48;
/// What a value in memory costs per byte it takes when written (vectors' spare capacity, rows'
/// headers).
const VALUE_FACTOR_NUM: usize = 3;
const VALUE_FACTOR_DEN: usize = 2;
/// How far a state's own estimate may drift before the job's total is told (at most; a
/// sixty-fourth of the budget when that is less).
const REPORT_STEP: i64 = 256 << 10;
/// Fewer entries than this in memory are never evicted (a small state does not thrash).
pub(super) const MIN_RESIDENT: usize = 8;

/// The disk side of one keyed state.
pub(super) struct Spill {
    store: Arc<DiskStore>,
    id: [u8; 4],
    /// Entries on disk.
    pub on_disk: usize,
    /// Estimated bytes per entry in memory.
    pub avg: usize,
    /// Bytes of this state counted in the job's total.
    reported: i64,
    /// Inserts since the estimate was last sampled.
    pub since_sample: u32,
    /// The bucket the next eviction round starts at (the clock's hand): a round goes on where
    /// the last one stopped instead of walking again over the buckets it emptied.
    pub hand: usize,
    key: Vec<u8>,
    pub value: Vec<u8>,
    /// Entries staged by an eviction round: their disk keys and values, end to end.
    staged: Vec<u8>,
    /// Where each staged entry lies in `staged`: (start, key length, value length).
    spans: Vec<(usize, u32, u32)>,
    /// The keys on disk, approximately: a key it does not hold is not looked for.
    filter: KeyFilter,
}

/// An eviction round with at least this many entries is written as a sorted run of files of
/// its own (fjall's ingestion: no journal, no write buffer); a smaller one entry by entry.
const INGEST_AT: usize = 256;

/// Bytes an eviction round stages at most before it writes them out.
pub(super) const MAX_STAGED: usize = 64 << 20;

impl Spill {
    /// The disk side of a new state in `store`.
    pub fn new(store: Arc<DiskStore>) -> Spill {
        let id = store.next_id.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        Spill {
            store,
            id,
            on_disk: 0,
            avg: 256,
            reported: 0,
            since_sample: 0,
            hand: 0,
            key: Vec::new(),
            value: Vec::new(),
            staged: Vec::new(),
            spans: Vec::new(),
            filter: KeyFilter::default(),
        }
    }

    /// Stages `key` with the value bytes in `self.value` for [`Spill::write_staged`].
    pub fn stage(&mut self, hash: u64, key: &[u8]) {
        self.filter.insert(hash);
        let start = self.staged.len();
        self.staged.extend_from_slice(&self.id);
        self.staged
            .extend_from_slice(&(key_group(hash) as u16).to_be_bytes());
        self.staged.extend_from_slice(key);
        let key_len = (self.staged.len() - start) as u32;
        self.staged.extend_from_slice(&self.value);
        self.spans.push((start, key_len, self.value.len() as u32));
    }

    /// Bytes staged so far.
    pub fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Writes the staged entries to disk: a large round as one sorted run of files, a small
    /// one entry by entry. Errors are recorded (the job then fails).
    pub fn write_staged(&mut self) {
        let n = self.spans.len();
        if n == 0 {
            return;
        }
        let staged = &self.staged;
        let key = |&(start, k, _): &(usize, u32, u32)| &staged[start..start + k as usize];
        let value = |&(start, k, v): &(usize, u32, u32)| {
            &staged[start + k as usize..start + k as usize + v as usize]
        };
        let written = if n >= INGEST_AT {
            self.spans.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            let ingest = || -> fjall::Result<()> {
                let mut ingestion = self.store.keyspace.start_ingestion()?;
                for span in &self.spans {
                    ingestion.write(key(span), value(span))?;
                }
                ingestion.finish()
            };
            ingest()
        } else {
            self.spans.iter().try_for_each(|span| {
                self.store.keyspace.insert(key(span), value(span))?;
                self.store.wrote(key(span).len() + value(span).len());
                Ok(())
            })
        };
        match written {
            Ok(()) => {
                self.on_disk += n;
                self.store.spilled.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => self.store.fail(format!("writing state: {e}")),
        }
        self.spans.clear();
        self.staged.clear();
        self.staged.shrink_to(1 << 20);
    }

    /// Folds into the running estimate of bytes per entry in memory the size of an entry of
    /// `entry_size` bytes in the table, with a key of `key_len` bytes and the value whose
    /// written bytes are in `self.value` (a long memory: one large entry moving out must not
    /// make the state look many times its size).
    pub fn observe_written(&mut self, entry_size: usize, key_len: usize) {
        let bytes = entry_size
            + ENTRY_OVERHEAD
            + key_len
            + self.value.len() * VALUE_FACTOR_NUM / VALUE_FACTOR_DEN;
        self.avg = (self.avg * 255 + bytes).div_ceil(256);
    }

    /// Tells the job's total this state's estimate for `resident` entries in memory (only
    /// when it moved by more than a step, so the shared counter is seldom touched).
    pub fn report(&mut self, resident: usize) {
        let now = (resident * self.avg + self.filter.bytes()) as i64;
        let step = REPORT_STEP.min(self.store.budget.load(Ordering::Relaxed) / 64);
        if (now - self.reported).abs() >= step {
            self.store
                .cached
                .fetch_add(now - self.reported, Ordering::Relaxed);
            self.reported = now;
        }
    }

    /// True when the job's entries in memory are over the budget.
    pub fn over_budget(&self) -> bool {
        self.store.cached.load(Ordering::Relaxed) > self.store.budget.load(Ordering::Relaxed)
    }

    /// The disk key of `key` in `group`, in the scratch buffer.
    fn disk_key(&mut self, group: u32, key: &[u8]) {
        self.key.clear();
        self.key.extend_from_slice(&self.id);
        self.key.extend_from_slice(&(group as u16).to_be_bytes());
        self.key.extend_from_slice(key);
    }

    /// Takes `key` (of `hash`) off the disk: its value bytes, if it was there.
    pub fn take(&mut self, hash: u64, key: &[u8]) -> Option<fjall::UserValue> {
        if self.on_disk == 0 || !self.filter.may_hold(hash) {
            return None;
        }
        self.disk_key(key_group(hash), key);
        match self.store.keyspace.get(self.key.as_slice()) {
            Ok(Some(v)) => {
                if let Err(e) = self.store.keyspace.remove(self.key.as_slice()) {
                    self.store.fail(format!("removing state: {e}"));
                }
                self.on_disk -= 1;
                self.store.loaded.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            Ok(None) => None,
            Err(e) => {
                self.store.fail(format!("reading state: {e}"));
                None
            }
        }
    }

    /// A view of what this state has on disk now, unchanged by what the job writes, takes or
    /// moves out later: what a checkpoint's section, written after the checkpoint, reads.
    pub fn view(&self) -> DiskView {
        DiskView {
            snapshot: self.store.db.snapshot(),
            store: self.store.clone(),
            id: self.id,
            empty: self.on_disk == 0,
        }
    }

    /// True when `key` (of `hash`) is on disk.
    pub fn contains(&mut self, hash: u64, key: &[u8]) -> bool {
        if self.on_disk == 0 || !self.filter.may_hold(hash) {
            return false;
        }
        self.disk_key(key_group(hash), key);
        match self.store.keyspace.contains_key(self.key.as_slice()) {
            Ok(found) => found,
            Err(e) => {
                self.store.fail(format!("reading state: {e}"));
                false
            }
        }
    }

    /// Every entry on disk whose key group lies in `groups`, in key-group order: (key group,
    /// disk key, value bytes). An error ends the scan and is recorded.
    pub fn scan(
        &self,
        groups: std::ops::Range<u32>,
    ) -> impl Iterator<Item = (u32, fjall::UserKey, fjall::UserValue)> + 'static {
        let iter = (self.on_disk > 0).then(|| self.range(groups));
        let store = self.store.clone();
        iter.into_iter()
            .flatten()
            .map_while(move |guard| match guard.into_inner() {
                Ok((k, v)) => Some((group_of(&k), k, v)),
                Err(e) => {
                    store.fail(format!("reading state: {e}"));
                    None
                }
            })
    }

    fn range(&self, groups: std::ops::Range<u32>) -> fjall::Iter {
        let bound = |g: u32| {
            let mut k = self.id.to_vec();
            k.extend_from_slice(&(g.min(u16::MAX as u32) as u16).to_be_bytes());
            k
        };
        self.store
            .keyspace
            .range(bound(groups.start)..bound(groups.end))
    }

    /// Visits every entry on disk with its encoded key and value bytes; `f` says whether the
    /// entry stays, goes, or takes the bytes `f` left in its buffer.
    pub fn update_all(&mut self, mut f: impl FnMut(u32, &[u8], &[u8], &mut Vec<u8>) -> Update) {
        if self.on_disk == 0 {
            return;
        }
        let mut buf = std::mem::take(&mut self.value);
        for guard in self.range(0..u16::MAX as u32) {
            let (k, v) = match guard.into_inner() {
                Ok(kv) => kv,
                Err(e) => {
                    self.store.fail(format!("reading state: {e}"));
                    break;
                }
            };
            buf.clear();
            let done = match f(group_of(&k), user_key(&k), &v, &mut buf) {
                Update::Keep => Ok(()),
                Update::Remove => {
                    self.on_disk = self.on_disk.saturating_sub(1);
                    self.store.keyspace.remove(k)
                }
                Update::Rewrite => self.store.keyspace.insert(k, buf.as_slice()),
            };
            if let Err(e) = done {
                self.store.fail(format!("writing state: {e}"));
                break;
            }
        }
        self.value = buf;
    }

    /// Takes every entry off the disk, lazily: (encoded key, value bytes).
    pub fn drain(&mut self) -> impl Iterator<Item = (Box<[u8]>, fjall::UserValue)> + 'static {
        let entries = self.scan(0..u16::MAX as u32);
        self.on_disk = 0;
        self.filter.clear();
        let store = self.store.clone();
        entries.map(move |(_, k, v)| {
            if let Err(e) = store.keyspace.remove(k.clone()) {
                store.fail(format!("removing state: {e}"));
            }
            (user_key(&k).into(), v)
        })
    }

    /// Builds the key filter again from the keys on disk (`hash` hashes a key as the state
    /// does) once it holds four times as many keys as are there (keys read back stay in it).
    pub fn refresh_filter(&mut self, hash: impl Fn(&[u8]) -> u64) {
        if self.filter.keys() <= 4 * self.on_disk as u64 + (1 << 16) {
            return;
        }
        self.filter.clear();
        let mut filter = std::mem::take(&mut self.filter);
        for (_, k, _) in self.scan(0..u16::MAX as u32) {
            filter.insert(hash(user_key(&k)));
        }
        self.filter = filter;
    }

    /// Records an error met while decoding what the store gave back.
    pub fn fail(&self, why: String) {
        self.store.fail(why);
    }

    /// A function that records an error in this state's store.
    pub fn failer(&self) -> impl Fn(String) + 'static {
        let store = self.store.clone();
        move |why| store.fail(why)
    }
}

/// What [`Spill::update_all`] does with an entry.
pub(super) enum Update {
    Keep,
    Remove,
    Rewrite,
}

/// The key group of a disk key.
pub(super) fn group_of(disk_key: &[u8]) -> u32 {
    disk_key
        .get(4..6)
        .map_or(0, |g| u16::from_be_bytes([g[0], g[1]]) as u32)
}

/// What a state had on disk at one moment ([`Spill::view`]).
pub struct DiskView {
    snapshot: fjall::Snapshot,
    store: Arc<DiskStore>,
    id: [u8; 4],
    empty: bool,
}

impl DiskView {
    /// `key`'s value bytes then, if it was on disk.
    pub fn get(&self, group: u32, key: &[u8]) -> Option<fjall::UserValue> {
        use fjall::Readable;
        if self.empty {
            return None;
        }
        let mut k = Vec::with_capacity(6 + key.len());
        k.extend_from_slice(&self.id);
        k.extend_from_slice(&(group as u16).to_be_bytes());
        k.extend_from_slice(key);
        match self.snapshot.get(&self.store.keyspace, k) {
            Ok(v) => v,
            Err(e) => {
                self.store.fail(format!("reading state: {e}"));
                None
            }
        }
    }

    /// Every entry then on disk: (disk key, value bytes). An error ends the scan and is
    /// recorded.
    pub fn scan(&self) -> Box<dyn Iterator<Item = (fjall::UserKey, fjall::UserValue)> + Send> {
        use fjall::Readable;
        if self.empty {
            return Box::new(std::iter::empty());
        }
        let store = self.store.clone();
        Box::new(
            self.snapshot
                .prefix(&self.store.keyspace, self.id)
                .map_while(move |guard| match guard.into_inner() {
                    Ok(kv) => Some(kv),
                    Err(e) => {
                        store.fail(format!("reading state: {e}"));
                        None
                    }
                }),
        )
    }
}

/// The encoded key of a disk key.
pub(super) fn user_key(disk_key: &[u8]) -> &[u8] {
    disk_key.get(6..).unwrap_or_default()
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.store
            .cached
            .fetch_sub(self.reported, Ordering::Relaxed);
        if self.store.retired.load(Ordering::Relaxed) {
            return;
        }
        // the state is gone (the job goes on): so are its entries on disk
        for (_, k, _) in self.scan(0..u16::MAX as u32) {
            let _ = self.store.keyspace.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{tiny_store, Lcg};
    use super::super::{KeyedState, Rescale};
    use super::*;
    use crate::keys::MAX_KEY_GROUPS;
    use std::collections::BTreeMap;

    fn spilling<V: super::super::StateValue>(store: &Arc<DiskStore>) -> KeyedState<V> {
        scoped(Some(store), KeyedState::default)
    }

    fn contents(state: &KeyedState<i64>) -> BTreeMap<Vec<u8>, i64> {
        state.iter().map(|(k, v)| (k.to_vec(), *v)).collect()
    }

    #[test]
    fn a_spilling_state_behaves_as_a_plain_map() {
        let store = tiny_store();
        for seed in 0..4u64 {
            let mut rng = Lcg(seed);
            let mut state: KeyedState<i64> = spilling(&store);
            let mut model: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for step in 0..4000 {
                let key = format!("k{}", rng.next(700)).into_bytes();
                match rng.next(100) {
                    0..=44 => {
                        let add = rng.next(10) as i64 + 1;
                        *state.get_or_insert_with(&key, || 0) += add;
                        *model.entry(key).or_insert(0) += add;
                    }
                    45..=64 => {
                        assert_eq!(state.get_mut(&key).map(|v| *v), model.get(&key).copied());
                    }
                    65..=74 => {
                        assert_eq!(state.peek_mut(&key).map(|v| *v), model.get(&key).copied());
                    }
                    75..=89 => assert_eq!(state.remove(&key), model.remove(&key)),
                    90..=94 => {
                        state.retain(|v| *v % 3 != 0);
                        model.retain(|_, v| *v % 3 != 0);
                    }
                    _ => {
                        // a snapshot restores into both backends with the same contents
                        let mut bytes = Vec::new();
                        state.snapshot(0..MAX_KEY_GROUPS, &mut bytes);
                        let mut heap: KeyedState<i64> = KeyedState::default();
                        heap.restore(&bytes, &mut 0).unwrap();
                        assert_eq!(contents(&heap), model, "seed {seed} step {step}");
                        let mut back: KeyedState<i64> = spilling(&store);
                        back.restore(&bytes, &mut 0).unwrap();
                        assert_eq!(contents(&back), model, "seed {seed} step {step}");
                        assert_eq!(back.len(), model.len());
                        state = back;
                    }
                }
                assert_eq!(state.len(), model.len(), "seed {seed} step {step}");
            }
            assert!(state.on_disk() > 0, "the tiny budget moved entries to disk");
            assert_eq!(contents(&state), model);
            let groups: Vec<u32> = state.key_groups().collect();
            assert_eq!(groups.len(), model.len());
            let drained: BTreeMap<Vec<u8>, i64> =
                state.drain().map(|(k, v)| (k.to_vec(), v)).collect();
            assert_eq!(drained, model);
            assert_eq!(state.len(), 0);
        }
        assert!(store.check().is_ok());
        let (spilled, loaded) = store.moves();
        assert!(spilled > 0 && loaded > 0, "{spilled} {loaded}");
    }

    /// A state that grew large and is then squeezed (the job over budget because of another
    /// state) gives its emptied buckets back, and stays a plain map: the regression where
    /// every insert walked the whole emptied table from its first bucket (Nexmark q16 on disk,
    /// 92 % of its time in eviction).
    #[test]
    fn a_squeezed_state_gives_back_its_buckets_and_keeps_its_entries() {
        let store = tiny_store();
        store.set_budget(i64::MAX / 4);
        let mut big: KeyedState<i64> = spilling(&store);
        let mut model: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for i in 0..50_000i64 {
            let key = format!("k{i}").into_bytes();
            *big.get_or_insert_with(&key, || 0) += i;
            model.insert(key, i);
        }
        let grown = big.table.capacity();
        assert!(grown >= 50_000);
        // another state holds the budget: every insert here now evicts
        store.set_budget(1);
        for i in 50_000..60_000i64 {
            let key = format!("k{i}").into_bytes();
            *big.get_or_insert_with(&key, || 0) += i;
            model.insert(key, i);
        }
        assert!(big.on_disk() > 40_000, "{}", big.on_disk());
        assert!(
            big.table.capacity() < grown / 8,
            "{} buckets for {} entries in memory",
            big.table.capacity(),
            big.table.len()
        );
        for (k, v) in &model {
            assert_eq!(big.get_mut(k).map(|x| *x), Some(*v));
        }
        assert_eq!(contents(&big), model);
        assert!(store.check().is_ok());
    }

    /// Keys moved out and read back again and again fill the key filter with keys no longer on
    /// disk; it is built again from the disk's keys, and no key on disk is ever missed (new
    /// keys, absent from disk, are not looked for there).
    #[test]
    fn the_key_filter_is_built_again_when_read_backs_fill_it() {
        let store = tiny_store();
        let mut state: KeyedState<i64> = spilling(&store);
        let mut model: BTreeMap<i64, i64> = BTreeMap::new();
        let mut rng = Lcg(5);
        let mut most = 0;
        for step in 0..120_000i64 {
            let k = rng.next(600) as i64;
            *state.get_or_insert_with(&k.to_le_bytes(), || 0) += step;
            *model.entry(k).or_insert(0) += step;
            let sp = state.spill.as_deref().unwrap();
            most = most.max(sp.filter.keys());
            assert!(sp.filter.keys() <= 4 * sp.on_disk as u64 + (1 << 16) + 600);
        }
        let (spilled, _) = store.moves();
        assert!(spilled > (1 << 16) + 4 * 600, "{spilled} moves out");
        assert!(
            most > 1 << 16,
            "the filter filled ({most}) and was built again"
        );
        for (k, v) in &model {
            assert_eq!(
                state.peek_mut(&k.to_le_bytes()).copied(),
                Some(*v),
                "key {k}"
            );
        }
        assert!(store.check().is_ok());
    }

    #[test]
    fn large_eviction_rounds_are_ingested_and_read_back() {
        let store = tiny_store();
        store.set_budget(i64::MAX);
        let mut state: KeyedState<i64> = spilling(&store);
        let mut model = BTreeMap::new();
        for i in 0..20_000i64 {
            let key = (i * 7919 % 20_011).to_le_bytes();
            *state.get_or_insert_with(&key, || 0) += i;
            *model.entry(key.to_vec()).or_insert(0) += i;
        }
        assert_eq!(state.on_disk(), 0);
        // the budget drops: rounds of an eighth of 20 000 entries go out as sorted runs
        store.set_budget(1);
        for round in 0..6i64 {
            for i in 0..3_000i64 {
                let key = ((i * 31 + round * 977) % 20_011).to_le_bytes();
                if let Some(v) = state.get_mut(&key) {
                    *v += 1;
                    *model.get_mut(key.as_slice()).unwrap() += 1;
                }
            }
        }
        assert!(state.on_disk() > 10_000, "{}", state.on_disk());
        assert_eq!(state.len(), model.len());
        assert_eq!(contents(&state), model);
        assert!(store.check().is_ok());
    }

    #[test]
    fn snapshots_split_by_key_group_hold_disk_entries_too() {
        let store = tiny_store();
        let mut state: KeyedState<i64> = spilling(&store);
        for i in 0..2000i64 {
            *state.get_or_insert_with(&i.to_le_bytes(), || 0) = i;
        }
        assert!(state.on_disk() > 1000, "{}", state.on_disk());
        let mut all = BTreeMap::new();
        for range in [0..40, 40..41, 41..MAX_KEY_GROUPS] {
            let mut bytes = Vec::new();
            state.snapshot(range, &mut bytes);
            let mut part: KeyedState<i64> = KeyedState::default();
            part.restore_part(&bytes, &mut 0, &Rescale::NONE, 0)
                .unwrap();
            for (k, v) in part.iter() {
                assert!(all.insert(k.to_vec(), *v).is_none());
            }
        }
        assert_eq!(all.len(), 2000);
        assert!(all
            .iter()
            .all(|(k, v)| k.as_slice() == v.to_le_bytes().as_slice()));
    }

    #[test]
    fn a_dropped_state_leaves_nothing_on_disk() {
        let store = tiny_store();
        let mut state: KeyedState<i64> = spilling(&store);
        for i in 0..3000i64 {
            state.get_or_insert_with(&i.to_le_bytes(), || i);
        }
        assert!(state.on_disk() > 0);
        drop(state);
        let left = store.keyspace.iter().count();
        assert_eq!(left, 0);
        assert!(store.cached_bytes().abs() < REPORT_STEP * 2);
    }

    #[test]
    fn spilled_entries_expire_with_the_ttl() {
        use crate::ttl::{StateTtl, TtlClock};
        let store = tiny_store();
        let ttl = StateTtl {
            micros: 10_000_000,
            clock: TtlClock::Watermark,
        };
        let mut state: KeyedState<i64> = scoped(Some(&store), || KeyedState::with_ttl(Some(ttl)));
        state.on_watermark(0);
        for i in 0..1000i64 {
            state.get_or_insert_with(&i.to_le_bytes(), || i);
        }
        assert!(state.on_disk() > 0);
        // key 0, written again later, lives on; the sweep reclaims the rest, on disk too
        state.on_watermark(6_000_000);
        *state.get_or_insert_with(&0i64.to_le_bytes(), || 0) += 1;
        state.on_watermark(12_000_000);
        assert_eq!(state.len(), 1, "{} on disk", state.on_disk());
        assert_eq!(state.peek_mut(&5i64.to_le_bytes()), None);
        assert_eq!(state.peek_mut(&0i64.to_le_bytes()).map(|v| *v), Some(1));
        assert!(state.expired() >= 999);
    }
}
