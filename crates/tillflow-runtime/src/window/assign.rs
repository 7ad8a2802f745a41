//! Window assignment without aggregation: `SELECT * FROM TABLE(TUMBLE(...))`.
//!
//! Each record is emitted once per window it belongs to (one for TUMBLE, several for HOP and
//! CUMULATE) with `window_start`, `window_end` and `window_time` appended — at once, not when the
//! window fires. As in Flink (checked with the oracle), nothing is late here: lateness only exists
//! for an aggregation or Top-N over the windows. A record without a time is dropped and counted.

use super::{window_max_timestamp, AlignedWindow, TimeMode};
use crate::error::Result;
use crate::late::{self, SharedLateSink};
use crate::operator::{Emit, Operator, OperatorMetrics};
use tillflow_types::{Row, Value};

/// Appends window columns to each record, once per window.
pub struct WindowAssign {
    window: AlignedWindow,
    mode: TimeMode,
    time_col: usize,
    assigned: Vec<(i64, i64)>,
    out: Row,
    metrics: OperatorMetrics,
    late: Option<SharedLateSink>,
}

impl WindowAssign {
    /// Assigns `window`s over `time_col`.
    pub fn new(window: AlignedWindow, mode: TimeMode, time_col: usize) -> Self {
        WindowAssign {
            window,
            mode,
            time_col,
            assigned: Vec::with_capacity(8),
            out: Row::with_capacity(16),
            metrics: OperatorMetrics::default(),
            late: None,
        }
    }

    /// Sends dropped late records to `sink` as well as counting them.
    pub fn with_late_sink(mut self, sink: Option<SharedLateSink>) -> Self {
        self.late = sink;
        self
    }
}

impl Operator for WindowAssign {
    fn describe(&self) -> String {
        format!(
            "WindowTableFunction(window={:?}, time={:?})",
            self.window, self.mode
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(ts)) = row.values.get(self.time_col).copied() else {
            self.metrics.late_dropped += 1;
            return late::report(&self.late, row, || "the time attribute is NULL".into());
        };
        let mut assigned = std::mem::take(&mut self.assigned);
        self.window.assign(ts, &mut assigned);
        for &(start, end) in &assigned {
            self.out.clear();
            self.out.kind = row.kind;
            for v in &row.values {
                self.out.push_from(*v, &row.heap);
            }
            self.out.values.extend([
                Value::Timestamp(start),
                Value::Timestamp(end),
                Value::Timestamp(window_max_timestamp(end)),
            ]);
            self.metrics.records_out += 1;
            out.emit(&self.out)?;
        }
        self.assigned = assigned;
        Ok(())
    }

    fn on_end(&mut self, _out: &mut dyn Emit) -> Result<()> {
        late::flush(&self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}
