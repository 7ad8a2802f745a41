//! Changelog normalization: an upsert stream (each key's latest value, deletes as key-only rows)
//! turned into a full changelog, as Flink's `ChangelogNormalize` does after an upsert-kafka source.
//!
//! The last row of every key is kept in keyed state. A new value of a known key emits `-U` of the
//! old row and `+U` of the new one (nothing when the row did not change), of a new key `+I`; a
//! delete emits `-D` of the stored row (nothing for a key never seen). So aggregations above it
//! can retract exactly what they counted. With a state TTL ([`crate::ttl`]) a key not written for
//! that long is forgotten, as Flink's normalization forgets it: its next value is `+I`, a delete
//! of it emits nothing.

use crate::error::Result;
use crate::keys::{encode_key, MAX_KEY_GROUPS};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::KeyedState;
use tillflow_types::{Row, RowKind};

/// Keeps the last row per primary key and emits the changes between them.
pub struct ChangelogNormalize {
    keys: Vec<usize>,
    state: KeyedState<Row>,
    ttl: Option<crate::ttl::StateTtl>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

impl ChangelogNormalize {
    /// Normalizes on the primary-key columns `keys`.
    pub fn new(keys: Vec<usize>) -> Self {
        ChangelogNormalize {
            keys,
            state: KeyedState::default(),
            ttl: None,
            key: Vec::with_capacity(32),
            scratch: Vec::with_capacity(128),
            metrics: OperatorMetrics::default(),
        }
    }
}

impl ChangelogNormalize {
    /// Forgets a key `ttl` after its last write (see the module comment).
    pub fn with_state_ttl(mut self, ttl: Option<crate::ttl::StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }
}

/// Whether two rows hold the same values (strings compared by content).
fn same(a: &Row, b: &Row, scratch: &mut Vec<u8>) -> bool {
    if a.values.len() != b.values.len() {
        return false;
    }
    scratch.clear();
    for v in &a.values {
        crate::keys::encode_value(scratch, *v, &a.heap);
    }
    let split = scratch.len();
    for v in &b.values {
        crate::keys::encode_value(scratch, *v, &b.heap);
    }
    scratch[..split] == scratch[split..]
}

impl Operator for ChangelogNormalize {
    fn describe(&self) -> String {
        format!("ChangelogNormalize(key={:?})", self.keys)
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        encode_key(&mut self.key, row, &self.keys);
        if row.kind.is_addition() {
            match self.state.get_mut(&self.key) {
                Some(old) => {
                    if same(old, row, &mut self.scratch) {
                        return Ok(());
                    }
                    old.kind = RowKind::UpdateBefore;
                    out.emit(old)?;
                    old.clone_from(row);
                    old.kind = RowKind::UpdateAfter;
                    old.split = 0;
                    out.emit(old)?;
                    self.metrics.records_out += 2;
                }
                None => {
                    let stored = self.state.get_or_insert_with(&self.key, || row.clone());
                    stored.kind = RowKind::Insert;
                    stored.split = 0;
                    out.emit(stored)?;
                    self.metrics.records_out += 1;
                }
            }
        } else if let Some(mut old) = self.state.remove(&self.key) {
            old.kind = RowKind::Delete;
            self.metrics.records_out += 1;
            out.emit(&old)?;
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 0, rescale, j)?;
        }
        Ok(())
    }
}
