//! The local half of a two-phase window aggregate (Flink's `LocalWindowAggregate`).
//!
//! Before a window aggregate's exchange, rows of the same slice (a TUMBLE window, a HOP pane, a
//! CUMULATE step) and key are folded into one partial row — `[keys…, slice time, rows,
//! accumulators]` — so a hot key sends one row per slice and flush instead of one per record,
//! and the worker owning it merges partials ([`super::aggregate::WindowAggregate::global`]).
//! The slice time is the slice's last timestamp, which the global side assigns to exactly the
//! windows the slice's rows belong to.
//!
//! Results stay those of one phase because a partial never straddles a firing: a slice's
//! partial is sent before any watermark that fires one of its windows passes (so its rows count
//! where they would have), and rows arriving after that start a new partial, which the global
//! side judges by the watermark they arrived behind (late rows are counted one by one through
//! the partial's row count). Within a decoding thread, where the watermark before the chunk is
//! not known, the same holds: every row of a partial came between the same two firings, so the
//! watermark before the chunk makes all of them late or none. Partials are also sent at the end
//! of every chunk and before every checkpoint barrier ([`crate::operator::Operator::flush`]), so
//! this operator holds nothing at a checkpoint.

use super::{window_max_timestamp, window_start, AlignedWindow};
use crate::agg::{new_accs, push_bytes, update_all, Acc, AggCall};
use crate::error::Result;
use crate::keys::{decode_key_into, encode_key};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::{KeyedState, StateValue};
use std::collections::BTreeMap;
use tillflow_types::{Row, Value};

/// The rows of one slice gathered since its last flush, per key: how many, and their
/// accumulators.
struct Slice {
    /// The end of the first window the slice belongs to.
    first_end: i64,
    /// The end of its last window.
    last_end: i64,
    /// The distance between its windows' ends.
    step: i64,
    groups: KeyedState<(u64, Vec<Acc>)>,
}

impl Slice {
    /// The end of the first of the slice's windows that has not fired at `watermark`.
    fn next_end(&self, watermark: i64) -> Option<i64> {
        let mut e = self.first_end;
        if window_max_timestamp(e) <= watermark {
            let behind = watermark - window_max_timestamp(e);
            e += (behind / self.step.max(1) + 1) * self.step.max(1);
        }
        (e <= self.last_end).then_some(e)
    }
}

