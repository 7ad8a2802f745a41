//! Keyed state: the one place operators keep per-key data.
//!
//! A [`KeyedState`] maps encoded keys to values. Each entry remembers its key hash, so its key group
//! is known without re-hashing; [`KeyedState::snapshot`] writes entries key group by key group, so
//! that a later checkpoint can hand a range of key groups to another process. Values implement
//! [`StateValue`] to be written to and read from bytes.
//!
//! A job restored at another parallelism than its checkpoint's gives each operator instance the
//! snapshots of all of the operator's old instances and a [`Rescale`] saying which keys it now
//! owns; [`KeyedState::restore_part`] keeps those, checks that every key came from the instance
//! that owned it, and refuses a key found in two instances' state.
//!
//! With a time-to-live ([`KeyedState::with_ttl`], see [`crate::ttl`]) each entry keeps the time of
//! its last write: [`KeyedState::get_or_insert_with`] and [`KeyedState::get_mut`] are writes,
//! [`KeyedState::peek_mut`] a read; an expired entry is never returned, and the clock's ticks
//! ([`KeyedState::on_processing_time`], [`KeyedState::on_watermark`]) sweep the expired ones out.
//! Snapshots then carry each entry's time.
//!
//! With the on-disk backend ([`disk`]) a state keeps its hot entries in the same table and the
//! rest on local disk, within the job's memory budget; every method here covers both places, so
//! an operator never knows where an entry is. An entry then also keeps a "touched" byte after
//! its key (before the time), set by each access and cleared by eviction's second-chance sweep.

pub mod disk;
mod filter;
pub mod incremental;

use crate::error::{Result, RuntimeError};
use crate::keys::{eq_bytes, hash_key, instance_of, key_group, MAX_KEY_GROUPS};
use crate::ttl::{StateTtl, TtlTimer, UNKNOWN_TIME};
use disk::{Spill, Update};
use hashbrown::HashTable;
use incremental::{Advance, Collector, Part, StateSection, Tracker};
use std::borrow::Cow;
use std::sync::Arc;
use tillflow_types::{Row, RowKind};

/// A value that can be stored in a checkpoint.
pub trait StateValue: Sized {
    /// Appends this value's bytes.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads a value written by [`StateValue::write`], advancing `at`.
    fn read(input: &[u8], at: &mut usize) -> Result<Self>;
}

/// Which keys an operator instance owns when state is restored at another parallelism: the
/// instance `index` of `workers`, its state read from the snapshots of the `old_workers`
/// instances of the checkpoint, keys spread over key groups as the exchanges spread them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rescale {
    /// The key groups of the restored run (`pipeline.max-parallelism`).
    pub max_parallelism: u64,
    /// The key groups of the checkpoint's run.
    pub old_max_parallelism: u64,
    /// The instances of the operator in the checkpoint.
    pub old_workers: usize,
    /// The instances of the operator now.
    pub workers: usize,
    /// This instance.
    pub index: usize,
}

impl Rescale {
    /// A restore at the checkpoint's own parallelism: one snapshot, every key kept.
    pub const NONE: Rescale = Rescale {
        max_parallelism: 1,
        old_max_parallelism: 1,
        old_workers: 1,
        workers: 1,
        index: 0,
    };

    /// True when this instance keeps every key of one snapshot (nothing moves).
    pub fn keeps_all(&self) -> bool {
        self.workers == 1 && self.old_workers == 1
    }

    /// True when the key with `hash` is this instance's now.
    #[inline]
    pub fn keeps(&self, hash: u64) -> bool {
        self.workers == 1 || instance_of(hash, self.max_parallelism, self.workers) == self.index
    }

    /// Checks that the key with `hash`, found in the snapshot of old instance `part`, was that
    /// instance's: state keyed otherwise than its input is routed cannot be handed on by key.
    pub fn check_origin(&self, hash: u64, part: usize) -> Result<()> {
        if self.old_workers <= 1 {
            return Ok(());
        }
        let owner = instance_of(hash, self.old_max_parallelism, self.old_workers);
        if owner != part {
            return Err(RuntimeError::State(format!(
                "a key in worker {part}'s state belongs to worker {owner} of {}: this state is not \
                 keyed as its input is routed, so it cannot move to another number of workers",
                self.old_workers
            )));
        }
        Ok(())
    }
}

/// An entry. With a TTL its key box ends with the entry's time of last write (8 bytes, little
/// endian), so a state without one pays nothing for it.
struct Entry<V> {
    hash: u64,
    key: Box<[u8]>,
    value: V,
}

/// Bytes of the time after a key, with a TTL.
const TIME: usize = 8;

impl<V> Entry<V> {
    /// The key (without the time).
    #[inline]
    fn key(&self, suffix: usize) -> &[u8] {
        &self.key[..self.key.len() - suffix]
    }

    /// The time of the last write (with a TTL only).
    #[inline]
    fn time(&self) -> i64 {
        let at = self.key.len() - TIME;
        i64::from_le_bytes(self.key[at..].try_into().unwrap_or([0; 8]))
    }

    #[inline]
    fn set_time(&mut self, t: i64) {
        let at = self.key.len() - TIME;
        self.key[at..].copy_from_slice(&t.to_le_bytes());
    }

    /// Marks the entry touched (on-disk backend only: the byte after the key).
    #[inline]
    fn touch(&mut self, suffix: usize) {
        let at = self.key.len() - suffix;
        self.key[at] = 1;
    }

    /// Stamps the entry with `stamp` = (its place from the key's end, the epoch), when the
    /// state tracks changes.
    #[inline]
    fn stamp(&mut self, stamp: Option<(usize, u32)>) {
        if let Some((from_end, epoch)) = stamp {
            let at = self.key.len() - from_end;
            self.key[at..at + STAMP].copy_from_slice(&epoch.to_le_bytes());
        }
    }

    /// The entry's stamp (its place from the key's end given).
    #[inline]
    fn stamped(&self, from_end: usize) -> u32 {
        let at = self.key.len() - from_end;
        u32::from_le_bytes(self.key[at..at + STAMP].try_into().unwrap_or([0; 4]))
    }
}

/// Bytes of the change stamp after a key, when the state tracks changes.
const STAMP: usize = 4;

/// `key`, with the touched byte when the state spills to disk, its change stamp when it tracks
/// changes, and with a TTL the time after them, as an entry stores it.
fn stored_key(key: &[u8], time: Option<i64>, spills: bool, stamp: Option<u32>) -> Box<[u8]> {
    if time.is_none() && !spills && stamp.is_none() {
        return key.into();
    }
    let mut k = Vec::with_capacity(key.len() + TIME + STAMP + 1);
    k.extend_from_slice(key);
    if spills {
        k.push(1);
    }
    if let Some(s) = stamp {
        k.extend_from_slice(&s.to_le_bytes());
    }
    if let Some(t) = time {
        k.extend_from_slice(&t.to_le_bytes());
    }
    k.into_boxed_slice()
}

/// Stamps `e` with the epoch of `stamp` (when the state tracks changes), counting it among
/// the entries changed since the last snapshot when it was not stamped so already.
#[inline]
fn stamp_counted<V>(e: &mut Entry<V>, stamp: Option<(usize, u32)>, tr: Option<&Tracker>) {
    if let (Some((from_end, epoch)), Some(tr)) = (stamp, tr) {
        if e.stamped(from_end) != epoch {
            tr.changed.set(tr.changed.get() + 1);
            e.stamp(stamp);
        }
    }
}

/// Counts a new entry among those changed since the last snapshot.
#[inline]
fn count_new(tr: Option<&Tracker>) {
    if let Some(tr) = tr {
        tr.changed.set(tr.changed.get() + 1);
    }
}

/// The hash of a key routed by a prefix (its last 4 bytes: the prefix's length): the high 32
/// bits, which alone decide the key group ([`key_group`], [`instance_of`]), are the prefix's
/// hash's; the low 32 the whole key's. A key too short for its length is hashed whole.
#[inline]
pub fn routed_hash(key: &[u8]) -> u64 {
    let whole = hash_key(key);
    let prefix = key
        .len()
        .checked_sub(4)
        .and_then(|at| key.get(at..))
        .and_then(|b| b.try_into().ok())
        .map(|b| u32::from_le_bytes(b) as usize)
        .and_then(|n| key.get(..n.min(key.len().saturating_sub(4))));
    match prefix {
        Some(p) => (hash_key(p) & !0xFFFF_FFFF) | (whole & 0xFFFF_FFFF),
        None => whole,
    }
}

/// The hash of `key` in a state routed by a prefix (`prefixed`) or not.
#[inline]
fn key_hash(prefixed: bool, key: &[u8]) -> u64 {
    if prefixed {
        routed_hash(key)
    } else {
        hash_key(key)
    }
}

