//! Watermark assignment from a table's `WATERMARK FOR col AS expr` clause.
//!
//! As Flink with `pipeline.auto-watermark-interval = 0`: after each record is passed on, the
//! watermark expression is evaluated on it and, if it is higher than the current watermark, the
//! new watermark is emitted. So record *i* is judged by windows against the watermark produced by
//! the records before it.
//!
//! A source with several splits (a Kafka topic's partitions) gets one watermark per split, and the
//! watermark passed on is their minimum, as Flink's per-partition watermarks: a partition that
//! lags holds event time back, instead of its records being judged late against a faster one.
//! With an idle timeout (`scan.watermark.idle-timeout`), a split without records for that long
//! (processing time) stops holding it back until it produces again.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Emit, Operator, OperatorMetrics};
use tillflow_types::{Row, Value};

/// Emits a watermark after every record that raises it.
pub struct WatermarkAssigner {
    expr: Expr,
    /// `col - INTERVAL` (or `col`): computed directly, without evaluating the expression.
    fast: Option<(usize, i64)>,
    rowtime: String,
    current: i64,
    /// The newest event time seen (with a watermark expression other than `rowtime - delay`,
    /// the newest watermark it gave).
    newest: i64,
    /// Per split: highest watermark and the processing time of its last record.
    splits: Vec<(i64, i64)>,
    idle_timeout: Option<i64>,
    idle: Vec<bool>,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

impl WatermarkAssigner {
    /// An assigner evaluating `expr` (a TIMESTAMP expression over the row) for rowtime column `rowtime`.
    pub fn new(expr: Expr, rowtime: String) -> Self {
        use crate::expr::BinOp;
        let fast = match &expr {
            Expr::Column { index, .. } => Some((*index, 0)),
            Expr::Binary {
                op: BinOp::Sub,
                left,
                right,
                ..
            } => match (left.as_ref(), right.as_ref()) {
                (
                    Expr::Column { index, .. },
                    Expr::Literal {
                        value: Value::Interval(d),
                        ..
                    },
                ) => Some((*index, *d)),
                _ => None,
            },
            _ => None,
        };
        WatermarkAssigner {
            expr,
            fast,
            rowtime,
            current: i64::MIN,
            newest: i64::MIN,
            splits: Vec::new(),
            idle_timeout: None,
            idle: Vec::new(),
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Keeps one watermark per split of the source (`n` > 1) and passes on their minimum; a split
    /// without records for `idle_timeout` microseconds of processing time is left out of it.
    pub fn with_splits(mut self, n: usize, idle_timeout: Option<i64>) -> Self {
        if n > 1 {
            let now = now_micros();
            self.splits = vec![(i64::MIN, now); n];
            self.idle = vec![false; n];
        }
        self.idle_timeout = idle_timeout;
        self
    }

    /// Raises split `split` to `wm` and emits the new minimum if it rose.
    fn advance_split(&mut self, split: usize, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if let Some(s) = self.splits.get_mut(split) {
            s.0 = s.0.max(wm);
            s.1 = now_micros();
            self.idle[split] = false;
        }
        self.emit_min(out)
    }

    fn emit_min(&mut self, out: &mut dyn Emit) -> Result<()> {
        let min = self
            .splits
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle)
            .map(|(s, _)| s.0)
            .min();
        if let Some(m) = min {
            if m > self.current {
                self.current = m;
                out.watermark(m)?;
            }
        }
        Ok(())
    }

    /// The current watermark (`i64::MIN` before the first).
    pub fn current(&self) -> i64 {
        self.current
    }
}

impl Operator for WatermarkAssigner {
    fn describe(&self) -> String {
        format!(
            "WatermarkAssigner(rowtime={}, watermark={:?})",
            self.rowtime, self.expr
        )
    }