/// Folds rows into partial aggregates per slice and key (see the module documentation).
pub struct LocalWindowAggregate {
    window: AlignedWindow,
    time_col: usize,
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    /// Open slices by their end.
    slices: BTreeMap<i64, Slice>,
    watermark: i64,
    /// The least watermark that fires a window of an open slice (`i64::MAX`: none), so that a
    /// watermark firing nothing costs one comparison.
    due_at: i64,
    assigned: Vec<(i64, i64)>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    accs: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl LocalWindowAggregate {
    /// Partial aggregates of `calls` per slice of `window` (over time column `time_col`) and
    /// `keys`.
    pub fn new(
        window: AlignedWindow,
        time_col: usize,
        keys: Vec<usize>,
        calls: Vec<AggCall>,
    ) -> Self {
        LocalWindowAggregate {
            window,
            time_col,
            keys,
            calls,
            slices: BTreeMap::new(),
            watermark: i64::MIN,
            due_at: i64::MAX,
            assigned: Vec::with_capacity(8),
            key: Vec::with_capacity(64),
            scratch: Vec::new(),
            accs: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Whether `window` can be aggregated in two phases: its slices must be whole windows or
    /// whole parts of every window covering them.
    pub fn supports(window: &AlignedWindow) -> bool {
        match *window {
            AlignedWindow::Tumble { .. } => true,
            AlignedWindow::Hop { slide, size, .. } => slide > 0 && size % slide == 0,
            AlignedWindow::Cumulate { step, size, .. } => step > 0 && size % step == 0,
        }
    }

    /// The slice of `ts`: its end, the first and last ends of its windows, and their step.
    fn slice_of(&mut self, ts: i64) -> Option<(i64, i64, i64, i64)> {
        match self.window {
            AlignedWindow::Tumble { size, offset } => {
                let end = window_start(ts, size, offset) + size;
                Some((end, end, end, size))
            }
            AlignedWindow::Hop {
                slide,
                size,
                offset,
            } => {
                let end = window_start(ts, slide, offset) + slide;
                Some((end, end, end - slide + size, slide))
            }
            AlignedWindow::Cumulate { step, .. } => {
                self.window.assign(ts, &mut self.assigned);
                let (first, last) = (self.assigned.first()?.1, self.assigned.last()?.1);
                Some((first, first, last, step))
            }
        }
    }

    /// Sends the partials of the slice ending at `end`.
    fn flush_slice(&mut self, end: i64, out: &mut dyn Emit) -> Result<()> {
        let Some(mut slice) = self.slices.remove(&end) else {
            return Ok(());
        };
        let time = window_max_timestamp(end);
        for (key, (rows, accs)) in slice.groups.drain() {
            let row = &mut self.out;
            row.clear();
            decode_key_into(&key, row)
                .ok_or_else(|| crate::RuntimeError::State("corrupt window key".into()))?;
            row.values.push(Value::Timestamp(time));
            row.values.push(Value::Int(rows as i64));
            self.accs.clear();
            for a in &accs {
                a.write(&mut self.accs);
            }
            let s = push_bytes(&mut row.heap, &self.accs);
            row.values.push(Value::Str(s));
            out.emit(row)?;
            self.metrics.records_out += 1;
        }
        Ok(())
    }

    fn flush_all(&mut self, out: &mut dyn Emit) -> Result<()> {
        while let Some((&end, _)) = self.slices.first_key_value() {
            self.flush_slice(end, out)?;
        }
        self.due_at = i64::MAX;
        Ok(())
    }

    /// The watermark at which `slice` is next due, after watermark `wm`.
    fn due(slice: &Slice, wm: i64) -> i64 {
        slice.next_end(wm).map_or(i64::MAX, window_max_timestamp)
    }
}

impl Operator for LocalWindowAggregate {
    fn describe(&self) -> String {
        format!(
            "LocalWindowAggregate(window={:?}, keys={:?}, aggs={:?})",
            self.window,
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    #[inline]
    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(ts)) = row.values.get(self.time_col).copied() else {
            // a NULL time attribute belongs to no window: dropped here, as the window would
            self.metrics.late_dropped += 1;
            return Ok(());
        };
        let Some((end, first_end, last_end, step)) = self.slice_of(ts) else {
            return Ok(());
        };
        encode_key(&mut self.key, row, &self.keys);
        let wm = self.watermark;
        let due_at = &mut self.due_at;
        let slice = self.slices.entry(end).or_insert_with(|| {
            let s = Slice {
                first_end,
                last_end,
                step,
                groups: KeyedState::default(),
            };
            *due_at = (*due_at).min(Self::due(&s, wm));
            s
        });
        let calls = &self.calls;
        let (rows, accs) = slice
            .groups
            .get_or_insert_with(&self.key, || (0, new_accs(calls)));
        *rows += 1;
        update_all(accs, calls, row, false, &mut self.scratch)
    }

    /// The partials of every slice a window of which this watermark fires go first.
    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if wm > self.watermark && wm >= self.due_at {
            let old = self.watermark;
            let due: Vec<i64> = self
                .slices
                .iter()
                .filter(|(_, s)| Self::due(s, old) <= wm)
                .map(|(end, _)| *end)
                .collect();
            for end in due {
                self.flush_slice(end, out)?;
            }
            self.due_at = self
                .slices
                .values()
                .map(|s| Self::due(s, wm))
                .min()
                .unwrap_or(i64::MAX);
        }
        self.watermark = self.watermark.max(wm);
        out.watermark(wm)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.flush_all(out)
    }

    fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.flush_all(out)
    }

    fn checkpointed(&self) -> bool {
        false
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.slices.values().map(|s| s.groups.len() as u64).sum();
        m.state_bytes = self
            .slices
            .values()
            .map(|s| s.groups.bytes_estimate())
            .sum();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }
}

/// Whether `calls` give the same results in two phases as in one: every call merges, and none
/// sums floating-point numbers (whose rounding depends on the order of the additions).
pub fn merges_exactly(calls: &[AggCall]) -> bool {
    use crate::agg::AggKind;
    use tillflow_types::DataType;
    let float_sum = |c: &AggCall| {
        matches!(c.kind, AggKind::Sum | AggKind::Avg)
            && matches!(c.arg_type, DataType::Float | DataType::Double)
    };
    merges(calls) && !calls.iter().any(|c| c.kind.is_variance() || float_sum(c))
}

/// Whether `calls` can be aggregated in two phases at all (results of floating-point sums may
/// then differ in their last digits, as in Flink).
pub fn merges(calls: &[AggCall]) -> bool {
    calls
        .iter()
        .all(|c| c.model.is_none() && !c.retracts && c.python.is_none())
}