/// Where an entry of `hash` goes in the table: a routed state's entries share their high bits
/// per prefix, so they are mixed with the low ones (hashbrown takes its tag from the top bits).
#[inline]
fn slot(prefixed: bool, hash: u64) -> u64 {
    if prefixed {
        hash ^ (hash << 32)
    } else {
        hash
    }
}

/// A keyed state's section of a checkpoint while it is being written (see
/// [`incremental::collecting_deferred`]): it still needs the entries in buckets from `cursor`
/// on that it wants by their stamp; an entry it needs is written before it is changed,
/// removed or moved to disk.
struct Pending {
    checkpoint: u64,
    /// The checkpoint a delta builds on (0: a full section).
    previous: u64,
    /// The checkpoints of the chain this section ends.
    builds_on: Vec<u64>,
    /// The epoch snapshotted: a delta wants the entries stamped with it; a full section every
    /// entry not stamped since (with the next).
    epoch: u32,
    full: bool,
    cursor: usize,
    block: Option<Block>,
    collector: Arc<Collector>,
    /// The entries it needs from disk, with the on-disk backend.
    disk: Option<DiskPart>,
}

/// What a section in progress reads from disk, as it was at the checkpoint: the changed
/// entries moved out (a delta), or every entry there (a full section).
struct DiskPart {
    view: disk::DiskView,
    /// A delta's keys still to read (as [`Tracker::evicted`] lists them), from `at` on.
    keys: Vec<u8>,
    at: usize,
    /// A full section's scan of the disk.
    scan: Option<Box<dyn Iterator<Item = (fjall::UserKey, fjall::UserValue)> + Send>>,
}

impl DiskPart {
    /// Writes up to `limit` of its entries (all with None) into `block`; true once none is
    /// left.
    fn advance(&mut self, limit: Option<usize>, block: &mut Block) -> bool {
        let mut left = limit.unwrap_or(usize::MAX);
        if let Some(scan) = self.scan.as_mut() {
            while left > 0 {
                let Some((k, v)) = scan.next() else {
                    self.scan = None;
                    break;
                };
                write_stored(disk::user_key(&k), &v, &mut block.out);
                block.written();
                left -= 1;
            }
            return self.scan.is_none();
        }
        let keys = &self.keys[self.at.min(self.keys.len())..];
        let mut used = 0;
        for (group, key) in incremental::evicted_keys(keys) {
            if left == 0 {
                break;
            }
            used += 8 + key.len();
            left -= 1;
            // absent: removed before the checkpoint, and listed among the removed keys
            if let Some(v) = self.view.get(group, key) {
                write_stored(key, &v, &mut block.out);
                block.written();
            }
        }
        self.at += used;
        self.at >= self.keys.len()
    }
}

impl Pending {
    /// True when the section needs an entry of `stamp` (not yet written, if it is in a bucket
    /// from `cursor` on).
    #[inline]
    fn wants(&self, stamp: u32) -> bool {
        if self.full {
            stamp != self.epoch.wrapping_add(1)
        } else {
            stamp == self.epoch
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pending(checkpoint {}, {}, bucket {})",
            self.checkpoint,
            if self.full { "full" } else { "delta" },
            self.cursor
        )
    }
}

/// Entries a slice of a section in progress reads from disk.
const DISK_SLICE: usize = 4096;

/// A section in progress is written in at most this many slices of the table's buckets...
const SLICES: usize = 128;
/// ... of at least this many buckets each.
#[cfg(not(test))]
const MIN_SLICE: usize = 16 << 10;
/// (Small in tests, so a small state's section takes many slices.)
#[cfg(test)]
const MIN_SLICE: usize = 2;

/// Where an entry's stamp and time are, and what a snapshot writes of it.
#[derive(Clone, Copy)]
struct Layout {
    suffix: usize,
    times: bool,
    from_end: usize,
}

/// A hash map from encoded keys to `V`, partitioned by key group.
pub struct KeyedState<V: StateValue> {
    table: HashTable<Entry<V>>,
    ttl: Option<TtlTimer>,
    /// The disk side, with the on-disk backend.
    spill: Option<Box<Spill>>,
    /// Change tracking, for incremental checkpoints.
    inc: Option<Box<Tracker>>,
    /// Keys routed by a prefix ([`KeyedState::routed_by_prefix`]).
    prefixed: bool,
}

impl<V: StateValue> Drop for KeyedState<V> {
    /// A state dropped (a window that fired) while its section is in progress finishes it:
    /// the checkpoint holds what the state held then.
    fn drop(&mut self) {
        self.advance(None);
    }
}

impl<V: StateValue> Default for KeyedState<V> {
    fn default() -> Self {
        Self::with_ttl(None)
    }
}

/// Set in a snapshot's entry count when each entry carries its time.
const WITH_TIMES: u64 = 1 << 63;
/// Set in a snapshot's entry count when the TTL clock's time follows it.
const WITH_CLOCK: u64 = 1 << 62;
/// Set instead of an entry count when the entries are in a [`StateSection`] of the checkpoint:
/// the state's lineage and the section's checkpoint follow.
const REFERENCE: u64 = 1 << 61;

impl<V: StateValue> KeyedState<V> {
    /// An empty state whose entries expire `ttl` after their last write (None: never).
    pub fn with_ttl(ttl: Option<StateTtl>) -> Self {
        KeyedState {
            table: HashTable::new(),
            ttl: ttl.map(TtlTimer::new),
            spill: disk::current().map(|s| Box::new(Spill::new(s))),
            inc: incremental::tracking().then(|| Box::new(Tracker::new())),
            prefixed: false,
        }
    }

    /// This (empty) state with keys routed by a prefix: each key ends with the byte length of
    /// the prefix (4 bytes, little endian), and lies in the key group of that prefix, as a row
    /// keyed by it is routed. An operator keeps many entries per routed key this way, as
    /// Flink's map state keeps one entry per map key (a DISTINCT aggregate's values per group).
    pub fn routed_by_prefix(mut self) -> Self {
        self.prefixed = true;
        self
    }