    #[inline]
    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        self.metrics.records_out += 1;
        out.emit(row)?;
        if let Some((col, delay)) = self.fast {
            if let Some(Value::Timestamp(t)) = row.values.get(col) {
                self.newest = self.newest.max(*t);
                let wm = t.saturating_sub(delay);
                if !self.splits.is_empty() {
                    return self.advance_split(row.split as usize, wm, out);
                }
                if wm > self.current {
                    self.current = wm;
                    out.watermark(wm)?;
                }
            }
            return Ok(());
        }
        self.scratch.clear();
        let wm = self
            .expr
            .eval(row, &mut self.scratch)
            .map_err(|e| RuntimeError::Eval(format!("in WATERMARK FOR {}: {e}", self.rowtime)))?;
        if let Value::Timestamp(t) = wm {
            self.newest = self.newest.max(t);
            if !self.splits.is_empty() {
                return self.advance_split(row.split as usize, t, out);
            }
            if t > self.current {
                self.current = t;
                out.watermark(t)?;
            }
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emit) -> Result<()> {
        let Some(timeout) = self.idle_timeout else {
            return Ok(());
        };
        let mut changed = false;
        for (i, s) in self.splits.iter().enumerate() {
            if !self.idle[i] && now.saturating_sub(s.1) >= timeout {
                self.idle[i] = true;
                changed = true;
            }
        }
        if changed {
            self.emit_min(out)?;
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.watermark = (self.current > i64::MIN).then_some(self.current);
        m.max_event_time = (self.newest > i64::MIN).then_some(self.newest);
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.current.to_le_bytes());
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.current = crate::state::read_u64(input, &mut 0)? as i64;
        Ok(())
    }

    /// The least of the old instances' watermarks.
    fn restore_parts(&mut self, parts: &[&[u8]], _rescale: &crate::state::Rescale) -> Result<()> {
        let least =
            crate::operator::least_of(parts, |p| Ok(crate::state::read_u64(p, &mut 0)? as i64))?;
        self.current = least.unwrap_or(i64::MIN);
        Ok(())
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::DataType;

    #[derive(Default)]
    struct Marks(Vec<i64>);

    impl Emit for Marks {
        fn emit(&mut self, _row: &Row) -> Result<()> {
            Ok(())
        }
        fn watermark(&mut self, wm: i64) -> Result<()> {
            self.0.push(wm);
            Ok(())
        }
    }

    fn rec(split: u32, ts: i64) -> Row {
        let mut r = Row::with_capacity(1);
        r.values.push(Value::Timestamp(ts));
        r.split = split;
        r
    }

    #[test]
    fn the_slowest_split_holds_the_watermark_until_it_goes_idle() {
        let mut w = WatermarkAssigner::new(Expr::col(0, DataType::Timestamp(3)), "ts".into())
            .with_splits(2, Some(50_000));
        let mut m = Marks::default();
        w.process(&rec(0, 100), &mut m).unwrap();
        w.process(&rec(0, 500), &mut m).unwrap();
        assert!(m.0.is_empty(), "split 1 has said nothing yet: {:?}", m.0);
        w.process(&rec(1, 200), &mut m).unwrap();
        assert_eq!(m.0, [200]);
        // split 0 stays quiet for longer than the idle timeout (50 ms) while split 1 goes on
        std::thread::sleep(std::time::Duration::from_millis(200));
        w.process(&rec(1, 900), &mut m).unwrap();
        assert_eq!(m.0, [200, 500], "the minimum of 500 and 900");
        w.on_processing_time(now_micros(), &mut m).unwrap();
        assert_eq!(
            m.0,
            [200, 500, 900],
            "split 0 is idle: split 1 alone decides"
        );
        // a record of the idle split makes it count again (it is behind: no new watermark)
        w.process(&rec(0, 600), &mut m).unwrap();
        w.process(&rec(1, 2000), &mut m).unwrap();
        assert_eq!(m.0, [200, 500, 900]);
        w.process(&rec(0, 1500), &mut m).unwrap();
        assert_eq!(m.0, [200, 500, 900, 1500]);
    }
}
