//! Event-time keep-first deduplication, as Flink 2.3 runs
//! `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) ... WHERE rn = 1`: an append-only
//! result.
//!
//! Each key holds its earliest row so far (on equal times the first to arrive) until the
//! watermark reaches that row's time; then the row is emitted (`+I`) and the key is done: later
//! rows of the key are ignored. A row whose time is behind the watermark when it arrives is late
//! and dropped (counted), whether or not its key has been emitted — the rows Flink 2.3 gives
//! (checked with its own output, `tests/flink/q11_dedup_first_per_customer`). At the end of a
//! bounded input every held row is emitted. With a state TTL ([`crate::ttl`]) a key not written
//! for that long is forgotten, as Flink's deduplication state is: a held row that expires is
//! never emitted, and after an emitted key expires its next row is a first row again.

use crate::error::{Result, RuntimeError};
use crate::keys::encode_key;
use crate::operator::{least_of, Emit, Operator, OperatorMetrics};
use crate::state::{read_u64, KeyedState};
use crate::ttl::StateTtl;
use std::collections::BTreeSet;
use tillflow_types::{Row, RowKind, Value};

/// Keeps the first row per key by event time; see the module comment.
pub struct RowtimeFirstRow {
    partition: Vec<usize>,
    time_col: usize,
    watermark: i64,
    /// Per key: the held row, or nothing once the key's row has been emitted.
    state: KeyedState<Vec<Row>>,
    ttl: Option<StateTtl>,
    /// (time, key) of each held row, earliest first (an entry whose row was replaced by an
    /// earlier one is skipped when it comes due).
    timers: BTreeSet<(i64, Box<[u8]>)>,
    key: Vec<u8>,
    metrics: OperatorMetrics,
}

impl RowtimeFirstRow {
    /// Deduplicates by `partition`, keeping the row with the earliest `time_col`.
    pub fn new(partition: Vec<usize>, time_col: usize) -> Self {
        RowtimeFirstRow {
            partition,
            time_col,
            watermark: i64::MIN,
            state: KeyedState::default(),
            ttl: None,
            timers: BTreeSet::new(),
            key: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Forgets a key `ttl` after its last write (see the module comment).
    pub fn with_state_ttl(mut self, ttl: Option<StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }

    fn time(&self, row: &Row) -> Option<i64> {
        match row.values.get(self.time_col) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        }
    }

    /// Emits every held row whose time the watermark `wm` has reached.
    fn fire_until(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        while let Some((t, _)) = self.timers.first() {
            if *t > wm {
                break;
            }
            let Some((t, key)) = self.timers.pop_first() else {
                break;
            };
            let Some(held) = self.state.get_mut(&key) else {
                continue;
            };
            // a row replaced by an earlier one has its own, earlier timer
            if held.first().is_some_and(
                |r| matches!(r.values.get(self.time_col), Some(Value::Timestamp(x)) if *x == t),
            ) {
                if let Some(row) = held.pop() {
                    held.clear(); // the key is done
                    out.emit(&row)?;
                    self.metrics.records_out += 1;
                }
            }
        }
        Ok(())
    }
}

impl Operator for RowtimeFirstRow {
    fn describe(&self) -> String {
        format!(
            "Deduplicate(partition={:?}, keep=first, order=rowtime ${})",
            self.partition, self.time_col
        )
    }

    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if !row.kind.is_addition() {
            return Err(RuntimeError::Eval(
                "event-time deduplication over an updating input is not supported".into(),
            ));
        }
        let Some(t) = self.time(row).filter(|t| *t >= self.watermark) else {
            self.metrics.late_dropped += 1;
            return Ok(());
        };
        encode_key(&mut self.key, row, &self.partition);
        // read first (a read leaves a TTL's clock alone), written only for an earlier row
        let time_col = self.time_col;
        let earlier = match self.state.peek_mut(&self.key) {
            // emitted already: the key is done
            Some(h) if h.is_empty() => return Ok(()),
            Some(h) => h.first().is_none_or(
                |r| matches!(r.values.get(time_col), Some(Value::Timestamp(x)) if t < *x),
            ),
            None => true,
        };
        if earlier {
            let mut owned = row.detached();
            owned.kind = RowKind::Insert;
            let held = self.state.get_or_insert_with(&self.key, Vec::new);
            held.clear();
            held.push(owned);
            self.timers.insert((t, self.key.clone().into_boxed_slice()));
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            self.fire_until(wm, out)?;
        }
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.fire_until(i64::MAX, out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    /// The timers are the held rows' times: rebuilt from the state.
    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| Ok(read_u64(p, &mut 0)? as i64))?.unwrap_or(i64::MIN);
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 8, rescale, j)?;
        }
        self.timers.clear();
        for (key, held) in self.state.iter() {
            if let Some(t) = held.first().and_then(|r| self.time(r)) {
                self.timers.insert((t, key.into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_rows::{row, Collected};

    /// The key and time of each row emitted (all inserts here).
    fn keys_times(out: &Collected) -> Vec<(String, i64)> {
        out.0.iter().map(|(_, k, t)| (k.clone(), *t)).collect()
    }

    /// The cases the Flink 2.3 oracle answered for (watermark = max time - 5): an earlier row
    /// that is not late replaces the held one; late rows are dropped, also for a key never seen;
    /// a row exactly at the watermark is not late; on equal times the first stays; rows after
    /// the key's emission are ignored; a snapshot restores the held rows and their timers.
    /// (Times are plain numbers here.)
    #[test]
    fn keeps_the_earliest_row_until_the_watermark_passes_it() {
        let mut op = RowtimeFirstRow::new(vec![0], 1);
        let mut out = Collected::default();
        let feed = |op: &mut RowtimeFirstRow, out: &mut Collected, k: &str, t: i64| {
            op.process(&row(k, t), out).expect("process");
            op.on_watermark(t - 5, out).expect("watermark");
        };
        let mut max = i64::MIN;
        for (k, t) in [
            ("C1", 10),
            ("C1", 8),
            ("C2", 20),
            ("C2", 12),
            ("C3", 14),
            ("C1", 30),
        ] {
            max = max.max(t);
            op.process(&row(k, t), &mut out).expect("process");
            op.on_watermark(max - 5, &mut out).expect("watermark");
        }
        // at watermark 25 C1 (8) and C2 (20) are due; C2's 12 and C3's 14 came late
        assert_eq!(
            keys_times(&out),
            [("C1".to_owned(), 8), ("C2".to_owned(), 20)]
        );
        assert_eq!(op.metrics().late_dropped, 2);
        // snapshot with C2 held, restore into a fresh operator
        let mut bytes = Vec::new();
        op.snapshot_state(&mut bytes);
        let mut op = RowtimeFirstRow::new(vec![0], 1);
        op.restore_state(&bytes).expect("restore");
        feed(&mut op, &mut out, "C1", 26); // after C1's emission: ignored
        feed(&mut op, &mut out, "C4", 40);
        op.process(&row("C4", 40), &mut out).expect("tie");
        op.process(&row("C5", 35), &mut out)
            .expect("at the watermark");
        op.on_end(&mut out).expect("end");
        let keys: Vec<&str> = out.0.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(keys, ["C1", "C2", "C5", "C4"]);
        assert_eq!(op.metrics().late_dropped, 0, "restored: nothing late since");
    }
}