    /// The hash of `key` (see [`routed_hash`]).
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        key_hash(self.prefixed, key)
    }

    /// Bytes after each entry's key: the touched byte when the state spills, its change stamp
    /// when it tracks changes, and its time with a TTL.
    #[inline]
    fn suffix(&self) -> usize {
        let time = if self.ttl.is_some() { TIME } else { 0 };
        let stamp = if self.inc.is_some() { STAMP } else { 0 };
        time + stamp + usize::from(self.spill.is_some())
    }

    /// Where an entry's change stamp is (from its key's end) and the epoch to stamp a write
    /// with, when the state tracks changes.
    #[inline]
    fn stamper(&self) -> Option<(usize, u32)> {
        let time = if self.ttl.is_some() { TIME } else { 0 };
        self.inc.as_deref().map(|t| (time + STAMP, t.epoch.get()))
    }

    /// The stamp of an entry written back unchanged (restored, or read from disk).
    #[inline]
    fn clean_stamp(&self) -> Option<u32> {
        self.inc.as_deref().map(Tracker::clean)
    }

    /// Entries on disk (0 with the heap backend).
    pub fn on_disk(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.on_disk)
    }

    /// The value for `key`, created with `init` when absent (or expired: it starts over). A
    /// write: with a TTL the entry's time is now. Allocates only for a new key.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: &[u8], init: impl FnOnce() -> V) -> &mut V {
        use hashbrown::hash_table::Entry as Slot;
        let hash = self.hash(key);
        if self.spill.is_some() {
            self.fault_in(hash, key);
        }
        self.before_insert();
        let suffix = self.suffix();
        let spills = self.spill.is_some();
        let stamp = self.stamper();
        let layout = self.layout();
        let tracker = self.inc.as_deref();
        let entry = match self.table.entry(
            slot(self.prefixed, hash),
            |e| e.hash == hash && eq_bytes(e.key(suffix), key),
            |e| slot(self.prefixed, e.hash),
        ) {
            Slot::Occupied(o) => {
                Self::keep_for_section(tracker, o.bucket_index(), o.get(), layout);
                let e = o.into_mut();
                if let Some(t) = self.ttl.as_mut() {
                    if t.is_expired(e.time()) {
                        t.expired += 1;
                        e.value = init();
                    }
                    e.set_time(t.now());
                }
                if spills {
                    e.touch(suffix);
                }
                stamp_counted(e, stamp, tracker);
                e
            }
            Slot::Vacant(v) => {
                count_new(tracker);
                v.insert(Entry {
                    hash,
                    key: stored_key(
                        key,
                        self.ttl.as_ref().map(TtlTimer::now),
                        spills,
                        stamp.map(|s| s.1),
                    ),
                    value: init(),
                })
                .into_mut()
            }
        };
        &mut entry.value
    }

    /// Inserts `value` for `key`, which [`KeyedState::peek_mut`] has just found absent: as
    /// [`KeyedState::get_or_insert_with`], without looking for the key again (on disk either).
    pub fn insert_absent(&mut self, key: &[u8], value: V) -> &mut V {
        let hash = self.hash(key);
        if self.spill.is_some() {
            self.make_room();
        }
        self.before_insert();
        count_new(self.inc.as_deref());
        let key = stored_key(
            key,
            self.ttl.as_ref().map(TtlTimer::now),
            self.spill.is_some(),
            self.stamper().map(|s| s.1),
        );
        let prefixed = self.prefixed;
        &mut self
            .table
            .insert_unique(slot(prefixed, hash), Entry { hash, key, value }, |e| {
                slot(prefixed, e.hash)
            })
            .into_mut()
            .value
    }

    /// The value for `key`, if present and not expired. A write: with a TTL the entry's time is
    /// now (an expired entry is removed).
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.find(key, true)
    }

    /// The value for `key`, if present and not expired, for reading: its time stays.
    #[inline]
    pub fn peek_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.find(key, false)
    }

    #[inline]
    fn find(&mut self, key: &[u8], write: bool) -> Option<&mut V> {
        let hash = self.hash(key);
        let suffix = self.suffix();
        if let Some(sp) = self.spill.as_deref() {
            if sp.on_disk > 0 || sp.over_budget() {
                self.fault_in(hash, key);
            }
        }
        let spills = self.spill.is_some();
        let stamp = self.stamper();
        let layout = self.layout();
        let tracker = self.inc.as_deref();
        let entry = self
            .table
            .find_entry(slot(self.prefixed, hash), |e| {
                e.hash == hash && eq_bytes(e.key(suffix), key)
            })
            .ok()?;
        Self::keep_for_section(tracker, entry.bucket_index(), entry.get(), layout);
        if let Some(t) = self.ttl.as_mut() {
            if t.is_expired(entry.get().time()) {
                t.expired += 1;
                entry.remove();
                if let Some(tr) = tracker {
                    tr.removed(key);
                }
                return None;
            }
        }
        let e = entry.into_mut();
        if let (true, Some(t)) = (write, self.ttl.as_ref()) {
            e.set_time(t.now());
        }
        if spills {
            e.touch(suffix);
        }
        stamp_counted(e, stamp, tracker);
        Some(&mut e.value)
    }

    /// On-disk backend: makes room when the budget is spent, and brings `key` into memory
    /// when it is on disk (with the time it had there).
    fn fault_in(&mut self, hash: u64, key: &[u8]) {
        self.make_room();
        self.before_insert();
        let suffix = self.suffix();
        // while a full section is in progress, an entry read back is in the section's view of
        // the disk: it is stamped changed, so the section does not take it from memory too
        let full_pending = self.inc.as_deref().is_some_and(|t| {
            t.has_pending.get() && t.pending.borrow().as_ref().is_some_and(|p| p.full)
        });
        let clean = if full_pending {
            count_new(self.inc.as_deref());
            self.stamper().map(|s| s.1)
        } else {
            self.clean_stamp()
        };
        let Some(sp) = self.spill.as_deref_mut() else {
            return;
        };
        if sp.on_disk == 0
            || self
                .table
                .find(slot(self.prefixed, hash), |e| {
                    e.hash == hash && eq_bytes(e.key(suffix), key)
                })
                .is_some()
        {
            return;
        }
        let Some(bytes) = sp.take(hash, key) else {
            return;
        };
        let times = self.ttl.is_some();
        let mut at = 0;
        let decoded = (|| {
            let time = if times {
                Some(read_u64(&bytes, &mut at)? as i64)
            } else {
                None
            };
            Ok::<_, RuntimeError>((time, V::read(&bytes, &mut at)?))
        })();
        match decoded {
            Ok((time, value)) => {
                self.table.insert_unique(
                    slot(self.prefixed, hash),
                    Entry {
                        hash,
                        key: stored_key(key, time, true, clean),
                        value,
                    },
                    |e| slot(self.prefixed, e.hash),
                );
            }
            Err(e) => sp.fail(format!("decoding state read back from disk: {e}")),
        }
    }

    /// On-disk backend: when the job's entries in memory are over its budget, moves about an
    /// eighth of this state's entries to disk, those not touched since the last round first
    /// (second chance, a clock: each round starts where the last one stopped). A table that
    /// eviction has left mostly empty gives its buckets back, so a round never walks over many
    /// more buckets than it has entries.
    fn make_room(&mut self) {
        let suffix = self.suffix();
        let times = self.ttl.is_some();
        let stamp = self.stamper();
        let layout = self.layout();
        let tracker = self.inc.as_deref();
        let Some(sp) = self.spill.as_deref_mut() else {
            return;
        };
        let table = &mut self.table;
        sp.since_sample += 1;
        if sp.since_sample >= 4096 {
            sp.since_sample = 0;
            for e in table.iter().take(8) {
                sp.value.clear();
                e.value.write(&mut sp.value);
                sp.observe_written(std::mem::size_of::<Entry<V>>(), e.key.len());
            }
        }
        sp.report(table.len());
        if table.len() < disk::MIN_RESIDENT || !sp.over_budget() {
            return;
        }
        let mut left = (table.len() / 8).max(1);
        // by bucket, so that a section in progress knows which entries it has written
        let buckets = table.num_buckets();
        let start = sp.hand % buckets.max(1);
        for _round in 0..2 {
            for step in 0..buckets {
                if left == 0 {
                    break;
                }
                let bucket = (start + step) % buckets;
                sp.hand = bucket + 1;
                let Ok(mut entry) = table.get_bucket_entry(bucket) else {
                    continue;
                };
                let e = entry.get_mut();
                let at = e.key.len() - suffix;
                if e.key[at] != 0 {
                    e.key[at] = 0;
                    continue;
                }
                Self::keep_for_section(tracker, bucket, e, layout);
                sp.value.clear();
                if times {
                    sp.value.extend_from_slice(&e.time().to_le_bytes());
                }
                e.value.write(&mut sp.value);
                sp.observe_written(std::mem::size_of::<Entry<V>>(), e.key.len());
                sp.stage(e.hash, e.key(suffix));
                if let (Some(tr), Some((from_end, epoch))) = (tracker, stamp) {
                    if e.stamped(from_end) == epoch {
                        tr.evicted(key_group(e.hash), e.key(suffix));
                    }
                }
                if sp.staged_bytes() >= disk::MAX_STAGED {
                    sp.write_staged();
                }
                left -= 1;
                entry.remove();
            }
            if left == 0 {
                break;
            }
        }
        sp.write_staged();
        sp.report(table.len());
        let prefixed = self.prefixed;
        sp.refresh_filter(|key| key_hash(prefixed, key));
        // moving entries between buckets: not while a section, which follows the buckets,
        // is in progress (a later round shrinks)
        if self.table.capacity() > 1024
            && self.table.len() * 8 < self.table.capacity()
            && !self.inc.as_deref().is_some_and(|t| t.has_pending.get())
        {
            let len = self.table.len();
            self.table.shrink_to(len * 2, |e| slot(prefixed, e.hash));
            if let Some(sp) = self.spill.as_deref_mut() {
                sp.hand = 0;
            }
        }
    }

    /// Removes `key`, returning its value (None for an expired one).
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = self.hash(key);
        if self.spill.as_deref().is_some_and(|s| s.on_disk > 0) {
            self.fault_in(hash, key);
        }
        let suffix = self.suffix();
        let layout = self.layout();
        let entry = self
            .table
            .find_entry(slot(self.prefixed, hash), |e| {
                e.hash == hash && eq_bytes(e.key(suffix), key)
            })
            .ok()?;
        Self::keep_for_section(
            self.inc.as_deref(),
            entry.bucket_index(),
            entry.get(),
            layout,
        );
        let e = entry.remove().0;
        if let Some(tr) = self.inc.as_deref() {
            tr.removed(key);
        }
        match self.ttl.as_mut() {
            Some(t) if t.is_expired(e.time()) => {
                t.expired += 1;
                None
            }
            _ => Some(e.value),
        }
    }

    /// Entries written since the last snapshot, when the state tracks changes (tests).
    #[cfg(test)]
    pub(crate) fn changed_entries(&self) -> Option<u64> {
        self.inc.as_deref().map(|t| t.changed.get())
    }

    /// Number of keys (in memory and on disk).
    pub fn len(&self) -> usize {
        self.table.len() + self.on_disk()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (key, value), in no particular order: those in memory, then those on disk (read
    /// back for the visit; they stay on disk).
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, [u8]>, Held<'_, V>)> + '_ {
        let suffix = self.suffix();
        let skip = if self.ttl.is_some() { TIME } else { 0 };
        let disk = self.spill.as_deref().map(|sp| {
            let fail = sp.failer();
            sp.scan(0..MAX_KEY_GROUPS).map_while(move |(_, k, v)| {
                let mut at = skip;
                match V::read(&v, &mut at) {
                    Ok(value) => Some((Cow::Owned(disk::user_key(&k).to_vec()), Held::Read(value))),
                    Err(e) => {
                        fail(format!("decoding state read back from disk: {e}"));
                        None
                    }
                }
            })
        });
        self.table
            .iter()
            .map(move |e| (Cow::Borrowed(e.key(suffix)), Held::InMemory(&e.value)))
            .chain(disk.into_iter().flatten())
    }

    /// Bytes the state's entries take as a checkpoint writes them, for metrics: the entries
    /// times the average of up to 16 entries in memory (or, with every entry on disk, the
    /// on-disk backend's estimate of an entry's size).
    pub fn bytes_estimate(&self) -> u64 {
        let entries = self.len() as u64;
        if entries == 0 {
            return 0;
        }
        let (suffix, times) = (self.suffix(), self.ttl.is_some());
        let mut sample = Vec::new();
        let mut n = 0;
        // entries spread over the whole table: its first buckets are not a fair sample (on
        // disk, eviction rounds go around the table and leave it unevenly aged)
        // (64 places, each the first entry among its next 16 buckets: bounded work)
        let buckets = self.table.num_buckets();
        let step = (buckets / 64).max(1);
        for start in (0..buckets).step_by(step).take(64) {
            let found = (start..(start + 16).min(buckets)).find_map(|b| self.table.get_bucket(b));
            if let Some(e) = found {
                write_entry(e, suffix, times, &mut sample);
                n += 1;
            }
        }
        if n == 0 {
            for e in self.table.iter().take(16) {
                write_entry(e, suffix, times, &mut sample);
                n += 1;
            }
        }
        match (n, self.spill.as_deref()) {
            (0, Some(sp)) => entries * sp.avg as u64,
            (0, None) => 0,
            (n, _) => entries * sample.len() as u64 / n,
        }
    }

    /// The sum of `count` over every value, for metrics: exact for the entries in memory; the
    /// entries on disk are not read, but counted at the average of those in memory.
    pub fn estimate_sum(&self, count: impl Fn(&V) -> usize) -> usize {
        let in_memory: usize = self.table.iter().map(|e| count(&e.value)).sum();
        match (self.on_disk(), self.table.len()) {
            (0, _) | (_, 0) => in_memory,
            (disk, resident) => in_memory + in_memory * disk / resident,
        }
    }

    /// Removes and yields every (key, value): those in memory, then those on disk.
    pub fn drain(&mut self) -> impl Iterator<Item = (Box<[u8]>, V)> + '_ {
        // a section in progress takes what it needs first
        self.advance(None);
        if let Some(tr) = self.inc.as_deref() {
            // emptied: the next snapshot is a full one
            tr.restart();
        }
        let suffix = self.suffix();
        let skip = if self.ttl.is_some() { TIME } else { 0 };
        let disk = self.spill.as_deref_mut().map(|sp| {
            let fail = sp.failer();
            sp.drain().map_while(move |(k, v)| {
                let mut at = skip;
                match V::read(&v, &mut at) {
                    Ok(value) => Some((k, value)),
                    Err(e) => {
                        fail(format!("decoding state read back from disk: {e}"));
                        None
                    }
                }
            })
        });
        self.table
            .drain()
            .map(move |e| {
                if suffix == 0 {
                    (e.key, e.value)
                } else {
                    (e.key(suffix).into(), e.value)
                }
            })
            .chain(disk.into_iter().flatten())
    }

    /// The key group of every entry, for tests and rebalancing.
    pub fn key_groups(&self) -> impl Iterator<Item = u32> + '_ {
        let disk = self
            .spill
            .as_deref()
            .map(|sp| sp.scan(0..MAX_KEY_GROUPS).map(|(g, _, _)| g));
        self.table
            .iter()
            .map(|e| key_group(e.hash))
            .chain(disk.into_iter().flatten())
    }

    /// A processing-time tick: with a processing-time TTL the clock moves, and expired entries
    /// are swept out when a sweep is due.
    pub fn on_processing_time(&mut self, now: i64) {
        if self.ttl.as_mut().is_some_and(|t| t.on_processing_time(now)) {
            self.sweep();
        }
    }

    /// A watermark: with a watermark TTL the clock moves, and expired entries are swept out when
    /// a sweep is due.
    pub fn on_watermark(&mut self, wm: i64) {
        if self.ttl.as_mut().is_some_and(|t| t.on_watermark(wm)) {
            self.sweep();
        }
    }

    /// Removes every expired entry, in memory and on disk (and gives entries written before
    /// the clock had a time the clock's time).
    fn sweep(&mut self) {
        self.advance(None);
        let (stamp, suffix) = (self.stamper(), self.suffix());
        let tracker = self.inc.as_deref();
        let Some(t) = self.ttl.as_mut() else {
            return;
        };
        let before = self.table.len();
        self.table.retain(|e| {
            let mut time = e.time();
            if time == UNKNOWN_TIME {
                t.settle(&mut time);
                e.set_time(time);
                stamp_counted(e, stamp, tracker);
            }
            let keep = !t.is_expired(time);
            if let (false, Some(tr)) = (keep, tracker) {
                tr.removed(e.key(suffix));
            }
            keep
        });
        t.expired += (before - self.table.len()) as u64;
        if let Some(sp) = self.spill.as_deref_mut() {
            sp.update_all(|group, key, value, out| {
                let Some(stored) = value.get(..TIME) else {
                    return Update::Keep;
                };
                let mut time = i64::from_le_bytes(stored.try_into().unwrap_or([0; 8]));
                if time == UNKNOWN_TIME {
                    t.settle(&mut time);
                    out.extend_from_slice(&time.to_le_bytes());
                    out.extend_from_slice(&value[TIME..]);
                }
                if t.is_expired(time) {
                    t.expired += 1;
                    if let Some(tr) = tracker {
                        tr.removed(key);
                    }
                    Update::Remove
                } else if out.is_empty() {
                    Update::Keep
                } else {
                    if let Some(tr) = tracker {
                        tr.evicted(group, key);
                    }
                    Update::Rewrite
                }
            });
        }
    }

    /// Keeps the entries for which `keep` is true (an operator's own sweep of what its values
    /// hold), in memory and on disk.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        self.advance(None);
        let (stamp, tracker) = (self.stamper(), self.inc.as_deref());
        let suffix = self.suffix();
        self.table.retain(|e| {
            if !keep(&mut e.value) {
                if let Some(tr) = tracker {
                    tr.removed(e.key(suffix));
                }
                return false;
            }
            stamp_counted(e, stamp, tracker);
            true
        });
        let skip = if self.ttl.is_some() { TIME } else { 0 };
        if let Some(sp) = self.spill.as_deref_mut() {
            let fail = sp.failer();
            sp.update_all(|group, key, bytes, out| {
                let mut at = skip;
                let mut value = match V::read(bytes, &mut at) {
                    Ok(v) => v,
                    Err(e) => {
                        fail(format!("decoding state read back from disk: {e}"));
                        return Update::Keep;
                    }
                };
                if !keep(&mut value) {
                    if let Some(tr) = tracker {
                        tr.removed(key);
                    }
                    return Update::Remove;
                }
                out.extend_from_slice(&bytes[..skip]);
                value.write(out);
                if out.as_slice() == bytes {
                    return Update::Keep;
                }
                if let Some(tr) = tracker {
                    tr.evicted(group, key);
                }
                Update::Rewrite
            });
        }
    }

    /// Entries expired so far (0 without a TTL).
    pub fn expired(&self) -> u64 {
        self.ttl.as_ref().map_or(0, |t| t.expired)
    }

    /// Writes the entries whose key group lies in `groups`, ordered by key group (each with its
    /// time when the state has a TTL), those on disk copied as they lie there. A state tracking
    /// its changes, snapshotted for a checkpoint ([`incremental::collecting`]), writes a
    /// reference instead and gives the checkpoint a section of its own: the changes since its
    /// previous one, or every entry (see [`incremental`]). Snapshotted again while that section
    /// is still being written ([`incremental::advancing`]), it writes a slice of the section,
    /// or the rest of it, and nothing into `out`.
    pub fn snapshot(&self, groups: std::ops::Range<u32>, out: &mut Vec<u8>) {
        if let Some(how) = incremental::advancing_now() {
            self.advance(match how {
                Advance::Slice => Some(self.slice()),
                Advance::Finish => None,
            });
            return;
        }
        // a section still in progress is finished before anything else is written
        self.advance(None);
        if let Some(tr) = self.inc.as_deref() {
            if groups == (0..MAX_KEY_GROUPS) {
                if let Some((checkpoint, collector, defer)) = incremental::collecting_checkpoint() {
                    self.snapshot_section(tr, checkpoint, collector, defer, out);
                    return;
                }
            }
            // whole (a savepoint): the checkpoint after it does not build on what came before
            tr.restart();
        }
        let mut block = Block::inline(std::mem::take(out), self.block_flag(), self.clock());
        self.write_entries(groups, &mut block);
        *out = block.finish().2;
    }

    /// The flags of a block of this state's entries.
    fn block_flag(&self) -> u64 {
        if self.ttl.is_some() {
            WITH_TIMES | WITH_CLOCK
        } else {
            0
        }
    }

    /// The TTL clock's time, written with a block of entries.
    fn clock(&self) -> Option<i64> {
        self.ttl.as_ref().map(TtlTimer::now)
    }

    /// Begins this state's section for `checkpoint` (a delta when the state has a section in
    /// the previous one and its chain stays within about twice the state) and writes the
    /// reference to it. The keys removed and the changed entries moved to disk are written
    /// now; the changed entries in memory (every entry, for a full section) are written by
    /// [`KeyedState::advance`]: at once unless the checkpoint lets sections finish later
    /// (`defer`). A full section of a state with entries on disk is written at once.
    fn snapshot_section(
        &self,
        tr: &Tracker,
        checkpoint: u64,
        collector: Arc<Collector>,
        defer: bool,
        out: &mut Vec<u8>,
    ) {
        let mut chain = tr.chain.borrow_mut();
        let previous = chain.last().copied().filter(|p| *p < checkpoint);
        let mut full = previous.is_none() || chain.len() > incremental::MAX_CHAIN;
        if !full {
            // a delta that would make the chain too long is a full section instead: its size
            // is the entries changed at the chain's bytes per entry
            let evicted = tr.evicted.borrow();
            let changed = tr.changed.get() + incremental::evicted_keys(&evicted).count() as u64;
            let per_entry = tr.chain_bytes.get() / tr.chain_entries.get().max(1);
            let bytes = changed.saturating_mul(per_entry.max(1)) + tr.removed.borrow().len() as u64;
            full = Tracker::outgrown(
                tr.chain_bytes.get() + bytes,
                tr.chain_entries.get() + changed,
                self.len() as u64,
            );
        }
        let stamp = self.stamper().map_or(0, |s| s.1);
        let mut block = if full {
            Block::section(collector.clone(), self.block_flag(), self.clock(), &[])
        } else {
            let removed = tr.removed.borrow();
            Block::section(collector.clone(), self.block_flag(), self.clock(), &removed)
        };
        if full {
            chain.clear();
            tr.chain_bytes.set(0);
            tr.chain_entries.set(0);
        }
        chain.push(checkpoint);
        let pending = Box::new(Pending {
            checkpoint,
            previous: if full { 0 } else { previous.unwrap_or(0) },
            builds_on: chain.clone(),
            epoch: stamp,
            full,
            cursor: 0,
            block: None,
            collector: collector.clone(),
            disk: None,
        });
        drop(chain);
        collector.begin();
        // what is on disk is read as it is now, later
        let view = self.spill.as_deref().map(Spill::view);
        let mut pending = pending;
        pending.disk = match (view, full) {
            (None, _) => None,
            (Some(view), true) => Some(DiskPart {
                scan: Some(view.scan()),
                view,
                keys: Vec::new(),
                at: 0,
            }),
            (Some(view), false) => Some(DiskPart {
                keys: self.write_evicted(tr, stamp, &mut block),
                view,
                at: 0,
                scan: None,
            }),
        };
        let lineage = tr.lineage.get();
        out.extend_from_slice(&REFERENCE.to_le_bytes());
        out.extend_from_slice(&lineage.to_le_bytes());
        out.extend_from_slice(&checkpoint.to_le_bytes());
        tr.removed.borrow_mut().clear();
        tr.evicted.borrow_mut().clear();
        tr.changed.set(0);
        tr.epoch.set(tr.epoch.get().wrapping_add(1));
        pending.block = Some(block);
        tr.len_at_section.set(self.table.len());
        *tr.pending.borrow_mut() = Some(pending);
        tr.has_pending.set(true);
        if !defer {
            self.advance(None);
        }
    }

    /// A delta's changed entries that were moved to disk since the last snapshot: those back
    /// in memory are written now (or, stamped `epoch` again, left to [`KeyedState::advance`]),
    /// and the keys of those still on disk returned (as [`Tracker::evicted`] lists them), to
    /// be read as they are now, later.
    fn write_evicted(&self, tr: &Tracker, epoch: u32, block: &mut Block) -> Vec<u8> {
        let times = self.ttl.is_some();
        let suffix = self.suffix();
        let mut later = Vec::new();
        let Some((from_end, _)) = self.stamper() else {
            return later;
        };
        let evicted = tr.evicted.borrow();
        let mut keys: Vec<(u32, &[u8])> = incremental::evicted_keys(&evicted).collect();
        keys.sort_unstable();
        keys.dedup();
        for (group, key) in keys {
            let hash = self.hash(key);
            match self.table.find(slot(self.prefixed, hash), |e| {
                e.hash == hash && eq_bytes(e.key(suffix), key)
            }) {
                // back in memory: written with the others if it changed again, and here if not
                Some(e) if e.stamped(from_end) != epoch => {
                    write_entry(e, suffix, times, &mut block.out);
                    block.written();
                }
                Some(_) => {}
                None => {
                    later.extend_from_slice(&group.to_le_bytes());
                    later.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    later.extend_from_slice(key);
                }
            }
        }
        later
    }

    /// Buckets a slice of a section in progress covers: the table in at most
    /// [`SLICES`] slices.
    fn slice(&self) -> usize {
        (self.table.num_buckets() / SLICES).max(MIN_SLICE)
    }

    /// Writes the next `limit` buckets' worth of the section in progress (all of what is left
    /// with None), and hands it to its checkpoint once the whole table has been covered.
    fn advance(&self, limit: Option<usize>) {
        let Some(tr) = self.inc.as_deref() else {
            return;
        };
        if !tr.has_pending.get() {
            return;
        }
        let mut slot = tr.pending.borrow_mut();
        let Some(p) = slot.as_mut() else {
            return;
        };
        let buckets = self.table.num_buckets();
        let end = limit.map_or(buckets, |l| p.cursor.saturating_add(l).min(buckets));
        let (full, epoch) = (p.full, p.epoch);
        let wants = |stamp: u32| {
            if full {
                stamp != epoch.wrapping_add(1)
            } else {
                stamp == epoch
            }
        };
        if let (Some((from_end, _)), Some(block)) = (self.stamper(), p.block.as_mut()) {
            let (suffix, times) = (self.suffix(), self.ttl.is_some());
            for i in p.cursor.min(end)..end {
                if let Some(e) = self.table.get_bucket(i) {
                    if wants(e.stamped(from_end)) {
                        write_entry(e, suffix, times, &mut block.out);
                        block.written();
                    }
                }
            }
        }
        p.cursor = p.cursor.max(end);
        if p.cursor < buckets {
            return;
        }
        if let (Some(d), Some(block)) = (p.disk.as_mut(), p.block.as_mut()) {
            if !d.advance(limit.map(|_| DISK_SLICE), block) {
                return;
            }
        }
        let Some(p) = slot.take() else {
            return;
        };
        tr.has_pending.set(false);
        let grown = self.table.len().saturating_sub(tr.len_at_section.get());
        let faded = tr.section_growth.get() - tr.section_growth.get() / 4;
        tr.section_growth.set(grown.max(faded));
        let Some(block) = p.block else {
            return;
        };
        let (entries, parts, _) = block.finish();
        tr.chain_bytes
            .set(tr.chain_bytes.get() + parts.iter().map(Part::len).sum::<u64>());
        tr.chain_entries.set(tr.chain_entries.get() + entries);
        p.collector.complete(
            StateSection {
                lineage: tr.lineage.get(),
                checkpoint: p.checkpoint,
                previous: p.previous,
                parts,
            },
            &p.builds_on,
        );
    }

    /// Writes `e` (in `bucket`, or usize::MAX: anywhere) into the section in progress when the
    /// section needs it and has not written it yet: called before the entry is changed,
    /// removed or moved to disk.
    #[inline]
    fn keep_for_section(tr: Option<&Tracker>, bucket: usize, e: &Entry<V>, layout: Layout) {
        if let Some(tr) = tr.filter(|t| t.has_pending.get()) {
            Self::keep_for_section_now(tr, bucket, e, layout);
        }
    }

    /// [`KeyedState::keep_for_section`] with a section in progress (out of the way of the
    /// record path, which rarely comes here).
    #[cold]
    #[inline(never)]
    fn keep_for_section_now(tr: &Tracker, bucket: usize, e: &Entry<V>, layout: Layout) {
        let mut slot = tr.pending.borrow_mut();
        let Some(p) = slot.as_mut() else {
            return;
        };
        if bucket >= p.cursor && p.wants(e.stamped(layout.from_end)) {
            if let Some(block) = p.block.as_mut() {
                write_entry(e, layout.suffix, layout.times, &mut block.out);
                block.written();
            }
        }
    }

    /// Before an insert. A table that grows moves its entries between buckets, and a section
    /// in progress follows the buckets: between sections the table keeps room for what the
    /// last sections saw it gain (growing now if it has less), so it seldom grows while one
    /// is written; one that must grow then finishes its section first (a pause of the job).
    #[inline]
    fn before_insert(&mut self) {
        let Some(tr) = self.inc.as_deref() else {
            return;
        };
        let room = self.table.capacity() - self.table.len();
        if tr.has_pending.get() {
            if room == 0 {
                // the room kept was too little: twice as much from now on
                let before = tr.section_growth.get();
                self.finish_section();
                if let Some(tr) = self.inc.as_deref() {
                    let grown = tr.section_growth.get().max(before).max(1);
                    tr.section_growth.set(grown.saturating_mul(2));
                }
            }
        } else if room < tr.section_growth.get() {
            self.make_room_for_sections();
        }
    }

    /// Grows the table (between sections) to twice the room a section needs.
    #[cold]
    #[inline(never)]
    fn make_room_for_sections(&mut self) {
        let want = self
            .inc
            .as_deref()
            .map_or(0, |t| t.section_growth.get().saturating_mul(2));
        let prefixed = self.prefixed;
        self.table.reserve(want, |e| slot(prefixed, e.hash));
    }

    /// Writes all of the section in progress now.
    #[cold]
    #[inline(never)]
    fn finish_section(&self) {
        self.advance(None);
    }

    /// Where an entry's stamp and time are.
    #[inline]
    fn layout(&self) -> Layout {
        Layout {
            suffix: self.suffix(),
            times: self.ttl.is_some(),
            from_end: self.stamper().map_or(0, |s| s.0),
        }
    }

    /// Every entry whose key group lies in `groups`, ordered by key group (see
    /// [`KeyedState::snapshot`]).
    fn write_entries(&self, groups: std::ops::Range<u32>, block: &mut Block) {
        // a counting sort by key group: two passes over the table, no allocation per group
        let mut starts = vec![0usize; MAX_KEY_GROUPS as usize + 1];
        for e in self.table.iter() {
            let g = key_group(e.hash);
            if groups.contains(&g) {
                starts[g as usize + 1] += 1;
            }
        }
        for g in 0..MAX_KEY_GROUPS as usize {
            starts[g + 1] += starts[g];
        }
        let count = starts[MAX_KEY_GROUPS as usize];
        let mut ordered: Vec<Option<&Entry<V>>> = vec![None; count];
        for e in self.table.iter() {
            let g = key_group(e.hash);
            if groups.contains(&g) {
                ordered[starts[g as usize]] = Some(e);
                starts[g as usize] += 1;
            }
        }
        block
            .out
            .reserve((count * 64).min(incremental::PART_BYTES + (1 << 20)));
        let times = self.ttl.is_some();
        let suffix = self.suffix();
        let mut disk = self
            .spill
            .as_deref()
            .map(|sp| sp.scan(groups.clone()))
            .into_iter()
            .flatten()
            .peekable();
        let copy_disk_below = |g: u32, block: &mut Block, disk: &mut std::iter::Peekable<_>| {
            while let Some((_, k, v)) = disk.next_if(|(dg, _, _): &(u32, _, _)| *dg < g) {
                let k: fjall::UserKey = k;
                let v: fjall::UserValue = v;
                write_stored(disk::user_key(&k), &v, &mut block.out);
                block.written();
            }
        };
        for e in ordered.into_iter().flatten() {
            copy_disk_below(key_group(e.hash), block, &mut disk);
            write_entry(e, suffix, times, &mut block.out);
            block.written();
        }
        copy_disk_below(u32::MAX, block, &mut disk);
    }

    /// Adds the entries of a snapshot written by [`KeyedState::snapshot`].
    pub fn restore(&mut self, input: &[u8], at: &mut usize) -> Result<()> {
        self.restore_part(input, at, &Rescale::NONE, 0)
    }

    /// Adds the entries of old instance `part`'s snapshot that this instance owns under
    /// `rescale` (see [`Rescale`]); a key already held is refused as corrupt. With the on-disk
    /// backend entries beyond the memory budget go to disk as they are read. A reference to an
    /// incremental checkpoint's sections is followed back to the full section, and the deltas
    /// are applied on it oldest first (from the chain [`incremental::restoring`] provides).
    pub fn restore_part(
        &mut self,
        input: &[u8],
        at: &mut usize,
        rescale: &Rescale,
        part: usize,
    ) -> Result<()> {
        let count = read_u64(input, at)?;
        if count & REFERENCE == 0 {
            if let Some(tr) = self.inc.as_deref() {
                tr.restart();
            }
            return self.load_entries(input, at, count, rescale, part, false, true);
        }
        let lineage = read_u64(input, at)?;
        let checkpoint = read_u64(input, at)?;
        let chain = incremental::chain()?;
        let sections = chain.resolve(checkpoint, lineage)?;
        let fresh = self.is_empty()
            && self
                .inc
                .as_deref()
                .is_some_and(|t| t.chain.borrow().is_empty());
        let last = sections.len() - 1;
        let mut written = 0;
        for (i, s) in sections.iter().enumerate() {
            let parts = s.parts.len();
            for (j, one) in s.parts.iter().enumerate() {
                // one part in memory at a time
                let body = chain.part_bytes(s.checkpoint, one)?;
                let mut p = 0;
                let removed_len = read_u64(&body, &mut p)? as usize;
                let truncated = || RuntimeError::State("truncated state section".into());
                let end = p.checked_add(removed_len).ok_or_else(truncated)?;
                let removed = body.get(p..end).ok_or_else(truncated)?;
                p = end;
                let mut r = 0;
                while r < removed.len() {
                    let n = read_u32(removed, &mut r)? as usize;
                    let key = removed.get(r..r + n).ok_or_else(truncated)?;
                    r += n;
                    let hash = self.hash(key);
                    if rescale.keeps(hash) {
                        self.forget(hash, key);
                    }
                }
                let count = read_u64(&body, &mut p)?;
                written += count & !(WITH_TIMES | WITH_CLOCK | REFERENCE);
                let clock = i == last && j + 1 == parts;
                self.load_entries(&body, &mut p, count, rescale, part, i > 0, clock)?;
            }
        }
        if let Some(tr) = self.inc.as_deref() {
            if fresh && rescale.keeps_all() {
                // the next checkpoint goes on from this chain
                tr.lineage.set(lineage);
                *tr.chain.borrow_mut() = sections.iter().map(|s| s.checkpoint).collect();
                tr.chain_bytes.set(sections.iter().map(|s| s.bytes()).sum());
                tr.chain_entries.set(written);
            } else {
                tr.restart();
            }
        }
        Ok(())
    }

    /// Removes `key` wherever it is, as a delta being applied does (nothing is recorded).
    fn forget(&mut self, hash: u64, key: &[u8]) {
        let suffix = self.suffix();
        if let Ok(e) = self.table.find_entry(slot(self.prefixed, hash), |e| {
            e.hash == hash && eq_bytes(e.key(suffix), key)
        }) {
            e.remove();
            return;
        }
        if let Some(sp) = self.spill.as_deref_mut() {
            sp.take(hash, key);
        }
    }

    /// Reads `count` (with its flags) entries; with `upsert` (a delta) an entry replaces the
    /// key's, else a key already held is refused when the state is put together from several
    /// instances. `clock`: the TTL clock's saved time (when the snapshot has one) is restored.
    #[allow(clippy::too_many_arguments)]
    fn load_entries(
        &mut self,
        input: &[u8],
        at: &mut usize,
        count: u64,
        rescale: &Rescale,
        part: usize,
        upsert: bool,
        clock: bool,
    ) -> Result<()> {
        let times = count & WITH_TIMES != 0;
        let saved_clock = if count & WITH_CLOCK != 0 {
            Some(read_u64(input, at)? as i64)
        } else {
            None
        };
        if let (true, Some(t)) = (clock, self.ttl.as_mut()) {
            t.restored(saved_clock);
        }
        let spills = self.spill.is_some();
        let clean = self.clean_stamp();
        for _ in 0..count & !(WITH_TIMES | WITH_CLOCK | REFERENCE) {
            let len = read_u32(input, at)? as usize;
            let key = input
                .get(*at..*at + len)
                .ok_or_else(|| RuntimeError::State("truncated key".into()))?;
            *at += len;
            // a snapshot taken without a TTL gives its entries the clock's next time
            let time = if times {
                read_u64(input, at)? as i64
            } else {
                UNKNOWN_TIME
            };
            let value = V::read(input, at)?;
            let hash = self.hash(key);
            let suffix = self.suffix();
            if !rescale.keeps_all() {
                rescale.check_origin(hash, part)?;
                if !rescale.keeps(hash) {
                    continue;
                }
            }
            if upsert {
                self.forget(hash, key);
            } else if !rescale.keeps_all() {
                let on_disk = match self.spill.as_deref_mut() {
                    Some(sp) => sp.contains(hash, key),
                    None => false,
                };
                if on_disk
                    || self
                        .table
                        .find(slot(self.prefixed, hash), |e| {
                            e.hash == hash && eq_bytes(e.key(suffix), key)
                        })
                        .is_some()
                {
                    return Err(RuntimeError::State(
                        "a key is in the state of two workers".into(),
                    ));
                }
            }
            if spills {
                self.make_room();
            }
            self.table.insert_unique(
                slot(self.prefixed, hash),
                Entry {
                    hash,
                    key: stored_key(key, self.ttl.is_some().then_some(time), spills, clean),
                    value,
                },
                |e| slot(self.prefixed, e.hash),
            );
        }
        Ok(())
    }
}

