//! Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ... ORDER BY ...) <= N`
//! over the output of a window aggregate.
//!
//! Rows are buffered per window and partition, keeping only the best N in order; when the
//! watermark (or the wall clock, or the end of input) passes the window's end they are emitted
//! with their row number.

use crate::error::Result;
use crate::expr::compare;
use crate::keys::encode_key;
use crate::operator::{least_of, Emit, Operator, OperatorMetrics};
use crate::state::{read_u64, KeyedState};
use crate::window::window_max_timestamp;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use tillflow_types::{Row, Value};

/// One ORDER BY item of a ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// Column.
    pub col: usize,
    /// `DESC`.
    pub descending: bool,
    /// Whether NULLs sort first.
    pub nulls_first: bool,
}

/// Whether two rows hold the same values (strings compared by content).
fn same_values(a: &Row, b: &Row) -> bool {
    a.values.len() == b.values.len()
        && a.values.iter().zip(&b.values).all(|(x, y)| match (x, y) {
            (Value::Str(sx), Value::Str(sy)) => a.bytes(*sx) == b.bytes(*sy),
            (Value::Float(fx), Value::Float(fy)) => fx.to_bits() == fy.to_bits(),
            _ => x == y,
        })
}

/// Compares two rows by `keys`.
pub fn compare_rows(a: &Row, b: &Row, keys: &[SortKey]) -> Ordering {
    for k in keys {
        let (x, y) = (
            a.values.get(k.col).copied().unwrap_or(Value::Null),
            b.values.get(k.col).copied().unwrap_or(Value::Null),
        );
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = match (x, y) {
                    (Value::Str(sx), Value::Str(sy)) => a.bytes(sx).cmp(b.bytes(sy)),
                    _ => compare(x, y, &[]).unwrap_or(Ordering::Equal),
                };
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Keeps the top N rows per window and partition.
pub struct WindowTopN {
    window_end_col: usize,
    partition: Vec<usize>,
    order: Vec<SortKey>,
    limit: usize,
    emit_row_number: bool,
    proctime: bool,
    buffers: BTreeMap<i64, KeyedState<Vec<Row>>>,
    watermark: i64,
    key: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl WindowTopN {
    /// Top `limit` rows per `partition` (which includes the window columns) ordered by `order`;
    /// appends the row number as the last column when `emit_row_number`.
    pub fn new(
        window_end_col: usize,
        partition: Vec<usize>,
        order: Vec<SortKey>,
        limit: usize,
        emit_row_number: bool,
    ) -> Self {
        WindowTopN {
            window_end_col,
            partition,
            order,
            limit,
            emit_row_number,
            proctime: true,
            buffers: BTreeMap::new(),
            watermark: i64::MIN,
            key: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Whether the wall clock fires windows (a processing-time window's rank); an event-time
    /// window's rank fires only on watermarks.
    pub fn on_processing_time(mut self, yes: bool) -> Self {
        self.proctime = yes;
        self
    }

    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        while let Some(entry) = self.buffers.first_entry() {
            if window_max_timestamp(*entry.key()) > time {
                break;
            }
            let mut parts = entry.remove();
            for (_, rows) in parts.drain() {
                for (i, r) in rows.iter().enumerate() {
                    self.out.clear();
                    self.out.kind = r.kind;
                    for v in &r.values {
                        self.out.push_from(*v, &r.heap);
                    }
                    if self.emit_row_number {
                        self.out.values.push(Value::Int(i as i64 + 1));
                    }
                    self.metrics.records_out += 1;
                    out.emit(&self.out)?;
                }
            }
        }
        Ok(())
    }
}

impl Operator for WindowTopN {
    fn describe(&self) -> String {
        format!(
            "WindowRank(partition={:?}, order={:?}, rn<={})",
            self.partition, self.order, self.limit
        )
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&(self.buffers.len() as u64).to_le_bytes());
        for (end, parts) in &self.buffers {
            out.extend_from_slice(&end.to_le_bytes());
            parts.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        }
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    /// Each window's partitions are merged from every part.
    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| Ok(read_u64(p, &mut 0)? as i64))?.unwrap_or(i64::MIN);
        self.buffers.clear();
        for (j, input) in parts.iter().enumerate() {
            let at = &mut 8;
            let n = read_u64(input, at)?;
            for _ in 0..n {
                let end = read_u64(input, at)? as i64;
                self.buffers
                    .entry(end)
                    .or_default()
                    .restore_part(input, at, rescale, j)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(end)) = row.values.get(self.window_end_col).copied() else {
            return Ok(());
        };
        encode_key(&mut self.key, row, &self.partition);
        let rows = self
            .buffers
            .entry(end)
            .or_default()
            .get_or_insert_with(&self.key, Vec::new);
        let pos = rows.partition_point(|r| compare_rows(r, row, &self.order) != Ordering::Greater);
        if pos >= self.limit {
            return Ok(());
        }
        rows.insert(pos, row.detached());
        rows.truncate(self.limit);
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            self.fire_until(wm, out)?;
        }
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emit) -> Result<()> {
        if !self.proctime {
            // an event-time window is complete only when the watermark says so (across
            // workers, its rows may still be on their way)
            return Ok(());
        }
        self.fire_until(now, out)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.fire_until(i64::MAX, out)
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}

/// Top-N and deduplication over a non-windowed input:
/// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ...) ... WHERE rn <= N`.
///
/// The best N rows of each partition are kept in order. A new row that enters the top N is
/// emitted (`+I`); the row it pushes out is retracted (`-D`); when the row number is part of the
/// output, rows whose number changes are updated (`-U`/`+U`). With N = 1 and an ascending
/// processing-time order this is Flink's keep-first deduplication and emits inserts only.
/// Over an updating input (say the SKUs of a running `GROUP BY`, ranked per store) every row of
/// a partition is kept, not only the best N, so that when a retraction (`-U`/`-D`) removes a
/// row of the top N the next one moves up into it (`+I`), as Flink's retracting Top-N does.
pub struct TopN {
    partition: Vec<usize>,
    order: Vec<SortKey>,
    limit: usize,
    emit_row_number: bool,
    /// The input retracts rows: keep every row of a partition.
    retracting: bool,
    /// Of rows that compare equal, the later one ranks first (keep-last deduplication).
    later_wins_ties: bool,
    state: KeyedState<Vec<Row>>,
    ttl: Option<crate::ttl::StateTtl>,
    key: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl TopN {
    /// Keeps the top `limit` rows per `partition` by `order`; appends the row number when asked.
    pub fn new(
        partition: Vec<usize>,
        order: Vec<SortKey>,
        limit: usize,
        emit_row_number: bool,
    ) -> Self {
        TopN {
            partition,
            order,
            limit: limit.max(1),
            emit_row_number,
            retracting: false,
            later_wins_ties: false,
            state: KeyedState::default(),
            ttl: None,
            key: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Ranks a row before the rows it ties with, as Flink's keep-last deduplication
    /// (`ORDER BY t DESC … rn = 1`) replaces the kept row by one whose time is the same.
    pub fn later_wins_ties(mut self) -> Self {
        self.later_wins_ties = true;
        self
    }

    /// Forgets a partition `ttl` after its last row (a state TTL, [`crate::ttl`]): Flink
    /// expires each sort key's rows of a partition on their own, tillflow a partition's rows
    /// together, any row of the partition counting as a write.
    pub fn with_state_ttl(mut self, ttl: Option<crate::ttl::StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }

    /// For an updating input: keeps every row and applies retractions.
    pub fn over_updates(mut self) -> Self {
        self.retracting = true;
        self
    }

    /// A retraction: removes the row equal to `row` from its partition; if it was in the top N,
    /// it is deleted and the next row moves up into the top N.
    fn retract(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        use tillflow_types::RowKind;
        encode_key(&mut self.key, row, &self.partition);
        let Some(rows) = self.state.get_mut(&self.key) else {
            return Ok(());
        };
        let Some(i) = rows.iter().position(|r| same_values(r, row)) else {
            return Ok(());
        };
        let removed = rows.remove(i);
        let rank = |i: usize| self.emit_row_number.then_some(i + 1);
        if i < self.limit {
            Self::emit_row(&mut self.out, &removed, RowKind::Delete, rank(i), out)?;
            self.metrics.records_out += 1;
            let end = rows.len().min(self.limit);
            for (j, r) in rows.iter().enumerate().take(end).skip(i) {
                if j + 1 == self.limit {
                    // was just outside the top N
                    Self::emit_row(&mut self.out, r, RowKind::Insert, rank(j), out)?;
                    self.metrics.records_out += 1;
                } else if self.emit_row_number {
                    Self::emit_row(&mut self.out, r, RowKind::UpdateBefore, rank(j + 1), out)?;
                    Self::emit_row(&mut self.out, r, RowKind::UpdateAfter, rank(j), out)?;
                    self.metrics.records_out += 2;
                }
            }
        }
        if rows.is_empty() {
            self.state.remove(&self.key);
        }
        Ok(())
    }

    fn emit_row(
        out_row: &mut Row,
        r: &Row,
        kind: tillflow_types::RowKind,
        rank: Option<usize>,
        out: &mut dyn Emit,
    ) -> Result<()> {
        out_row.clear();
        out_row.kind = kind;
        for v in &r.values {
            out_row.push_from(*v, &r.heap);
        }
        if let Some(n) = rank {
            out_row.values.push(Value::Int(n as i64));
        }
        out.emit(out_row)
    }
}

impl Operator for TopN {
    fn describe(&self) -> String {
        format!(
            "Rank(partition={:?}, order={:?}, rn<={})",
            self.partition, self.order, self.limit
        )
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
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

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        use tillflow_types::RowKind;
        self.metrics.records_in += 1;
        if !row.kind.is_addition() {
            if self.retracting {
                return self.retract(row, out);
            }
            return Err(crate::RuntimeError::Eval(
                "Top-N over an updating input needs the retracting Top-N".into(),
            ));
        }
        encode_key(&mut self.key, row, &self.partition);
        let rows = self.state.get_or_insert_with(&self.key, Vec::new);
        // after rows that compare equal: the earlier row keeps its place (keep-first), unless
        // the later row wins ties (keep-last deduplication)
        let pos = if self.later_wins_ties {
            rows.partition_point(|r| compare_rows(r, row, &self.order) == Ordering::Less)
        } else {
            rows.partition_point(|r| compare_rows(r, row, &self.order) != Ordering::Greater)
        };
        if pos >= self.limit {
            return Ok(());
        }
        let mut owned = row.detached();
        owned.kind = RowKind::Insert;
        rows.insert(pos, owned);
        let rank = |i: usize| self.emit_row_number.then_some(i + 1);
        if self.emit_row_number {
            // rank by rank from the new row's, as Flink does: the rank's old row out (-U), its
            // new row in (+U) — an upsert sink keyed on (partition, rank) sees each rank's
            // change in order; a rank that had no row gets an insert. The row pushed out of the
            // top N leaves through the last rank's -U.
            let end = rows.len().min(self.limit);
            for k in pos..end {
                // before the insert, rank k held what is now one place further down
                match rows.get(k + 1) {
                    Some(old) => {
                        Self::emit_row(&mut self.out, old, RowKind::UpdateBefore, rank(k), out)?;
                        Self::emit_row(
                            &mut self.out,
                            &rows[k],
                            RowKind::UpdateAfter,
                            rank(k),
                            out,
                        )?;
                        self.metrics.records_out += 2;
                    }
                    None => {
                        Self::emit_row(&mut self.out, &rows[k], RowKind::Insert, rank(k), out)?;
                        self.metrics.records_out += 1;
                    }
                }
            }
            if !self.retracting && rows.len() > self.limit {
                rows.pop();
            }
            return Ok(());
        }
        // the row pushed out of the top N leaves first, then the new row comes in, as Flink's
        // Top-N functions emit them: an upsert sink keyed on the partition (a keep-last
        // deduplication into a table with that primary key) ends with the new row, not without
        if rows.len() > self.limit {
            let r = self.emit_row_number.then_some(self.limit);
            if self.retracting {
                // kept: a retraction may bring it back into the top N
                Self::emit_row(&mut self.out, &rows[self.limit], RowKind::Delete, r, out)?;
                self.metrics.records_out += 1;
            } else if let Some(evicted) = rows.pop() {
                Self::emit_row(&mut self.out, &evicted, RowKind::Delete, r, out)?;
                self.metrics.records_out += 1;
            }
        }
        Self::emit_row(&mut self.out, &rows[pos], RowKind::Insert, rank(pos), out)?;
        self.metrics.records_out += 1;
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_rows::{row, Collected};
    use tillflow_types::RowKind;

    /// A keep-last deduplication (Top-1 by time descending, no row number) takes the old row
    /// out before it puts the new one in, as Flink's Top-N functions do: an upsert sink keyed
    /// on the partition applies `-D` then `+I` and keeps the newest row (the other order
    /// deleted the key's row for good).
    #[test]
    fn a_replaced_top_row_leaves_before_its_successor_comes_in() {
        let order = vec![SortKey {
            col: 1,
            descending: true,
            nulls_first: false,
        }];
        let mut op = TopN::new(vec![0], order, 1, false).later_wins_ties();
        let mut out = Collected::default();
        for (k, t) in [("A", 1), ("A", 3), ("B", 2), ("A", 2), ("A", 3)] {
            op.process(&row(k, t), &mut out).expect("process");
        }
        let a = |kind, t| (kind, "A".to_owned(), t);
        assert_eq!(
            out.0,
            vec![
                a(RowKind::Insert, 1),
                a(RowKind::Delete, 1),
                a(RowKind::Insert, 3),
                (RowKind::Insert, "B".to_owned(), 2),
                // an older row does not enter; an equal time replaces (the later row wins)
                a(RowKind::Delete, 3),
                a(RowKind::Insert, 3),
            ]
        );
        // replayed in order onto a table keyed by the partition, the last row of each key stays
        let mut table = BTreeMap::new();
        for (kind, k, t) in &out.0 {
            match kind {
                RowKind::Delete => {
                    table.remove(k);
                }
                _ => {
                    table.insert(k.clone(), *t);
                }
            }
        }
        assert_eq!(
            table.into_iter().collect::<Vec<_>>(),
            vec![("A".to_owned(), 3), ("B".to_owned(), 2)]
        );
    }
}
