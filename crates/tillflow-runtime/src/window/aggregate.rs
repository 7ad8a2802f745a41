//! The aligned-window aggregate operator (TUMBLE, HOP, CUMULATE).
//!
//! Open windows are kept sorted by end; each holds the accumulators of its groups in
//! [`KeyedState`]. A record is added to every window it belongs to that has not fired yet; a record
//! whose windows have all fired is dropped and counted as late.

use super::{window_max_timestamp, AlignedWindow, TimeMode};
use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key};
use crate::late::{self, SharedLateSink};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::{read_u64, KeyedState};
use tillflow_types::{Row, Value};

struct OpenWindow {
    start: i64,
    end: i64,
    groups: KeyedState<Vec<Acc>>,
}

/// Aggregates rows per (window, key) and emits each window's groups when it fires.
pub struct WindowAggregate {
    window: AlignedWindow,
    mode: TimeMode,
    time_col: usize,
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    windows: Vec<OpenWindow>,
    watermark: i64,
    assigned: Vec<(i64, i64)>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
    late: Option<SharedLateSink>,
}

impl WindowAggregate {
    /// Sends dropped late records to `sink` as well as counting them.
    pub fn with_late_sink(mut self, sink: Option<SharedLateSink>) -> Self {
        self.late = sink;
        self
    }

    /// An operator for `window` over time column `time_col`, grouping by `keys`, computing `calls`.
    pub fn new(
        window: AlignedWindow,
        mode: TimeMode,
        time_col: usize,
        keys: Vec<usize>,
        calls: Vec<AggCall>,
    ) -> Self {
        WindowAggregate {
            window,
            mode,
            time_col,
            keys,
            calls,
            windows: Vec::new(),
            watermark: i64::MIN,
            assigned: Vec::with_capacity(8),
            key: Vec::with_capacity(64),
            scratch: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
            late: None,
        }
    }

    fn window_index(&mut self, start: i64, end: i64) -> usize {
        // New windows nearly always belong at the end: search backwards.
        let mut i = self.windows.len();
        while i > 0 {
            let w = &self.windows[i - 1];
            if w.end == end && w.start == start {
                return i - 1;
            }
            if (w.end, w.start) < (end, start) {
                break;
            }
            i -= 1;
        }
        self.windows.insert(
            i,
            OpenWindow {
                start,
                end,
                groups: KeyedState::default(),
            },
        );
        i
    }

    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        while self
            .windows
            .first()
            .is_some_and(|w| window_max_timestamp(w.end) <= time)
        {
            let mut w = self.windows.remove(0);
            for (key, accs) in w.groups.drain() {
                self.out.clear();
                decode_key_into(&key, &mut self.out)
                    .ok_or_else(|| RuntimeError::State("corrupt window key".into()))?;
                for (acc, call) in accs.iter().zip(&self.calls) {
                    let v = acc.value(call, &mut self.out.heap);
                    self.out.values.push(v);
                }
                self.out.values.push(Value::Timestamp(w.start));
                self.out.values.push(Value::Timestamp(w.end));
                self.out
                    .values
                    .push(Value::Timestamp(window_max_timestamp(w.end)));
                self.metrics.records_out += 1;
                out.emit(&self.out)?;
            }
        }
        Ok(())
    }
}

impl Operator for WindowAggregate {
    fn describe(&self) -> String {
        format!(
            "WindowAggregate(window={:?}, time={:?}, keys={:?}, aggs={:?})",
            self.window,
            self.mode,
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    #[inline]
    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(ts)) = row.values.get(self.time_col).copied() else {
            // A NULL time attribute belongs to no window.
            self.metrics.late_dropped += 1;
            return late::report(&self.late, row, || "the time attribute is NULL".into());
        };
        let mut assigned = std::mem::take(&mut self.assigned);
        self.window.assign(ts, &mut assigned);
        encode_key(&mut self.key, row, &self.keys);
        let mut kept = false;
        for &(start, end) in &assigned {
            if self.mode == TimeMode::Event && window_max_timestamp(end) <= self.watermark {
                continue; // this window has fired: the record is late for it
            }
            kept = true;
            let i = self.window_index(start, end);
            let calls = &self.calls;
            let accs = self.windows[i]
                .groups
                .get_or_insert_with(&self.key, || new_accs(calls));
            update_all(accs, calls, row, !row.kind.is_addition(), &mut self.scratch)?;
        }
        if !kept {
            self.metrics.late_dropped += 1;
            let wm = self.watermark;
            let (first, last) = (assigned.first().copied(), assigned.last().copied());
            late::report(&self.late, row, || {
                let span = match (first, last) {
                    (Some((s, e)), Some((s2, e2))) if (s, e) != (s2, e2) => format!(
                        "windows [{}, {}) .. [{}, {})",
                        late::ts_text(s2),
                        late::ts_text(e2),
                        late::ts_text(s),
                        late::ts_text(e)
                    ),
                    (Some((s, e)), _) => {
                        format!("window [{}, {})", late::ts_text(s), late::ts_text(e))
                    }
                    _ => "its window".into(),
                };
                format!(
                    "late: {span} already fired (watermark {})",
                    late::ts_text(wm)
                )
            })?;
        }
        self.assigned = assigned;
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        super::on_watermark(self, wm, out)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emit) -> Result<()> {
        super::on_processing_time(self, now, out)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        super::on_end(self, out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.windows.iter().map(|w| w.groups.len() as u64).sum();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&(self.windows.len() as u64).to_le_bytes());
        for w in &self.windows {
            out.extend_from_slice(&w.start.to_le_bytes());
            out.extend_from_slice(&w.end.to_le_bytes());
            w.groups.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        }
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        let at = &mut 0;
        self.watermark = read_u64(input, at)? as i64;
        let n = read_u64(input, at)?;
        self.windows.clear();
        for _ in 0..n {
            let start = read_u64(input, at)? as i64;
            let end = read_u64(input, at)? as i64;
            let mut groups = KeyedState::default();
            groups.restore(input, at)?;
            self.windows.push(OpenWindow { start, end, groups });
        }
        Ok(())
    }
}

impl super::Firing for WindowAggregate {
    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        WindowAggregate::fire_until(self, time, out)
    }
    fn mode(&self) -> TimeMode {
        self.mode
    }
    fn watermark_mut(&mut self) -> &mut i64 {
        &mut self.watermark
    }
    fn emitted(&self) -> u64 {
        self.metrics.records_out
    }
    fn late_sink(&self) -> &Option<SharedLateSink> {
        &self.late
    }
}