/// A block of entries being written: inline in an operator's bytes (`[count | flags][clock]`
/// then the entries, the count set at the end), or a section's parts (each `[removed keys'
/// length][removed keys][count | flags][clock]` then entries), a new part begun whenever one
/// holds [`incremental::PART_BYTES`], each handed to the checkpoint's collector as it is done.
struct Block {
    out: Vec<u8>,
    /// Where a section's parts go, and the parts done so far (sections only).
    sink: Option<Arc<Collector>>,
    parts: Vec<Part>,
    /// Where the current block's count is, and its entries so far.
    count_at: usize,
    count: u64,
    total: u64,
    flag: u64,
    clock: Option<i64>,
}

impl Block {
    /// A block appended to an operator's bytes `out` (taken; [`Block::finish`] gives them back).
    fn inline(out: Vec<u8>, flag: u64, clock: Option<i64>) -> Block {
        let mut b = Block {
            out,
            sink: None,
            parts: Vec::new(),
            count_at: 0,
            count: 0,
            total: 0,
            flag,
            clock,
        };
        b.header(None);
        b
    }

    /// A section written part by part into `sink`, the first part listing `removed`.
    fn section(sink: Arc<Collector>, flag: u64, clock: Option<i64>, removed: &[u8]) -> Block {
        let mut b = Block {
            out: Vec::new(),
            sink: Some(sink),
            parts: Vec::new(),
            count_at: 0,
            count: 0,
            total: 0,
            flag,
            clock,
        };
        b.header(Some(removed));
        b
    }

    fn header(&mut self, removed: Option<&[u8]>) {
        if let Some(r) = removed {
            self.out.extend_from_slice(&(r.len() as u64).to_le_bytes());
            self.out.extend_from_slice(r);
        }
        self.count_at = self.out.len();
        self.out.extend_from_slice(&self.flag.to_le_bytes());
        if let Some(c) = self.clock {
            self.out.extend_from_slice(&c.to_le_bytes());
        }
        self.count = 0;
    }

    /// Counts an entry just written to `out`; a full part is stored and a new one begun.
    #[inline]
    fn written(&mut self) {
        self.count += 1;
        self.total += 1;
        if self.sink.is_some() && self.out.len() >= incremental::part_limit() {
            self.close_part();
            // the next part of a large state: its buffer went with the last one
            self.out.reserve(incremental::part_limit() + (64 << 10));
            self.header(Some(&[]));
        }
    }

    fn close_part(&mut self) {
        let at = self.count_at;
        self.out[at..at + 8].copy_from_slice(&(self.count | self.flag).to_le_bytes());
        if let Some(sink) = &self.sink {
            self.parts.push(sink.store_part(&mut self.out));
        }
    }

    /// Sets the last count: the entries written in all, a section's parts, and the bytes
    /// (an inline block's; empty for a section).
    fn finish(mut self) -> (u64, Vec<Part>, Vec<u8>) {
        self.close_part();
        (self.total, self.parts, self.out)
    }
}

/// Writes an entry on disk as a snapshot holds it: key length, key, and the stored bytes (its
/// time with a TTL, and its value), as they lie there.
#[inline]
fn write_stored(key: &[u8], stored: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(stored);
}

/// Writes an entry as a snapshot holds it: key length, key, its time with a TTL, value.
#[inline]
fn write_entry<V: StateValue>(e: &Entry<V>, suffix: usize, times: bool, out: &mut Vec<u8>) {
    let key = e.key(suffix);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    if times {
        out.extend_from_slice(&e.time().to_le_bytes());
    }
    e.value.write(out);
}

/// A value visited by [`KeyedState::iter`]: held in memory, or read back from disk.
pub enum Held<'a, V> {
    /// The entry in memory.
    InMemory(&'a V),
    /// A copy read from disk.
    Read(V),
}

impl<V> std::ops::Deref for Held<'_, V> {
    type Target = V;

    fn deref(&self) -> &V {
        match self {
            Held::InMemory(v) => v,
            Held::Read(v) => v,
        }
    }
}

/// Reads a little-endian u64 at `at`.
pub fn read_u64(input: &[u8], at: &mut usize) -> Result<u64> {
    let b = input
        .get(*at..*at + 8)
        .ok_or_else(|| RuntimeError::State("truncated state".into()))?;
    *at += 8;
    Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Reads a little-endian u32 at `at`.
pub fn read_u32(input: &[u8], at: &mut usize) -> Result<u32> {
    let b = input
        .get(*at..*at + 4)
        .ok_or_else(|| RuntimeError::State("truncated state".into()))?;
    *at += 4;
    Ok(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
}

impl StateValue for Row {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        });
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for v in &self.values {
            crate::keys::encode_value(out, *v, &self.heap);
        }
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let kind = match input.get(*at) {
            Some(0) => RowKind::Insert,
            Some(1) => RowKind::UpdateBefore,
            Some(2) => RowKind::UpdateAfter,
            Some(3) => RowKind::Delete,
            _ => return Err(RuntimeError::State("corrupt row kind".into())),
        };
        *at += 1;
        let n = read_u32(input, at)?;
        // a count read from the bytes never reserves more than the bytes could hold
        let mut row = Row::with_capacity((n as usize).min(input.len().saturating_sub(*at)));
        row.kind = kind;
        for _ in 0..n {
            crate::keys::decode_value_into(input, at, &mut row)
                .ok_or_else(|| RuntimeError::State("corrupt row value".into()))?;
        }
        Ok(row)
    }
}

impl<T: StateValue> StateValue for Vec<T> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for x in self {
            x.write(out);
        }
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let n = read_u32(input, at)? as usize;
        let mut v = Vec::with_capacity(n.min(input.len().saturating_sub(*at)));
        for _ in 0..n {
            v.push(T::read(input, at)?);
        }
        Ok(v)
    }
}

impl<A: StateValue, B: StateValue> StateValue for (A, B) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok((A::read(input, at)?, B::read(input, at)?))
    }
}

impl StateValue for u64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        read_u64(input, at)
    }
}

impl StateValue for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok(read_u64(input, at)? as i64)
    }
}

/// What the state modules' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::disk::{DiskConfig, DiskStore, MIN_MEMORY};
    use std::sync::Arc;

    /// A small deterministic generator (the tests replay the same sequences).
    pub struct Lcg(pub u64);

    impl Lcg {
        /// The next number below `n`.
        pub fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// A store whose budget holds almost nothing in memory.
    pub fn tiny_store() -> Arc<DiskStore> {
        let store = DiskStore::open(&DiskConfig {
            dir: None,
            memory: MIN_MEMORY,
        })
        .unwrap();
        store.set_budget(1);
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttl::TtlClock;

    /// A TTL of 10 s (on the watermark's clock, to drive it here): writes refresh an entry, reads
    /// do not; an expired entry is never returned and a write starts it over; a sweep reclaims
    /// the rest; snapshots keep each entry's time and the clock's (one without times restores
    /// with the clock's next time); a processing-time clock restores to the wall clock.
    #[test]
    fn entries_expire_a_ttl_after_their_last_write() {
        let ttl = StateTtl {
            micros: 10_000_000,
            clock: TtlClock::Watermark,
        };
        let mut s: KeyedState<i64> = KeyedState::with_ttl(Some(ttl));
        // written before the clock has a time: it takes the first tick's
        *s.get_or_insert_with(b"early", || 0) += 1;
        s.on_watermark(1_000_000);
        for k in [&b"a"[..], b"b", b"c"] {
            *s.get_or_insert_with(k, || 0) += 1;
        }
        s.on_watermark(8_000_000);
        *s.get_mut(b"a").unwrap() += 1; // a write at 8 s
        assert_eq!(*s.peek_mut(b"b").unwrap(), 1); // a read: b keeps 1 s
        s.on_watermark(11_000_000);
        assert!(s.peek_mut(b"b").is_none(), "expired 10 s after its write");
        assert_eq!(
            *s.get_or_insert_with(b"c", || 100),
            100,
            "a write starts over"
        );
        assert_eq!(*s.peek_mut(b"a").unwrap(), 2, "written at 8 s: alive");
        assert_eq!(s.expired(), 2);
        // processing ticks do not move a watermark clock
        s.on_processing_time(i64::MAX / 2);
        assert_eq!(*s.peek_mut(b"a").unwrap(), 2);
        // the snapshot at 17.5 s holds `a`, which expires at 18 s, before the next sweep
        s.on_watermark(17_500_000);
        let mut bytes = Vec::new();
        s.snapshot(0..MAX_KEY_GROUPS, &mut bytes);
        let mut r: KeyedState<i64> = KeyedState::with_ttl(Some(ttl));
        r.restore(&bytes, &mut 0).unwrap();
        assert_eq!(*r.peek_mut(b"c").unwrap(), 100, "c was written at 11 s");
        r.on_watermark(18_000_000);
        assert!(
            r.peek_mut(b"a").is_none(),
            "the clock came back with the state: a expires at 18 s as it would have"
        );
        r.on_watermark(21_000_001);
        assert!(r.peek_mut(b"c").is_none(), "its time came with it");
        // the sweep at 30 s reclaims what is left without its being touched
        r.on_watermark(30_000_000);
        assert_eq!(r.len(), 0);
        // a snapshot without times (no TTL then) restores every entry as written at the next tick
        let mut plain: KeyedState<i64> = KeyedState::default();
        *plain.get_or_insert_with(b"x", || 0) += 7;
        let mut bytes = Vec::new();
        plain.snapshot(0..MAX_KEY_GROUPS, &mut bytes);
        let mut r: KeyedState<i64> = KeyedState::with_ttl(Some(ttl));
        r.restore(&bytes, &mut 0).unwrap();
        r.on_watermark(50_000_000);
        assert_eq!(*r.peek_mut(b"x").unwrap(), 7);
        r.on_watermark(61_000_000);
        assert!(r.peek_mut(b"x").is_none());
        // without a TTL nothing ever expires
        plain.on_watermark(i64::MAX / 2);
        assert_eq!(*plain.peek_mut(b"x").unwrap(), 7);
        // on the processing clock a restore reads the wall clock: an entry written at 1 s of
        // 1970 has long expired, though no tick came yet
        let wall = StateTtl {
            micros: 10_000_000,
            clock: TtlClock::ProcessingTime,
        };
        let mut p: KeyedState<i64> = KeyedState::with_ttl(Some(wall));
        p.on_processing_time(1_000_000);
        *p.get_or_insert_with(b"y", || 0) += 1;
        let mut bytes = Vec::new();
        p.snapshot(0..MAX_KEY_GROUPS, &mut bytes);
        let mut r: KeyedState<i64> = KeyedState::with_ttl(Some(wall));
        r.restore(&bytes, &mut 0).unwrap();
        assert!(r.peek_mut(b"y").is_none());
    }

    #[test]
    fn snapshot_splits_by_key_group() {
        let mut s: KeyedState<i64> = KeyedState::default();
        for k in 0..1000i64 {
            *s.get_or_insert_with(&k.to_le_bytes(), || 0) += k;
        }
        let mut low = Vec::new();
        let mut high = Vec::new();
        s.snapshot(0..64, &mut low);
        s.snapshot(64..128, &mut high);
        let mut a: KeyedState<i64> = KeyedState::default();
        let mut b: KeyedState<i64> = KeyedState::default();
        a.restore(&low, &mut 0).unwrap();
        b.restore(&high, &mut 0).unwrap();
        assert_eq!(a.len() + b.len(), 1000);
        assert!(a.key_groups().all(|g| g < 64));
        assert!(b.key_groups().all(|g| g >= 64));
        assert_eq!(
            *b.get_mut(&999i64.to_le_bytes())
                .or(a.get_mut(&999i64.to_le_bytes()))
                .unwrap(),
            999
        );
        assert!(a.restore(&low[..low.len() - 1], &mut 0).is_err());
    }

    /// Keys spread over `workers` instances as an exchange spreads them.
    fn spread(keys: std::ops::Range<i64>, workers: usize, max: u64) -> Vec<Vec<u8>> {
        let mut states: Vec<KeyedState<i64>> =
            (0..workers).map(|_| KeyedState::default()).collect();
        for k in keys {
            let key = k.to_le_bytes();
            let w = instance_of(hash_key(&key), max, workers);
            *states[w].get_or_insert_with(&key, || 0) = k * 10;
        }
        states
            .iter()
            .map(|s| {
                let mut b = Vec::new();
                s.snapshot(0..MAX_KEY_GROUPS, &mut b);
                b
            })
            .collect()
    }

    #[test]
    fn a_restore_at_another_parallelism_hands_every_key_to_its_new_owner_once() {
        for (old, new, max) in [
            (4, 2, 128),
            (2, 3, 128),
            (1, 3, 128),
            (3, 1, 128),
            (4, 4, 256),
        ] {
            let parts = spread(0..5000, old, 128);
            let mut total = 0;
            for index in 0..new {
                let r = Rescale {
                    max_parallelism: max,
                    old_max_parallelism: 128,
                    old_workers: old,
                    workers: new,
                    index,
                };
                let mut s: KeyedState<i64> = KeyedState::default();
                for (j, p) in parts.iter().enumerate() {
                    s.restore_part(p, &mut 0, &r, j).expect("restores");
                }
                for (key, v) in s.iter() {
                    let k = i64::from_le_bytes((*key).try_into().expect("8 bytes"));
                    assert_eq!(*v, k * 10);
                    assert_eq!(
                        instance_of(hash_key(&key), max, new),
                        index,
                        "key {k} misplaced"
                    );
                }
                total += s.len();
            }
            assert_eq!(total, 5000, "{old} -> {new} workers");
        }
    }

    /// A state routed by prefix puts every key in its prefix's key group, so a restore at
    /// another parallelism hands all of a group's entries to the instance its rows now reach,
    /// while the entries of one prefix still spread over the table.
    #[test]
    fn keys_routed_by_a_prefix_follow_the_prefix() {
        let key = |group: i64, value: i64| {
            let mut k = group.to_le_bytes().to_vec();
            k.extend_from_slice(&value.to_le_bytes());
            k.extend_from_slice(&8u32.to_le_bytes());
            k
        };
        let mut state: KeyedState<i64> = KeyedState::default().routed_by_prefix();
        for g in 0..40i64 {
            for v in 0..50i64 {
                *state.get_or_insert_with(&key(g, v), || 0) += g * v;
            }
        }
        for g in 0..40i64 {
            let group = key_group(hash_key(&g.to_le_bytes()));
            for v in 0..50i64 {
                assert_eq!(key_group(routed_hash(&key(g, v))), group);
            }
        }
        let low: std::collections::HashSet<u64> = (0..50)
            .map(|v| routed_hash(&key(3, v)) & 0xFFFF_FFFF)
            .collect();
        assert_eq!(low.len(), 50);
        let mut bytes = Vec::new();
        state.snapshot(0..MAX_KEY_GROUPS, &mut bytes);
        let (max, workers) = (128, 3);
        let mut total = 0;
        for index in 0..workers {
            let rescale = Rescale {
                max_parallelism: max,
                old_max_parallelism: max,
                old_workers: 1,
                workers,
                index,
            };
            let mut mine: KeyedState<i64> = KeyedState::default().routed_by_prefix();
            mine.restore_part(&bytes, &mut 0, &rescale, 0).unwrap();
            for (k, v) in mine.iter() {
                let g = i64::from_le_bytes(k[..8].try_into().unwrap());
                let owner = instance_of(hash_key(&g.to_le_bytes()), max, workers);
                assert_eq!(owner, index, "group {g} restored by its owner");
                let value = i64::from_le_bytes(k[8..16].try_into().unwrap());
                assert_eq!(*v, g * value);
                total += 1;
            }
        }
        assert_eq!(total, 40 * 50);
    }

    #[test]
    fn state_not_keyed_as_its_input_is_routed_is_refused() {
        let mut parts = spread(0..100, 2, 128);
        parts.swap(0, 1);
        let r = Rescale {
            max_parallelism: 128,
            old_max_parallelism: 128,
            old_workers: 2,
            workers: 3,
            index: 0,
        };
        let mut s: KeyedState<i64> = KeyedState::default();
        let e = s
            .restore_part(&parts[0], &mut 0, &r, 0)
            .expect_err("misplaced");
        assert!(
            e.to_string()
                .contains("cannot move to another number of workers"),
            "{e}"
        );
        // the same key in two parts
        let parts = spread(0..100, 1, 128);
        let r = Rescale {
            old_workers: 1,
            ..r
        };
        let mut s: KeyedState<i64> = KeyedState::default();
        s.restore_part(&parts[0], &mut 0, &r, 0).expect("first");
        let e = s.restore_part(&parts[0], &mut 0, &r, 0).expect_err("twice");
        assert!(e.to_string().contains("two workers"), "{e}");
    }
}
